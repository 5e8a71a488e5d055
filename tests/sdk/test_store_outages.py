"""Store outages: the metadata database (PostgreSQL or MariaDB) or the S3 server becomes
unreachable for a while.

The store is reached through a `tcp_proxy.TcpProxy` the test controls, and each test runs once
per way of going away (OUTAGE_MODES): `reset` (open connections reset, new ones accepted and
reset at once), `refuse` (nothing listens: connection refused), `hang` (a network partition:
nothing flows until the restore). The database outage runs on PostgreSQL and on MariaDB. The
shared database and S3 servers are never stopped.

What the issue ("Reliability", point 2) asks, checked here:

* during the outage, requests answer 503 in KFP's error shape (google.rpc.Status
  `{code: 14, message, details}`; the upload endpoint `{error_message, error_details}`) within
  a bounded time, and `/readyz` says not ready;
* nothing panics: the weir process stays up and its log has no `panicked`;
* a run in flight waits for the store and ends SUCCEEDED once it is back, with the right
  result (docs/reliability.md: a step's result waits for the database instead of being
  dropped; its log is kept in memory until the artifact store is back), and the log of each
  of its steps is readable afterwards (GET /apis/weir/v1/runs/{id}/logs?task=…, with what the
  step printed);
* when the store is back everything resumes with no manual step: requests succeed within a
  few seconds, `/readyz` is 200 again, new runs succeed, uploads work.

Runs are submitted with caching off, so a step is never satisfied from an earlier run's cache
(what is under test is the outage, not the cache).

Each test starts its own weir (the module fixture of conftest is not used) and collects every
observation before asserting, so one run reports all that is wrong; the observations are
printed (run pytest with `-s` or `-rA` to see them when the test passes).
"""
import json
import os
import re
import subprocess
import time
import urllib.parse
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import boto3
import kfp
import kfp_server_api
import pytest
import requests
from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from conftest import (HEALTHZ_TIMEOUT_S, S3_REGION, WeirServer, compile_pipeline,
                      database_server, free_port, http_status, stop_process, weir_server_argv)
from helpers import unique_name, weir_tasks
from tcp_proxy import TcpProxy

IMAGE = 'python:3.11'
API = '/apis/v2beta1'

CUT_MIN_S = 6.0  # a database outage lasts at least this long
# An S3 outage lasts longer than object_store's own retries of one request (10 retries with
# backoff, a few seconds when connections are reset), so a step's upload cannot simply ride
# it out inside one call: weir itself has to wait, or fail the run clearly.
S3_CUT_MIN_S = 12.0
CUT_MAX_S = 17.0  # and longer only while probe requests are still unanswered
PROBE_TIMEOUT_S = 16.0  # client-side timeout of a probe request
LATENCY_LIMIT_S = 15.0  # a request during the outage must be answered within this
RECOVERY_LIMIT_S = 5.0  # after the store is back, requests succeed within this
RUN_LIMIT_S = 45.0  # a run in flight reaches a terminal state within this after the restore
DATABASES = ['postgres', 'mariadb']
# A step's log that could not be written during the outage is written once the store is back
# (weir retries in the background, backing off up to 60 s between tries): read it within this.
LOG_LIMIT_S = 45.0
NEW_RUN_LIMIT_S = 40.0
TERMINAL = {'SUCCEEDED', 'FAILED', 'CANCELED', 'SKIPPED'}
UNAVAILABLE = 14  # google.rpc.Code UNAVAILABLE
# How the store goes away (tcp_proxy modes): `reset` the server's port resets every connection
# (crashed server, restarting pooler), `refuse` nothing listens (stopped server on a live
# host), `hang` a network partition (connections stay open, nothing answers).
OUTAGE_MODES = ['reset', 'refuse', 'hang']


# --------------------------------------------------------------------------------------------
# Pipelines


# Every step prints a line of its own (`step_says`), which its log must hold after the outage.
@dsl.component(base_image=IMAGE)
def slow_step(x: int, seconds: float) -> int:
    import time
    print(f'slow-step says: {x} + 1 after {seconds}s')
    time.sleep(seconds)
    return x + 1


@dsl.pipeline(name='weir-outage-db')
def db_outage_pipeline(seconds: float = 2.0) -> int:
    a = slow_step(x=0, seconds=seconds)
    b = slow_step(x=a.output, seconds=seconds)
    c = slow_step(x=b.output, seconds=seconds)
    return slow_step(x=c.output, seconds=0.0).output


