"""Time from a replica's death to its runs moving on, over several rounds of the replica
scenario (tests/reliability/replicas.py: 3 weirs on one database, 20 runs of 25 steps and a
recurring run; one replica killed with SIGKILL and restarted once its runs moved, another killed
and restarted 2 s later on the same host, a third frozen with SIGSTOP past its lease).

    .venv/bin/python bench/takeover.py [--backend postgres] [--rounds 3] [--weir target/release/weir]

Each figure is the time from the event (kill or freeze) to the first "took over" line of another
replica. The peer is the lease itself (6 s here, `--replica-lease-seconds`): a dead replica's runs
cannot move before it runs out, unless a restart on the same host lets them go at once. Prints
the median and range of each kind of event over the rounds.
"""
import argparse
import statistics
import subprocess
import sys
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / 'tests' / 'reliability' / 'replicas.py'
# In the order replicas.py measures them.
EVENTS = ['kill -9, restarted after its runs moved', 'kill -9, restarted 2 s later', 'SIGSTOP for 10 s']


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument('--backend', choices=['postgres', 'mariadb'], default='postgres')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--weir', default=str(ROOT / 'target' / 'release' / 'weir'))
    args = parser.parse_args()
    by_event = {e: [] for e in EVENTS}
    for round_no in range(args.rounds):
        done = subprocess.run([sys.executable, str(SCENARIO), '--backend', args.backend, '--weir', args.weir],
                              capture_output=True, text=True, timeout=1200)
        # The scenario prints its report last, as an indented JSON object.
        text = done.stdout
        report = json.loads(text[text.rfind('\n{') + 1:] if '\n{' in text else text)
        if not report.get('ok'):
            print(f'round {round_no}: the scenario failed: {report}', file=sys.stderr)
            return 1
        for event, seconds in zip(EVENTS, report['takeovers_s']):
            by_event[event].append(seconds)
        print(f'round {round_no}: {report["takeovers_s"]}', file=sys.stderr)
    print(f'{args.backend}, {args.rounds} rounds, 6 s lease')
    print('| event | median s | min–max s |')
    print('|---|---|---|')
    for event, times in by_event.items():
        if times:
            print(f'| {event} | {statistics.median(times):.1f} | {min(times):.1f}–{max(times):.1f} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
