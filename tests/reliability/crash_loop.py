#!/usr/bin/env python3
"""Crash loop: kill -9 weir again and again under load, then check that nothing was lost,
duplicated or run twice.

    python tests/reliability/crash_loop.py --backend sqlite|mariadb|postgres --kills 20 \
        --clients 4 [--weir PATH] [--seed N] [--keep]      (--help for the other knobs)

What happens:

1. Fresh stores (a SQLite file, or a new MariaDB or PostgreSQL database) and a local artifact
   folder.
   A 10-step chain of lightweight Python components is compiled with the kfp SDK; every step
   sleeps 50-300 ms (so kills land mid-step) and, when its work is done, appends one line to a
   marker file outside weir, one file per (run token, step).
2. `--clients` threads, each with its own kfp.Client, submit runs continuously (a few in
   flight per client; a create that cannot connect is sent again, one cut off is not).
   Every submission has a unique token, used as the run's display name and passed to the
   steps, so runs and markers can be matched to submissions.
3. The main thread kills weir with SIGKILL at random moments (mostly after 0.5-3 s of
   uptime, sometimes while it is still starting up) and restarts it each time on the same
   stores, same port and same --name, until `--kills` kills have hit a live, serving weir:
   one that answered healthz just before the kill. Kills of a weir still starting up come on
   top and do not count (nor does a kill whose healthz went unanswered). The restart need not
   wait for the killed weir's server lease to expire (30 s): `weir server` does not look at
   leases; only `weir storage upgrade/purge` refuse while one is live, and `storage check`
   ignores them.
4. Weir is started a last time, submissions stop, and every run must become terminal.

Properties checked (exit status 1 if any is violated, 2 if the loop could not run):

* every submitted run exists exactly once: a create that returned a run id exists exactly
  once with that id; one cut off without an answer (weir died) at most once; one that never
  connected not at all; weir never rejects one; no run exists that nobody submitted;
* every run is terminal, a SUCCEEDED run has its 10 steps succeeded, and a FAILED run is
  accepted (and counted) only when its failed steps were lost to a kill;
* no succeeded step ran twice: at most one marker line per run and step. A violation shows
  the completions and what weir's logs say about the task's attempts, placed against the
  kills, and names the cause (a step that finished before weir recorded it and was rerun
  after the restart, or one still running that the restarted weir neither adopted nor
  stopped);
* weir's records match what the steps did: every step weir records as SUCCEEDED left its
  marker and got the previous step's output as input;
* the restarts dealt with steps left behind: across the loop, weir logged at least once
  that it adopted a step still running from before the restart or settled one that ended
  while weir was stopped (otherwise the kills never caught a step in flight and the loop
  proved nothing about recovery);
* `weir storage check` on the stores (same storage flags as the server) exits 0 and reports
  nothing missing and no orphan object.

The same `--seed` gives the same kill schedule, client pacing and tokens (timing on a busy
machine still varies, so it is deterministic-ish). Runnable from pytest: `run(parse_args(argv))`
returns a Report; `main(argv)` returns the exit status.
"""
import argparse
import contextlib
import io
import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from harness import SetupError, Stores, free_port, tail

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WEIR_BIN = Path(os.environ.get('WEIR_BIN', REPO_ROOT / 'target' / 'debug' / 'weir'))
DEFAULT_POSTGRES_URL = os.environ.get('WEIR_TEST_POSTGRES_URL', 'postgres://root@127.0.0.1:5432')
DEFAULT_MYSQL_URL = os.environ.get('WEIR_TEST_MYSQL_URL', 'mysql://root@127.0.0.1:3306')
STEPS = 10
TERMINAL = {'SUCCEEDED', 'FAILED', 'CANCELED', 'SKIPPED'}
# What weir's recovery writes on a task whose process it lost (crates/weir-engine runtime.rs).
LOST_STEP_MESSAGE = "process was lost when weir stopped"
# What a restarted weir logs when it deals with a step an earlier weir left RUNNING (runtime.rs).
ADOPTED_LOG = 'adopted a step still running from before the restart'
SETTLED_LOG = 'settled a step that ended while weir was stopped'
# Kills that hit a weir still starting up come on top of `--kills`; past this many in all the
# loop gives up (a weir that never gets to serve is a failure in itself).
MAX_KILLS_FACTOR = 3
HEALTHZ_TIMEOUT_S = 60.0
SHOWN_PER_PROPERTY = 4  # violations shown in the summary; the work folder keeps them all

# The properties, in the order the summary lists their violations.
EXACTLY_ONCE = 'every submitted run exists exactly once'
TERMINAL_RUNS = 'every run is terminal, and failed only because a kill lost a step'
NO_RERUN = 'no succeeded step ran twice'
RECORDS_MATCH = "weir's records match what the steps did"
STORAGE_CHECK = '`weir storage check` finds nothing missing and no orphan'
RECOVERY = 'restarted weirs adopted or settled steps left from before a kill'
EXERCISED = 'the loop exercised weir'
PROPERTIES = [EXACTLY_ONCE, TERMINAL_RUNS, NO_RERUN, RECORDS_MATCH, STORAGE_CHECK, RECOVERY,
              EXERCISED]

