"""Benchmarks weir against KFP's local runner (kfp.local.SubprocessRunner) on the same
SDK-compiled pipeline packages, interleaved in one invocation.

    bash bench/run.sh [--rounds 5] [--only chain-10,chain-50] [--no-pip] [--weir-only]

The headline compares the same command lines: the Python components are compiled with
`install_kfp_package=False` (no pip preamble), weir is started with `--no-python-fork-server`
so it starts each step from the command line the package gives, and the local runner starts
the same command line (with `python3` replaced by the same interpreter). Two labelled extras:
weir as it runs by default (Python steps forked from a warm interpreter that imported kfp
once), and the SDK's default compilation, whose `pip install kfp` preamble the local runner runs
on every step while weir skips it.

What each figure includes:

- weir: from the create-run request (its body built from the package before the clock starts,
  as `kfp.Client.create_run_from_pipeline_package` builds it, caching off) until the run's end
  as weir records it (watched in its store, not polled through the API).
- KFP local: `run_local_pipeline` (what calling a loaded pipeline under `kfp.local.init`
  runs once it has made the task object) on the PipelineSpec of the same package, loaded
  before the clock starts; its output goes to a file, as weir's step logs do.

Each round runs every peer once, one after the other; medians, min/max and same-round ratios
are printed and written to bench/RESULTS.md with the machine's description.
"""
import argparse
import builtins
import contextlib
import os
import platform
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import kfp
import kfp_server_api
import yaml
from kfp import compiler, components
from kfp.local import logging_utils, pipeline_orchestrator

