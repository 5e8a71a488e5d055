"""Throughput: 200 runs of a 10-step pipeline (a chain of `sh -c true` container steps, caching
off) submitted at once by 20 clients, each creating its 10 runs back to back through the API;
then every client watches its runs (lists its experiment's runs and gets one of them, every
half second) until all have ended.

    .venv/bin/python bench/throughput.py --weir target/release/weir --peer /tmp/weir-before \\
        --backend sqlite --rounds 3

Each round runs every binary given (`--weir`, then `--peer` if given) once on fresh storage of
the backend, one after the other, with default server settings. Printed per binary: runs per
second and step starts per second (from the first create to the last run's end as weir records
it), the p99 and median of every API request the clients made meanwhile (creates, lists,
gets), weir's own time for each kind of request (its request spans: the clients' figures also
hold their 20 threads' waits for one interpreter's lock), the server's CPU and peak RSS;
medians over the rounds with the range."""
import argparse
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
import yaml
from kfp import compiler, dsl

sys.path.insert(0, str(Path(__file__).parent))
from big_run import Server, cpu_seconds, handler_latencies, percentile, rss_mib  # noqa: E402

DONE = ('SUCCEEDED', 'FAILED', 'CANCELED', 'SKIPPED')

# The requests the clients make, by the route weir's request spans name them.
HANDLED = [('create_run', 'POST', '/apis/v2beta1/runs'), ('list_runs', 'GET', '/apis/v2beta1/runs'),
           ('get_run', 'GET', '/apis/v2beta1/runs/{id}')]


@dsl.container_component
def noop():
    return dsl.ContainerSpec(image='alpine:3.19', command=['sh', '-c', 'true'])


def compile_chain(steps: int, path: Path) -> dict:
    @dsl.pipeline(name=f'chain-{steps}')
    def chain():
        previous = None
        for _ in range(steps):
            task = noop().set_caching_options(False)
            if previous is not None:
                task.after(previous)
            previous = task

    compiler.Compiler().compile(chain, str(path))
    return yaml.safe_load(path.read_text())


def one(binary: Path, backend: str, spec: dict, clients: int, runs_per_client: int, steps: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix='weir-throughput-'))
    server = Server(binary, backend, work)
    url = server.url
    try:
        experiments = []
        for i in range(clients):
            answer = requests.post(f'{url}/apis/v2beta1/experiments', json={'display_name': f'client-{i}'})
            answer.raise_for_status()
            experiments.append(answer.json()['experiment_id'])
        latencies = []
        lock = threading.Lock()
        errors = []
        start = threading.Barrier(clients + 1)
        peak = [rss_mib(server.pid)]
        stop = threading.Event()

        def timed(session, method, path, **kwargs):
            began = time.perf_counter()
            answer = session.request(method, f'{url}{path}', timeout=120, **kwargs)
            elapsed = (time.perf_counter() - began) * 1000
            with lock:
                latencies.append(elapsed)
            if answer.status_code != 200:
                errors.append(f'{method} {path}: {answer.status_code} {answer.text[:200]}')
            return answer.json()

        def client(i):
            session = requests.Session()
            mine = []
            start.wait()
            for n in range(runs_per_client):
                body = {'display_name': f'c{i}-r{n}', 'experiment_id': experiments[i], 'pipeline_spec': spec}
                mine.append(timed(session, 'POST', '/apis/v2beta1/runs', json=body)['run_id'])
            while True:
                page = timed(session, 'GET', f'/apis/v2beta1/runs?experiment_id={experiments[i]}&page_size=20')
                states = [r['state'] for r in page.get('runs', [])]
                timed(session, 'GET', f'/apis/v2beta1/runs/{mine[-1]}')
                if len(states) == runs_per_client and all(s in DONE for s in states):
                    return
                time.sleep(0.5)

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], rss_mib(server.pid))
                time.sleep(0.1)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        cpu_before = cpu_seconds(server.pid)[0]
        start.wait()
        began = time.time()
        for thread in threads:
            thread.join()
        stop.set()
        cpu = cpu_seconds(server.pid)[0] - cpu_before
        # The end as weir records it, in milliseconds (the API gives whole seconds, as KFP's).
        finished = []
        token = ''
        while True:
            page = requests.get(f'{url}/apis/v2beta1/runs?page_size=200&page_token={token}').json()
            finished.extend((run['state'], run['run_id']) for run in page.get('runs', []))
            token = page.get('next_page_token') or ''
            if not token:
                break
        query = 'SELECT max(finished_at) FROM runs'
        if server.database:
            last = Server.psql(query, server.database)
        else:
            with sqlite3.connect(f'file:{work / "data" / "weir.db"}?mode=ro', uri=True) as db:
                last = db.execute(query).fetchone()[0]
        ends = [int(last) / 1000]
        states = {s for s, _ in finished}
        elapsed = max(ends) - began
        total = clients * runs_per_client
        if errors or states != {'SUCCEEDED'} or len(finished) != total:
            raise SystemExit(f'{binary}: {len(errors)} errors {errors[:3]}, states {states}, {len(finished)} runs')
        # weir's own time per request (its request spans), beside the clients' figures, which
        # include their 20 threads waiting for one interpreter's lock.
        handler = {}
        for key, method, route in HANDLED:
            spans = handler_latencies(server.log_path, route, method)
            if not spans:
                raise SystemExit(f'{binary}: no request spans of {method} {route} in {server.log_path}')
            handler[f'{key}_handler_p99_ms'] = percentile(spans, 0.99)
            handler[f'{key}_handler_median_ms'] = statistics.median(spans)
        return {
            'elapsed_s': elapsed, 'runs_per_s': total / elapsed, 'step_starts_per_s': total * steps / elapsed,
            'api_p99_ms': percentile(latencies, 0.99), 'api_median_ms': statistics.median(latencies),
            'requests': len(latencies), 'server_cpu_s': cpu, 'rss_peak_mib': peak[0], **handler,
        }
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--weir', required=True, type=Path)
    parser.add_argument('--peer', type=Path, help='a second binary measured in the same rounds')
    parser.add_argument('--backend', choices=['sqlite', 'postgres'], default='sqlite')
    parser.add_argument('--clients', type=int, default=20)
    parser.add_argument('--runs-per-client', type=int, default=10)
    parser.add_argument('--steps', type=int, default=10)
    parser.add_argument('--rounds', type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix='weir-throughput-spec-'))
    spec = compile_chain(args.steps, work / 'chain.yaml')
    binaries = [('weir', args.weir)] + ([('peer', args.peer)] if args.peer else [])
    results = {name: [] for name, _ in binaries}
    for round_ in range(args.rounds):
        for name, binary in binaries:
            result = one(binary, args.backend, spec, args.clients, args.runs_per_client, args.steps)
            results[name].append(result)
            print(f'round {round_ + 1} {name}: ' + json.dumps({k: round(v, 2) for k, v in result.items()}),
                  file=sys.stderr)
    summary = {'backend': args.backend, 'clients': args.clients, 'runs': args.clients * args.runs_per_client,
               'steps_per_run': args.steps, 'rounds': args.rounds}
    for name, rounds in results.items():
        summary[name] = {key: {'median': round(statistics.median(r[key] for r in rounds), 2),
                               'min': round(min(r[key] for r in rounds), 2),
                               'max': round(max(r[key] for r in rounds), 2)} for key in rounds[0]}
    if args.peer:
        summary['weir/peer elapsed, per round'] = [round(w['elapsed_s'] / p['elapsed_s'], 2)
                                                   for w, p in zip(results['weir'], results['peer'])]
    print(json.dumps(summary, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