# kfp.Client warns at every construction that it needs a KFP >= 2.0.0-beta.2 server.
warnings.filterwarnings('ignore', message='This client only works with Kubeflow Pipeline')


# The loop could not run (weir would not start, a store is unreachable...).
CrashLoopError = SetupError


# --------------------------------------------------------------------------------------------
# The pipeline


def compile_chain(path: Path, retries: int) -> None:
    """Compiles the 10-step chain to `path` (imports kfp here so `--help` stays fast)."""
    from kfp import compiler, dsl

    @dsl.component(base_image='python:3.11')
    def crash_step(index: int, previous: int, token: str, marker_dir: str) -> int:
        import hashlib
        import os
        import time
        # Per (token, step) so a replay with the same seed sleeps the same.
        digest = hashlib.sha256(f'{token}/{index}'.encode()).digest()
        time.sleep(0.05 + digest[0] / 255 * 0.25)
        # The marker is the last thing the step does: one line = one completed execution.
        # O_APPEND keeps concurrent or repeated executions from overwriting each other.
        line = (f'{token} step={index} run={os.environ.get("WEIR_RUN_ID", "")} '
                f'task={os.environ.get("WEIR_TASK_ID", "")} pid={os.getpid()} '
                f'at={time.time():.3f}\n')
        path = os.path.join(marker_dir, f'{token}.step{index:02d}')
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        return previous + index

    @dsl.pipeline(name='weir-crash-loop-chain')
    def chain(token: str, marker_dir: str) -> int:
        previous = 0
        task = None
        for index in range(1, STEPS + 1):
            task = crash_step(index=index, previous=previous, token=token,
                              marker_dir=marker_dir)
            task.set_caching_options(False)
            if retries > 0:
                # Lets a run survive a kill that loses one of its steps; a run whose step is
                # lost more often than this fails, which the checks accept.
                task.set_retry(num_retries=retries)
            previous = task.output
        return task.output

    compiler.Compiler().compile(chain, str(path))


# --------------------------------------------------------------------------------------------
# HTTP and processes


def http_json(url: str, timeout: float = 30.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read() or b'{}')


def http_status(url: str, timeout: float = 2.0) -> Optional[int]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


@dataclass
class Life:
    """One weir process: when it was started, ready and killed (wall-clock seconds)."""
    index: int
    log_path: Path
    started: float
    ready: Optional[float] = None
    killed: Optional[float] = None
    serving_when_killed: Optional[bool] = None  # answered healthz just before the kill


