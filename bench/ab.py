"""Two weir binaries on one pipeline, in the same invocation: both servers start, runs alternate
between them, and each run's wall time and the weir process's CPU time are recorded.

    .venv/bin/python bench/ab.py container-chain-200 target/release/weir /tmp/weir-before [--rounds 5]

For before/after comparisons of an engine change (the figures in RESULTS.md's analysis). The
package is the headline compilation of bench/pipelines.py (no pip preamble); both servers run
with their defaults (Python steps from the fork server) unless `--server-arg` adds flags to
both, e.g. `--server-arg=--no-python-fork-server`.
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402
from kfp import compiler  # noqa: E402
from pipelines import PIPELINES  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('pipeline', choices=sorted(PIPELINES))
    parser.add_argument('binaries', nargs=2)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--server-arg', action='append', default=[], help='an extra flag for both servers')
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix='weir-ab-'))
    package = work / f'{args.pipeline}.yaml'
    compiler.Compiler().compile(PIPELINES[args.pipeline][0], str(package))
    servers = []
    for i, binary in enumerate(args.binaries):
        (work / f'w{i}').mkdir()
        servers.append(bench.Weir(Path(binary), work / f'w{i}', args.server_arg))
    prepared = [server.prepare(package) for server in servers]
    samples = {i: ([], [], []) for i in range(2)}
    try:
        for server, run in zip(servers, prepared):
            server.run(run)  # warm-up, not counted
        for _ in range(args.rounds):
            for i, server in enumerate(servers):
                before = cpu_seconds(server.process.pid)
                wall, cadence = server.run_with_cadence(prepared[i])
                samples[i][0].append(wall)
                samples[i][1].append(cpu_seconds(server.process.pid) - before)
                if cadence is not None:
                    samples[i][2].append(cadence)
    finally:
        for server in servers:
            server.stop()
    for i, binary in enumerate(args.binaries):
        wall, cpu, cadence = samples[i]
        line = (f'{binary}: wall {statistics.median(wall) * 1000:.0f} ms [{min(wall) * 1000:.0f}–{max(wall) * 1000:.0f}], '
                f'weir CPU {statistics.median(cpu) * 1000:.0f} ms')
        if cadence:
            line += f', step cadence {statistics.median(cadence) * 1000:.2f} ms'
        print(line)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