sys.path.insert(0, str(Path(__file__).parent))
from pipelines import PIP_PIPELINES, PIPELINES, check_preamble_only  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Weir:
    def __init__(self, binary: Path, workdir: Path, extra_args=()):
        port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        self.url = f'http://127.0.0.1:{port}'
        self.log = open(workdir / 'weir.log', 'w')
        self.db = workdir / 'data' / 'weir.db'
        self.process = subprocess.Popen(
            [str(binary), 'server', '--listen', f'127.0.0.1:{port}', '--data-dir', str(workdir / 'data'),
             '--executor-python', sys.executable, '--max-concurrent-steps', str(os.cpu_count() or 2), *extra_args],
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

    def prepare(self, package: Path) -> kfp_server_api.V2beta1Run:
        """The create-run request for a package, as `create_run_from_pipeline_package` makes it
        (the same client code), caching off: every round runs every step, as the local runner
        (whose cache is off by default) does. Parsing a package is client work (the
        chain-200 YAML takes the SDK ~0.8 s) and stays out of the timing."""
        config = self.client._create_job_config(
            params={}, pipeline_package_path=str(package), pipeline_id=None, version_id=None,
            enable_caching=False, cache_key=None, pipeline_root=None)
        return kfp_server_api.V2beta1Run(
            experiment_id=self.experiment, display_name=package.stem, pipeline_spec=config.pipeline_spec,
            runtime_config=config.runtime_config)

    def run(self, prepared) -> float:
        elapsed, _ = self.run_with_cadence(prepared)
        return elapsed

    def run_with_cadence(self, prepared):
        """Runs a prepared pipeline; returns its time (from the create request to the run's end as
        weir records it) and the mean interval between consecutive step starts (the chain's
        cadence: what one more step costs, without the run's fixed costs).

        The end is watched in weir's SQLite store (read-only, every 10 ms) rather than through the
        API: a `kfp.Client.get_run` of a 200-step run costs this process ~0.3 s of Python (the
        response's models) and weir the response, both on the same 2 cores as the steps, and
        polling would add up to its interval. The outcome is then checked through the API."""
        submitted = time.time()
        run = self.client._run_api.run_service_create_run(run=prepared)
        with contextlib.closing(sqlite3.connect(f'file:{self.db}?mode=ro', uri=True)) as db:
            while True:
                row = db.execute('SELECT state, finished_at FROM runs WHERE id = ?', (run.run_id,)).fetchone()
                if row and row[0] in ('SUCCEEDED', 'FAILED', 'CANCELED'):
                    break
                time.sleep(0.01)
            # Weir's clock is this machine's wall clock, in milliseconds.
            elapsed = row[1] / 1000 - submitted
            cached = db.execute('SELECT COUNT(*) FROM tasks WHERE run_id = ? AND cached', (run.run_id,)).fetchone()[0]
            starts = [r[0] / 1000 for r in db.execute(
                "SELECT started_at FROM tasks WHERE run_id = ? AND kind = 'container' AND started_at > 0 "
                "ORDER BY started_at", (run.run_id,))]
        state = self.client.get_run(run.run_id).state
        if state != 'SUCCEEDED':
            raise SystemExit(f'weir run {run.run_id} ended {state}')
        if cached:
            raise SystemExit(f'weir run {run.run_id} took {cached} steps from its cache; the bench compares runs of every step')
        return elapsed, cadence(starts)

    def rss_kb(self) -> int:
        for line in open(f'/proc/{self.process.pid}/status'):
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
        return 0

    def stop(self):
        self.process.terminate()
        self.process.wait(30)


def cadence(starts):
    """Mean interval between consecutive step starts, or None for fewer than three steps."""
    return (starts[-1] - starts[0]) / (len(starts) - 1) if len(starts) > 2 else None


# KFP's local runner indents a step's streamed output by replacing `builtins.print` for the
# step's duration and putting back what it found (`indented_print`, kfp/local/logging_utils.py).
# Its orchestrator runs a ParallelFor's iterations on a thread pool
# (kfp/local/orchestrator/enhanced_dag_orchestrator.py), so steps that overlap put back each
# other's replacements: a replacement can end up calling itself, and each print then recurses,
# writing spaces. In the ParallelFor with the pip preamble (steps of ~0.4 s, overlapping) a
# round's log grew past 2 GB of spaces and the round did not end. The bench gives the runner
# the same indentation kept per thread: print is replaced once, and a step's thread indents
# while it is inside the runner's context.
_INDENT = threading.local()
_PRINT = builtins.print


def _indenting_print(*args, **kwargs):
    spaces = getattr(_INDENT, 'spaces', 0)
    if spaces:
        _PRINT(' ' * spaces, end='')
    return _PRINT(*args, **kwargs)


@contextlib.contextmanager
def _indented_print(num_spaces: int = 4):
    outer = getattr(_INDENT, 'spaces', 0)
    _INDENT.spaces = outer + num_spaces
    try:
        yield
    finally:
        _INDENT.spaces = outer


builtins.print = _indenting_print
logging_utils.indented_print = _indented_print


# The local runner's log line for each task it starts, e.g. "12:00:01.234 - INFO - Executing task 'add-one'".
EXECUTING = re.compile(r'^(\d\d):(\d\d):(\d\d)\.(\d{3}) - INFO - Executing task')


class Local:
    """KFP's local runner, as `kfp.local.init(runner=SubprocessRunner(use_venv=False))` sets it
    up, with kfp preinstalled in this interpreter."""

    def __init__(self, work: Path):
        self.work = work

    @staticmethod
    def prepare(package: Path):
        """The package loaded as a component: the PipelineSpec the local runner executes."""
        return components.load_component_from_file(str(package)).pipeline_spec

    def run_with_cadence(self, pipeline_spec, label: str):
        root = self.work / f'local-{label}'
        log = self.work / f'local-{label}.log'
        kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root),
                       enable_caching=False)
        with open(log, 'w') as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            started = time.perf_counter()
            pipeline_orchestrator.run_local_pipeline(pipeline_spec=pipeline_spec, arguments={})
            elapsed = time.perf_counter() - started
        starts = []
        # Steps running side by side write into the one log, so a multi-byte character of
        # one (pip's progress bar) can be cut by another's line: read what cannot be decoded
        # as a replacement character.
        for line in open(log, errors='replace'):
            m = EXECUTING.match(line)
            if m:
                h, mi, s, ms = map(int, m.groups())
                t = h * 3600 + mi * 60 + s + ms / 1000
                if starts and t < starts[-1]:
                    t += 86400  # past midnight
                starts.append(t)
        shutil.rmtree(root, ignore_errors=True)
        log.unlink()
        return elapsed, cadence(starts)


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