class Weir:
    """`weir server` on fixed stores and a fixed port, so clients keep one URL across kills."""

    NAME = 'crash-loop'

    def __init__(self, weir_bin: Path, work: Path, metadata_url: str, artifacts_url: str):
        self.weir_bin = weir_bin
        self.work = work
        self.data_dir = work / 'data'
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.metadata_url = metadata_url
        self.artifacts_url = artifacts_url
        self.port = free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        self.process: Optional[subprocess.Popen] = None
        self.lives: List[Life] = []

    def spawn(self) -> Life:
        life = Life(len(self.lives), self.work / f'weir-{len(self.lives):02d}.log', time.time())
        argv = [str(self.weir_bin), 'server', '--listen', f'127.0.0.1:{self.port}',
                *self.storage_flags(), '--log-format', 'json',
                '--executor-python', sys.executable]
        with open(life.log_path, 'wb') as log:
            # Its own session: a Ctrl-C on this script must not reach weir (the kills are ours).
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                            cwd=self.data_dir, start_new_session=True)
        self.lives.append(life)
        return life

    def storage_flags(self) -> List[str]:
        """The storage flags of `weir server`, which `weir storage check` is given too."""
        return ['--data-dir', str(self.data_dir), '--metadata', self.metadata_url,
                '--artifacts', self.artifacts_url, '--name', self.NAME]

    def healthz(self, timeout: float = 2.0) -> Optional[int]:
        return http_status(f'{self.url}/apis/v2beta1/healthz', timeout)

    def wait_ready(self, life: Life) -> None:
        assert self.process is not None
        deadline = time.monotonic() + HEALTHZ_TIMEOUT_S
        while self.healthz() != 200:
            if self.process.poll() is not None:
                raise CrashLoopError(
                    f'weir start #{life.index} exited with code {self.process.returncode} '
                    f'before answering healthz; log {life.log_path}:\n{tail(life.log_path)}')
            if time.monotonic() > deadline:
                raise CrashLoopError(
                    f'weir start #{life.index} did not answer healthz within '
                    f'{HEALTHZ_TIMEOUT_S:.0f}s; log {life.log_path}:\n{tail(life.log_path)}')
            time.sleep(0.05)
        life.ready = time.time()

    def start(self) -> Life:
        life = self.spawn()
        self.wait_ready(life)
        return life

    def kill9(self, healthz_timeout: float = 2.0) -> bool:
        """Asks healthz, then kills with SIGKILL; returns whether the weir was serving (it
        answered 200 just before the kill)."""
        assert self.process is not None
        serving = self.process.poll() is None and self.healthz(healthz_timeout) == 200
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.lives[-1].killed = time.time()
        self.lives[-1].serving_when_killed = serving
        return serving

    def recoveries(self) -> Dict[str, int]:
        """How often the weirs' logs say a step left RUNNING by a killed weir was adopted
        (still running) or settled (ended meanwhile, from its exit status)."""
        counts = {ADOPTED_LOG: 0, SETTLED_LOG: 0}
        for life in self.lives:
            try:
                lines = life.log_path.read_text(errors='replace').splitlines()
            except FileNotFoundError:
                continue
            for line in lines:
                if not line.startswith('{'):
                    continue
                try:
                    message = json.loads(line).get('message', '')
                except ValueError:  # the last line of a killed weir may be cut short
                    continue
                for wanted in counts:
                    if message.startswith(wanted):
                        counts[wanted] += 1
        return counts

    def stop(self, grace_s: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def place(self, t: float) -> str:
        """Where wall-clock time `t` falls among the kills and restarts."""
        killed = [life for life in self.lives if life.killed is not None and life.killed <= t]
        if not killed:
            return 'before the first kill'
        last = killed[-1]
        after = self.lives[last.index + 1] if last.index + 1 < len(self.lives) else None
        serving = '' if last.serving_when_killed else ' (not yet serving)'
        where = f'{t - last.killed:.3f}s after the kill of start #{last.index}{serving}'
        if after is None or t < after.started:
            return f'weir down, {where}'
        if after.ready is None:  # killed during startup: when it began serving is unknown
            return f'during start #{after.index}, {where}'
        if t < after.ready:
            return f'start #{after.index} starting up, {where}'
        return f'{where}, {t - after.ready:.3f}s after start #{after.index} was serving'

    def task_events(self, task_id: str) -> List[Tuple[float, int, str, Dict[str, Any]]]:
        """(wall-clock time, start index, message, event) of what weir's logs say about a
        task: attempts starting, steps recovered after a kill, steps finishing."""
        found = []
        for life in self.lives:
            try:
                lines = life.log_path.read_text(errors='replace').splitlines()
            except FileNotFoundError:
                continue
            for line in lines:
                if task_id not in line or not line.startswith('{'):
                    continue
                try:
                    event = json.loads(line)
                except ValueError:  # the last line of a killed weir may be cut short
                    continue
                if event.get('task.id') == task_id:
                    at = datetime.fromisoformat(event['timestamp']).timestamp()
                    found.append((at, life.index, event.get('message', ''), event))
        return sorted(found, key=lambda e: e[0])


# --------------------------------------------------------------------------------------------
# Stores


# --------------------------------------------------------------------------------------------
# Clients


@dataclass
class Submission:
    token: str
    client: int
    # 'sending' until the call returns; then 'acked' (we got a run id), 'refused' (no
    # connection: the request never reached weir), 'unknown' (no answer: weir may or may not
    # have stored it) or 'rejected' (weir answered an HTTP error).
    outcome: str = 'sending'
    run_id: Optional[str] = None
    error: str = ''


def describe_error(error: BaseException) -> Tuple[str, str]:
    """('rejected' | 'refused' | 'unknown', text) for an exception from a kfp.Client call."""
    from urllib3.exceptions import MaxRetryError, NewConnectionError
    status = getattr(error, 'status', None)
    text = f'{type(error).__name__}: {str(error)[:300]}'
    # A 4xx is a definite answer; a 5xx may come from a weir dying mid-request.
    if isinstance(status, int) and 400 <= status < 500:
        return 'rejected', text
    if isinstance(error, NewConnectionError) or (
            isinstance(error, MaxRetryError) and isinstance(error.reason, NewConnectionError)):
        return 'refused', text
    return 'unknown', text


class Client(threading.Thread):
    """Submits runs until told to stop, keeping at most `max_active` of its runs unfinished
    so the backlog left when the kills end stays small."""

    def __init__(self, index: int, url: str, package: Path, experiment_id: str,
                 marker_dir: Path, seed: int, max_active: int, stop: threading.Event):
        super().__init__(name=f'client-{index}', daemon=True)
        self.index = index
        self.url = url
        self.package = package
        self.experiment_id = experiment_id
        self.marker_dir = marker_dir
        self.rng = random.Random(seed * 1000 + index)
        self.seed = seed
        self.max_active = max_active
        self.stop_event = stop
        self.submissions: List[Submission] = []
        self.active: List[str] = []
        self.failure: Optional[BaseException] = None
        self._client = None

    def client(self):
        import kfp
        if self._client is None:
            self._client = kfp.Client(host=self.url)  # calls healthz: fails while weir is down
        return self._client

    def run(self) -> None:
        try:
            self.loop()
        except BaseException as error:  # surfaced by the main thread
            self.failure = error

    def pause(self, low: float, high: float) -> None:
        self.stop_event.wait(self.rng.uniform(low, high))

    def loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                client = self.client()
            except Exception:
                self.pause(0.1, 0.3)
                continue
            self.prune(client)
            if len(self.active) >= self.max_active:
                self.pause(0.2, 0.4)
                continue
            token = f'crash-s{self.seed}-c{self.index}-{len(self.submissions):04d}'
            submission = Submission(token, self.index)
            self.submissions.append(submission)
            self.submit(client, submission)
            self.pause(0.05, 0.3)

    def submit(self, client, submission: Submission) -> None:
        """Creates the run, retrying only while weir cannot be reached: a request that never
        got through is safe to send again, one cut off mid-way is not (it may be stored)."""
        while True:
            try:
                run = client.run_pipeline(
                    experiment_id=self.experiment_id, job_name=submission.token,
                    pipeline_package_path=str(self.package),
                    params={'token': submission.token, 'marker_dir': str(self.marker_dir)},
                    enable_caching=False)
            except Exception as error:
                submission.outcome, submission.error = describe_error(error)
                if submission.outcome == 'refused' and not self.stop_event.is_set():
                    self.pause(0.1, 0.3)
                    continue
            else:
                submission.outcome, submission.run_id = 'acked', run.run_id
                self.active.append(run.run_id)
            return

    def prune(self, client) -> None:
        still = []
        for run_id in self.active:
            try:
                state = client.get_run(run_id).state
            except Exception:
                # Weir is down (or the run lookup failed): ask again next time.
                still.append(run_id)
                continue
            if state not in TERMINAL:
                still.append(run_id)
        self.active = still


# --------------------------------------------------------------------------------------------
# The loop and the checks


class QuietClients:
    """Stands in for sys.stdout and drops what client threads print: kfp.Client prints a link
    for every run it creates, and hundreds of them would bury the summary."""

    def __init__(self, out):
        self.out = out

    def write(self, text: str) -> int:
        if isinstance(threading.current_thread(), Client):
            return len(text)
        return self.out.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.out, name)


