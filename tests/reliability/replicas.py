#!/usr/bin/env python3
"""Replicas: three weirs on one PostgreSQL or MariaDB database, two killed with SIGKILL and
one frozen past its lease, while 20 runs of 25 steps and a recurring run go on.

    python tests/reliability/replicas.py --backend postgres|mariadb [--weir PATH] [--keep]

What happens:

1. A fresh database and a shared artifact folder; three `weir server` processes on them, each
   with its own port and data folder, one work folder (so a replica can adopt the steps
   another one started on this host), and a 6 s replica lease (`--replica-lease-seconds`).
2. 20 runs of a 25-step pipeline (5 stages of 5 container steps, sleeping 1.5 s, one of each
   stage 6 s) are
   created round-robin through the three replicas, and a recurring run fires every 3 s.
   Every step appends a line to a marker file when it starts and when it ends.
3. While runs are under way: the replica driving the most runs is killed with SIGKILL (and
   started again 2 s later); later another one is; then a third is frozen with SIGSTOP for
   the lease plus 4 s, then let go with SIGCONT.
4. The recurring run is disabled, every run must end, and `weir storage check` runs.

Properties checked (exit status 1 if any is violated):

* every run ends SUCCEEDED, with its 25 steps succeeded;
* no step attempt started twice: one start line per run and step (the pipeline has no
  retries, so a second start could only be a replica running a step another one ran);
* after each kill and after the freeze, another replica took the victim's runs over (its log
  says so) within the lease plus 8 s, and not before the lease ran out where the victim was
  not started again; steps the victims started were adopted, not run again; the frozen replica, let go, wrote nothing for the runs
  it lost (its writes were refused: its log says another weir drives them);
* no schedule slot fired twice: every run of the recurring run has its own slot, and no more
  runs than slots elapsed;
* `weir storage check` is clean.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import SetupError, Stores, free_port, tail  # noqa: E402

RUNS = 20
STAGES = 5
WIDTH = 5
STEP_SECONDS = 1.5
LONG_STEP_SECONDS = 6.0
LEASE_SECONDS = 6
# A replica's runs move within its lease, then the next pass of another replica (its poll
# interval is 2 s), give or take a heartbeat.
TAKEOVER_LIMIT_S = LEASE_SECONDS + 8
INTERVAL_SECONDS = 3
TOOK_OVER = 'took over a run whose weir stopped renewing its lease'
ADOPTED = 'adopted a step still running from before the restart'
SETTLED = 'settled a step that ended while weir was stopped'
LET_GO = ('another weir took this run over', 'another weir drives this run now')


def compile_pipelines(work: Path) -> Dict[str, Path]:
    from kfp import compiler, dsl

    @dsl.container_component
    def mark(token: str, step: str, marker_dir: str, seconds: float):
        return dsl.ContainerSpec(
            image='alpine:3.19',
            command=['sh', '-c',
                     'echo "$1 $WEIR_TASK_ID $$" >> "$2/$0.starts"; sleep "$3"; '
                     'echo "$1" >> "$2/$0.ends"'],
            args=[token, step, marker_dir, seconds])

    @dsl.pipeline(name='weir-replicas-25')
    def wide(token: str, marker_dir: str):
        previous = []
        for stage in range(STAGES):
            current = []
            for lane in range(WIDTH):
                # One long step per stage, so kills catch steps still running.
                task = mark(token=token, step=f's{stage}l{lane}', marker_dir=marker_dir,
                            seconds=LONG_STEP_SECONDS if lane == 0 else STEP_SECONDS)
                task.set_caching_options(False)
                for before in previous:
                    task.after(before)
                current.append(task)
            previous = current

    @dsl.container_component
    def tick():
        return dsl.ContainerSpec(image='alpine:3.19', command=['true'])

    @dsl.pipeline(name='weir-replicas-tick')
    def ticking():
        tick().set_caching_options(False)

    paths = {'wide': work / 'wide.yaml', 'tick': work / 'tick.yaml'}
    compiler.Compiler().compile(wide, str(paths['wide']))
    compiler.Compiler().compile(ticking, str(paths['tick']))
    return paths


def http_json(url: str, timeout: float = 30.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read() or b'{}')


@dataclass
class Replica:
    index: int
    weir_bin: Path
    work: Path
    metadata_url: str
    artifacts_url: str
    port: int = field(default_factory=free_port)
    process: Optional[subprocess.Popen] = None
    logs: List[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.port}'

    def flags(self) -> List[str]:
        return ['--data-dir', str(self.work / f'data-{self.index}'), '--metadata', self.metadata_url,
                '--artifacts', self.artifacts_url, '--name', 'replicas']

    def start(self) -> None:
        log = self.work / f'replica-{self.index}-{len(self.logs)}.log'
        self.logs.append(log)
        argv = [str(self.weir_bin), 'server', '--listen', f'127.0.0.1:{self.port}', *self.flags(),
                '--work-dir', str(self.work / 'steps'), '--log-format', 'json',
                '--replica-lease-seconds', str(LEASE_SECONDS)]
        with open(log, 'wb') as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                            cwd=self.work, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                http_json(f'{self.url}/apis/v2beta1/healthz', timeout=2)
                return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SetupError(f'replica {self.index} did not start:\n{tail(log)}')
            time.sleep(0.1)

    def events(self, since: int = 0) -> List[dict]:
        found = []
        for log in self.logs[since:]:
            for line in log.read_text(errors='replace').splitlines():
                if line.startswith('{'):
                    try:
                        found.append(json.loads(line))
                    except ValueError:  # a killed weir's last line may be cut short
                        pass
        return found

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Database:
    """Reads the run leases straight from the database (which replica drives what)."""

    def __init__(self, backend: str, stores: Stores):
        self.backend, self.stores = backend, stores

    def query(self, sql: str) -> List[List[str]]:
        import urllib.parse
        p = urllib.parse.urlsplit(self.stores.server_url)
        user = urllib.parse.unquote(p.username or 'root')
        if self.backend == 'mariadb':
            argv = ['mariadb', '-h', p.hostname or '127.0.0.1', '-P', str(p.port or 3306),
                    f'-u{user}', '-N', '-B', self.stores.database, '-e', sql]
        else:
            argv = ['psql', '-h', p.hostname or '127.0.0.1', '-p', str(p.port or 5432), '-U', user,
                    '-d', self.stores.database, '-tA', '-F', '\t', '-c', sql]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
        return [line.split('\t') for line in out.splitlines() if line.strip()]

    def runs_by_pid(self) -> Dict[int, int]:
        rows = self.query('SELECT s.pid, COUNT(*) FROM run_leases l JOIN server_leases s '
                          'ON s.id = l.owner GROUP BY s.pid')
        return {int(pid): int(n) for pid, n in rows}


@dataclass
class Report:
    violations: List[str] = field(default_factory=list)
    takeovers_s: List[float] = field(default_factory=list)
    runs: int = 0
    scheduled: int = 0
    adopted: int = 0
    settled: int = 0

    def violate(self, text: str) -> None:
        self.violations.append(text)

    @property
    def ok(self) -> bool:
        return not self.violations


def when(event: dict) -> float:
    return datetime.fromisoformat(event['timestamp']).timestamp()


def took_over_after(replicas: List[Replica], victim: Replica, at: float) -> Optional[float]:
    """Seconds from `at` to the first takeover logged by a replica other than `victim`."""
    times = [when(e) for r in replicas if r is not victim for e in r.events()
             if e.get('message') == TOOK_OVER and when(e) >= at]
    return min(times) - at if times else None


def run(args: argparse.Namespace) -> Report:
    import kfp
    weir_bin = Path(args.weir).resolve()
    work = Path(tempfile.mkdtemp(prefix=f'weir-replicas-{args.backend}-', dir=args.work_root))
    markers = work / 'markers'
    markers.mkdir()
    report = Report()
    stores = Stores(args.backend, work, args.postgres_url, args.mysql_url, prefix='weir_replicas')
    db = Database(args.backend, stores)
    replicas = [Replica(i, weir_bin, work, stores.metadata_url, stores.artifacts_url) for i in range(3)]
    finished = False
    try:
        packages = compile_pipelines(work)
        for replica in replicas:
            replica.start()
        clients = [kfp.Client(host=r.url) for r in replicas]
        experiment = clients[0].create_experiment('replicas').experiment_id
        tokens = [f'run{i:02d}' for i in range(RUNS)]
        run_ids = []
        for i, token in enumerate(tokens):
            created = clients[i % 3].create_run_from_pipeline_package(
                str(packages['wide']), arguments={'token': token, 'marker_dir': str(markers)},
                run_name=token, experiment_id=experiment)
            run_ids.append(created.run_id)
        version = clients[1].upload_pipeline(str(packages['tick']), pipeline_name='replicas-tick')
        version_id = clients[1].list_pipeline_versions(version.pipeline_id).pipeline_versions[0] \
            .pipeline_version_id
        schedule_from = time.time()
        recurring = clients[1].create_recurring_run(
            experiment_id=experiment, job_name='tick', pipeline_id=version.pipeline_id,
            version_id=version_id, interval_second=INTERVAL_SECONDS, max_concurrency=10,
            no_catchup=False)

        def busiest(exclude: List[Replica]) -> Replica:
            """The live replica driving the most runs now."""
            time.sleep(2)
            owned = db.runs_by_pid()
            candidates = [r for r in replicas if r not in exclude]
            return max(candidates, key=lambda r: owned.get(r.process.pid, 0))

        # Two kills, each of the replica driving the most runs. The first is started again
        # only once its runs moved (they move when its lease runs out); the second 2 s later
        # (its runs move when it starts again on this host, finding its old lease's process
        # gone, or when the lease runs out, whichever comes first).
        killed = []
        for round_ in range(2):
            victim = busiest(killed[-1:])
            owned = db.runs_by_pid().get(victim.process.pid, 0)
            if owned == 0:
                report.violate(f'replica {victim.index} drove no run when it was to be killed: '
                               'the runs ended too early to test anything')
            at = time.time()
            victim.process.send_signal(signal.SIGKILL)
            victim.process.wait()
            killed.append(victim)
            if round_ == 1:
                time.sleep(2)
                victim.start()
            deadline = at + TAKEOVER_LIMIT_S + 5
            while took_over_after(replicas, victim, at) is None and time.time() < deadline:
                time.sleep(0.5)
            moved = took_over_after(replicas, victim, at)
            if round_ == 0:
                if moved is not None and moved < LEASE_SECONDS - 1:
                    report.violate(f'runs moved {moved:.1f} s after a kill, before the '
                                   f'{LEASE_SECONDS} s lease ran out')
                victim.start()
            if owned and (moved is None or moved > TAKEOVER_LIMIT_S):
                report.violate(f'the runs of replica {victim.index} (killed) did not move within '
                               f'{TAKEOVER_LIMIT_S} s: {moved}')
            if moved is not None:
                report.takeovers_s.append(moved)

        # A freeze past the lease: the others take its runs; let go, it writes nothing for them.
        frozen = busiest(killed[-1:])
        owned = db.runs_by_pid().get(frozen.process.pid, 0)
        log_mark = len(frozen.logs)
        at = time.time()
        frozen.process.send_signal(signal.SIGSTOP)
        time.sleep(LEASE_SECONDS + 4)
        moved = took_over_after(replicas, frozen, at)
        frozen.process.send_signal(signal.SIGCONT)
        if owned and (moved is None or moved > TAKEOVER_LIMIT_S):
            report.violate(f'the runs of replica {frozen.index} (frozen) did not move: {moved}')
        if moved is not None:
            report.takeovers_s.append(moved)

        # Every run ends.
        deadline = time.monotonic() + args.timeout
        pending = set(run_ids)
        while pending and time.monotonic() < deadline:
            for run_id in list(pending):
                state = http_json(f'{replicas[0].url}/apis/v2beta1/runs/{run_id}').get('state')
                if state in ('SUCCEEDED', 'FAILED', 'CANCELED', 'SKIPPED'):
                    pending.discard(run_id)
            time.sleep(1)
        clients[0].disable_recurring_run(recurring.recurring_run_id)
        elapsed = time.time() - schedule_from
        if pending:
            report.violate(f'{len(pending)} runs did not end in {args.timeout} s: {sorted(pending)}')

        if owned:
            let_go = [e for e in frozen.events(since=log_mark - 1)
                      if e.get('message') in LET_GO and when(e) >= at]
            if not let_go:
                report.violate(f'replica {frozen.index}, let go after its freeze, never said '
                               'another weir drives its runs:\n' + tail(frozen.logs[-1]))

        for run_id, token in zip(run_ids, tokens):
            detail = http_json(f'{replicas[2].url}/apis/v2beta1/runs/{run_id}')
            report.runs += 1
            if detail.get('state') != 'SUCCEEDED':
                report.violate(f'run {token} ({run_id}) ended {detail.get("state")}: '
                               f'{detail.get("error")}')
            starts = (markers / f'{token}.starts').read_text().splitlines() \
                if (markers / f'{token}.starts').exists() else []
            by_step: Dict[str, List[str]] = {}
            for line in starts:
                by_step.setdefault(line.split()[0], []).append(line)
            for step, lines in by_step.items():
                if len(lines) > 1:
                    report.violate(f'run {token} step {step} started {len(lines)} times: {lines}')
            if detail.get('state') == 'SUCCEEDED' and len(by_step) != STAGES * WIDTH:
                report.violate(f'run {token} succeeded with {len(by_step)} steps started')

        # Schedules: one run per slot, and no more slots than elapsed.
        slots = db.query('SELECT slot_at, run_id FROM recurring_run_slots')
        scheduled = [r for r in http_json(f'{replicas[1].url}/apis/v2beta1/runs?page_size=200')
                     .get('runs', []) if r.get('recurring_run_id') == recurring.recurring_run_id]
        report.scheduled = len(scheduled)
        slot_runs = [run_id for _, run_id in slots]
        if len(set(slot_runs)) != len(slot_runs) or sorted(slot_runs) != sorted(r['run_id'] for r in scheduled):
            report.violate(f'schedule slots and runs differ: {len(slots)} slots, {len(scheduled)} runs')
        if len(scheduled) > elapsed / INTERVAL_SECONDS + 2:
            report.violate(f'{len(scheduled)} scheduled runs in {elapsed:.0f} s at one per '
                           f'{INTERVAL_SECONDS} s: a slot fired twice')
        if len(scheduled) < 3:
            report.violate(f'only {len(scheduled)} scheduled runs fired')

        messages = [e.get('message') for r in replicas for e in r.events()]
        report.adopted, report.settled = messages.count(ADOPTED), messages.count(SETTLED)
        if report.adopted + report.settled == 0:
            report.violate('no replica adopted or settled a step another one started: the kills '
                           'caught no step in flight')
        for replica in replicas:
            replica.stop()
        check = subprocess.run([str(weir_bin), 'storage', 'check', *replicas[0].flags(),
                                '--output', 'json'], capture_output=True, text=True, timeout=300)
        found = json.loads(check.stdout or '{}')
        if check.returncode != 0 or not found.get('ok') or found.get('orphans'):
            report.violate(f'storage check: {check.stdout}{check.stderr}')
        finished = True
    finally:
        for replica in replicas:
            replica.stop()
        stores.cleanup()
        if report.violations:
            (work / 'violations.txt').write_text('\n'.join(report.violations) + '\n')
        if finished and report.ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f'kept {work}')
    return report


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--backend', choices=['postgres', 'mariadb'], required=True)
    parser.add_argument('--weir', default=str(Path(__file__).resolve().parents[2] / 'target/debug/weir'))
    parser.add_argument('--postgres-url', default=os.environ.get('WEIR_TEST_POSTGRES_URL',
                                                                 'postgres://root@127.0.0.1:5432'))
    parser.add_argument('--mysql-url', default=os.environ.get('WEIR_TEST_MYSQL_URL',
                                                              'mysql://root@127.0.0.1:3306'))
    parser.add_argument('--work-root', default=None)
    parser.add_argument('--timeout', type=float, default=300)
    parser.add_argument('--keep', action='store_true')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    report = run(parse_args(argv))
    print(json.dumps({'ok': report.ok, 'runs': report.runs, 'scheduled': report.scheduled,
                      'adopted': report.adopted, 'settled': report.settled,
                      'takeovers_s': [round(t, 2) for t in report.takeovers_s],
                      'violations': report.violations}, indent=2))
    return 0 if report.ok else 1


if __name__ == '__main__':
    sys.exit(main())
