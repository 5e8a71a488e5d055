#!/usr/bin/env python3
"""Load: many concurrent clients create, list and get runs for minutes; weir must answer every
request, keep its memory bounded and keep executing runs, and the latencies are reported.

    python tests/reliability/load.py [--weir PATH] [--backend sqlite|postgres|mariadb] \
        [--clients 50] [--duration 180] [--out report.json]      (--help for the other knobs)

What happens:

1. Fresh stores: a SQLite file (or a new PostgreSQL / MariaDB database, made and dropped with
   the `psql` / `mariadb` client like tests/sdk/conftest.py does) and a local artifact folder.
   `weir server` is started on them with this interpreter as `--executor-python`.
2. A two-step pipeline of container components (`sh -c true`, caching off so every run really
   executes) with one parameter, `token`, is compiled with the kfp SDK and loaded into a dict:
   every create sends it inline as `pipeline_spec`, as kfp.Client.run_pipeline does with a
   package, with a display name and a `token` unique to that create.
3. A short smoke check drives the same calls through kfp.Client (create, list, get, next page)
   and reads a run created by raw HTTP with it, so the raw requests of the load are known to
   be the ones the SDK makes and to produce objects the SDK accepts.
4. `--clients` threads, each with its own requests.Session (much lighter than kfp.Client, so
   the load generator leaves more of the machine to weir), loop without pause over: create a
   run (weight 1), list the experiment's runs (page_size 20, "created_at desc", weight 3; a
   third of those follow the next_page_token of the client's previous page instead) and get a
   run seen on a page (weight 1). Every answer is checked lightly (ids, order, page size, no
   repeat across a page boundary); a non-2xx, an exception or a failed check is an error.
5. A monitor samples weir's VmRSS (and open fds) every second and, every 2 s, how many runs
   the engine has finished (`total_size` of state-filtered lists) and how many connections of
   weir's database pool are in use (/metrics). Steps finishing are read from weir's log.
6. Once the clients have stopped, every run is listed (all of them, any experiment, page by
   page) and compared with what the clients were told, one to one.
7. Weir gets SIGTERM (with --shutdown-grace-seconds 5) and must exit 0 within 30 s; then
   `weir storage status` counts the rows of the runs table in the metadata store itself.

With `--gc`, the collector works during the load: weir applies retention policies every second,
a second experiment (`doomed`) has a policy keeping none of its finished runs, and a quarter of
the creates go there. The load's own runs must all stay (the one-to-one check above leaves the
doomed experiment out), the collector must have removed doomed runs, and once weir has stopped
`weir storage check` must find nothing missing.

With `--max-backlog N`, a client lists instead of creating while N created runs are unfinished.
Without it (the default) 50 clients create runs far faster than the engine of a small machine
finishes them; the backlog then grows for as long as the load lasts, and with it weir's memory
(the engine keeps a view of every unfinished run). The cap keeps the engine's work constant, so
that memory still growing means a leak.

Checks (exit status 1 if one fails, 2 if the load could not run at all):

* no request failed (non-2xx, exception or wrong answer);
* the runs created are the runs stored, one to one: every run id a create answered exists
  exactly once, in the experiment, with the display name and `token` parameter that create
  sent; no other run exists (besides the smoke check's two), and the metadata store holds
  exactly that many run rows;
* memory is bounded: the max RSS of the second half of the load is at most
  1.5 x the max of the first half + 20 MB (the slopes are reported too);
* the engine kept executing runs: steps and runs finished in the second half, no stretch of
  more than 30 s without a step finishing, and no run FAILED;
* weir stops cleanly on SIGTERM.

Runnable from pytest: `run(parse_args(argv))` returns a Report; `main(argv)` returns the exit
status. Client-side latencies include the load generator's own Python overhead (it shares the
machine with weir); weir's own view (its /metrics histogram) is reported beside them.
"""
import argparse
import contextlib
import io
import json
import math
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
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from harness import SetupError, Stores, free_port, tail

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WEIR_BIN = Path(os.environ.get('WEIR_BIN', REPO_ROOT / 'target' / 'release' / 'weir'))
DEFAULT_POSTGRES_URL = os.environ.get('WEIR_TEST_POSTGRES_URL', 'postgres://root@127.0.0.1:5432')
DEFAULT_MYSQL_URL = os.environ.get('WEIR_TEST_MYSQL_URL', 'mysql://root@127.0.0.1:3306')
API = '/apis/v2beta1'
HEALTHZ_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 60.0  # a request slower than this is an error, not a slow sample
PAGE_SIZE = 20
SORT_BY = 'created_at desc'
OPERATIONS = ['create', 'list', 'list_next', 'get']
# Relative weights of create : list : get; `list` is split between first and next pages.
WEIGHTS = {'create': 1, 'list': 3, 'get': 1}
NEXT_PAGE_SHARE = 1 / 3
# With --gc, the share of creates that go to the doomed experiment.
DOOMED_SHARE = 0.25
RSS_GROWTH_FACTOR = 1.5
RSS_GROWTH_SLACK_MB = 20.0
ENGINE_POLL_S = 2.0
# The engine advances its active runs round-robin, so with thousands queued a run can wait
# long between two of its steps; but some step should always be finishing.
STEP_GAP_LIMIT_S = 30.0
ERRORS_KEPT = 20  # error samples kept in the report (all are counted)

warnings.filterwarnings('ignore', message='This client only works with Kubeflow Pipeline')


# The load could not run (weir would not start, a store is unreachable...).
LoadError = SetupError


# --------------------------------------------------------------------------------------------
# The pipeline


def compile_pipeline(path: Path) -> dict:
    """Compiles the two-step no-op pipeline to `path` and returns its PipelineSpec.

    kfp is imported here so `--help` stays fast.
    """
    import yaml
    from kfp import compiler, dsl

    @dsl.container_component
    def noop(token: str):
        # `sh -c true TOKEN`: the token is $0 of the script, which ignores it.
        return dsl.ContainerSpec(image='alpine:3.20', command=['sh', '-c', 'true'],
                                 args=[token])

    @dsl.pipeline(name='weir-load-noop')
    def noop_pipeline(token: str = ''):
        # Caching off: a cache hit would skip the step, and the engine's work is part of the
        # load being measured.
        first = noop(token=token).set_caching_options(False)
        noop(token=token).set_caching_options(False).after(first)

    compiler.Compiler().compile(noop_pipeline, str(path))
    with open(path) as f:
        return next(yaml.safe_load_all(f))


# --------------------------------------------------------------------------------------------
# Stores and the weir process


