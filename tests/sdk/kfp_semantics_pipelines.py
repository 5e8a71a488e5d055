"""Pipelines for test_kfp_semantics.py: one per behaviour of KFP's backend that its own
end-to-end pipelines (kubeflow/pipelines `test_data/sdk_compiled_pipelines/valid/`) rely on,
written here in the same shapes (f-strings in task inputs, runtime resource fields from pipeline
parameters, loop items of any type handed to string inputs, runtime placeholders, exit handlers
reading the final status, `ignore_upstream_failure`).
"""
from typing import List, NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output, PipelineTaskFinalStatus

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


# Artifacts whose place the step chooses: `set_path` (a custom path), `dsl.get_uri()` (the
# task's root), several returns, a list of artifacts collected from a loop.
@dsl.component(base_image=IMAGE)
def write_at_custom_path(path: str, out_dataset: Output[Dataset]):
    out_dataset.set_path(path)
    with open(out_dataset.path, 'w') as f:
        f.write('Hello, World!')
    assert out_dataset.path == path and out_dataset.custom_path == path


@dsl.component(base_image=IMAGE)
def read_text(data: Input[Dataset]) -> str:
    with open(data.path) as f:
        return f.read()


@dsl.pipeline(name='weir-sem-custom-path')
def custom_path_pipeline(path: str):
    written = write_at_custom_path(path=path)
    read_text(data=written.outputs['out_dataset'])


@dsl.component(base_image=IMAGE)
def gen_data() -> Dataset:
    dataset = Dataset(uri=dsl.get_uri())
    with open(dataset.path, 'w') as f:
        f.write('some data')
    dataset.metadata['length'] = len('some data')
    return dataset


@dsl.component(base_image=IMAGE)
def train_model(dataset: Dataset) -> Model:
    with open(dataset.path) as f:
        assert f.read() == 'some data'
    assert dataset.metadata['length'] == len('some data')
    model = Model(uri=dsl.get_uri('model'))
    with open(model.path, 'w') as f:
        f.write('model trained')
    return model


@dsl.component(base_image=IMAGE)
def split(text: str) -> NamedTuple('Splits', [('first', Dataset), ('second', Dataset)]):
    first = Dataset(uri=dsl.get_uri(suffix='first'))
    second = Dataset(uri=dsl.get_uri(suffix='second'))
    half = len(text) // 2
    with open(first.path, 'w') as f:
        f.write(text[:half])
    with open(second.path, 'w') as f:
        f.write(text[half:])
    Splits = NamedTuple('Splits', [('first', Dataset), ('second', Dataset)])
    return Splits(first=first, second=second)


@dsl.component(base_image=IMAGE)
def make_dataset(text: str) -> Dataset:
    dataset = Dataset(uri=dsl.get_uri(), metadata={'length': len(text)})
    with open(dataset.path, 'w') as f:
        f.write(text)
    return dataset


@dsl.component(base_image=IMAGE)
def join_datasets(datasets: List[Dataset]) -> str:
    texts = []
    for dataset in datasets:
        with open(dataset.path) as f:
            texts.append(f.read())
    return ''.join(texts)


@dsl.component(base_image=IMAGE)
def join_two(a: Input[Dataset], b: Input[Dataset]) -> str:
    with open(a.path) as f, open(b.path) as g:
        return f.read() + '|' + g.read()


@dsl.pipeline(name='weir-sem-pythonic-artifacts')
def pythonic_artifacts_pipeline(texts: List[str] = ['Hello', ',', ' ', 'world!']):
    train_model(dataset=gen_data().output)
    parts = split(text='abcdef')
    join_two(a=parts.outputs['first'], b=parts.outputs['second'])
    with dsl.ParallelFor(texts) as text:
        made = make_dataset(text=text)
    join_datasets(datasets=dsl.Collected(made.output))


@dsl.component(base_image=IMAGE)
def forget_output(out: Output[Dataset]):
    import os
    # Something beside the output (in the task's folder), but not the output itself.
    with open(os.path.join(os.path.dirname(out.path), 'scratch.txt'), 'w') as f:
        f.write('scratch')
    print('declared an output, wrote nothing at', out.path)


@dsl.pipeline(name='weir-sem-missing-output')
def missing_output_pipeline():
    forget_output()


# A step hands an artifact's URI on as text; an importer brings it back (KFP's
# `critical/pipeline_with_importer_workspace`): the URI a step sees must outlive the step.
@dsl.component(base_image=IMAGE)
def write_file(out_ds: Output[Dataset]):
    with open(out_ds.path, 'w') as f:
        f.write('Hello from producer file\n')


@dsl.component(base_image=IMAGE)
def write_dir(out_ds: Output[Dataset]):
    import os
    os.makedirs(out_ds.path, exist_ok=True)
    for i in range(2):
        with open(os.path.join(out_ds.path, f'part-00{i}.txt'), 'w') as f:
            f.write(f'part {i}\n')


@dsl.component(base_image=IMAGE)
def get_uri(d: Input[Dataset]) -> str:
    import os
    assert os.path.exists(d.path), d.path
    return d.uri


@dsl.component(base_image=IMAGE)
def list_dir(data: Input[Dataset]) -> str:
    import os
    return ','.join(sorted(os.listdir(data.path)))


@dsl.pipeline(name='weir-sem-uri-handoff')
def uri_handoff_pipeline() -> str:
    file_uri = get_uri(d=write_file().outputs['out_ds'])
    dir_uri = get_uri(d=write_dir().outputs['out_ds'])
    imported_file = dsl.importer(artifact_uri=file_uri.output, artifact_class=Dataset, reimport=False)
    imported_dir = dsl.importer(artifact_uri=dir_uri.output, artifact_class=Dataset, reimport=True)
    read_text(data=imported_file.output)
    return list_dir(data=imported_dir.output).output


# The workspace (`dsl.WorkspaceConfig`) is the run's, shared by its steps (KFP's
# `critical/pipeline_with_workspace`, whose reader does not fail when the file is missing).
@dsl.component(base_image=IMAGE)
def write_to_workspace(workspace_path: str) -> str:
    import os
    path = os.path.join(workspace_path, 'data', 'test_file.txt')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write('Hello from workspace!')
    return path


@dsl.component(base_image=IMAGE)
def read_from_workspace(file_path: str) -> str:
    with open(file_path) as f:
        return f.read()


@dsl.pipeline(name='weir-sem-workspace',
              pipeline_config=dsl.PipelineConfig(workspace=dsl.WorkspaceConfig(size='1Gi')))
def workspace_pipeline() -> str:
    written = write_to_workspace(workspace_path=dsl.WORKSPACE_PATH_PLACEHOLDER)
    return read_from_workspace(file_path=written.output).output


# An output naming a place of the store outside the step's folder: an input handed on is a
# reference to it; any other place is refused, so no step overwrites another task's artifact.
@dsl.component(base_image=IMAGE)
def hand_on(data: Input[Dataset]) -> Dataset:
    return data


@dsl.component(base_image=IMAGE)
def forge(data: Input[Dataset]) -> Dataset:
    forged = Dataset(uri=data.uri + '-forged')
    with open(forged.path, 'w') as f:
        f.write('not mine to write')
    return forged


@dsl.pipeline(name='weir-sem-hand-on')
def hand_on_pipeline():
    handed = hand_on(data=gen_data().output)
    read_text(data=handed.output)


@dsl.pipeline(name='weir-sem-forge')
def forge_pipeline():
    forge(data=gen_data().output)