@dataclass
class Report:
    backend: str
    seed: int
    work: Path
    kills: int = 0  # of a weir that answered healthz just before: the ones that count
    kills_during_startup: int = 0  # of a weir that did not (still starting): on top
    adopted: int = 0
    settled: int = 0
    orphans: int = 0
    submissions: int = 0
    acked: int = 0
    refused: int = 0
    unknown: int = 0
    unknown_stored: int = 0
    rejected: int = 0
    runs: int = 0
    succeeded: int = 0
    failed: int = 0
    failed_lost_step: int = 0
    steps_retried: int = 0
    extra_attempts: int = 0
    wall_s: float = 0.0
    double_completions: Dict[str, int] = field(default_factory=dict)  # by cause
    violations: Dict[str, List[str]] = field(default_factory=dict)  # by property

    @property
    def ok(self) -> bool:
        return not self.violations

    def violate(self, prop: str, text: str) -> None:
        self.violations.setdefault(prop, []).append(text)

    def all_violations(self) -> str:
        return '\n\n'.join(f'[{prop}] {text}' for prop in PROPERTIES
                            for text in self.violations.get(prop, []))

    def summary(self) -> str:
        lines = [
            f'crash loop on {self.backend} (seed {self.seed}): {self.kills} kills of a '
            f'serving weir (+ {self.kills_during_startup} before weir answered healthz, not '
            f'counted), {self.wall_s:.1f}s wall time',
            f'  recovery after restarts: {self.adopted} steps adopted still running, '
            f'{self.settled} settled from their exit status',
            f'  submissions: {self.submissions} ({self.acked} acknowledged, {self.refused} '
            f'refused while weir was down, {self.unknown} cut off without answer of which '
            f'{self.unknown_stored} stored, {self.rejected} rejected)',
            f'  runs: {self.runs} ({self.succeeded} succeeded, {self.failed} failed, of which '
            f'{self.failed_lost_step} because a kill lost a step)',
            f'  steps retried: {self.steps_retried} ({self.extra_attempts} extra attempts)',
            f'  storage check: {self.orphans} orphan object(s)',
        ]
        for cause, count in sorted(self.double_completions.items()):
            lines.append(f'  steps completed twice: {count} x {cause}')
        for prop in PROPERTIES:
            found = self.violations.get(prop, [])
            if not found:
                lines.append(f'  ok    {prop}')
                continue
            lines.append(f'  FAIL  {prop}: {len(found)} violation(s)')
            lines += [f'    - {text}' for text in found[:SHOWN_PER_PROPERTY]]
            if len(found) > SHOWN_PER_PROPERTY:
                lines.append(f'    ... and {len(found) - SHOWN_PER_PROPERTY} more in '
                             f'{self.work / "violations.txt"}')
        return '\n'.join(lines)