# The peers of a round, in the order they run, and what each runs on.
#   weir       weir --no-python-fork-server, headline package  } the headline: the same
#   local      KFP local runner, headline package              } command lines
#   weir_fork  weir as by default (fork server), headline package
#   weir_pip   weir as by default, pip-preamble package (weir drops the preamble)
#   local_pip  KFP local runner, pip-preamble package (runs the preamble on every step)
PEERS = ('weir', 'local', 'weir_fork', 'weir_pip', 'local_pip')


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--only', default='')
    parser.add_argument('--weir', default=str(ROOT / 'target' / 'release' / 'weir'))
    parser.add_argument('--results', default=str(ROOT / 'bench' / 'RESULTS.md'))
    parser.add_argument('--no-pip', action='store_true',
                        help='skip the extra comparison with the SDK\'s pip preamble (the slowest part)')
    parser.add_argument('--weir-only', action='store_true',
                        help='skip the local runner (quick iteration; RESULTS.md is not rewritten)')
    args = parser.parse_args()
    names = [n for n in PIPELINES if not args.only or n in args.only.split(',')]
    if not names:
        raise SystemExit(f'--only names none of {", ".join(PIPELINES)}')
    work = Path(tempfile.mkdtemp(prefix='weir-bench-'))
    packages, pip_packages = {}, {}
    for name in names:
        packages[name] = work / f'{name}.yaml'
        compiler.Compiler().compile(PIPELINES[name][0], str(packages[name]))
        if name in PIP_PIPELINES:
            pip_packages[name] = work / f'{name}-pip.yaml'
            compiler.Compiler().compile(PIP_PIPELINES[name], str(pip_packages[name]))
            # Weir runs the same command lines for both: the preamble is all that differs.
            check_preamble_only(yaml.safe_load(packages[name].read_text()),
                                yaml.safe_load(pip_packages[name].read_text()))
    weir = Weir(Path(args.weir), work / 'weir', ['--no-python-fork-server'])
    weir_fork = Weir(Path(args.weir), work / 'weir-fork')
    local = Local(work)
    idle_rss = weir_fork.rss_kb()
    rows = []
    try:
        floors = {
            'python -c "import kfp.dsl.executor_main"': process_floor([sys.executable, '-c', 'import kfp.dsl.executor_main']),
            # What a step's own process costs when only the kfp runtime is imported, as the
            # headline's command line does (`_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main`)
            # and weir's fork server does once.
            '_KFP_RUNTIME=true python -c "import kfp.dsl.executor_main"': process_floor(
                [sys.executable, '-c', 'import kfp.dsl.executor_main'], env={**os.environ, '_KFP_RUNTIME': 'true'}),
            'sh -c true': process_floor(['sh', '-c', 'true'], 100),
        }
        for name in names:
            _, steps, local_ok = PIPELINES[name]
            has_python = name in PIP_PIPELINES
            prepared = {'weir': weir.prepare(packages[name]), 'weir_fork': weir_fork.prepare(packages[name])}
            spec = {}
            if has_python:
                prepared['weir_pip'] = weir_fork.prepare(pip_packages[name])
            if local_ok and not args.weir_only:
                spec['local'] = Local.prepare(packages[name])
                if not args.no_pip:
                    spec['local_pip'] = Local.prepare(pip_packages[name])
            times = {peer: [] for peer in PEERS}
            cadences = {peer: [] for peer in PEERS}
            for round_ in range(args.rounds + 1):  # the first round warms up and is not counted
                for peer in PEERS:
                    if peer in ('weir', 'weir_fork', 'weir_pip'):
                        if peer not in prepared or (peer == 'weir_pip' and 'local_pip' not in spec):
                            continue
                        server = weir if peer == 'weir' else weir_fork
                        elapsed, c = server.run_with_cadence(prepared[peer])
                    elif peer in spec:
                        elapsed, c = local.run_with_cadence(spec[peer], f'{name}-{peer}-{round_}')
                    else:
                        continue
                    if round_ == 0:
                        continue
                    times[peer].append(elapsed)
                    if c is not None and 'chain' in name:
                        cadences[peer].append(c)
            row = {'name': name, 'steps': steps}
            for peer in PEERS:
                if times[peer]:
                    row[peer] = summary(times[peer])
                if cadences[peer]:
                    row[f'{peer}_cadence'] = summary(cadences[peer])
            # Ratios within a round: weir's time over the local runner's on the same round.
            for weir_peer, local_peer in (('weir', 'local'), ('weir_fork', 'local'), ('weir_pip', 'local_pip')):
                if times[weir_peer] and times[local_peer]:
                    row[f'{weir_peer}/{local_peer}'] = summary(
                        [w / l for w, l in zip(times[weir_peer], times[local_peer])])
            rows.append(row)
            print(format_row(row), flush=True)
    finally:
        busy_rss = weir_fork.rss_kb()
        weir.stop()
        weir_fork.stop()
    if not args.weir_only:
        write_results(Path(args.results), rows, floors, idle_rss, busy_rss, args.rounds, args.no_pip)
    shutil.rmtree(work, ignore_errors=True)


