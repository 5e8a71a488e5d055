"""Benchmarks weir against KFP's local runner (kfp.local.SubprocessRunner) on the same
SDK-compiled pipelines, interleaved in one invocation.

    bash bench/run.sh [--rounds 5] [--only chain-10,chain-50]

Weir is started on fresh embedded storage and each pipeline is submitted through the API with
kfp.Client, as a user does; the local runner calls the same pipeline function in this process.
Each round runs every peer once (A B A B ...); medians, min/max and same-round ratios are
printed and written to bench/RESULTS.md with the machine's description.
"""
import argparse
import sqlite3
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import kfp
from kfp import compiler

sys.path.insert(0, str(Path(__file__).parent))
from pipelines import PIPELINES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Weir:
    def __init__(self, binary: Path, workdir: Path):
        port = free_port()
        self.url = f'http://127.0.0.1:{port}'
        self.log = open(workdir / 'weir.log', 'w')
        self.db = workdir / 'data' / 'weir.db'
        self.process = subprocess.Popen(
            [str(binary), 'server', '--listen', f'127.0.0.1:{port}', '--data-dir', str(workdir / 'data'),
             '--executor-python', sys.executable, '--max-concurrent-steps', str(os.cpu_count() or 2)],
            stdout=subprocess.DEVNULL, stderr=self.log, env={**os.environ, 'WEIR_LOG': 'warn'})
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f'{self.url}/apis/v2beta1/healthz', timeout=1)
                break
            except Exception:
                time.sleep(0.05)
        self.client = kfp.Client(host=self.url)
        self.experiment = self.client.create_experiment('bench').experiment_id

    def run(self, package: Path) -> float:
        elapsed, _ = self.run_with_cadence(package)
        return elapsed

    def run_with_cadence(self, package: Path):
        """Runs a pipeline; returns its wall time and the mean interval between consecutive step
        starts (the chain's cadence: what one more step costs, without the run's fixed costs)."""
        started = time.perf_counter()
        # Caching off: every round runs every step (the local runner has no cache).
        run = self.client.create_run_from_pipeline_package(str(package), experiment_id=self.experiment,
                                                           enable_caching=False)
        while True:
            state = self.client.get_run(run.run_id).state
            if state in ('SUCCEEDED', 'FAILED', 'CANCELED'):
                break
            # Every 100 ms: a get_run of a 200-step run costs weir ~15 ms of CPU (its spec and
            # every task's details), so polling faster measures the poller, not the steps.
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        if state != 'SUCCEEDED':
            raise SystemExit(f'weir run {run.run_id} ended {state}')
        # The API gives times in whole seconds, as KFP's does; weir's store keeps milliseconds.
        with sqlite3.connect(f'file:{self.db}?mode=ro', uri=True) as db:
            starts = [row[0] / 1000 for row in db.execute(
                "SELECT started_at FROM tasks WHERE run_id = ? AND kind = 'container' AND started_at > 0 "
                "ORDER BY started_at", (run.run_id,))]
        cadence = (starts[-1] - starts[0]) / (len(starts) - 1) if len(starts) > 2 else None
        return elapsed, cadence

    def rss_kb(self) -> int:
        for line in open(f'/proc/{self.process.pid}/status'):
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
        return 0

    def stop(self):
        self.process.terminate()
        self.process.wait(30)


def run_local(func, root: Path) -> float:
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


def process_floor(command: list, count: int = 20, env=None) -> float:
    started = time.perf_counter()
    for _ in range(count):
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
    return (time.perf_counter() - started) / count


def summary(values):
    return statistics.median(values), min(values), max(values)