def list_all_runs(url: str) -> List[Dict[str, Any]]:
    runs: List[Dict[str, Any]] = []
    token = ''
    while True:
        query = urllib.parse.urlencode({'page_size': 200, 'page_token': token})
        page = http_json(f'{url}/apis/v2beta1/runs?{query}')
        runs += page.get('runs') or []
        token = page.get('next_page_token') or ''
        if not token:
            return runs


def wait_all_terminal(url: str, timeout_s: float) -> List[Dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        runs = list_all_runs(url)
        if all(r.get('state') in TERMINAL for r in runs) or time.monotonic() > deadline:
            return runs
        time.sleep(0.5)


def read_markers(marker_dir: Path) -> Dict[Tuple[str, int], List[str]]:
    markers: Dict[Tuple[str, int], List[str]] = {}
    for path in marker_dir.iterdir():
        token, _, step = path.name.rpartition('.step')
        markers[(token, int(step))] = path.read_text().splitlines()
    return markers


def task_line(task: Dict[str, Any]) -> str:
    error = (task.get('error') or {}).get('message', '')
    return (f'{task.get("display_name") or task.get("name")}: {task.get("state")} '
            f'attempts={task.get("attempts")} pid={task.get("pid")}'
            + (f' error={error[:160]!r}' if error else ''))


def check(report: Report, weir: Weir, submissions: List[Submission],
          runs: List[Dict[str, Any]], marker_dir: Path) -> None:
    """Records every violated property in `report` (weir must be serving)."""
    by_token: Dict[str, List[Dict[str, Any]]] = {}
    for run in runs:
        by_token.setdefault(run.get('display_name', ''), []).append(run)
    check_submissions(report, submissions, by_token)
    tasks_of = {run['run_id']: http_json(f'{weir.url}/apis/weir/v1/runs/{run["run_id"]}/tasks')
                .get('tasks') or [] for run in runs}
    for run in runs:
        check_run(report, run, tasks_of[run['run_id']])
    check_markers(report, weir, runs, by_token, tasks_of, read_markers(marker_dir))


def check_submissions(report: Report, submissions: List[Submission],
                      by_token: Dict[str, List[Dict[str, Any]]]) -> None:
    """Each submission exists as often as what its create call learned allows."""
    for s in submissions:
        found = by_token.get(s.token, [])
        ids = [r['run_id'] for r in found]
        if s.outcome == 'acked':
            if ids != [s.run_id]:
                report.violate(EXACTLY_ONCE, f'{s.token}: create returned run {s.run_id}, '
                                             f'but the runs named so are {ids}')
        elif s.outcome == 'refused':
            if found:
                report.violate(EXACTLY_ONCE, f'{s.token}: create could not connect '
                                             f'({s.error}), yet runs {ids} exist')
        elif s.outcome == 'unknown':
            if len(found) > 1:
                report.violate(EXACTLY_ONCE, f'{s.token}: create got no answer ({s.error}) '
                                             f'and the run exists {len(found)} times: {ids}')
            report.unknown_stored += len(found) == 1
        elif s.outcome == 'rejected':
            # Only ever valid requests are sent, so a 4xx is wrong in itself.
            report.violate(EXACTLY_ONCE, f'{s.token}: weir rejected a valid create: '
                                         f'{s.error}; runs named so: {ids}')
        else:
            report.violate(EXACTLY_ONCE, f'{s.token}: the create call never returned')
    submitted = {s.token for s in submissions}
    for token, found in by_token.items():
        if token not in submitted:
            report.violate(EXACTLY_ONCE, f'runs {[r["run_id"] for r in found]} are named '
                                         f'{token!r}, which nobody submitted')


def check_run(report: Report, run: Dict[str, Any], tasks: List[Dict[str, Any]]) -> None:
    """A run is over, and a failure is explained by a step lost to a kill."""
    run_id, state = run['run_id'], run.get('state')
    name = f'run {run_id} ({run.get("display_name")})'
    steps = [t for t in tasks if t.get('kind') == 'container']
    for t in steps:
        if (t.get('attempts') or 0) > 1:
            report.steps_retried += 1
            report.extra_attempts += t['attempts'] - 1
    details = '; '.join(task_line(t) for t in steps)
    if state == 'SUCCEEDED':
        report.succeeded += 1
        done = [t for t in steps if t.get('state') == 'SUCCEEDED']
        if len(done) != STEPS:
            report.violate(TERMINAL_RUNS, f'{name} SUCCEEDED with {len(done)} of {STEPS} '
                                          f'steps succeeded: {details}')
    elif state == 'FAILED':
        report.failed += 1
        failed = [t for t in steps if t.get('state') == 'FAILED']
        if failed and all(LOST_STEP_MESSAGE in ((t.get('error') or {}).get('message') or '')
                          for t in failed):
            report.failed_lost_step += 1
        else:
            report.violate(TERMINAL_RUNS, f'{name} FAILED, not because a step was lost: '
                                          f'run error {run.get("error")}; {details}')
    elif state in TERMINAL:
        report.violate(TERMINAL_RUNS, f'{name} ended {state}, yet nobody canceled anything')
    else:
        report.violate(TERMINAL_RUNS, f'{name} is still {state}: {details}')


def check_markers(report: Report, weir: Weir, runs: List[Dict[str, Any]],
                  by_token: Dict[str, List[Dict[str, Any]]],
                  tasks_of: Dict[str, List[Dict[str, Any]]],
                  markers: Dict[Tuple[str, int], List[str]]) -> None:
    """At most one completion per (run, step); and what weir recorded of each succeeded step
    (its input from the previous step) agrees with the chain."""
    for (token, index), lines in sorted(markers.items()):
        found = by_token.get(token, [])
        if len(found) != 1:
            report.violate(RECORDS_MATCH, f'step {index} of {token} completed {len(lines)} '
                                          f'time(s), but {len(found)} runs are named so')
            continue
        if len(lines) > 1:
            run = found[0]
            text, causes = double_completion(weir, run, index, lines, tasks_of[run['run_id']])
            report.violate(NO_RERUN, text)
            for cause in causes:
                report.double_completions[cause] = report.double_completions.get(cause, 0) + 1
    for run in runs:
        token = run.get('display_name', '')
        for t in tasks_of[run['run_id']]:
            if t.get('kind') != 'container' or t.get('state') != 'SUCCEEDED':
                continue
            index = marker_step(t)
            where = f'run {run["run_id"]} ({token}): weir says {task_line(t)}'
            if index is None:
                report.violate(RECORDS_MATCH, f'{where} but has no `index` input')
                continue
            if (token, index) not in markers:
                report.violate(RECORDS_MATCH, f'{where} but the step never completed '
                                              '(no marker)')
            previous = ((t.get('inputs') or {}).get('parameters') or {}).get('previous')
            if previous != (index - 1) * index // 2:
                report.violate(RECORDS_MATCH, f'{where} with input previous={previous!r}, '
                                              f'expected {(index - 1) * index // 2}')


def marker_step(task: Dict[str, Any]) -> Optional[int]:
    """The step index a task was given (its `index` input parameter)."""
    value = ((task.get('inputs') or {}).get('parameters') or {}).get('index')
    if isinstance(value, dict):  # tolerate a wrapped value
        value = value.get('number_value', value.get('value'))
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# How a step came to complete twice, judged from weir's logs (see `double_completion`).
FINISHED_BEFORE_RECOVERY = 'finished before weir recorded it, rerun after the restart'
ORPHAN_NOT_STOPPED = ('still running when the restarted weir settled it as lost, and '
                      'neither adopted nor stopped')
UNEXPLAINED = "rerun without a recovery in weir's logs"
# What a restarted weir logs when it deals with a step an earlier weir left RUNNING: older
# engines "recovered" (always reran it), newer ones "settled" (from its exit file) or
# "adopted" (still running) it.
RECOVERY_MESSAGES = ('recovered a step', 'settled a step')
ADOPTED_MESSAGE = 'adopted a step'


def double_completion(weir: Weir, run: Dict[str, Any], index: int, lines: List[str],
                      tasks: List[Dict[str, Any]]) -> Tuple[str, List[str]]:
    """A readable account of a step that completed more than once (each completion, and each
    attempt started, recovered or finished as weir logged it, placed against the kills) and
    the cause of each extra completion."""
    task = next((t for t in tasks if marker_step(t) == index), None)
    events = []
    completions = []
    for line in lines:
        at = float(line.rsplit('at=', 1)[-1])
        completions.append(at)
        events.append((at, f'{at:.3f} completed: {line}  [{weir.place(at)}]'))
    recoveries: List[float] = []
    if task is not None:
        for at, life_index, message, event in weir.task_events(task['task_id']):
            if message.startswith('starting step'):
                what = f'started attempt {event.get("attempt")}'
            elif message.startswith(RECOVERY_MESSAGES):
                what = f'{message} -> {event.get("task.state")}'
                recoveries.append(at)
            elif message.startswith(ADOPTED_MESSAGE):
                what = f'{message} (pid {event.get("pid")})'
            elif message == 'step finished':
                what = f'recorded attempt {event.get("attempt")} {event.get("task.state")}'
            else:
                continue
            events.append((at, f'{at:.3f} weir start #{life_index} {what}  [{weir.place(at)}]'))
    # Every completion but the last was followed by another execution: the restarted weir
    # either dealt with the task after its process had finished (and did not keep the
    # result), or while it still ran, without adopting or stopping it.
    causes = []
    for at in sorted(completions)[:-1]:
        later = [r for r in recoveries if r >= at]
        earlier = [r for r in recoveries if r < at]
        causes.append(FINISHED_BEFORE_RECOVERY if later else ORPHAN_NOT_STOPPED if earlier
                      else UNEXPLAINED)
    text = (f'step {index} of run {run["run_id"]} ({run.get("display_name")}, '
            f'{run.get("state")}) completed {len(lines)} times ({"; ".join(causes)}); '
            f'weir task: {task_line(task) if task else "(not found)"}\n      '
            + '\n      '.join(text for _, text in sorted(events)))
    return text, causes


def storage_check(weir: Weir, report: Report) -> None:
    """`weir storage check` with the server's storage flags: exit 0, nothing missing, no
    orphan (an object no row refers to, e.g. written just before a kill and never recorded)."""
    argv = [str(weir.weir_bin), 'storage', 'check', *weir.storage_flags(), '--output', 'json']
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                            cwd=weir.data_dir)
    try:
        found = json.loads(result.stdout)
    except ValueError:
        found = None
    if result.returncode != 0 or not isinstance(found, dict):
        report.violate(STORAGE_CHECK, f'exit status {result.returncode}:\n'
                                      f'{result.stdout}{result.stderr}'
                                      + missing_log_notes(weir, result.stdout))
        return
    missing, orphans = found.get('missing') or [], found.get('orphans') or []
    report.orphans = len(orphans)
    if not found.get('ok') or missing or found.get('problems'):
        report.violate(STORAGE_CHECK, f'not ok: problems {found.get("problems")}, '
                                      f'missing {missing}\n'
                                      + missing_log_notes(weir, '\n'.join(missing)))
    for orphan in orphans:
        report.violate(STORAGE_CHECK, f'orphan object {orphan} (no metadata refers to it)'
                                      + orphan_notes(weir, orphan))