def ms(seconds: float) -> str:
    return f'{seconds * 1000:.0f} ms' if seconds < 10 else f'{seconds:.1f} s'


def span(row, key) -> str:
    med, lo, hi = row[key]
    return f'{ms(med)} [{ms(lo)}–{ms(hi)}]'


def per_step(row, key) -> str:
    return f"{row[key][0] / row['steps'] * 1000:.1f} ms"


def cadence_text(row, key) -> str:
    if f'{key}_cadence' not in row:
        return ''
    med, lo, hi = row[f'{key}_cadence']
    return f'{med * 1000:.1f} ms [{lo * 1000:.1f}–{hi * 1000:.1f}]'


def ratio(row, key) -> str:
    if key not in row:
        return ''
    med, lo, hi = row[key]
    return f'{med:.2f} [{lo:.2f}–{hi:.2f}]'


def format_row(row) -> str:
    text = f"{row['name']:<22}"
    labels = {'weir': 'weir (same commands)', 'local': 'KFP local', 'weir_fork': 'weir (fork server)',
              'weir_pip': 'weir on pip package', 'local_pip': 'KFP local + pip preamble'}
    for peer in PEERS:
        if peer in row:
            text += f' | {labels[peer]} {span(row, peer)} = {per_step(row, peer)}/step'
            if f'{peer}_cadence' in row:
                text += f', cadence {cadence_text(row, peer)}'
    for key in ('weir/local', 'weir_fork/local', 'weir_pip/local_pip'):
        if key in row:
            text += f' | {key} {ratio(row, key)}'
    return text


