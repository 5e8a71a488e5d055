"""The benchmark pipelines, as a user writes them: compiled by the kfp SDK, submitted through
the API to weir, and called directly under KFP's local runner."""
from typing import List

from kfp import dsl
from kfp.dsl import Dataset, Input, Output


@dsl.component(base_image='python:3.11')
def add_one(x: int) -> int:
    return x + 1


@dsl.component(base_image='python:3.11')
def items(n: int) -> List[int]:
    return list(range(n))


@dsl.component(base_image='python:3.11')
def square(x: int) -> int:
    return x * x


@dsl.component(base_image='python:3.11')
def make_blob(megabytes: int, blob: Output[Dataset]):
    chunk = b'\0' * (1 << 20)
    with open(blob.path, 'wb') as f:
        for _ in range(megabytes):
            f.write(chunk)


@dsl.component(base_image='python:3.11')
def pass_blob(blob: Input[Dataset], out: Output[Dataset]):
    import shutil
    shutil.copyfile(blob.path, out.path)


@dsl.component(base_image='python:3.11')
def blob_size(blob: Input[Dataset]) -> int:
    import os
    return os.path.getsize(blob.path)


@dsl.container_component
def true_step():
    return dsl.ContainerSpec(image='alpine:3.19', command=['sh', '-c', 'true'])


def python_chain(length: int):
    @dsl.pipeline(name=f'bench-chain-{length}')
    def chain(start: int = 0) -> int:
        step = add_one(x=start)
        for _ in range(length - 1):
            step = add_one(x=step.output)
        return step.output
    return chain


def container_chain(length: int):
    @dsl.pipeline(name=f'bench-container-chain-{length}')
    def chain():
        step = true_step()
        for _ in range(length - 1):
            step = true_step().after(step)
    return chain


@dsl.pipeline(name='bench-parallelfor-100')
def parallel_for(n: int = 100):
    listed = items(n=n)
    with dsl.ParallelFor(listed.output) as item:
        square(x=item)


@dsl.pipeline(name='bench-artifact-100mb')
def artifact(megabytes: int = 100) -> int:
    made = make_blob(megabytes=megabytes)
    passed = pass_blob(blob=made.outputs['blob'])
    return blob_size(blob=passed.outputs['out']).output


# name -> (pipeline function, KFP's local runner can run it)
PIPELINES = {
    'chain-10': (python_chain(10), True),
    'chain-50': (python_chain(50), True),
    'chain-200': (python_chain(200), True),
    'container-chain-200': (container_chain(200), False),
    'parallelfor-100': (parallel_for, True),
    'artifact-100mb': (artifact, True),
}
