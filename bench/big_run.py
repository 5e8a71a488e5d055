"""A big run, tried as a new user tries it: a ParallelFor of 10,000 `sh -c true` container steps
(parallelism 64), submitted with `kfp.Client.create_run_from_pipeline_package` to a weir with
its default settings, and watched with `kfp.Client.get_run` once a second until it ends.

While it runs, `--pollers` processes each call `GET /apis/v2beta1/runs/{id}` once a second (over a
connection each keeps, as kfp.Client's pool does; `--fresh-connections` for one per request) and
one process pages through the run's tasks (`GET /apis/weir/v1/runs/{id}/tasks`, 500 a page,
then a second's pause); every latency is kept. Readers are processes of their own, so the
client's parsing in this one does not hold up their clocks. The server's RSS is read from
/proc every 100 ms, its CPU and its steps' CPU before and after.

    .venv/bin/python bench/big_run.py --weir target/release/weir                     # SQLite + folder
    .venv/bin/python bench/big_run.py --weir target/release/weir --backend postgres  # a fresh database
    .venv/bin/python bench/big_run.py --weir target/release/weir --pollers 0 --client-poll 0 --no-pager
    .venv/bin/python bench/big_run.py --weir /tmp/weir-before --items 2000           # a peer binary

It prints one JSON object: the wall time from the create request to the client seeing the run's
end (the client's last parse included), the run's own start-to-end from its timestamps, tasks,
CPU, RSS idle and at its peak, and get_run / task-page latency percentiles: as the readers saw
them (`http_get_run`, to the last byte read) and as weir's request spans recorded them
(`handler_get_run`, to the answer's head, for every GET of the run, the client's included)."""
import argparse
import http.client
import json
import re
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import kfp
from kfp import compiler, dsl


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@dsl.container_component
def noop():
    return dsl.ContainerSpec(image='alpine:3.19', command=['sh', '-c', 'true'])


def compile_fan_out(items: int, parallelism: int, path: Path) -> None:
    @dsl.pipeline(name=f'fan-out-{items}')
    def fan_out():
        with dsl.ParallelFor(items=list(range(items)), parallelism=parallelism):
            noop().set_caching_options(False)

    compiler.Compiler().compile(fan_out, str(path))


def percentile(values, q):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(values):
    if not values:
        return {}
    return {'n': len(values), 'median_ms': round(statistics.median(values), 2),
            'p99_ms': round(percentile(values, 0.99), 2), 'max_ms': round(max(values), 2)}


def rss_mib(pid: int) -> float:
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return 0.0


class Server:
    """`weir server` with default settings on fresh storage: SQLite + folder in `work`, or a new
    PostgreSQL database (dropped by `stop`)."""

    def __init__(self, binary: Path, backend: str, work: Path):
        port = free_port()
        self.url = f'http://127.0.0.1:{port}'
        self.work = work
        self.database = None
        command = [str(binary), 'server', '--listen', f'127.0.0.1:{port}', '--data-dir', str(work / 'data')]
        if backend == 'postgres':
            self.database = f'weir_bench_{os.getpid()}_{port}'
            self.psql(f'CREATE DATABASE {self.database}')
            command += ['--metadata', f'postgres://postgres@127.0.0.1:5432/{self.database}']
        log = open(work / 'weir.log', 'wb')
        self.log_path = work / 'weir.log'
        # Warnings, and each request's own span (its `duration_ms`) for the handler's latency.
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ, 'WEIR_LOG': 'warn,weir_server::observability=info',
                                             'WEIR_LOG_FORMAT': 'json'})
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f'{self.url}/apis/v2beta1/healthz', timeout=2)
                return
            except Exception:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise SystemExit(f'weir did not start; see {work / "weir.log"}')
                time.sleep(0.1)

    @property
    def pid(self) -> int:
        return self.process.pid

    @staticmethod
    def psql(sql: str, database: str = 'postgres') -> str:
        return subprocess.run(['psql', '-h', '127.0.0.1', '-U', 'postgres', '-d', database, '-tAqc', sql],
                              capture_output=True, text=True, check=True).stdout

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        if self.database:
            self.psql(f'DROP DATABASE IF EXISTS {self.database}')