@dsl.component(base_image=IMAGE)
def make_dataset(rows: int, seconds: float, data: Output[Dataset]):
    import time
    print(f'make-dataset says: {rows} rows after {seconds}s')
    time.sleep(seconds)
    with open(data.path, 'w') as f:
        for i in range(rows):
            f.write(f'row-{i}\n')
    data.metadata['rows'] = rows


@dsl.component(base_image=IMAGE)
def count_rows(data: Input[Dataset]) -> int:
    print('count-rows says: counting')
    with open(data.path) as f:
        return len(f.readlines())


@dsl.pipeline(name='weir-outage-s3')
def s3_outage_pipeline(rows: int = 5, seconds: float = 2.0) -> int:
    made = make_dataset(rows=rows, seconds=seconds)
    return count_rows(data=made.outputs['data']).output


# --------------------------------------------------------------------------------------------
# Observations and soft checks


class Report:
    """Notes what happened and collects failed checks, asserted together at the end."""

    def __init__(self, title: str):
        self.title = title
        self.lines: List[str] = []
        self.failures: List[str] = []
        self.start = time.monotonic()

    def note(self, message: str) -> None:
        line = f'[{time.monotonic() - self.start:6.2f}s] {message}'
        self.lines.append(line)
        print(f'{self.title}: {line}', flush=True)

    def check(self, condition: bool, message: str) -> bool:
        self.note(('ok    ' if condition else 'FAIL  ') + message)
        if not condition:
            self.failures.append(message)
        return condition

    def assert_all(self) -> None:
        if self.failures:
            raise AssertionError(
                f'{len(self.failures)} check(s) failed:\n- ' + '\n- '.join(self.failures)
                + '\n\nobservations:\n' + '\n'.join(self.lines))


def short(body: Any, limit: int = 400) -> str:
    text = body if isinstance(body, str) else json.dumps(body, sort_keys=True)
    return text if len(text) <= limit else text[:limit] + '…'


# --------------------------------------------------------------------------------------------
# Probes: requests sent while a store is cut


@dataclass
class Probe:
    name: str
    call: Callable[[], Tuple[Optional[int], Any]]  # -> (HTTP status or None, body)
    kind: str  # 'status' (google.rpc.Status 503), 'upload' (upload 503), 'not-ready'
    status: Optional[int] = None
    body: Any = None
    error: Optional[str] = None
    sent_at: float = 0.0  # seconds after the cut
    latency: float = 0.0
    answered_during_cut: bool = False

    def describe(self) -> str:
        answer = f'HTTP {self.status}' if self.status is not None else f'no answer ({self.error})'
        if self.status is None:
            when = 'the client gave up' + ('' if self.answered_during_cut else ' after the restore')
        else:
            when = 'during the cut' if self.answered_during_cut else 'AFTER the restore'
        return (f'{self.name}: sent at +{self.sent_at:.2f}s, {answer} after {self.latency:.2f}s '
                f'({when}); body {short(self.body)}')


def http(method: str, url: str, **kwargs) -> Tuple[Optional[int], Any]:
    response = requests.request(method, url, timeout=PROBE_TIMEOUT_S, **kwargs)
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return response.status_code, body


def sdk(call: Callable[[], Any]) -> Callable[[], Tuple[Optional[int], Any]]:
    """A kfp.Client call as a probe: its ApiException's status and body."""

    def run() -> Tuple[Optional[int], Any]:
        try:
            call()
            return 200, '(the call returned normally)'
        except kfp_server_api.ApiException as error:
            try:
                body: Any = json.loads(error.body) if error.body else error.body
            except ValueError:
                body = error.body
            return error.status, body

    return run


def run_outage(proxy: TcpProxy, waves: List[Tuple[float, List[Probe]]], report: Report,
               during: Optional[Callable[[float], None]] = None,
               min_s: float = CUT_MIN_S) -> float:
    """Cuts the proxy, sends each wave of probes (concurrently) at its offset, keeps the cut
    for at least `min_s` and until every probe is answered (at most CUT_MAX_S), restores.

    `during(elapsed)` is called about every 0.25 s while the cut lasts. Returns the cut's
    length in seconds.
    """
    pool = ThreadPoolExecutor(max_workers=sum(len(w) for _, w in waves) or 1)
    futures: List[Future] = []
    restored_at: List[float] = []

    def send(probe: Probe, t0: float) -> None:
        probe.sent_at = time.monotonic() - t0
        start = time.monotonic()
        try:
            probe.status, probe.body = probe.call()
        except Exception as error:  # timeouts, resets: recorded, judged by the checks
            probe.error = f'{type(error).__name__}: {error}'
        end = time.monotonic()
        probe.latency = end - start
        probe.answered_during_cut = not restored_at

    proxy.cut()
    t0 = time.monotonic()
    report.note(f'store CUT ({proxy!r})')
    pending = sorted(waves, key=lambda w: w[0])
    while True:
        elapsed = time.monotonic() - t0
        while pending and pending[0][0] <= elapsed:
            _, probes = pending.pop(0)
            futures.extend(pool.submit(send, probe, t0) for probe in probes)
        if during is not None:
            during(elapsed)
        all_done = not pending and all(f.done() for f in futures)
        if elapsed >= max(CUT_MAX_S, min_s) or (elapsed >= min_s and all_done):
            break
        time.sleep(0.25)
    restored_at.append(time.monotonic())
    proxy.restore()
    length = restored_at[0] - t0
    report.note(f'store RESTORED after {length:.2f}s')
    pool.shutdown(wait=True)
    return length


