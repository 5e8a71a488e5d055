"""Pipelines for test_kfp_semantics.py: one per behaviour of KFP's backend that its own
end-to-end pipelines (kubeflow/pipelines `test_data/sdk_compiled_pipelines/valid/`) rely on,
written here in the same shapes (f-strings in task inputs, runtime resource fields from pipeline
parameters, loop items of any type handed to string inputs, runtime placeholders, exit handlers
reading the final status, `ignore_upstream_failure`).
"""
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import PipelineTaskFinalStatus

IMAGE = 'python:3.11'


@dsl.component(base_image=IMAGE)
def random_number() -> int:
    return 12


@dsl.component(base_image=IMAGE)
def echo(msg: str) -> str:
    print(msg)
    return msg


@dsl.component(base_image=IMAGE)
def add(a: int, b: int) -> int:
    return a + b


# f-strings in task inputs: the SDK compiles them into a constant holding
# `{{$.inputs.parameters['pipelinechannel--…']}}` plus an input the component does not declare.
@dsl.pipeline(name='weir-sem-fstring')
def fstring_pipeline(word: str = 'tails'):
    n = random_number()
    with dsl.If(n.output > 5):
        echo(msg=f'{word} and {n.output} > 5!')


# Runtime resource fields given as pipeline parameters: the SDK adds `cpu_limit`,
# `memory_limit`, `accelerator_count`, `accelerator_type` inputs to the task.
@dsl.pipeline(name='weir-sem-resources')
def resources_pipeline(cpu: str = '500m', memory: str = '1G', accelerator_type: str = 'NVIDIA_TESLA_P4',
                       accelerator_limit: str = '1') -> int:
    task = add(a=1, b=2)
    task.set_cpu_limit(cpu).set_memory_limit(memory)
    task.set_accelerator_type(accelerator_type).set_accelerator_limit(accelerator_limit)
    return task.output


@dsl.component(base_image=IMAGE)
def mixed_items() -> list:
    return [{'B_b': ['A', 'B'], 'A_a': 'heads'}, [1, 'x'], 2.5, 7, True]


# Loop items of every JSON type handed to a STRING input (the SDK does not type the items of a
# `list` output): KFP's driver turns them into text.
@dsl.pipeline(name='weir-sem-string-inputs')
def string_inputs_pipeline():
    with dsl.ParallelFor(mixed_items().output) as item:
        echo(msg=item)


@dsl.component(base_image=IMAGE)
def show_placeholders(job_name: str, job_resource_name: str, job_id: str, task_name: str, task_id: str,
                      create_time: str, schedule_time: str, root: str) -> str:
    import json
    return json.dumps({'job_name': job_name, 'job_resource_name': job_resource_name, 'job_id': job_id,
                       'task_name': task_name, 'task_id': task_id, 'create_time': create_time,
                       'schedule_time': schedule_time, 'root': root})


@dsl.pipeline(name='weir-sem-placeholders')
def placeholders_pipeline():
    show_placeholders(
        job_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        job_resource_name=dsl.PIPELINE_JOB_RESOURCE_NAME_PLACEHOLDER,
        job_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        task_name=dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
        task_id=dsl.PIPELINE_TASK_ID_PLACEHOLDER,
        create_time=dsl.PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER,
        schedule_time=dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER,
        root=dsl.PIPELINE_ROOT_PLACEHOLDER,
    ).set_caching_options(False)


@dsl.component(base_image=IMAGE)
def fail(message: str) -> str:
    raise RuntimeError(message)


@dsl.component(base_image=IMAGE)
def report(status: PipelineTaskFinalStatus) -> str:
    import json
    return json.dumps({'state': status.state, 'job': status.pipeline_job_resource_name,
                       'task': status.pipeline_task_name, 'code': status.error_code,
                       'message': status.error_message})


@dsl.pipeline(name='weir-sem-final-status')
def final_status_pipeline(message: str = 'planned failure'):
    with dsl.ExitHandler(report(), name='body'):
        fail(message=message)


@dsl.component(base_image=IMAGE)
def greet(message: str = 'the default') -> str:
    print(message)
    return message


@dsl.pipeline(name='weir-sem-ignore-upstream')
def ignore_upstream_pipeline(message: str = 'from the pipeline'):
    failing = fail(message=message)
    greet(message=failing.output).ignore_upstream_failure()


@dsl.component(base_image=IMAGE)
def pair() -> NamedTuple('Out', [('first', str), ('second', int)]):
    from collections import namedtuple
    return namedtuple('Out', ['first', 'second'])('one', 2)


@dsl.pipeline(name='weir-sem-ignore-upstream-ok')
def ignore_upstream_ok_pipeline():
    made = pair()
    greet(message=made.outputs['first']).ignore_upstream_failure()