def handler_latencies(log_path: Path, route: str, method: str = 'GET') -> list:
    """weir's own time for each `method` request of `route`: from the request's arrival to the
    answer's head (the body not yet sent), as its request span records it."""
    latencies = []
    for line in open(log_path, errors='replace'):
        if '"duration_ms"' not in line:
            continue
        try:
            span = json.loads(line).get('span', {})
        except ValueError:
            continue
        if span.get('http.method') == method and span.get('http.route') == route and 'duration_ms' in span:
            latencies.append(float(span['duration_ms']))
    return latencies


def readers_loop(run_id_box, stop, read):
    """Calls `read(run_id)` until `stop`, once the run's id is known; returns its latencies."""
    latencies = []
    while not stop.is_set():
        run_id = run_id_box.value.decode()
        if not run_id:
            time.sleep(0.05)
            continue
        read(run_id, latencies)
    return latencies


def poll_get(url, run_id_box, stop, results, interval, fresh):
    """Reads the run once every `interval` over one kept connection, as kfp.Client does (its
    urllib3 pool keeps connections alive); with `fresh`, a new connection per request."""
    host = url.split('//', 1)[1]
    kept = []

    def read(run_id, latencies):
        started = time.perf_counter()
        if fresh:
            with urllib.request.urlopen(f'{url}/apis/v2beta1/runs/{run_id}', timeout=60) as answer:
                answer.read()
        else:
            # A kept connection the server closed is opened again, as urllib3's pool does.
            for attempt in (1, 2):
                if not kept:
                    kept.append(http.client.HTTPConnection(host, timeout=60))
                try:
                    kept[0].request('GET', f'/apis/v2beta1/runs/{run_id}')
                    answer = kept[0].getresponse()
                    answer.read()
                    break
                except (http.client.HTTPException, ConnectionError):
                    kept.pop().close()
                    if attempt == 2:
                        raise
            if answer.status != 200:
                raise SystemExit(f'GET run answered {answer.status}')
        latencies.append((time.perf_counter() - started) * 1000)
        time.sleep(max(0.0, interval - (time.perf_counter() - started)))
    results.put(('get', readers_loop(run_id_box, stop, read)))