def check_probe(report: Report, probe: Probe) -> None:
    report.note(probe.describe())
    report.check(probe.status is not None and probe.latency < LATENCY_LIMIT_S
                 and probe.answered_during_cut,
                 f'{probe.name}: answered during the outage within {LATENCY_LIMIT_S:.0f}s '
                 f'(took {probe.latency:.2f}s, status {probe.status}, '
                 f'{"no answer: " + str(probe.error) if probe.status is None else "during the cut" if probe.answered_during_cut else "answered after the restore"})')
    if probe.kind == 'not-ready':
        report.check(probe.status is not None and probe.status != 200,
                     f'{probe.name}: not ready (non-200) during the outage, got {probe.status} '
                     f'{short(probe.body)}')
        return
    report.check(probe.status == 503, f'{probe.name}: HTTP 503 during the outage, got '
                                      f'{probe.status} {short(probe.body)}')
    body = probe.body
    if probe.kind == 'upload' and isinstance(body, dict) and 'error_message' in body:
        report.check(isinstance(body.get('error_message'), str) and bool(body['error_message'])
                     and 'error_details' in body,
                     f'{probe.name}: upload error shape {{error_message, error_details}}: '
                     f'{short(body)}')
        return
    shape_ok = (isinstance(body, dict) and body.get('code') == UNAVAILABLE
                and isinstance(body.get('message'), str) and bool(body.get('message'))
                and isinstance(body.get('details'), list)
                and all(isinstance(d, dict) and '@type' in d for d in body['details']))
    report.check(shape_ok, f'{probe.name}: KFP error shape {{code: 14, message, details[@type]}}'
                           f', got {short(body)}')
    if isinstance(body, dict) and probe.status == 503:
        report.note(f'{probe.name}: body keys {sorted(body)}; message {body.get("message")!r}')


# --------------------------------------------------------------------------------------------
# weir, with its store behind a proxy


@dataclass
class Installation:
    """What one test started; torn down by the fixture (log tails shown on failure)."""
    weir_servers: List[WeirServer] = field(default_factory=list)
    proxies: List[TcpProxy] = field(default_factory=list)
    cleanups: List[Callable[[], None]] = field(default_factory=list)


def step_says(task: Dict[str, Any]) -> Optional[str]:
    """The line a step of the pipelines above prints (None for a task that is no step)."""
    if task.get('kind') != 'container':
        return None
    parameters = (task.get('inputs') or {}).get('parameters') or {}
    name = task.get('name') or ''
    if name.startswith('slow-step'):
        return f'slow-step says: {parameters.get("x")} + 1 after '
    if name == 'make-dataset':
        return f'make-dataset says: {parameters.get("rows")} rows after '
    if name == 'count-rows':
        return 'count-rows says: counting'
    return None


@pytest.fixture
def installation() -> Installation:
    inst = Installation()
    yield inst
    for server in inst.weir_servers:
        stop_process(server.process)
    for proxy in inst.proxies:
        proxy.close()
    for cleanup in inst.cleanups:
        cleanup()


def start_weir(inst: Installation, weir_bin: Path, backend: str, data_dir: Path,
               metadata_url: str, artifacts_url: str, env: Dict[str, str],
               extra_args: List[str]) -> WeirServer:
    """conftest.start_weir with extra command-line arguments."""
    port = free_port()
    url = f'http://127.0.0.1:{port}'
    log_path = data_dir / 'weir.log'
    argv = weir_server_argv(weir_bin, port, data_dir, metadata_url, artifacts_url) + extra_args
    with open(log_path, 'wb') as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=data_dir,
                                   env={**os.environ, **env})
    server = WeirServer(backend, url, log_path, process, metadata_url, artifacts_url, dict(env))
    inst.weir_servers.append(server)
    deadline = time.monotonic() + HEALTHZ_TIMEOUT_S
    while http_status(f'{url}{API}/healthz') != 200:
        if process.poll() is not None:
            pytest.fail(f'weir exited with {process.returncode} before answering healthz:\n'
                        f'{" ".join(argv)}\n{server.log_tail()}', pytrace=False)
        if time.monotonic() > deadline:
            pytest.fail(f'weir did not answer healthz:\n{server.log_tail()}', pytrace=False)
        time.sleep(0.1)
    return server