class Weir:
    def __init__(self, weir_bin: Path, work: Path, stores: Stores, max_steps: Optional[int],
                 gc: bool = False):
        self.weir_bin = weir_bin
        self.stores = stores
        self.data_dir = work / 'data'
        self.log_path = work / 'weir.log'
        self.port = free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        self.argv = [str(weir_bin), 'server', '--listen', f'127.0.0.1:{self.port}',
                     '--data-dir', str(self.data_dir), '--metadata', stores.metadata_url,
                     '--artifacts', stores.artifacts_url, '--log-format', 'json',
                     '--executor-python', sys.executable,
                     # The backlog of queued runs is not worth waiting for at the end.
                     '--shutdown-grace-seconds', '5']
        if max_steps is not None:
            self.argv += ['--max-concurrent-steps', str(max_steps)]
        self.process: Optional[subprocess.Popen] = None
        self.shutdown_s: Optional[float] = None
        # A retention pass every second; the policies are the doomed experiment's own.
        self.env = {**os.environ, 'WEIR_RETENTION_INTERVAL_SECONDS': '1'} if gc else None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        import requests
        with open(self.log_path, 'wb') as log:
            # Its own session: a Ctrl-C on this script reaches weir only through stop().
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                            cwd=self.data_dir, start_new_session=True,
                                            env=self.env)
        deadline = time.monotonic() + HEALTHZ_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise LoadError(f'weir exited with code {self.process.returncode} before '
                                f'answering healthz; log {self.log_path}:\n{tail(self.log_path)}')
            try:
                if requests.get(f'{self.url}{API}/healthz', timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise LoadError(f'weir did not answer healthz within {HEALTHZ_TIMEOUT_S:.0f}s; '
                                f'log {self.log_path}:\n{tail(self.log_path)}')
            time.sleep(0.1)

    def stop(self, grace_s: float = 30.0) -> Optional[int]:
        """SIGTERM (SIGKILL after `grace_s`); returns the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            begin = time.monotonic()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.shutdown_s = time.monotonic() - begin
        return self.process.returncode

    def stored_rows(self) -> Dict[str, int]:
        """Rows per table of the metadata store, as `weir storage status` counts them."""
        argv = [str(self.weir_bin), 'storage', 'status', '--data-dir', str(self.data_dir),
                '--metadata', self.stores.metadata_url, '--artifacts',
                self.stores.artifacts_url, '--output', 'json']
        result = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                                cwd=self.data_dir)
        if result.returncode != 0:
            raise LoadError(f'weir storage status exited {result.returncode}:\n'
                            f'{result.stdout}{result.stderr}')
        return json.loads(result.stdout)['metadata']['rows']

    def storage_check(self) -> dict:
        """`weir storage check`'s report (its exit status says whether it is ok)."""
        argv = [str(self.weir_bin), 'storage', 'check', '--data-dir', str(self.data_dir),
                '--metadata', self.stores.metadata_url, '--artifacts',
                self.stores.artifacts_url, '--output', 'json']
        result = subprocess.run(argv, capture_output=True, text=True, timeout=600,
                                cwd=self.data_dir)
        try:
            return json.loads(result.stdout)
        except ValueError:
            raise LoadError(f'weir storage check exited {result.returncode}:\n'
                            f'{result.stdout}{result.stderr}')

    def read_log(self, limit: int = 10) -> 'LogSummary':
        """WARN/ERROR lines of weir's log (counted, the first few distinct ones kept) and the
        wall-clock times at which steps finished."""
        summary = LogSummary()
        seen: Dict[str, str] = {}
        try:
            lines = self.log_path.read_text(errors='replace').splitlines()
        except FileNotFoundError:
            return summary
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                # Not weir's JSON (e.g. a panic message): worth showing as is.
                summary.counts['OTHER'] = summary.counts.get('OTHER', 0) + 1
                seen.setdefault(line[:200], line[:400])
                continue
            level = event.get('level', '')
            if level in ('WARN', 'ERROR'):
                summary.counts[level] = summary.counts.get(level, 0) + 1
                key = f'{level} {event.get("message")} {event.get("error", "")}'[:200]
                seen.setdefault(key, json.dumps(event)[:400])
            elif event.get('message') == 'step finished':
                summary.steps_finished.append(parse_time(event['timestamp']).timestamp())
        summary.examples = list(seen.values())[:limit]
        return summary


@dataclass
class LogSummary:
    counts: Dict[str, int] = field(default_factory=dict)
    examples: List[str] = field(default_factory=list)
    steps_finished: List[float] = field(default_factory=list)  # wall-clock seconds


# --------------------------------------------------------------------------------------------
# Measurements


@dataclass
class Failure:
    at: float  # seconds since the load started
    op: str
    status: Optional[int]
    detail: str


class Recorder:
    """Latencies and errors of one client thread (merged after the threads end, so no lock)."""

    def __init__(self):
        self.samples: Dict[str, List[Tuple[float, float]]] = {op: [] for op in OPERATIONS}
        self.errors: Dict[str, int] = {op: 0 for op in OPERATIONS}
        self.statuses: Dict[str, Dict[int, int]] = {op: {} for op in OPERATIONS}
        self.failures: List[Failure] = []

    def ok(self, op: str, at: float, ms: float, status: int) -> None:
        self.samples[op].append((at, ms))
        self.statuses[op][status] = self.statuses[op].get(status, 0) + 1

    def error(self, op: str, at: float, ms: float, status: Optional[int], detail: str) -> None:
        # Failed requests still count in the latency samples: a timeout is a slow answer too.
        self.samples[op].append((at, ms))
        if status is not None:
            self.statuses[op][status] = self.statuses[op].get(status, 0) + 1
        self.errors[op] += 1
        if len(self.failures) < ERRORS_KEPT:
            self.failures.append(Failure(at, op, status, detail[:600]))


def percentile(values: List[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an unsorted list; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def slope_mb_per_min(points: List[Tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) points, in MB per minute."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 60


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace('Z', '+00:00'))


# --------------------------------------------------------------------------------------------
# Clients


class Pace:
    """Counts the runs the clients created and, with --max-backlog, holds creates back while
    that many are still unfinished: the engine is then kept at constant work, so memory that
    still grows is a leak rather than the backlog of queued runs."""

    def __init__(self, max_backlog: int):
        self.max_backlog = max_backlog
        self.lock = threading.Lock()
        self.created = 0
        self.finished = 0  # by the monitor's latest sample, counted from the load's start
        self.deferred = 0

    def may_create(self) -> bool:
        with self.lock:
            if self.max_backlog and self.created - self.finished >= self.max_backlog:
                self.deferred += 1
                return False
            return True

    def count_created(self) -> None:
        with self.lock:
            self.created += 1

    def set_finished(self, finished: int) -> None:
        with self.lock:
            self.finished = finished


class Client(threading.Thread):
    """Loops create / list / next page / get until told to stop."""

    def __init__(self, index: int, url: str, experiment_id: str, spec: dict, seed: int,
                 started: float, stop: threading.Event, pace: Pace,
                 doomed_experiment_id: Optional[str] = None):
        super().__init__(name=f'client-{index}', daemon=True)
        import requests
        self.index = index
        self.url = url
        self.experiment_id = experiment_id
        self.spec = spec
        self.rng = random.Random(seed * 1000 + index)
        self.started = started
        self.stop_event = stop
        self.pace = pace
        self.session = requests.Session()
        self.recorder = Recorder()
        self.created: List[str] = []
        # What each create sent and learned: name -> run id (a 2xx answer) or None (none).
        self.attempts: Dict[str, Optional[str]] = {}
        self.last_page: Optional[dict] = None  # the previous list answer, for its next token
        self.seen: List[str] = []  # run ids of the last page, for gets
        self.crash: Optional[BaseException] = None
        self.doomed_experiment_id = doomed_experiment_id
        self.doomed_created = 0

    def run(self) -> None:
        try:
            ops = list(WEIGHTS)
            weights = [WEIGHTS[op] for op in ops]
            while not self.stop_event.is_set():
                op = self.rng.choices(ops, weights)[0]
                if op == 'create' and self.pace.may_create():
                    self.create()
                elif op == 'get' and (self.seen or self.created):
                    self.get()
                elif (op == 'list' and self.last_page and self.last_page.get('next_page_token')
                      and self.rng.random() < NEXT_PAGE_SHARE):
                    self.list_next()
                else:
                    self.list_first()
        except BaseException as error:  # a bug in this script, surfaced by the main thread
            self.crash = error
        finally:
            self.session.close()

    def call(self, op: str, method: str, path: str, **kwargs) -> Optional[Any]:
        """One request: its latency and status are recorded; returns the JSON body of a 2xx
        answer, or None after recording an error."""
        import requests
        at = time.monotonic() - self.started
        begin = time.perf_counter()
        try:
            response = self.session.request(method, f'{self.url}{API}{path}',
                                            timeout=REQUEST_TIMEOUT_S, **kwargs)
            body = response.content
        except requests.RequestException as error:
            ms = (time.perf_counter() - begin) * 1000
            self.recorder.error(op, at, ms, None, f'{type(error).__name__}: {error}')
            return None
        ms = (time.perf_counter() - begin) * 1000
        if not 200 <= response.status_code < 300:
            self.recorder.error(op, at, ms, response.status_code,
                                body.decode(errors='replace'))
            return None
        try:
            parsed = json.loads(body or b'{}')
        except ValueError:
            self.recorder.error(op, at, ms, response.status_code,
                                f'not JSON: {body[:200]!r}')
            return None
        self.recorder.ok(op, at, ms, response.status_code)
        return parsed

    def invalid(self, op: str, detail: str) -> None:
        """An answer that was 2xx but wrong: counted as an error of `op` (its latency was
        already recorded as a success, so only the error count moves)."""
        recorder = self.recorder
        recorder.errors[op] += 1
        if len(recorder.failures) < ERRORS_KEPT:
            recorder.failures.append(
                Failure(time.monotonic() - self.started, op, 200, f'invalid answer: {detail}'))

    def create(self) -> None:
        if self.doomed_experiment_id and self.rng.random() < DOOMED_SHARE:
            self.create_doomed()
            return
        # Numbered by attempt, so a create that got no answer (and may be stored) is never
        # confused with the next one.
        name = f'load-c{self.index}-{len(self.attempts):05d}'
        self.attempts[name] = None
        body = {'display_name': name, 'experiment_id': self.experiment_id,
                'pipeline_spec': self.spec, 'runtime_config': {'parameters': {'token': name}}}
        run = self.call('create', 'POST', '/runs', json=body)
        if run is None:
            return
        if not run.get('run_id') or run.get('display_name') != name:
            self.invalid('create', f'run_id/display_name: {json.dumps(run)[:300]}')
            return
        self.attempts[name] = run['run_id']
        self.created.append(run['run_id'])
        self.pace.count_created()

    def create_doomed(self) -> None:
        """A run the collector removes once it has finished."""
        name = f'doomed-c{self.index}-{self.doomed_created:05d}'
        body = {'display_name': name, 'experiment_id': self.doomed_experiment_id,
                'pipeline_spec': self.spec, 'runtime_config': {'parameters': {'token': name}}}
        if self.call('create', 'POST', '/runs', json=body) is not None:
            self.doomed_created += 1

    def list_params(self, token: Optional[str] = None) -> dict:
        params = {'experiment_id': self.experiment_id, 'page_size': PAGE_SIZE,
                  'sort_by': SORT_BY}
        if token:
            params['page_token'] = token
        return params

    def check_page(self, op: str, page: dict) -> bool:
        runs = page.get('runs', [])
        if len(runs) > PAGE_SIZE:
            self.invalid(op, f'{len(runs)} runs on a page of {PAGE_SIZE}')
            return False
        if any(r.get('experiment_id') != self.experiment_id for r in runs):
            self.invalid(op, 'a run of another experiment')
            return False
        times = [parse_time(r['created_at']) for r in runs]
        if any(a < b for a, b in zip(times, times[1:])):
            self.invalid(op, f'not sorted by created_at desc: {[r["created_at"] for r in runs]}')
            return False
        if op == 'list' and page.get('total_size', 0) < len(runs):
            self.invalid(op, f'total_size {page.get("total_size")} < {len(runs)} runs listed')
            return False
        return True

    def list_first(self) -> None:
        page = self.call('list', 'GET', '/runs', params=self.list_params())
        if page is not None and self.check_page('list', page):
            self.last_page = page
            self.seen = [r['run_id'] for r in page.get('runs', [])]

    def list_next(self) -> None:
        previous = self.last_page or {}
        page = self.call('list_next', 'GET', '/runs',
                         params=self.list_params(previous.get('next_page_token')))
        if page is None or not self.check_page('list_next', page):
            return
        # Keyset paging: the next page continues strictly after the previous one, however
        # many runs were created in between.
        before = previous.get('runs', [])
        after = page.get('runs', [])
        repeated = {r['run_id'] for r in before} & {r['run_id'] for r in after}
        if repeated:
            self.invalid('list_next', f'runs on both pages: {sorted(repeated)[:3]}')
        elif before and after and (parse_time(after[0]['created_at'])
                                   > parse_time(before[-1]['created_at'])):
            self.invalid('list_next', 'next page starts after the previous one in created_at')
        self.last_page = page
        self.seen = [r['run_id'] for r in after] or self.seen

    def get(self) -> None:
        run_id = self.rng.choice(self.seen or self.created)
        run = self.call('get', 'GET', f'/runs/{run_id}')
        if run is not None and run.get('run_id') != run_id:
            self.invalid('get', f'asked for {run_id}, got {run.get("run_id")}')


# --------------------------------------------------------------------------------------------
# Monitor: memory and engine progress


@dataclass
class EnginePoint:
    at: float
    total: int
    succeeded: int
    failed: int


class Monitor(threading.Thread):
    def __init__(self, weir: Weir, experiment_id: str, started: float, stop: threading.Event,
                 pace: Pace):
        super().__init__(name='monitor', daemon=True)
        import requests
        self.weir = weir
        self.experiment_id = experiment_id
        self.started = started
        self.stop_event = stop
        self.pace = pace
        self.session = requests.Session()
        self.rss: List[Tuple[float, float]] = []  # (seconds, MB)
        self.fds: List[Tuple[float, int]] = []
        self.pool_in_use: List[int] = []
        self.engine: List[EnginePoint] = []
        self.errors: List[str] = []
        self.crash: Optional[BaseException] = None

    def sample_rss(self) -> None:
        at = time.monotonic() - self.started
        try:
            status = Path(f'/proc/{self.weir.pid}/status').read_text()
            match = re.search(r'^VmRSS:\s+(\d+) kB', status, re.M)
            if match:
                self.rss.append((at, int(match.group(1)) / 1024))
            self.fds.append((at, len(os.listdir(f'/proc/{self.weir.pid}/fd'))))
        except (FileNotFoundError, ProcessLookupError):
            self.errors.append(f'{at:.1f}s: weir process {self.weir.pid} is gone')

    def count(self, state: Optional[str]) -> int:
        params: Dict[str, Any] = {'experiment_id': self.experiment_id, 'page_size': 1}
        if state:
            params['filter'] = json.dumps({'predicates': [
                {'key': 'state', 'operation': 'EQUALS', 'string_value': state}]})
        response = self.session.get(f'{self.weir.url}{API}/runs', params=params,
                                    timeout=REQUEST_TIMEOUT_S)
        response.raise_for_status()
        return int(response.json().get('total_size', 0))

    def sample_pool(self) -> None:
        """Connections of weir's database pool in use: the API and the engine share it."""
        try:
            text = self.session.get(f'{self.weir.url}/metrics', timeout=REQUEST_TIMEOUT_S).text
        except Exception as error:
            self.errors.append(f'/metrics failed: {type(error).__name__}: {str(error)[:300]}')
            return
        match = re.search(r'^weir_db_pool_connections\{state="in_use"\} (\S+)$', text, re.M)
        if match:
            self.pool_in_use.append(int(float(match.group(1))))

    def sample_engine(self) -> None:
        at = time.monotonic() - self.started
        try:
            point = EnginePoint(at, self.count(None), self.count('SUCCEEDED'),
                                self.count('FAILED'))
        except Exception as error:  # reported as an error of weir, like the clients' ones
            self.errors.append(f'{at:.1f}s: engine progress query failed: '
                               f'{type(error).__name__}: {str(error)[:300]}')
            return
        self.engine.append(point)
        base = self.engine[0]
        self.pace.set_finished(point.succeeded + point.failed - base.succeeded - base.failed)

    def run(self) -> None:
        try:
            next_engine = 0.0
            while not self.stop_event.is_set():
                self.sample_rss()
                now = time.monotonic() - self.started
                if now >= next_engine:
                    self.sample_engine()
                    self.sample_pool()
                    next_engine = now + ENGINE_POLL_S
                self.stop_event.wait(1.0)
        except BaseException as error:
            self.crash = error
        finally:
            self.session.close()


def server_latencies(url: str) -> Dict[str, Dict[str, float]]:
    """Per route and method, from weir's /metrics histogram: count, mean and bucket upper
    bounds of p50/p95/p99 (ms). This is weir's own time, without the client's overhead."""
    import requests
    text = requests.get(f'{url}/metrics', timeout=30).text
    buckets: Dict[str, List[Tuple[float, float]]] = {}
    sums: Dict[str, float] = {}
    counts: Dict[str, float] = {}
    pattern = re.compile(r'^weir_http_request_duration_seconds_(bucket|sum|count)\{(.*)\} (\S+)$')
    for line in text.splitlines():
        match = pattern.match(line)
        if not match:
            continue
        kind, labels, value = match.groups()
        parsed = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        key = f'{parsed.get("method")} {parsed.get("route")}'
        if kind == 'bucket':
            le = math.inf if parsed['le'] == '+Inf' else float(parsed['le'])
            buckets.setdefault(key, []).append((le, float(value)))
        elif kind == 'sum':
            sums[key] = float(value)
        else:
            counts[key] = float(value)
    out = {}
    for key, total in counts.items():
        if total == 0:
            continue
        ordered = sorted(buckets.get(key, []))

        def upper(q: float) -> float:
            for le, cumulative in ordered:
                if cumulative >= q * total:
                    return le * 1000
            return math.inf

        out[key] = {'count': total, 'mean_ms': sums.get(key, 0.0) / total * 1000,
                    'p50_le_ms': upper(0.50), 'p95_le_ms': upper(0.95),
                    'p99_le_ms': upper(0.99)}
    return out


# --------------------------------------------------------------------------------------------
# Smoke check through kfp.Client


def smoke_check(url: str, package: Path, spec: dict) -> Tuple[str, Dict[str, str]]:
    """Creates the experiment and checks the raw calls of the load against kfp.Client;
    returns the experiment id and the runs it created (run id -> display name)."""
    import kfp
    import requests
    with contextlib.redirect_stdout(io.StringIO()):  # kfp prints a link per object
        client = kfp.Client(host=url)
        experiment_id = client.create_experiment('load').experiment_id
        sdk_run = client.run_pipeline(experiment_id=experiment_id, job_name='smoke-sdk',
                                      pipeline_package_path=str(package),
                                      params={'token': 'smoke-sdk'})
    raw = requests.post(f'{url}{API}/runs', timeout=REQUEST_TIMEOUT_S, json={
        'display_name': 'smoke-raw', 'experiment_id': experiment_id, 'pipeline_spec': spec,
        'runtime_config': {'parameters': {'token': 'smoke-raw'}}})
    if raw.status_code != 200:
        raise LoadError(f'raw create answered {raw.status_code}: {raw.text[:500]}')
    raw_id = raw.json()['run_id']
    # The SDK must read a run made the way the load makes them.
    got = client.get_run(raw_id)
    if ((got.run_id, got.display_name, got.experiment_id, got.runtime_config.parameters)
            != (raw_id, 'smoke-raw', experiment_id, {'token': 'smoke-raw'})):
        raise LoadError(f'kfp.Client.get_run of a raw-created run: {got}')
    page = client.list_runs(experiment_id=experiment_id, page_size=1, sort_by=SORT_BY)
    listed = [r.run_id for r in page.runs or []]
    if page.total_size != 2 or listed != [raw_id] or not page.next_page_token:
        raise LoadError(f'kfp.Client.list_runs page 1: total {page.total_size}, '
                        f'runs {listed}, expected [{raw_id}] '
                        f'and a next page token')
    second = client.list_runs(experiment_id=experiment_id, page_size=1, sort_by=SORT_BY,
                              page_token=page.next_page_token)
    if [r.run_id for r in second.runs or []] != [sdk_run.run_id] or second.next_page_token:
        raise LoadError(f'kfp.Client.list_runs page 2: {[r.run_id for r in second.runs or []]}'
                        f', expected [{sdk_run.run_id}] and no further page')
    return experiment_id, {sdk_run.run_id: 'smoke-sdk', raw_id: 'smoke-raw'}


# --------------------------------------------------------------------------------------------
# The report


@dataclass
class Report:
    backend: str
    clients: int
    duration_s: float
    work: Path
    ops: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    statuses: Dict[str, Dict[int, int]] = field(default_factory=dict)
    errors: List[Failure] = field(default_factory=list)
    error_count: int = 0
    monitor_errors: List[str] = field(default_factory=list)
    server: Dict[str, Dict[str, float]] = field(default_factory=dict)
    rss: Dict[str, float] = field(default_factory=dict)
    fds: Dict[str, int] = field(default_factory=dict)
    runs_created: int = 0
    creates_unanswered: int = 0  # creates without a 2xx answer (may or may not be stored)
    runs_listed: int = 0  # every run weir lists once the clients have stopped
    run_rows: Optional[int] = None  # rows of the runs table, by `weir storage status`
    mismatches: List[str] = field(default_factory=list)  # created vs stored
    runs_total: int = 0
    runs_succeeded: int = 0
    runs_failed: int = 0
    succeeded_during: int = 0
    succeeded_first_half: int = 0
    succeeded_second_half: int = 0
    longest_stall_s: float = 0.0
    steps_finished: int = 0
    steps_first_half: int = 0
    steps_second_half: int = 0
    longest_step_gap_s: float = 0.0
    pool_in_use_max: int = 0
    pool_in_use_mean: float = 0.0
    shutdown_s: Optional[float] = None
    engine_timeline: List[Tuple[float, int, int, int]] = field(default_factory=list)
    failed_examples: List[str] = field(default_factory=list)
    log_counts: Dict[str, int] = field(default_factory=dict)  # WARN / ERROR lines
    log_examples: List[str] = field(default_factory=list)
    max_backlog: int = 0
    creates_deferred: int = 0
    weir_exit: Optional[int] = None
    gc: bool = False
    gc_doomed_created: int = 0
    gc_removed: int = 0  # doomed runs the collector removed during the load
    gc_missing: Optional[int] = None  # objects `weir storage check` found missing afterwards
    gc_missing_examples: list = field(default_factory=list)
    failures: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != 'errors'}
        out['work'] = str(self.work)
        out['errors'] = [f.__dict__ for f in self.errors]
        out['ok'] = self.ok
        return json.loads(json.dumps(out, default=str))

    def summary(self) -> str:
        lines = [f'load: {self.clients} clients for {self.duration_s:.0f}s on {self.backend}'
                 f' (work folder {self.work})']
        if self.max_backlog:
            lines.append(f'creates held back while {self.max_backlog} runs were unfinished: '
                         f'{self.creates_deferred} times (a list was made instead)')
        if self.gc:
            lines.append(f'collector: {self.gc_doomed_created} doomed runs created, '
                         f'{self.gc_removed} removed during the load; objects missing '
                         f'afterwards: {self.gc_missing} {self.gc_missing_examples or ""}')
        lines.append('')
        header = (f'{"operation":<10} {"count":>7} {"errors":>6} {"ops/s":>6} {"p50":>8} '
                  f'{"p95":>8} {"p99":>8} {"max":>8}  {"p95 1st/2nd half":>18}')
        lines += ['client-side latency (ms)', header, '-' * len(header)]
        for op, s in self.ops.items():
            lines.append(
                f'{op:<10} {s["count"]:>7} {s["errors"]:>6} {s["rate"]:>6.1f} '
                f'{s["p50"]:>8.1f} {s["p95"]:>8.1f} {s["p99"]:>8.1f} {s["max"]:>8.1f}  '
                f'{s["p95_first"]:>8.1f} / {s["p95_second"]:<8.1f}')
        if self.server:
            lines += ['', 'weir-side latency (ms, from /metrics; p-values are bucket bounds)']
            for key, s in sorted(self.server.items()):
                lines.append(f'  {key:<48} n={s["count"]:>7.0f} mean={s["mean_ms"]:>7.1f} '
                             f'p50<={s["p50_le_ms"]:g} p95<={s["p95_le_ms"]:g} '
                             f'p99<={s["p99_le_ms"]:g}')
        r = self.rss
        if r:
            lines += ['', f'weir RSS (MB): start {r["start"]:.1f}, max {r["max"]:.1f}, end '
                          f'{r["end"]:.1f}; max 1st half {r["max_first"]:.1f}, max 2nd half '
                          f'{r["max_second"]:.1f} (limit {r["limit_second"]:.1f}); slope 2nd '
                          f'half {r["slope_second_mb_min"]:+.2f} MB/min, whole '
                          f'{r["slope_all_mb_min"]:+.2f} MB/min']
        if self.fds:
            lines.append(f'weir open fds: start {self.fds["start"]}, max {self.fds["max"]}, '
                         f'end {self.fds["end"]}')
        lines += [f'runs: created {self.runs_created} by the clients ({self.runs_total} in the '
                  f'experiment with the smoke check\'s); finished by the engine during the load: '
                  f'{self.succeeded_during} succeeded ({self.succeeded_first_half} in the 1st '
                  f'half, {self.succeeded_second_half} in the 2nd, '
                  f'{self.succeeded_during / self.duration_s:.1f} runs/s), {self.runs_failed} '
                  f'failed; {self.runs_total - self.runs_succeeded - self.runs_failed} still '
                  f'queued or running at the end; longest stretch with runs queued and none '
                  f'finishing: {self.longest_stall_s:.0f}s (sampled every {ENGINE_POLL_S:.0f}s)',
                  f'steps finished during the load: {self.steps_finished} '
                  f'({self.steps_first_half} in the 1st half, {self.steps_second_half} in the '
                  f'2nd, {self.steps_finished / self.duration_s:.1f}/s); longest gap between two '
                  f'(or from the start/to the end): {self.longest_step_gap_s:.1f}s',
                  f'database pool connections in use: max {self.pool_in_use_max}, mean '
                  f'{self.pool_in_use_mean:.1f} (sampled every {ENGINE_POLL_S:.0f}s)']
        lines.append(f'created vs stored: {self.runs_created} runs created with an answer '
                     f'(+ {self.creates_unanswered} creates without one) and 2 by the smoke '
                     f'check; {self.runs_listed} listed, {self.run_rows} rows in the store; '
                     f'{len(self.mismatches)} mismatch(es)')
        lines += [f'  mismatch: {m}' for m in self.mismatches[:ERRORS_KEPT]]
        if len(self.mismatches) > ERRORS_KEPT:
            lines.append(f'  ... and {len(self.mismatches) - ERRORS_KEPT} more')
        for example in self.failed_examples:
            lines.append(f'  failed run: {example}')
        if self.log_counts:
            lines.append(f'weir log: {self.log_counts}')
            lines += [f'  {example}' for example in self.log_examples]
        if self.shutdown_s is not None:
            lines.append(f'weir stopped {self.shutdown_s:.1f}s after SIGTERM with exit status '
                         f'{self.weir_exit}' + (' (SIGKILLed: it did not stop)'
                                                if self.weir_exit == -signal.SIGKILL else ''))
        for status_op, statuses in self.statuses.items():
            odd = {s: n for s, n in statuses.items() if not 200 <= s < 300}
            if odd:
                lines.append(f'non-2xx statuses of {status_op}: {odd}')
        for failure in self.errors:
            lines.append(f'  error {failure.op} at {failure.at:.1f}s status {failure.status}: '
                         f'{failure.detail[:300]}')
        lines += [f'  monitor: {e}' for e in self.monitor_errors]
        lines.append('')
        lines.append('OK' if self.ok
                     else 'FAILED:\n' + '\n'.join(f'  - {f}' for f in self.failures))
        return '\n'.join(lines)


def summarize_engine_log(report: Report, log: LogSummary, start_wall: float,
                         load_s: float) -> None:
    report.log_counts, report.log_examples = log.counts, log.examples
    end_wall = start_wall + load_s
    during = sorted(t for t in log.steps_finished if start_wall <= t <= end_wall)
    report.steps_finished = len(during)
    report.steps_first_half = sum(t < start_wall + load_s / 2 for t in during)
    report.steps_second_half = len(during) - report.steps_first_half
    edges = [start_wall, *during, end_wall]
    report.longest_step_gap_s = max(b - a for a, b in zip(edges, edges[1:]))


def summarize(report: Report, clients: List[Client], monitor: Monitor, load_s: float) -> None:
    half = load_s / 2
    for op in OPERATIONS:
        samples = [s for c in clients for s in c.recorder.samples[op]]
        values = [ms for _, ms in samples]
        report.ops[op] = {
            'count': len(samples), 'errors': sum(c.recorder.errors[op] for c in clients),
            'rate': len(samples) / load_s if load_s else 0.0,
            'p50': percentile(values, 50), 'p95': percentile(values, 95),
            'p99': percentile(values, 99), 'max': max(values) if values else math.nan,
            'p95_first': percentile([ms for at, ms in samples if at < half], 95),
            'p95_second': percentile([ms for at, ms in samples if at >= half], 95),
        }
        statuses: Dict[int, int] = {}
        for c in clients:
            for status, n in c.recorder.statuses[op].items():
                statuses[status] = statuses.get(status, 0) + n
        report.statuses[op] = statuses
    report.error_count = sum(s['errors'] for s in report.ops.values())
    report.errors = sorted((f for c in clients for f in c.recorder.failures),
                           key=lambda f: f.at)[:ERRORS_KEPT]
    report.monitor_errors = monitor.errors[:ERRORS_KEPT]
    report.runs_created = sum(len(c.created) for c in clients)

    rss = monitor.rss
    if rss:
        first = [mb for at, mb in rss if at < half] or [rss[0][1]]
        second_points = [(at, mb) for at, mb in rss if at >= half] or [rss[-1]]
        max_first = max(first)
        report.rss = {
            'start': rss[0][1], 'max': max(mb for _, mb in rss), 'end': rss[-1][1],
            'max_first': max_first, 'max_second': max(mb for _, mb in second_points),
            'limit_second': max_first * RSS_GROWTH_FACTOR + RSS_GROWTH_SLACK_MB,
            'slope_second_mb_min': slope_mb_per_min(second_points),
            'slope_all_mb_min': slope_mb_per_min(rss),
            'samples': len(rss),
        }
    if monitor.pool_in_use:
        report.pool_in_use_max = max(monitor.pool_in_use)
        report.pool_in_use_mean = sum(monitor.pool_in_use) / len(monitor.pool_in_use)
    if monitor.fds:
        values = [n for _, n in monitor.fds]
        report.fds = {'start': values[0], 'max': max(values), 'end': values[-1]}

    if monitor.engine:
        # The first point is taken as the clients start: the smoke check's runs are before it.
        base, last = monitor.engine[0], monitor.engine[-1]
        report.runs_total, report.runs_succeeded, report.runs_failed = (
            last.total, last.succeeded, last.failed)
        mid = [p for p in monitor.engine if p.at <= half][-1]
        report.succeeded_during = last.succeeded - base.succeeded
        report.succeeded_first_half = mid.succeeded - base.succeeded
        report.succeeded_second_half = last.succeeded - mid.succeeded
        report.engine_timeline = [(round(p.at, 1), p.total, p.succeeded, p.failed)
                                  for p in monitor.engine]
        # The engine works through its backlog in bursts; the longest stretch between two
        # samples without a run finishing shows how long a queued run can sit unattended.
        stalled, since = 0.0, base
        for point in monitor.engine[1:]:
            if point.succeeded + point.failed > since.succeeded + since.failed:
                since = point
            elif point.total > point.succeeded + point.failed:
                stalled = max(stalled, point.at - since.at)
        report.longest_stall_s = stalled


def check(report: Report) -> None:
    if report.error_count:
        report.failures.append(f'{report.error_count} requests failed')
    if report.monitor_errors:
        report.failures.append(f'{len(report.monitor_errors)} monitor errors')
    if not report.rss:
        report.failures.append('no RSS sample')
    elif report.rss['max_second'] > report.rss['limit_second']:
        report.failures.append(
            f'memory grows: max RSS of the 2nd half {report.rss["max_second"]:.1f} MB > '
            f'{RSS_GROWTH_FACTOR} x {report.rss["max_first"]:.1f} + {RSS_GROWTH_SLACK_MB:.0f} MB '
            f'(slope {report.rss["slope_second_mb_min"]:+.2f} MB/min)')
    if report.runs_created == 0:
        report.failures.append('no run was created')
    if report.mismatches:
        report.failures.append(f'the runs created are not the runs stored: '
                               f'{len(report.mismatches)} mismatch(es), e.g. '
                               f'{report.mismatches[0]}')
    if report.steps_second_half == 0 or report.succeeded_second_half == 0:
        report.failures.append(f'the engine stalled: {report.steps_second_half} steps and '
                               f'{report.succeeded_second_half} runs finished in the 2nd half')
    elif report.longest_step_gap_s > STEP_GAP_LIMIT_S:
        report.failures.append(f'the engine stalled: no step finished for '
                               f'{report.longest_step_gap_s:.1f}s')
    if report.runs_failed:
        report.failures.append(f'{report.runs_failed} runs of `sh -c true` FAILED')
    if report.gc and report.gc_removed == 0:
        report.failures.append(f'the collector removed none of the {report.gc_doomed_created} '
                               f'doomed runs during the load')
    if report.gc and report.gc_missing != 0:
        report.failures.append(f'after the load with the collector, `weir storage check` found '
                               f'{report.gc_missing} object(s) missing')
    if report.weir_exit not in (None, 0):
        report.failures.append(f'weir exited with {report.weir_exit} after SIGTERM'
                               + (f' (still running {report.shutdown_s:.0f}s after it)'
                                  if report.weir_exit == -signal.SIGKILL else ''))


def list_every_run(url: str) -> List[Dict[str, Any]]:
    """Every run weir has (no filter: any experiment), oldest first, page by page."""
    import requests
    runs: List[Dict[str, Any]] = []
    token = ''
    for _ in range(100_000):
        params = {'page_size': 200, 'sort_by': 'created_at'}
        if token:
            params['page_token'] = token
        response = requests.get(f'{url}{API}/runs', params=params, timeout=REQUEST_TIMEOUT_S)
        if response.status_code != 200:
            raise LoadError(f'listing every run: HTTP {response.status_code} '
                            f'{response.text[:300]}')
        page = response.json()
        runs += page.get('runs') or []
        token = page.get('next_page_token') or ''
        if not token:
            return runs
    raise LoadError('listing every run: next_page_token never became empty')


def reconcile(report: Report, listed: List[Dict[str, Any]], clients: List[Client],
              experiment_id: str, smoke: Dict[str, str], doomed: Optional[str] = None) -> None:
    """The runs the clients were told about are the runs weir lists, one to one (the doomed
    experiment's, which the collector removes, left out)."""
    listed = [r for r in listed if doomed is None or r.get('experiment_id') != doomed]
    report.runs_listed = len(listed)
    expected: Dict[str, str] = dict(smoke)  # run id -> display name (= its token)
    unanswered: Dict[str, str] = {}  # name -> client, for creates that got no 2xx answer
    for client in clients:
        for name, run_id in client.attempts.items():
            if run_id is None:
                unanswered[name] = client.name
            elif run_id in expected:
                report.mismatches.append(f'two creates were answered with run id {run_id}: '
                                         f'{expected[run_id]!r} and {name!r}')
            else:
                expected[run_id] = name
    report.creates_unanswered = len(unanswered)
    seen: Dict[str, int] = {}
    for run in listed:
        run_id, name = run.get('run_id'), run.get('display_name')
        seen[run_id] = seen.get(run_id, 0) + 1
        if seen[run_id] == 2:
            report.mismatches.append(f'run {run_id} ({name!r}) is listed more than once')
        if run_id not in expected:
            why = (f'its create ({unanswered[name]}) got no answer' if name in unanswered
                   else 'nobody created it')
            report.mismatches.append(f'run {run_id} ({name!r}) exists but no create was '
                                     f'answered with it: {why}')
            continue
        want = expected[run_id]
        params = (run.get('runtime_config') or {}).get('parameters')
        if name != want or params != {'token': want} or run.get('experiment_id') != experiment_id:
            report.mismatches.append(
                f'run {run_id} was created as {want!r} with token {want!r} in experiment '
                f'{experiment_id}, stored as {name!r} with parameters {params!r} in experiment '
                f'{run.get("experiment_id")}')
    for run_id, name in expected.items():
        if run_id not in seen:
            report.mismatches.append(f'run {run_id} ({name!r}): its create was answered, but '
                                     f'weir does not have it')


def doomed_experiment(url: str) -> str:
    """An experiment whose own retention policy keeps none of its finished runs."""
    import requests
    created = requests.post(f'{url}{API}/experiments', json={'display_name': 'doomed'}, timeout=30)
    created.raise_for_status()
    experiment_id = created.json()['experiment_id']
    policy = {'policies': [{'name': 'keep-none', 'keep_last': 0}]}
    response = requests.put(f'{url}/apis/weir/v1/experiments/{experiment_id}/retention',
                            json=policy, timeout=30)
    if response.status_code != 200:
        raise LoadError(f'setting the doomed experiment\'s policy: {response.status_code} '
                        f'{response.text}')
    return experiment_id


def removed_by_collector(url: str, doomed: str) -> int:
    """Runs of the doomed experiment in the collector's history."""
    import requests
    removed, token = 0, ''
    while True:
        page = requests.get(f'{url}/apis/weir/v1/gc/history',
                            params={'page_size': 500, 'page_token': token}, timeout=60).json()
        removed += sum(1 for r in page.get('records', [])
                       if r.get('kind') == 'run' and r.get('detail', {}).get('experiment_id') == doomed)
        token = page.get('next_page_token', '')
        if not token:
            return removed


def failed_examples(url: str, experiment_id: str) -> List[str]:
    import requests
    params = {'experiment_id': experiment_id, 'page_size': 3, 'filter': json.dumps(
        {'predicates': [{'key': 'state', 'operation': 'EQUALS', 'string_value': 'FAILED'}]})}
    runs = requests.get(f'{url}{API}/runs', params=params, timeout=30).json().get('runs', [])
    return [f'{r["run_id"]}: {json.dumps(r.get("error"))[:300]}' for r in runs]


# --------------------------------------------------------------------------------------------
# Main


def run(args: argparse.Namespace) -> Report:
    """The whole load; check failures are in the report, failures to run raise LoadError."""
    import logging
    weir_bin = Path(args.weir).resolve()  # weir runs in its data folder
    if not (weir_bin.is_file() and os.access(weir_bin, os.X_OK)):
        raise LoadError(f'weir binary not found at {weir_bin}')
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    work = Path(tempfile.mkdtemp(prefix=f'weir-load-{args.backend}-', dir=args.work_root))
    report = Report(args.backend, args.clients, args.duration, work)
    # 50 threads on one host: urllib3 would warn when its per-session pool is exceeded.
    logging.getLogger('urllib3.connectionpool').setLevel(logging.ERROR)

    package = work / 'noop.yaml'
    spec = compile_pipeline(package)
    stores = Stores(args.backend, work, args.postgres_url, args.mysql_url, prefix='weir_load')
    weir = Weir(weir_bin, work, stores, args.max_concurrent_steps, gc=args.gc)
    report.gc = args.gc
    stop = threading.Event()
    clients: List[Client] = []
    monitor: Optional[Monitor] = None
    finished = False
    try:
        weir.start()
        experiment_id, smoke_runs = smoke_check(weir.url, package, spec)
        doomed = doomed_experiment(weir.url) if args.gc else None
        doomed_left = 0
        started, start_wall = time.monotonic(), time.time()
        pace = Pace(args.max_backlog)
        monitor = Monitor(weir, experiment_id, started, stop, pace)
        monitor.start()
        clients = [Client(i, weir.url, experiment_id, spec, seed, started, stop, pace, doomed)
                   for i in range(args.clients)]
        for client in clients:
            client.start()
        deadline = started + args.duration
        while time.monotonic() < deadline:
            if weir.process.poll() is not None:
                report.failures.append(f'weir exited with {weir.process.returncode} during '
                                       f'the load; log tail:\n{tail(weir.log_path)}')
                break
            if args.progress:
                engine = monitor.engine[-1] if monitor.engine else EnginePoint(0, 0, 0, 0)
                print(f'  {time.monotonic() - started:5.0f}s '
                      f'rss {monitor.rss[-1][1] if monitor.rss else 0:.1f} MB, '
                      f'{sum(len(s) for c in clients for s in c.recorder.samples.values())} '
                      f'requests, {sum(sum(c.recorder.errors.values()) for c in clients)} '
                      f'errors, runs {engine.total} ({engine.succeeded} succeeded, '
                      f'{engine.failed} failed)', file=sys.stderr, flush=True)
            time.sleep(min(args.progress or 1.0, max(0.0, deadline - time.monotonic())))
        load_s = time.monotonic() - started
        stop.set()
        for thread in [*clients, monitor]:
            thread.join(timeout=REQUEST_TIMEOUT_S + 10)
            if thread.is_alive():
                raise LoadError(f'{thread.name} did not stop')
            if thread.crash is not None:
                raise LoadError(f'{thread.name} crashed: {thread.crash!r}')
        # The last samples once every client is done, so the counts include its last create.
        monitor.sample_rss()
        monitor.sample_engine()
        summarize(report, clients, monitor, load_s)
        report.max_backlog = args.max_backlog
        report.creates_deferred = pace.deferred
        report.duration_s = load_s
        if weir.process.poll() is None:
            report.server = server_latencies(weir.url)
            if report.runs_failed:
                report.failed_examples = failed_examples(weir.url, experiment_id)
            listed = list_every_run(weir.url)
            reconcile(report, listed, clients, experiment_id, smoke_runs, doomed)
            if doomed:
                report.gc_doomed_created = sum(c.doomed_created for c in clients)
                report.gc_removed = removed_by_collector(weir.url, doomed)
                doomed_left = sum(1 for r in listed if r.get('experiment_id') == doomed)
        else:
            report.mismatches.append('weir was gone before the runs could be compared')
        report.weir_exit = weir.stop()
        report.shutdown_s = weir.shutdown_s
        # The store's own count, with no weir in the way (and none writing any more).
        rows = weir.stored_rows()
        report.run_rows = rows.get('runs')
        stored = len(smoke_runs) + report.runs_created
        # Doomed runs still there when the runs were listed may have gone since.
        if doomed and report.run_rows is not None and stored <= report.run_rows <= stored + doomed_left:
            stored = report.run_rows
        if report.run_rows != stored:
            report.mismatches.append(f'the metadata store holds {report.run_rows} run rows, '
                                     f'{stored} runs were created with an answer '
                                     f'(tables: {rows})')
        if doomed:
            missing = weir.storage_check().get('missing', [])
            report.gc_missing = len(missing)
            report.gc_missing_examples = missing[:5]
        summarize_engine_log(report, weir.read_log(), start_wall, load_s)
        check(report)
        finished = True
    finally:
        stop.set()
        weir.stop()
        stores.cleanup()
        if args.out:
            Path(args.out).write_text(json.dumps(report.as_dict(), indent=2) + '\n')
        if finished and report.ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return report


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--weir', default=str(DEFAULT_WEIR_BIN),
                        help='weir binary (default $WEIR_BIN or target/release/weir)')
    parser.add_argument('--backend', choices=['sqlite', 'postgres', 'mariadb'], default='sqlite')
    parser.add_argument('--clients', type=int, default=50)
    parser.add_argument('--duration', type=float, default=180.0, help='seconds of load')
    parser.add_argument('--out', help='write the report as JSON here')
    parser.add_argument('--seed', type=int, help='operation mix seed (default: random)')
    parser.add_argument('--max-backlog', type=int, default=0,
                        help='hold creates back (list instead) while this many created runs '
                             'are unfinished; 0: never, the backlog grows as it will')
    parser.add_argument('--max-concurrent-steps', type=int,
                        help="weir's --max-concurrent-steps (default: weir's)")
    parser.add_argument('--postgres-url', default=DEFAULT_POSTGRES_URL,
                        help='PostgreSQL server without database (default '
                             '$WEIR_TEST_POSTGRES_URL or postgres://root@127.0.0.1:5432)')
    parser.add_argument('--mysql-url', default=DEFAULT_MYSQL_URL,
                        help='MariaDB server without database (default $WEIR_TEST_MYSQL_URL '
                             'or mysql://root@127.0.0.1:3306)')
    parser.add_argument('--gc', action='store_true',
                        help='apply retention every second and remove runs of a second '
                             'experiment during the load (see above)')
    parser.add_argument('--progress', type=float, default=0.0,
                        help='print a progress line to stderr every N seconds (0: never)')
    parser.add_argument('--work-root', help='where the work folder is made (default: $TMPDIR)')
    parser.add_argument('--keep', action='store_true',
                        help='keep the work folder (kept anyway when a check fails)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        report = run(args)
    except LoadError as error:
        print(f'load could not run: {error}', file=sys.stderr)
        return 2
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == '__main__':
    sys.exit(main())