def page_tasks(url, run_id_box, stop, results):
    def read(run_id, latencies):
        token = ''
        while not stop.is_set():
            started = time.perf_counter()
            query = f'?page_size=500&page_token={token}'
            with urllib.request.urlopen(f'{url}/apis/weir/v1/runs/{run_id}/tasks{query}', timeout=60) as answer:
                page = json.loads(answer.read())
            latencies.append((time.perf_counter() - started) * 1000)
            token = page.get('next_page_token') or ''
            if not token:
                break
        time.sleep(1.0)
    results.put(('page', readers_loop(run_id_box, stop, read)))


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process and its reaped children (the steps it started)."""
    fields = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
    ticks = os.sysconf('SC_CLK_TCK')
    own = (int(fields[11]) + int(fields[12])) / ticks
    children = (int(fields[13]) + int(fields[14])) / ticks
    return own, children


def postgres_cpu_seconds() -> float:
    """CPU of the PostgreSQL cluster: its postmaster (with the children it reaped) and the
    processes it runs now (backends, WAL writer, checkpointer, ...)."""
    ticks = os.sysconf('SC_CLK_TCK')
    total = 0
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            if open(f'/proc/{entry}/comm').read().strip() != 'postgres':
                continue
            fields = open(f'/proc/{entry}/stat').read().rsplit(')', 1)[1].split()
            # The postmaster (its parent is no postgres) counts its reaped children too.
            postmaster = fields[1] == '1' or open(f'/proc/{fields[1]}/comm').read().strip() != 'postgres'
        except OSError:  # the process ended while being read
            continue
        total += int(fields[11]) + int(fields[12])
        if postmaster:
            total += int(fields[13]) + int(fields[14])
    return total / ticks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--weir', required=True, type=Path)
    parser.add_argument('--backend', choices=['sqlite', 'postgres'], default='sqlite')
    parser.add_argument('--items', type=int, default=10_000)
    parser.add_argument('--parallelism', type=int, default=64)
    parser.add_argument('--pollers', type=int, default=4, help='processes polling GET /runs/{id}')
    parser.add_argument('--poll-interval', type=float, default=1.0, help='seconds between one poller\'s requests')
    parser.add_argument('--fresh-connections', action='store_true',
                        help='pollers open a connection per request (by default each keeps one, as kfp.Client does)')
    parser.add_argument('--client-poll', type=float, default=1.0,
                        help='seconds between kfp.Client.get_run calls (0: watch the state with plain HTTP)')
    parser.add_argument('--pager', action=argparse.BooleanOptionalAction, default=True,
                        help='a process paging through the run\'s tasks, 500 at a time')
    parser.add_argument('--timeout', type=float, default=1800)
    parser.add_argument('--keep', action='store_true', help='keep the data folder')
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix='weir-big-'))
    package = work / 'fan-out.yaml'
    compile_fan_out(args.items, args.parallelism, package)
    server = Server(args.weir, args.backend, work)
    url = server.url
    try:
        rss_idle = rss_mib(server.pid)
        client = kfp.Client(host=url)
        stop = threading.Event()
        peak = [rss_idle]

        def sample_rss():
            while not stop.is_set():
                peak[0] = max(peak[0], rss_mib(server.pid))
                time.sleep(0.1)

        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()
        # Readers in processes of their own, so the client's parsing in this one (seconds of
        # Python per get_run of a big run) does not hold them up.
        context = multiprocessing.get_context('spawn')
        manager_stop = context.Event()
        results = context.Queue()
        run_id_box = context.Array('c', 64)
        readers = [context.Process(target=poll_get,
                                   args=(url, run_id_box, manager_stop, results, args.poll_interval, args.fresh_connections))
                   for _ in range(args.pollers)]
        if args.pager:
            readers.append(context.Process(target=page_tasks, args=(url, run_id_box, manager_stop, results)))
        for reader in readers:
            reader.start()

        cpu_before = cpu_seconds(server.pid)
        database_before = postgres_cpu_seconds() if args.backend == 'postgres' else None
        submitted = time.monotonic()
        result = client.create_run_from_pipeline_package(str(package), arguments={}, enable_caching=False)
        run_id_box.value = result.run_id.encode()
        client_gets = []
        state = None
        while time.monotonic() - submitted < args.timeout:
            started = time.perf_counter()
            if args.client_poll > 0:
                run = client.get_run(result.run_id)
                client_gets.append((time.perf_counter() - started) * 1000)
                state = run.state
            else:
                # The run's own fields come before its tasks' in weir's answer.
                with urllib.request.urlopen(f'{url}/apis/v2beta1/runs/{result.run_id}', timeout=60) as a:
                    state = re.search(rb'"state":"(\w+)"', a.read()).group(1).decode()
            if state in ('SUCCEEDED', 'FAILED', 'CANCELED', 'SKIPPED'):
                break
            interval = args.client_poll if args.client_poll > 0 else 0.2
            time.sleep(max(0.0, interval - (time.perf_counter() - started)))
        wall = time.monotonic() - submitted
        cpu_after = cpu_seconds(server.pid)
        database_after = postgres_cpu_seconds() if args.backend == 'postgres' else None
        stop.set()
        manager_stop.set()
        get_latencies, page_latencies = [], []
        for _ in readers:
            kind, values = results.get(timeout=120)
            (get_latencies if kind == 'get' else page_latencies).extend(values)
        for reader in readers:
            reader.join(timeout=60)
        run = client.get_run(result.run_id)
        tasks = len(run.run_details.task_details) if run.run_details else 0
        own = (run.finished_at - run.created_at).total_seconds() if run.finished_at else None
        print(json.dumps({
            'backend': args.backend, 'items': args.items, 'parallelism': args.parallelism,
            'state': state, 'wall_s': round(wall, 2), 'run_created_to_finished_s': own, 'tasks': tasks,
            'server_cpu_s': round(cpu_after[0] - cpu_before[0], 2),
            'steps_cpu_s': round(cpu_after[1] - cpu_before[1], 2),
            # SQLite runs inside weir: its CPU is weir's.
            'database_cpu_s': round(database_after - database_before, 2) if database_after is not None else None,
            'rss_idle_mib': round(rss_idle, 1), 'rss_peak_mib': round(peak[0], 1),
            'client_get_run': summary(client_gets), 'http_get_run': summary(get_latencies),
            'handler_get_run': summary(handler_latencies(server.log_path, '/apis/v2beta1/runs/{id}')),
            'task_pages': summary(page_latencies),
        }, indent=1))
    finally:
        server.stop()
        if args.keep:
            print(f'kept {work}', file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