def panic_lines(server: WeirServer) -> List[str]:
    text = server.log_path.read_text(errors='replace')
    return [line for line in text.splitlines() if 'panicked' in line or 'RUST_BACKTRACE' in line]


def log_messages(server: WeirServer, since_line: int = 0, limit: int = 30) -> List[str]:
    """Distinct WARN/ERROR messages of weir's JSON log since a line (for the report)."""
    seen: Dict[str, int] = {}
    lines = server.log_path.read_text(errors='replace').splitlines()[since_line:]
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            text = f'(non-JSON) {line.strip()[:300]}'
            if line.strip():
                seen[text] = seen.get(text, 0) + 1
            continue
        level = str(entry.get('level', '')).upper()
        if level not in ('WARN', 'ERROR') or entry.get('message') == 'request failed':
            continue
        error = entry.get('error') or entry.get('error.message') or ''
        text = f'{level} {entry.get("target", "")}: {entry.get("message", "")}'
        if error:
            text += f' -- {error}'
        text = re.sub(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<id>',
                      text)[:400]
        seen[text] = seen.get(text, 0) + 1
    return [f'{count}x {text}' for text, count in list(seen.items())[:limit]]


def log_line_count(server: WeirServer) -> int:
    return len(server.log_path.read_text(errors='replace').splitlines())


def check_alive(report: Report, server: WeirServer, when: str) -> None:
    report.check(server.process.poll() is None,
                 f'weir process alive {when} (exit code {server.process.poll()})')
    panics = panic_lines(server)
    report.check(not panics, f'no panic in weir log {when}: {panics[:5]}')


def wait_until_ok(report: Report, name: str, call: Callable[[], Tuple[Optional[int], Any]],
                  limit: float) -> Optional[float]:
    """Polls until `call` answers 200; returns how long that took (None if it never did)."""
    start = time.monotonic()
    last: Tuple[Optional[int], Any] = (None, None)
    while time.monotonic() - start < max(limit, 20.0):
        try:
            last = call()
        except Exception as error:
            last = (None, f'{type(error).__name__}: {error}')
        if last[0] == 200:
            took = time.monotonic() - start
            report.check(took <= limit, f'{name}: 200 again {took:.2f}s after the restore '
                                        f'(limit {limit:.0f}s)')
            return took
        time.sleep(0.2)
    report.check(False, f'{name}: still not 200 {max(limit, 20.0):.0f}s after the restore; '
                        f'last answer {last[0]} {short(last[1])}')
    return None


def get_run_raw(server: WeirServer, run_id: str) -> Tuple[Optional[int], Any]:
    return http('GET', f'{server.url}{API}/runs/{run_id}')


def wait_terminal(report: Report, server: WeirServer, run_id: str,
                  limit: float) -> Optional[Dict[str, Any]]:
    """The run as raw JSON once terminal (tolerating errors while the store recovers)."""
    start = time.monotonic()
    last: Any = None
    while time.monotonic() - start < limit:
        try:
            status, body = get_run_raw(server, run_id)
        except Exception as error:
            status, body = None, str(error)
        if status == 200:
            last = body
            if body.get('state') in TERMINAL:
                report.note(f'run {run_id} is {body["state"]} after waiting '
                            f'{time.monotonic() - start:.2f}s; error {body.get("error")}')
                return body
        time.sleep(0.25)
    report.check(False, f'run {run_id} reached a terminal state within {limit:.0f}s '
                        f'(last: state {(last or {}).get("state")!r})')
    return last


def describe_tasks(report: Report, server: WeirServer, run_id: str) -> List[Dict[str, Any]]:
    try:
        tasks = weir_tasks(server.url, run_id).tasks
    except AssertionError as error:
        report.note(f'cannot read tasks of {run_id}: {error}')
        return []
    for task in tasks:
        report.note(f'  task {task.get("name")!r} ({task.get("kind")}): {task.get("state")}'
                    f'{" error " + json.dumps(task["error"]) if task.get("error") else ""}'
                    f'{" attempts " + str(task.get("attempts")) if task.get("attempts") else ""}')
    return tasks


