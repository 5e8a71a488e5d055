"""Pipelines for the engine's state-machine tests, compiled with kfp==2.17.3:

    python engine_pipelines.py   # writes the .yaml files beside this file
"""
from typing import List

from kfp import compiler, dsl
from kfp.dsl import Dataset, Input, Output, PipelineTaskFinalStatus


@dsl.component
def produce(n: int) -> int:
    return n * 2


@dsl.component
def consume(x: int, label: str = 'v') -> str:
    return f'{label}={x}'


@dsl.component
def make_items(n: int) -> List[int]:
    return list(range(n))


@dsl.component
def square(x: int) -> int:
    return x * x


@dsl.component
def total(values: List[int]) -> int:
    return sum(values)


@dsl.component
def write(x: int, out: Output[Dataset]):
    with open(out.path, 'w') as f:
        f.write(str(x))


@dsl.component
def read(data: Input[Dataset]) -> str:
    return open(data.path).read()


@dsl.component
def report(status: PipelineTaskFinalStatus) -> str:
    return status.state


@dsl.pipeline(name='engine-chain')
def chain(n: int) -> str:
    p = produce(n=n)
    w = write(x=p.output)
    r = read(data=w.outputs['out'])
    c = consume(x=p.output).after(r)
    return c.output


@dsl.pipeline(name='engine-branches')
def branches(n: int = 1) -> str:
    p = produce(n=n)
    with dsl.If(p.output > 5):
        big = consume(x=p.output, label='big')
    with dsl.Else():
        small = consume(x=p.output, label='small')
    return dsl.OneOf(big.output, small.output)


@dsl.pipeline(name='engine-loop')
def loop(n: int = 3) -> int:
    items = make_items(n=n)
    with dsl.ParallelFor(items.output, parallelism=2) as item:
        sq = square(x=item)
    return total(values=dsl.Collected(sq.output)).output


@dsl.pipeline(name='engine-exit')
def exit_handler(n: int = 1):
    final = report()
    with dsl.ExitHandler(final):
        produce(n=n).set_retry(num_retries=1, backoff_duration='2s')


if __name__ == '__main__':
    for name, func in [('chain', chain), ('branches', branches), ('loop', loop), ('exit', exit_handler)]:
        compiler.Compiler().compile(func, __file__.replace('engine_pipelines.py', f'{name}.yaml'))