def machine() -> str:
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor())
    mem = next((int(l.split()[1]) // 1024 for l in open('/proc/meminfo') if l.startswith('MemTotal')), 0)
    return f'{os.cpu_count()} cores ({cpu}), {mem} MiB RAM, {platform.system()} {platform.release()}, Python {platform.python_version()}, kfp {kfp.__version__}'


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--only', default='')
    parser.add_argument('--weir', default=str(ROOT / 'target' / 'release' / 'weir'))
    parser.add_argument('--results', default=str(ROOT / 'bench' / 'RESULTS.md'))
    parser.add_argument('--weir-only', action='store_true',
                        help='skip the local runner (quick iteration; RESULTS.md is not rewritten)')
    args = parser.parse_args()
    names = [n for n in PIPELINES if not args.only or n in args.only.split(',')]
    work = Path(tempfile.mkdtemp(prefix='weir-bench-'))
    packages = {}
    for name in names:
        packages[name] = work / f'{name}.yaml'
        compiler.Compiler().compile(PIPELINES[name][0], str(packages[name]))
    weir = Weir(Path(args.weir), work)
    idle_rss = weir.rss_kb()
    rows = []
    try:
        floors = {
            'python -c "import kfp.dsl.executor_main"': process_floor([sys.executable, '-c', 'import kfp.dsl.executor_main']),
            # What a step's own process costs when only the kfp runtime is imported (as KFP's
            # executor does in a container, and weir's fork server does once).
            '_KFP_RUNTIME=true python -c "import kfp.dsl.executor_main"': process_floor(
                [sys.executable, '-c', 'import kfp.dsl.executor_main'], env={**os.environ, '_KFP_RUNTIME': 'true'}),
            'sh -c true': process_floor(['sh', '-c', 'true'], 100),
        }
        for name in names:
            func, local_ok = PIPELINES[name]
            steps = {'chain-10': 10, 'chain-50': 50, 'chain-200': 200, 'container-chain-200': 200,
                     'parallelfor-100': 101, 'artifact-100mb': 3}[name]
            weir_times, local_times, ratios, cadences = [], [], [], []
            for round_ in range(args.rounds + 1):  # the first round warms up and is not counted
                w, cadence = weir.run_with_cadence(packages[name])
                l = run_local(func, work / f'local-{name}-{round_}') if local_ok and not args.weir_only else None
                if l is not None:
                    shutil.rmtree(work / f'local-{name}-{round_}', ignore_errors=True)
                if round_ == 0:
                    continue
                weir_times.append(w)
                if cadence is not None and 'chain' in name:
                    cadences.append(cadence)
                if l is not None:
                    local_times.append(l)
                    ratios.append(w / l)
            row = {'name': name, 'steps': steps, 'weir': summary(weir_times)}
            if cadences:
                row['cadence'] = summary(cadences)
            if local_times:
                row['local'] = summary(local_times)
                row['ratio'] = summary(ratios)
            rows.append(row)
            print(format_row(row), flush=True)
    finally:
        busy_rss = weir.rss_kb()
        weir.stop()
    if not args.weir_only:
        write_results(Path(args.results), rows, floors, idle_rss, busy_rss, args.rounds)
    shutil.rmtree(work, ignore_errors=True)


def ms(seconds: float) -> str:
    return f'{seconds * 1000:.0f} ms' if seconds < 10 else f'{seconds:.1f} s'


def format_row(row) -> str:
    med, lo, hi = row['weir']
    text = f"{row['name']:<22} weir {ms(med)} [{ms(lo)}–{ms(hi)}] = {med / row['steps'] * 1000:.1f} ms/step"
    if 'cadence' in row:
        cmed, clo, chi = row['cadence']
        text += f" (step cadence {cmed * 1000:.2f} ms [{clo * 1000:.2f}–{chi * 1000:.2f}])"
    if 'local' in row:
        lmed, llo, lhi = row['local']
        rmed, rlo, rhi = row['ratio']
        text += f" | KFP local {ms(lmed)} [{ms(llo)}–{ms(lhi)}] = {lmed / row['steps'] * 1000:.1f} ms/step | weir/local {rmed:.2f} [{rlo:.2f}–{rhi:.2f}]"
    return text


def write_results(path: Path, rows, floors, idle_rss, busy_rss, rounds):
    lines = [
        '# Benchmark results', '',
        f'Machine: {machine()}.', '',
        f'`bash bench/run.sh`: each pipeline {rounds} counted rounds after one warm-up; in each round weir '
        '(release build, embedded SQLite + folder, submitted through the API with kfp.Client with caching off, polled '
        'every 100 ms) and KFP\'s local runner (`kfp.local.SubprocessRunner(use_venv=False)`, kfp preinstalled) '
        'run the same SDK-compiled pipeline one after the other. Times are whole pipelines, wall clock; '
        'median [min–max]; the ratio is weir/local within the same round. Per step is the whole pipeline over its '
        'steps (the run\'s start, end and the client\'s polling included); the cadence of a chain is the mean '
        'interval between consecutive step starts as weir records them: what one more step costs.', '',
        '| pipeline | steps | weir | weir per step | weir step cadence | KFP local | local per step | weir/local |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for row in rows:
        med, lo, hi = row['weir']
        cadence = ''
        if 'cadence' in row:
            cmed, clo, chi = row['cadence']
            cadence = f'{cmed * 1000:.2f} ms [{clo * 1000:.2f}–{chi * 1000:.2f}]'
        line = (f"| {row['name']} | {row['steps']} | {ms(med)} [{ms(lo)}–{ms(hi)}] | "
                f"{med / row['steps'] * 1000:.1f} ms | {cadence} |")
        if 'local' in row:
            lmed, llo, lhi = row['local']
            rmed, rlo, rhi = row['ratio']
            line += f" {ms(lmed)} [{ms(llo)}–{ms(lhi)}] | {lmed / row['steps'] * 1000:.1f} ms | {rmed:.2f} [{rlo:.2f}–{rhi:.2f}] |"
        else:
            line += ' (the local runner cannot run container components) | | |'
        lines.append(line)
    lines += ['', 'Process floors on this machine (mean of repeated runs):', '']
    lines += [f'- `{cmd}`: {value * 1000:.1f} ms' for cmd, value in floors.items()]
    lines += ['', f'Weir server memory: {idle_rss / 1024:.1f} MiB RSS idle after start, {busy_rss / 1024:.1f} MiB after the runs.', '']
    existing = path.read_text() if path.exists() else ''
    marker = '<!-- analysis -->'
    analysis = existing[existing.index(marker):] if marker in existing else marker + '\n'
    path.write_text('\n'.join(lines) + '\n' + analysis)


if __name__ == '__main__':
    main()