def task_states(server: WeirServer, run_id: str) -> str:
    try:
        tasks = weir_tasks(server.url, run_id).tasks
        return ', '.join(f'{t.get("name")}={t.get("state")}' for t in tasks)
    except Exception as error:  # during the outage this endpoint is itself unavailable
        return f'(tasks unreadable: {str(error)[:120]})'


def wait_task_running(server: WeirServer, run_id: str, name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for task in weir_tasks(server.url, run_id).named(name):
            if task.get('state') == 'RUNNING':
                return
        time.sleep(0.1)
    raise AssertionError(f'task {name} of run {run_id} never ran: {task_states(server, run_id)}')


def judge_inflight(report: Report, server: WeirServer, run: Optional[Dict[str, Any]],
                   tasks: List[Dict[str, Any]], what: str) -> None:
    """The run in flight SUCCEEDED once the store was back, and each of its steps' logs is
    readable and holds what the step printed."""
    state = (run or {}).get('state')
    messages = [json.dumps((run or {}).get('error'))] + [
        f'{t.get("name")}: {json.dumps(t["error"])}' for t in tasks if t.get('error')]
    report.check(state == 'SUCCEEDED', f'{what}: run in flight SUCCEEDED after the restore; '
                                       f'got state {state!r}, errors {messages}')
    if not run:
        return
    run_id = run['run_id']
    steps = [t for t in tasks if step_says(t) is not None]
    report.check(bool(steps), f'{what}: the run in flight has steps: '
                              f'{[t.get("name") for t in tasks]}')
    for task in steps:
        name, says = task.get('name'), step_says(task)
        if not task.get('attempts') and task.get('state') != 'SUCCEEDED':
            # A step that never ran has no log (the run failed above already).
            report.note(f'{what}: {name} never ran ({task.get("state")}): no log to read')
            continue
        status, kind, text, took = read_step_log(server, run_id, task, says)
        report.note(f'{what}: log of {name} (task {task["task_id"]}): HTTP {status}, '
                    f'{len(text)} chars after {took:.1f}s {short(text, 300)!r}')
        report.check(status == 200 and kind.startswith('text/plain') and f'==> {name} ' in text
                     and says in text,
                     f'{what}: log of step {name} readable after the restore (within '
                     f'{LOG_LIMIT_S:.0f}s), with its header and {says!r}: HTTP {status} '
                     f'{kind!r}, {short(text, 300)!r}')


def read_step_log(server: WeirServer, run_id: str, task: Dict[str, Any],
                  says: str) -> Tuple[Optional[int], str, str, float]:
    """Polls a step's log until it holds `says` (a log that could not be written during an
    artifact store outage is written by weir in the background once the store is back, with
    a backoff of up to a minute): (status, content type, text, seconds waited)."""
    start = time.monotonic()
    while True:
        try:
            response = requests.get(f'{server.url}/apis/weir/v1/runs/{run_id}/logs',
                                    params={'task': task['task_id']}, timeout=30)
            status, text = response.status_code, response.text
            kind = response.headers.get('content-type', '')
        except requests.RequestException as error:
            status, text, kind = None, f'{type(error).__name__}: {error}', ''
        took = time.monotonic() - start
        if (status == 200 and says in text) or took > LOG_LIMIT_S:
            return status, kind, text, took
        time.sleep(0.5)


def check_no_stuck_tasks(report: Report, tasks: List[Dict[str, Any]], what: str) -> None:
    stuck = [f'{t.get("name")}={t.get("state")}' for t in tasks
             if t.get('state') in ('RUNNING', 'PENDING')]
    report.check(not stuck, f'{what}: no task left RUNNING/PENDING in a terminal run: {stuck}')


# --------------------------------------------------------------------------------------------
# A: the PostgreSQL database goes away


@pytest.mark.parametrize('mode', OUTAGE_MODES)
@pytest.mark.parametrize('backend', DATABASES)
def test_database_outage(installation, weir_bin, tmp_path, backend, mode):
    report = Report(f'db-outage[{backend}-{mode}]')
    database = database_server(backend)
    db_name = f'weir_sdk_{uuid.uuid4().hex[:12]}'
    installation.cleanups.append(lambda: database.drop(db_name))
    db = database.parts
    default_port = 3306 if backend == 'mariadb' else 5432
    proxy = TcpProxy(db.hostname or '127.0.0.1', db.port or default_port, mode=mode)
    installation.proxies.append(proxy)
    # The server's URL (user, password, scheme) with the proxy as host.
    scheme = db.scheme or ('mysql' if backend == 'mariadb' else 'postgres')
    credentials = db.netloc.rpartition('@')[0]
    metadata_url = (f'{scheme}://{credentials + "@" if credentials else ""}'
                    f'127.0.0.1:{proxy.port}/{db_name}')
    data_dir = tmp_path / 'weir'
    data_dir.mkdir()
    server = start_weir(installation, weir_bin, backend, data_dir, metadata_url,
                        f'file://{data_dir}/artifacts', {}, [])
    report.note(f'weir at {server.url}, metadata through {proxy!r}')

    client = kfp.Client(host=server.url)
    experiment = client.create_experiment(unique_name('outage-db'))
    package = compile_pipeline(db_outage_pipeline, tmp_path / 'db-outage.yaml')
    inflight = client.create_run_from_pipeline_package(
        str(package), arguments={'seconds': 2.0}, run_name=unique_name('inflight'),
        experiment_id=experiment.experiment_id, enable_caching=False).run_id
    wait_task_running(server, inflight, 'slow-step')
    report.note(f'run {inflight} in flight: {task_states(server, inflight)}')
    log_mark = log_line_count(server)

    new_experiment = unique_name('during-cut')

    def wave(tag: str) -> List[Probe]:
        return [
            Probe(f'{tag} GET list runs', lambda: http('GET', f'{server.url}{API}/runs'),
                  'status'),
            Probe(f'{tag} GET run', lambda: get_run_raw(server, inflight), 'status'),
            Probe(f'{tag} POST create experiment',
                  lambda: http('POST', f'{server.url}{API}/experiments',
                               json={'display_name': f'{new_experiment}-{tag}'}), 'status'),
            Probe(f'{tag} GET /readyz', lambda: http('GET', f'{server.url}/readyz'),
                  'not-ready'),
        ]

    first, second = wave('w1'), wave('w2')
    sdk_probe = Probe('w2 kfp.Client.list_experiments',
                      sdk(lambda: client.list_experiments(page_size=5)), 'status')
    second.append(sdk_probe)
    healthz: List[Tuple[float, Optional[int]]] = []

    def during(elapsed: float) -> None:
        if not healthz or elapsed - healthz[-1][0] > 2.0:
            healthz.append((elapsed, http_status(f'{server.url}{API}/healthz', timeout=5)))

    # Wave 1 meets the pool's now-dead connections, wave 2 has to open new ones.
    cut_s = run_outage(proxy, [(0.3, first), (3.5, second)], report, during)
    report.note(f'healthz during the cut: {healthz}')
    report.note(f'run tasks right after the restore: {task_states(server, inflight)}')

    for probe in first + second:
        check_probe(report, probe)
    check_alive(report, server, 'after the outage')

    # Recovery: no restart, no manual step.
    wait_until_ok(report, 'GET list runs', lambda: http('GET', f'{server.url}{API}/runs'),
                  RECOVERY_LIMIT_S)
    wait_until_ok(report, 'GET /readyz', lambda: http('GET', f'{server.url}/readyz'),
                  RECOVERY_LIMIT_S)
    status, body = http('POST', f'{server.url}{API}/experiments',
                        json={'display_name': unique_name('after-cut')})
    report.check(status == 200, f'create experiment after the restore: {status} {short(body)}')
    status, body = http('GET', f'{server.url}{API}/experiments',
                        params={'page_size': 100})
    names = [e.get('display_name') for e in (body or {}).get('experiments') or []]
    leftovers = [n for n in names if n.startswith(new_experiment)]
    report.check(not leftovers, f'experiments refused with 503 were not created: {leftovers}')

    run = wait_terminal(report, server, inflight, RUN_LIMIT_S)
    tasks = describe_tasks(report, server, inflight)
    judge_inflight(report, server, run, tasks, 'db outage')
    if run and run.get('state') in TERMINAL:
        check_no_stuck_tasks(report, tasks, 'db outage')
    if run and run.get('state') == 'SUCCEEDED':
        last = [t for t in tasks if t.get('name') == 'slow-step-4']
        value = ((last[0].get('outputs') or {}).get('parameters') or {}).get('Output') \
            if last else None
        report.check(value == 4, f'in-flight run computed 4, got {value!r}')

    try:
        after = client.create_run_from_pipeline_package(
            str(package), arguments={'seconds': 0.2}, run_name=unique_name('after'),
            experiment_id=experiment.experiment_id, enable_caching=False).run_id
        done = wait_terminal(report, server, after, NEW_RUN_LIMIT_S)
        if (done or {}).get('state') != 'SUCCEEDED':
            describe_tasks(report, server, after)
        report.check((done or {}).get('state') == 'SUCCEEDED',
                     f'run submitted after the outage SUCCEEDED: {(done or {}).get("state")} '
                     f'{(done or {}).get("error")}')
    except Exception as error:
        report.check(False, f'run submitted after the outage: {type(error).__name__}: {error}')

    check_alive(report, server, 'at the end')
    report.note(f'cut lasted {cut_s:.2f}s; {proxy!r}')
    for message in log_messages(server, log_mark):
        report.note(f'log: {message}')
    report.assert_all()


# --------------------------------------------------------------------------------------------
# B: the S3 server goes away


def s3_client(endpoint: str, access_key: str, secret_key: str):
    return boto3.client('s3', endpoint_url=endpoint, region_name=S3_REGION,
                        aws_access_key_id=access_key, aws_secret_access_key=secret_key)


def upload(server: WeirServer, path: Path, name: str) -> Tuple[Optional[int], Any]:
    with open(path, 'rb') as f:
        return http('POST', f'{server.url}{API}/pipelines/upload', params={'name': name},
                    files={'uploadfile': (path.name, f.read(), 'application/x-yaml')})


def pipelines_named(server: WeirServer, name: str) -> List[Dict[str, Any]]:
    flt = json.dumps({'predicates': [{'operation': 'EQUALS', 'key': 'name',
                                      'string_value': name}]})
    status, body = http('GET', f'{server.url}{API}/pipelines', params={'filter': flt})
    assert status == 200, f'list pipelines answered {status}: {short(body)}'
    return (body or {}).get('pipelines') or []


@pytest.mark.parametrize('mode', OUTAGE_MODES)
def test_artifact_store_outage_s3(installation, weir_bin, tmp_path, s3_service, mode):
    report = Report(f's3-outage[{mode}]')
    bucket = s3_service.create_bucket()
    moto = urllib.parse.urlsplit(s3_service.endpoint)
    proxy = TcpProxy(moto.hostname or '127.0.0.1', moto.port or 80, mode=mode)
    installation.proxies.append(proxy)
    endpoint = f'http://127.0.0.1:{proxy.port}'
    env = {**s3_service.weir_env(), 'AWS_ENDPOINT_URL': endpoint}
    data_dir = tmp_path / 'weir'
    data_dir.mkdir()
    server = start_weir(installation, weir_bin, 'sqlite+s3', data_dir,
                        f'sqlite://{data_dir}/weir.db', f's3://{bucket}/weir', env,
                        ['--s3-endpoint', endpoint])
    report.note(f'weir at {server.url}, artifacts s3://{bucket}/weir through {proxy!r}')
    s3 = s3_client(s3_service.endpoint, s3_service.access_key, s3_service.secret_key)

    client = kfp.Client(host=server.url)
    experiment = client.create_experiment(unique_name('outage-s3'))
    package = compile_pipeline(s3_outage_pipeline, tmp_path / 's3-outage.yaml')
    small = compile_pipeline(db_outage_pipeline, tmp_path / 'small.yaml')

    def submit(tag: str, seconds: float) -> str:
        return client.create_run_from_pipeline_package(
            str(package), arguments={'rows': 5, 'seconds': seconds},
            run_name=unique_name(tag), experiment_id=experiment.experiment_id,
            enable_caching=False).run_id

    # A finished run whose artifact the outage probes try to read.
    warm = submit('warm', 0.0)
    warm_run = wait_terminal(report, server, warm, NEW_RUN_LIMIT_S)
    assert (warm_run or {}).get('state') == 'SUCCEEDED', (
        f'run before the outage did not succeed: {warm_run}; {task_states(server, warm)}')
    dataset = weir_tasks(server.url, warm).one('make-dataset')['outputs']['artifacts']['data'][0]
    report.note(f'warm-up run {warm} SUCCEEDED; its dataset {dataset.get("artifact_id")} '
                f'{dataset.get("uri")}')
    artifact_id = dataset.get('artifact_id')

    inflight = submit('inflight', 2.0)
    wait_task_running(server, inflight, 'make-dataset')
    report.note(f'run {inflight} in flight: {task_states(server, inflight)}')
    log_mark = log_line_count(server)

    cut_name = unique_name('cut-upload')
    probes = [
        Probe('POST pipelines/upload', lambda: upload(server, small, cut_name), 'upload'),
        Probe('GET artifact content',
              lambda: http('GET', f'{server.url}/apis/weir/v1/artifacts/{artifact_id}/content'),
              'status'),
        Probe('GET /readyz', lambda: http('GET', f'{server.url}/readyz'), 'not-ready'),
    ]
    late_name = unique_name('cut-upload-late')
    late = [Probe('w2 POST pipelines/upload', lambda: upload(server, small, late_name), 'upload')]
    seen_states: List[Tuple[float, str]] = []

    def during(elapsed: float) -> None:
        if not seen_states or elapsed - seen_states[-1][0] > 2.0:
            seen_states.append((elapsed, task_states(server, inflight)))

    cut_s = run_outage(proxy, [(0.3, probes), (3.5, late)], report, during, S3_CUT_MIN_S)
    for elapsed, states in seen_states:
        report.note(f'run tasks during the cut at +{elapsed:.1f}s: {states}')

    for probe in probes + late:
        check_probe(report, probe)
    check_alive(report, server, 'after the outage')

    wait_until_ok(report, 'GET /readyz', lambda: http('GET', f'{server.url}/readyz'),
                  RECOVERY_LIMIT_S)
    wait_until_ok(report, 'GET artifact content',
                  lambda: http('GET', f'{server.url}/apis/weir/v1/artifacts/{artifact_id}/content'),
                  RECOVERY_LIMIT_S)

    # Refused uploads leave nothing behind: no pipeline row, no package object.
    for probe, name in ((probes[0], cut_name), (late[0], late_name)):
        left = pipelines_named(server, name)
        if probe.status == 200:
            report.note(f'{probe.name} succeeded (status 200), so pipeline {name} may exist: '
                        f'{[p.get("pipeline_id") for p in left]}')
        else:
            report.check(not left, f'{probe.name} answered {probe.status}: no pipeline {name} '
                                   f'left behind, found {[p.get("pipeline_id") for p in left]}')
    # A package write that timed out may still land once the store is back (a partition
    # delivers it late); weir removes such objects in the background, so wait for that.
    deadline = time.monotonic() + 60
    while True:
        status, body = http('GET', f'{server.url}{API}/pipelines', params={'page_size': 200})
        known = {p['pipeline_id'] for p in (body or {}).get('pipelines') or []}
        listed = s3.list_objects_v2(Bucket=bucket, Prefix='weir/pipelines/').get('Contents') or []
        orphans = [o['Key'] for o in listed if o['Key'].split('/')[2] not in known]
        if not orphans or time.monotonic() > deadline:
            break
        time.sleep(1)
    report.check(not orphans, f'no package object without its pipeline in the bucket (60 s after the restore): {orphans}')

    run = wait_terminal(report, server, inflight, RUN_LIMIT_S)
    tasks = describe_tasks(report, server, inflight)
    judge_inflight(report, server, run, tasks, 's3 outage')
    if run and run.get('state') in TERMINAL:
        check_no_stuck_tasks(report, tasks, 's3 outage')
    if run and run.get('state') == 'SUCCEEDED':
        counted = [t for t in tasks if t.get('name') == 'count-rows']
        value = ((counted[0].get('outputs') or {}).get('parameters') or {}).get('Output') \
            if counted else None
        report.check(value == 5, f'in-flight run counted 5 rows, got {value!r}')

    try:
        after = submit('after', 0.0)
        done = wait_terminal(report, server, after, NEW_RUN_LIMIT_S)
        if (done or {}).get('state') != 'SUCCEEDED':
            describe_tasks(report, server, after)
        report.check((done or {}).get('state') == 'SUCCEEDED',
                     f'run with artifacts submitted after the outage SUCCEEDED: '
                     f'{(done or {}).get("state")} {(done or {}).get("error")}')
        if (done or {}).get('state') == 'SUCCEEDED':
            data = weir_tasks(server.url, after).one('make-dataset')['outputs']['artifacts'][
                'data'][0]
            status, body = http('GET', f'{server.url}/apis/weir/v1/artifacts/'
                                       f'{data["artifact_id"]}/content')
            report.check(status == 200 and body == ''.join(f'row-{i}\n' for i in range(5)),
                         f'artifact of the new run readable: {status} {short(body)}')
    except Exception as error:
        report.check(False, f'run submitted after the outage: {type(error).__name__}: {error}')

    name = unique_name('after-upload')
    status, body = upload(server, small, name)
    report.check(status == 200 and len(pipelines_named(server, name)) == 1,
                 f'pipeline upload after the outage: {status} {short(body)}')

    check_alive(report, server, 'at the end')
    report.note(f'cut lasted {cut_s:.2f}s; {proxy!r}')
    for message in log_messages(server, log_mark):
        report.note(f'log: {message}')
    report.assert_all()
