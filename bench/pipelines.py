"""The benchmark pipelines, as a user writes them: compiled by the kfp SDK, submitted through
the API to weir, and run from the same compiled package under KFP's local runner.

Each pipeline exists in two compilations:

- `PIPELINES` (the headline): Python components with `install_kfp_package=False`, so a step's
  command is the SDK's launch script alone (`sh -ec <script> <source> <executor args>`, which
  runs `python3 -m kfp.dsl.executor_main`) and nothing is installed at run time. Weir and the
  local runner are handed the same command lines.
- `PIP_PIPELINES` (an extra, labelled comparison): the SDK's default compilation, whose command
  puts a `pip install kfp==…` preamble in front of that script. KFP's local runner runs the
  preamble on every step (~0.5 s here); weir skips it when its interpreter already has kfp, so
  weir runs exactly the headline command lines on these packages (`check_preamble_only`).
"""
from typing import Callable, Dict, List, Tuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Output


def python_components(install_kfp_package: bool) -> Dict[str, Callable]:
    """The Python components, compiled with or without the SDK's pip preamble."""
    component = dsl.component(base_image='python:3.11', install_kfp_package=install_kfp_package)

    def add_one(x: int) -> int:
        return x + 1

    def items(n: int) -> List[int]:
        return list(range(n))

    def square(x: int) -> int:
        return x * x

    def make_blob(megabytes: int, blob: Output[Dataset]):
        chunk = b'\0' * (1 << 20)
        with open(blob.path, 'wb') as f:
            for _ in range(megabytes):
                f.write(chunk)

    def pass_blob(blob: Input[Dataset], out: Output[Dataset]):
        import shutil
        shutil.copyfile(blob.path, out.path)

    def blob_size(blob: Input[Dataset]) -> int:
        import os
        return os.path.getsize(blob.path)

    return {f.__name__: component(f) for f in (add_one, items, square, make_blob, pass_blob, blob_size)}


def fresh(task):
    """Caching off for a task. `kfp.Client`'s `enable_caching=False` only reaches the root DAG's
    tasks, so the steps inside a ParallelFor would otherwise be served from weir's cache from
    the second run on (the local runner's cache is off by default)."""
    return task.set_caching_options(False)


@dsl.container_component
def true_step():
    return dsl.ContainerSpec(image='alpine:3.19', command=['sh', '-c', 'true'])


def python_chain(c, length: int):
    @dsl.pipeline(name=f'bench-chain-{length}')
    def chain(start: int = 0) -> int:
        step = fresh(c['add_one'](x=start))
        for _ in range(length - 1):
            step = fresh(c['add_one'](x=step.output))
        return step.output
    return chain


def container_chain(length: int):
    @dsl.pipeline(name=f'bench-container-chain-{length}')
    def chain():
        step = fresh(true_step())
        for _ in range(length - 1):
            step = fresh(true_step()).after(step)
    return chain


def parallel_for(c):
    @dsl.pipeline(name='bench-parallelfor-100')
    def pipeline(n: int = 100):
        listed = fresh(c['items'](n=n))
        with dsl.ParallelFor(listed.output) as item:
            fresh(c['square'](x=item))
    return pipeline


def artifact(c):
    @dsl.pipeline(name='bench-artifact-100mb')
    def pipeline(megabytes: int = 100) -> int:
        made = fresh(c['make_blob'](megabytes=megabytes))
        passed = fresh(c['pass_blob'](blob=made.outputs['blob']))
        return fresh(c['blob_size'](blob=passed.outputs['out'])).output
    return pipeline


def python_pipelines(install_kfp_package: bool) -> Dict[str, object]:
    c = python_components(install_kfp_package)
    return {
        'chain-10': python_chain(c, 10),
        'chain-50': python_chain(c, 50),
        'chain-200': python_chain(c, 200),
        'parallelfor-100': parallel_for(c),
        'artifact-100mb': artifact(c),
    }


_headline = python_pipelines(install_kfp_package=False)

# name -> (pipeline, steps, KFP's local runner can run it); the order is the run order.
PIPELINES: Dict[str, Tuple[object, int, bool]] = {
    'chain-10': (_headline['chain-10'], 10, True),
    'chain-50': (_headline['chain-50'], 50, True),
    'chain-200': (_headline['chain-200'], 200, True),
    'container-chain-200': (container_chain(200), 200, False),
    'parallelfor-100': (_headline['parallelfor-100'], 101, True),
    'artifact-100mb': (_headline['artifact-100mb'], 3, True),
}

# The same Python pipelines with the SDK's default `pip install kfp` preamble in every step.
PIP_PIPELINES: Dict[str, object] = python_pipelines(install_kfp_package=True)


def check_preamble_only(headline: dict, with_pip: dict) -> int:
    """Checks that two compiled packages (as loaded YAML) differ only by the pip preamble: each
    executor's command with the preamble (`sh -c <pip install …> <launch command…>`) is the
    headline's command behind three words, which weir drops when its interpreter has kfp.
    Returns the number of executors compared."""
    a = headline['deploymentSpec']['executors']
    b = with_pip['deploymentSpec']['executors']
    if sorted(a) != sorted(b):
        raise SystemExit('the two compilations have different executors')
    for name, executor in a.items():
        plain, pip = executor['container'], b[name]['container']
        command = pip['command']
        if not (command[:2] == ['sh', '-c'] and 'pip install' in command[2] and command[3:] == plain['command']
                and pip.get('args') == plain.get('args') and pip['image'] == plain['image']):
            raise SystemExit(f'executor {name}: the compilations differ by more than the pip preamble')
        if 'pip install' in ' '.join(plain['command']):
            raise SystemExit(f'executor {name}: the headline compilation still installs packages')
    return len(a)