def source_revision() -> str:
    """The checkout's commit, marked when its tracked files differ: the tables say what they measured."""
    def git(*args):
        return subprocess.run(['git', *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    commit = git('rev-parse', '--short', 'HEAD') or 'unknown'
    return commit + (' with uncommitted changes' if git('status', '--porcelain', '--untracked-files=no', '--', '.', ':!bench/RESULTS.md') else '')


def write_results(path: Path, rows, floors, idle_rss, busy_rss, rounds, no_pip):
    lines = [
        '# Benchmark results', '',
        f'Machine: {machine()}.', '',
        f'Measured on {time.strftime("%Y-%m-%d")}, weir built from {source_revision()}.', '',
        f'`bash bench/run.sh`: each pipeline {rounds} counted rounds after one warm-up; in each round every '
        'column below runs the pipeline once, one after the other. Weir is a release build on embedded SQLite + '
        'folder, given each run through the API (kfp.Client\'s create-run request, caching off); KFP\'s local runner is `kfp.local.SubprocessRunner(use_venv=False)` with kfp preinstalled. '
        'Times are whole pipelines, wall clock; median [min–max]; ratios are weir/local within the same round. '
        'Per step is the whole pipeline over its steps; the cadence of a chain is the mean interval between '
        'consecutive step starts (weir\'s store; the local runner\'s log): what one more step costs.', '',
        'What each time includes: weir, from the create-run request (its body made from the package before the '
        'clock starts) until the run\'s end as weir records it (watched in its store every 10 ms, not polled '
        'through the API; the outcome is checked through the API afterwards); the local '
        'runner, `run_local_pipeline` on the PipelineSpec of the same package, loaded before the clock starts '
        '(its step output written to a file). Neither includes compiling or parsing the package.', '',
        '## Headline: the same command lines',
        '',
        'Python components compiled with `install_kfp_package=False` (no pip preamble). Weir runs with '
        '`--no-python-fork-server`, so both start every Python step from the command line in the package '
        '(`sh -ec <launch script>` → `python3 -m kfp.dsl.executor_main`, one interpreter and the kfp runtime\'s '
        'imports per step; weir reaches the interpreter through a one-line `sh` shim that puts it on `PATH`).', '',
        '| pipeline | steps | weir | weir per step | weir step cadence | KFP local | local per step | local step cadence | weir/local |',
        '|---|---|---|---|---|---|---|---|---|',
    ]
    for row in rows:
        line = f"| {row['name']} | {row['steps']} | {span(row, 'weir')} | {per_step(row, 'weir')} | {cadence_text(row, 'weir')} |"
        if 'local' in row:
            line += f" {span(row, 'local')} | {per_step(row, 'local')} | {cadence_text(row, 'local')} | {ratio(row, 'weir/local')} |"
        else:
            line += ' (the local runner cannot run container components) | | | |'
        lines.append(line)
    lines += [
        '', '## Extra columns (not the headline)', '',
        '- **weir, fork server**: weir as it runs by default, on the same package: Python steps are forked from '
        'a warm interpreter that imported the kfp runtime once, so a step does not pay an interpreter start. Its '
        'ratio is against the headline\'s local runner in the same round.',
        '- **with the SDK\'s pip preamble**: the same pipelines compiled with the SDK\'s defaults, so every '
        'Python step\'s command starts with `pip install kfp==…`. The local runner runs it on every step; weir '
        '(by default, fork server) drops it when its interpreter has kfp, so its steps run exactly the '
        'headline\'s command lines (checked when the bench compiles the packages). This was the headline before; '
        'it measures pip more than orchestration.'
        + (' Not measured in this run (`--no-pip`).' if no_pip else ''), '',
        '| pipeline | weir, fork server | per step | step cadence | weir fork server/local | weir on the pip package | KFP local with pip preamble | local per step | weir/local (pip) |',
        '|---|---|---|---|---|---|---|---|---|',
    ]
    for row in rows:
        if 'weir_fork' not in row:
            continue
        line = (f"| {row['name']} | {span(row, 'weir_fork')} | {per_step(row, 'weir_fork')} | "
                f"{cadence_text(row, 'weir_fork')} | {ratio(row, 'weir_fork/local')} |")
        if 'local_pip' in row:
            line += (f" {span(row, 'weir_pip')} | {span(row, 'local_pip')} | {per_step(row, 'local_pip')} | "
                     f"{ratio(row, 'weir_pip/local_pip')} |")
        else:
            line += ' | | | |'
        lines.append(line)
    lines += ['', 'Process floors on this machine (mean of repeated runs):', '']
    lines += [f'- `{cmd}`: {value * 1000:.1f} ms' for cmd, value in floors.items()]
    lines += ['', f'Weir server memory (default settings, fork server): {idle_rss / 1024:.1f} MiB RSS idle after start, '
              f'{busy_rss / 1024:.1f} MiB after the runs.', '']
    existing = path.read_text() if path.exists() else ''
    marker = '<!-- analysis -->'
    analysis = existing[existing.index(marker):] if marker in existing else marker + '\n'
    path.write_text('\n'.join(lines) + '\n' + analysis)


if __name__ == '__main__':
    main()
