"""Small pipelines written with the KFP SDK, compiled by the suite at test time.

What matters here is that the real SDK compiles them into the PipelineSpec IR that weir must
accept, store and echo back exactly as KFP does; runs created from them also execute (their
steps are fast), but what execution computes is checked with exec_pipelines.py.
"""
from typing import Dict, List

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

PARAMS_PIPELINE_NAME = 'weir-sdk-params'
CHAIN_PIPELINE_NAME = 'weir-sdk-chain'
HELLO_PIPELINE_NAME = 'weir-sdk-hello'


@dsl.component(base_image='python:3.11')
def describe(a: float, b: int, name: str, flag: bool, items: List[str],
             cfg: Dict[str, int]) -> str:
    return f'{name}: a+b={a + b} flag={flag} items={len(items)} cfg={cfg}'


@dsl.pipeline(name=PARAMS_PIPELINE_NAME,
              description='One component taking parameters of every primitive type')
def params_pipeline(a: float = 1.5, b: int = 2, name: str = 'hello', flag: bool = True,
                    items: List[str] = ['x', 'y'],
                    cfg: Dict[str, int] = {'k': 1}) -> str:
    return describe(a=a, b=b, name=name, flag=flag, items=items, cfg=cfg).output


@dsl.component(base_image='python:3.11')
def make_rows(rows: int, data: Output[Dataset]) -> int:
    with open(data.path, 'w') as f:
        for i in range(rows):
            f.write(f'{i}\n')
    data.metadata['rows'] = rows
    return rows


@dsl.component(base_image='python:3.11')
def count_rows(data: Input[Dataset], expected: int) -> str:
    with open(data.path) as f:
        n = len(f.readlines())
    return f'counted {n}, expected {expected}'


@dsl.pipeline(name=CHAIN_PIPELINE_NAME,
              description='Two steps passing a parameter and an artifact')
def chain_pipeline(rows: int = 3) -> str:
    made = make_rows(rows=rows)
    return count_rows(data=made.outputs['data'], expected=made.outputs['Output']).output


@dsl.component(base_image='python:3.11')
def say(message: str) -> str:
    return message


@dsl.pipeline(name=HELLO_PIPELINE_NAME)
def hello_pipeline(message: str = 'hi') -> str:
    return say(message=message).output
