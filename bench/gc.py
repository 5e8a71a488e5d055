#!/usr/bin/env python3
"""Garbage collection of many runs: `weir storage gc --apply` against a bare delete of the same
rows and objects, each while a weir server answers API clients on the same storage.

    cargo build --release -p weir --bins --examples
    .venv/bin/python bench/gc.py --runs 100000 --weir target/release/weir \
        --fill target/release/examples/gc_fill

One storage (SQLite + folder) is filled with `--runs` finished one-step runs (`gc_fill`: the
rows of a run, its root and step tasks, its log object and an output object), then copied, so
both sides start from the same bytes. On each copy a `weir server` serves while:

* readers (4 threads) list runs (a page of 20, newest first) without pause, and a writer
  creates an experiment every 100 ms: their latencies before (`--baseline` seconds) and
  during the collection are recorded; the writer's longest wait is what the longest lock held
  cost a writer;
* the collection removes every run:
  - **weir**: `weir storage gc --apply` with one policy (`older_than: 0s`, batches of 100):
    per run a transaction deleting its rows and writing its journal entries and history
    record, the reference checks, then the objects and the end of each journal entry;
  - **bare delete** (the peer): Python's sqlite3 deletes the same rows, 100 runs per
    transaction (tasks, state history, artifacts, runs), then removes each run's two folders:
    the same rows and objects, without journal, history or reference checks, as an operator's
    script would.

Both figures are whole-process wall times (process start to exit for weir's CLI; the loop
alone for the peer, which has no start-up). Nothing here asserts a time.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

POLICY = 'version: 1\nretention:\n  interval_seconds: 0\n  batch_size: 100\n  policies:\n' \
         '    - name: all\n      older_than: 0s\n'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start_weir(weir: Path, data: Path) -> (subprocess.Popen, str):
    port = free_port()
    log = open(data / f'weir-{port}.log', 'wb')
    process = subprocess.Popen([str(weir), 'server', '--listen', f'127.0.0.1:{port}', '--data-dir', str(data),
                                '--disable-scheduler'], stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, 'WEIR_RETENTION_INTERVAL_SECONDS': '0'})
    url = f'http://127.0.0.1:{port}'
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(f'{url}/apis/v2beta1/healthz', timeout=2).status_code == 200:
                return process, url
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f'weir did not start on {data}')


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()


class Probe:
    """Readers listing runs and a writer creating experiments, with their latencies."""

    def __init__(self, url: str):
        self.url = url
        self.stop = threading.Event()
        self.phase = 'baseline'
        self.samples = {('read', 'baseline'): [], ('read', 'during'): [],
                        ('write', 'baseline'): [], ('write', 'during'): []}
        self.errors = 0
        self.threads = [threading.Thread(target=self.reader, daemon=True) for _ in range(4)]
        self.threads.append(threading.Thread(target=self.writer, daemon=True))

    def timed(self, kind: str, call) -> None:
        begin = time.perf_counter()
        try:
            ok = call().status_code == 200
        except requests.RequestException:
            ok = False
        self.samples[(kind, self.phase)].append((time.perf_counter() - begin) * 1000)
        self.errors += not ok

    def reader(self) -> None:
        session = requests.Session()
        params = {'page_size': 20, 'sort_by': 'created_at desc'}
        while not self.stop.is_set():
            self.timed('read', lambda: session.get(f'{self.url}/apis/v2beta1/runs', params=params, timeout=60))

    def writer(self) -> None:
        session = requests.Session()
        n = 0
        while not self.stop.is_set():
            n += 1
            body = {'display_name': f'probe-{os.getpid()}-{time.monotonic_ns()}-{n}'}
            self.timed('write', lambda: session.post(f'{self.url}/apis/v2beta1/experiments', json=body, timeout=60))
            time.sleep(0.1)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(70)

    def stats(self, kind: str, phase: str) -> dict:
        values = sorted(self.samples[(kind, phase)])
        if not values:
            return {'n': 0}
        pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]
        return {'n': len(values), 'p50': pick(0.5), 'p99': pick(0.99), 'max': values[-1]}


def weir_collect(weir: Path, data: Path, config: Path) -> (float, dict):
    begin = time.perf_counter()
    result = subprocess.run([str(weir), 'storage', 'gc', '--apply', '--output', 'json', '--config', str(config),
                             '--data-dir', str(data)], capture_output=True, text=True)
    took = time.perf_counter() - begin
    if result.returncode != 0:
        raise SystemExit(f'weir storage gc failed: {result.stderr}')
    return took, json.loads(result.stdout)


def bare_delete(data: Path) -> (float, dict):
    begin = time.perf_counter()
    db = sqlite3.connect(data / 'weir.db', timeout=60)
    ids = [r[0] for r in db.execute("SELECT id FROM runs WHERE display_name LIKE 'gc-%' ORDER BY finished_at")]
    pipeline = 'p'
    for start in range(0, len(ids), 100):
        batch = ids[start:start + 100]
        marks = ','.join('?' * len(batch))
        with db:
            for table in ('tasks', 'run_state_history', 'artifacts'):
                db.execute(f'DELETE FROM {table} WHERE run_id IN ({marks})', batch)
            db.execute(f'DELETE FROM runs WHERE id IN ({marks})', batch)
        for run_id in batch:
            shutil.rmtree(data / 'artifacts' / 'logs' / run_id, ignore_errors=True)
            shutil.rmtree(data / 'artifacts' / 'artifacts' / pipeline / run_id, ignore_errors=True)
    db.close()
    return time.perf_counter() - begin, {'runs': len(ids)}


def side(name: str, weir: Path, data: Path, baseline_s: float, collect) -> dict:
    process, url = start_weir(weir, data)
    try:
        with Probe(url) as probe:
            time.sleep(baseline_s)
            probe.phase = 'during'
            took, detail = collect()
        runs = detail.get('runs', {}).get('deleted') if isinstance(detail.get('runs'), dict) else detail.get('runs')
        return {'side': name, 'seconds': took, 'runs': runs, 'runs_per_s': runs / took if runs else 0,
                'read_baseline': probe.stats('read', 'baseline'), 'read_during': probe.stats('read', 'during'),
                'write_baseline': probe.stats('write', 'baseline'), 'write_during': probe.stats('write', 'during'),
                'errors': probe.errors, 'detail': detail}
    finally:
        stop(process)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--runs', type=int, default=100_000)
    parser.add_argument('--weir', default='target/release/weir')
    parser.add_argument('--fill', default='target/release/examples/gc_fill')
    parser.add_argument('--baseline', type=float, default=15.0, help='seconds of API load before collecting')
    parser.add_argument('--work', help='work folder (default: a new temporary one, removed after)')
    parser.add_argument('--out', help='write the results as JSON here')
    args = parser.parse_args()
    weir, fill = Path(args.weir).resolve(), Path(args.fill).resolve()
    work = Path(args.work or tempfile.mkdtemp(prefix='weir-gc-bench-'))
    source = work / 'source'
    source.mkdir(parents=True, exist_ok=True)
    process, _ = start_weir(weir, source)
    stop(process)
    begin = time.perf_counter()
    subprocess.run([str(fill), '--metadata', f'sqlite://{source}/weir.db', '--artifacts', f'file://{source}/artifacts',
                    '--runs', str(args.runs)], check=True)
    print(f'filled {args.runs} runs in {time.perf_counter() - begin:.0f} s', file=sys.stderr)
    copies = {}
    for name in ('weir', 'bare'):
        copies[name] = work / name
        shutil.copytree(source, copies[name], ignore=shutil.ignore_patterns('weir-*.log', 'work'))
    config = work / 'weir.yaml'
    config.write_text(POLICY)
    results = [
        side('weir storage gc --apply', weir, copies['weir'], args.baseline,
             lambda: weir_collect(weir, copies['weir'], config)),
        side('bare delete (sqlite3 + rmtree)', weir, copies['bare'], args.baseline,
             lambda: bare_delete(copies['bare'])),
    ]
    print(f'\n{args.runs} finished runs (2 tasks, 2 objects each), SQLite + folder; API load: 4 readers, 1 writer')
    print(f'{"side":<32} {"wall s":>7} {"runs/s":>8} {"list p50/p99 ms (before -> during)":>38} '
          f'{"writer max ms (before -> during)":>34}')
    for r in results:
        rb, rd, wb, wd = r['read_baseline'], r['read_during'], r['write_baseline'], r['write_during']
        print(f'{r["side"]:<32} {r["seconds"]:>7.1f} {r["runs_per_s"]:>8.0f} '
              f'{rb.get("p50", 0):>8.1f}/{rb.get("p99", 0):<7.1f} -> {rd.get("p50", 0):>7.1f}/{rd.get("p99", 0):<8.1f}'
              f'{wb.get("max", 0):>14.1f} -> {wd.get("max", 0):<10.1f}  errors {r["errors"]}')
    if results[1]['seconds']:
        print(f'ratio weir / bare delete: {results[0]["seconds"] / results[1]["seconds"]:.2f}x')
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + '\n')
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