def orphan_notes(weir: Weir, key: str) -> str:
    """What weir's logs say of the task an orphan object belongs to (its key names it)."""
    notes = []
    for task_id in sorted(set(re.findall(
            r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', key))):
        for at, life, message, event in weir.task_events(task_id):
            notes.append(f'task {task_id}: start #{life} {message} '
                         f'(attempt {event.get("attempt")}) at {at:.3f} [{weir.place(at)}]')
    return ''.join(f'\n  note: {note}' for note in notes)


def missing_log_notes(weir: Weir, output: str) -> str:
    """For each step log `weir storage check` misses, what weir's logs say of that attempt."""
    notes = []
    for task_id, attempt in re.findall(r'log of task (\S+) attempt (\d+)', output):
        events = [(at, life, message) for at, life, message, event in weir.task_events(task_id)
                  if event.get('attempt') == int(attempt)]
        if not events:
            notes.append(f'task {task_id} attempt {attempt}: no weir ever logged it starting '
                         '(killed after claiming the attempt, before its log existed?)')
        else:
            notes.append(f'task {task_id} attempt {attempt}: ' + '; '.join(
                f'start #{life} {message} at {at:.3f} [{weir.place(at)}]'
                for at, life, message in events))
    return ''.join(f'  note: {note}\n' for note in notes)


def run(args: argparse.Namespace) -> Report:
    """The whole loop; violations are in the returned report, loop failures raise."""
    started = time.monotonic()
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    rng = random.Random(seed)
    weir_bin = Path(args.weir).resolve()  # weir runs in its data folder
    if not (weir_bin.is_file() and os.access(weir_bin, os.X_OK)):
        raise CrashLoopError(f'weir binary not found at {weir_bin}')
    work = Path(tempfile.mkdtemp(prefix=f'weir-crash-{args.backend}-', dir=args.work_root))
    report = Report(args.backend, seed, work)
    marker_dir = work / 'markers'
    marker_dir.mkdir()
    package = work / 'chain10.yaml'
    compile_chain(package, args.retries)

    stores = Stores(args.backend, work, args.postgres_url, args.mysql_url, prefix='weir_crash')
    weir = Weir(weir_bin, work, stores.metadata_url, stores.artifacts_url)
    stop = threading.Event()
    clients: List[Client] = []
    finished = False
    # Connection refused is the normal state of things here; urllib3 would warn on each retry.
    logging.getLogger('urllib3.connectionpool').setLevel(logging.ERROR)
    stdout, sys.stdout = sys.stdout, QuietClients(sys.stdout)
    try:
        weir.start()
        import kfp
        with contextlib.redirect_stdout(io.StringIO()):  # no "Experiment details: <link>"
            experiment_id = kfp.Client(host=weir.url).create_experiment(
                'crash-loop').experiment_id
        clients = [Client(i, weir.url, package, experiment_id, marker_dir, seed,
                          args.max_active, stop) for i in range(args.clients)]
        for client in clients:
            client.start()

        while report.kills < args.kills:
            if report.kills + report.kills_during_startup >= MAX_KILLS_FACTOR * args.kills:
                report.violate(EXERCISED, f'only {report.kills} of '
                                          f'{report.kills + report.kills_during_startup} kills '
                                          f'hit a weir that answered healthz')
                break
            if rng.random() < args.startup_kill_ratio and len(weir.lives) > 1:
                # Kill a weir that is still starting (opening stores, recovering steps): an idle
                # one answers healthz ~80 ms after exec on this kind of machine. Such a kill
                # counts only if healthz answered just before it after all.
                life = weir.lives[-1]
                time.sleep(max(0.0, life.started + rng.uniform(0.0, 0.12) - time.time()))
                serving = weir.kill9(healthz_timeout=0.2)
            else:
                weir.wait_ready(weir.lives[-1])
                time.sleep(rng.uniform(args.min_uptime, args.max_uptime))
                serving = weir.kill9()
            if serving:
                report.kills += 1
            else:
                report.kills_during_startup += 1
            time.sleep(rng.uniform(0.0, 0.3))  # let clients see connection refused
            weir.spawn()
        weir.wait_ready(weir.lives[-1])

        stop.set()
        for client in clients:
            client.join(timeout=60)
            if client.is_alive():
                raise CrashLoopError(f'{client.name} did not stop within 60s')
            if client.failure is not None:
                raise CrashLoopError(f'{client.name} crashed: {client.failure!r}')
        submissions = [s for c in clients for s in c.submissions]
        report.submissions = len(submissions)
        report.acked = sum(s.outcome == 'acked' for s in submissions)
        report.refused = sum(s.outcome == 'refused' for s in submissions)
        report.unknown = sum(s.outcome == 'unknown' for s in submissions)
        report.rejected = sum(s.outcome == 'rejected' for s in submissions)

        runs = wait_all_terminal(weir.url, args.drain_timeout)
        report.runs = len(runs)
        check(report, weir, submissions, runs, marker_dir)
        recoveries = weir.recoveries()
        report.adopted, report.settled = recoveries[ADOPTED_LOG], recoveries[SETTLED_LOG]
        if report.adopted + report.settled == 0:
            report.violate(RECOVERY, f'no weir logged {ADOPTED_LOG!r} or {SETTLED_LOG!r} in '
                                     f'{len(weir.lives)} starts')
        if report.acked == 0:
            report.violate(EXERCISED, 'no submission was acknowledged')
        if report.kills < args.kills:
            report.violate(EXERCISED, f'{report.kills} kills of a serving weir, '
                                      f'{args.kills} wanted')
        weir.stop()
        storage_check(weir, report)
        finished = True
    finally:
        stop.set()
        sys.stdout = stdout
        weir.stop()
        stores.cleanup()
        report.wall_s = time.monotonic() - started
        if report.violations:
            (work / 'violations.txt').write_text(report.all_violations() + '\n')
        if finished and report.ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return report


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--backend', choices=['sqlite', 'mariadb', 'postgres'], required=True)
    parser.add_argument('--kills', type=int, default=20,
                        help='kills of a serving weir (one that answered healthz just before); '
                             'kills during start-up come on top')
    parser.add_argument('--clients', type=int, default=4)
    parser.add_argument('--weir', default=str(DEFAULT_WEIR_BIN),
                        help='weir binary (default $WEIR_BIN or target/debug/weir)')
    parser.add_argument('--seed', type=int, help='default: random (printed)')
    parser.add_argument('--postgres-url', default=DEFAULT_POSTGRES_URL,
                        help='PostgreSQL server without database (default '
                             '$WEIR_TEST_POSTGRES_URL or postgres://root@127.0.0.1:5432)')
    parser.add_argument('--mysql-url', default=DEFAULT_MYSQL_URL,
                        help='MariaDB server without database (default $WEIR_TEST_MYSQL_URL '
                             'or mysql://root@127.0.0.1:3306)')
    parser.add_argument('--min-uptime', type=float, default=0.5)
    parser.add_argument('--max-uptime', type=float, default=3.0)
    parser.add_argument('--startup-kill-ratio', type=float, default=0.2,
                        help='share of kills aimed at a weir that is still starting')
    parser.add_argument('--max-active', type=int, default=2,
                        help='unfinished runs per client before it waits')
    parser.add_argument('--retries', type=int, default=3, help='retry policy of every step')
    parser.add_argument('--drain-timeout', type=float, default=120.0,
                        help='seconds for every run to end after the last restart')
    parser.add_argument('--work-root', help='where the work folder is made (default: $TMPDIR)')
    parser.add_argument('--keep', action='store_true',
                        help='keep the work folder (kept anyway when a property fails)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        report = run(args)
    except CrashLoopError as error:
        print(f'crash loop could not run: {error}', file=sys.stderr)
        return 2
    print(report.summary())
    if not report.ok:
        print(f'work folder kept for inspection: {report.work} (weir logs weir-NN.log, '
              'markers/)', file=sys.stderr)
    return 0 if report.ok else 1


if __name__ == '__main__':
    sys.exit(main())
