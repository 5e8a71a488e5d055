"""Runs really execute: SDK-compiled pipelines (exec_pipelines.py) run on weir's local driver,
and the values they produce are read back through the KFP API and weir's own endpoints
(`/apis/weir/v1/runs/{id}/tasks`, `/artifacts/{id}/content`, `/runs/{id}/logs`).

Semantics checked are those of KFP's v2 backend, in kubeflow/pipelines: the driver
(backend/src/v2/driver/) for inputs, conditions, loops, task final status and caching; the
launcher (backend/src/v2/component/launcher_v2.go) for placeholders, artifact paths and outputs;
the compiler to Argo (backend/src/v2/compiler/argocompiler/) for task order, exit handlers and
retries; and the SDK's executor (sdk/python/kfp/dsl/executor.py) inside Python steps.
Independent runs are submitted together at the start of the module (`batch`) so that they
execute concurrently; the tests that need runs in sequence (caching, retry of a failed run,
terminate) start their own.
"""
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import kfp
import kfp_server_api
import pytest

import exec_pipelines as ep
from conftest import WeirServer, compile_pipeline
from helpers import (RUN_TIMEOUT_S, WeirTasks, artifact_content, assert_api_error,
                     assert_contains, input_artifacts, input_parameters, output_artifact,
                     output_parameter, pid_alive, read_pid_file, task_logs, unique_name,
                     wait_for_completion, wait_for_run_state, wait_for_task, weir_tasks)

PARAMS_EXPLICIT = {'a': 2.5, 'b': 3, 'name': 'sdk', 'flag': False, 'items': ['p', 'q', 'r'],
                   'cfg': {'z': 9, 'w': -1}}
CONDITION_SEEDS = {3: ('heads', False), 13: ('tails', True), 14: ('edge', True)}
IMPORTED_BYTES = b'id,value\n1,one\n2,two\n'
# A task that ran (or was skipped) is in one of these states when its run has finished.
DONE_OK = 'SUCCEEDED'


# --------------------------------------------------------------------------------------------
# Submitting and collecting runs


@dataclass
class Finished:
    run: kfp_server_api.V2beta1Run
    tasks: WeirTasks

    @property
    def run_id(self) -> str:
        return self.run.run_id


def finish(client: kfp.Client, server: WeirServer, run_id: str,
           timeout: float = RUN_TIMEOUT_S) -> Finished:
    try:
        run = wait_for_completion(client, run_id, timeout)
    except TimeoutError:
        raise AssertionError(
            f'run {run_id} did not finish within {timeout:.0f}s: state '
            f'{client.get_run(run_id).state}; tasks: {weir_tasks(server.url, run_id)!r}'
        ) from None
    return Finished(run, weir_tasks(server.url, run_id))


class RunBatch:
    """Runs submitted up front; a submission error is raised by the test that owns the run."""

    def __init__(self, client: kfp.Client, server: WeirServer, experiment_name: str):
        self.client = client
        self.server = server
        self.experiment_name = experiment_name
        self.run_ids: Dict[str, str] = {}
        self.errors: Dict[str, BaseException] = {}
        self.finished: Dict[str, Finished] = {}
        self.context: Dict[str, Any] = {}

    def submit(self, key: str, func, arguments: Optional[Dict[str, Any]] = None) -> None:
        try:
            result = self.client.create_run_from_pipeline_func(
                func, arguments=arguments or {}, run_name=unique_name(key),
                experiment_name=self.experiment_name)
            self.run_ids[key] = result.run_id
        except Exception as error:  # reported by the test that uses this run
            self.errors[key] = error

    def submit_package(self, key: str, package: Path, arguments: Dict[str, Any]) -> None:
        try:
            result = self.client.create_run_from_pipeline_package(
                str(package), arguments=arguments, run_name=unique_name(key),
                experiment_name=self.experiment_name)
            self.run_ids[key] = result.run_id
        except Exception as error:
            self.errors[key] = error

    def result(self, key: str) -> Finished:
        if key in self.errors:
            raise self.errors[key]
        if key not in self.finished:
            self.finished[key] = finish(self.client, self.server, self.run_ids[key])
        return self.finished[key]


@pytest.fixture(scope='module')
def batch(client, weir_server, tmp_path_factory) -> RunBatch:
    work = tmp_path_factory.mktemp(f'exec-{weir_server.backend}')
    runs = RunBatch(client, weir_server, unique_name('exec'))

    runs.submit('params-defaults', ep.params_pipeline)
    package = compile_pipeline(ep.params_pipeline, work / 'params.yaml')
    runs.submit_package('params-explicit', package, PARAMS_EXPLICIT)
    runs.submit('chain', ep.chain_pipeline)
    runs.submit('artifacts', ep.artifacts_pipeline, {'rows': 3})
    for seed in CONDITION_SEEDS:
        runs.submit(f'condition-{seed}', ep.condition_pipeline, {'seed': seed, 'threshold': 10})
    probe_dir = work / 'parallelism-probe'
    runs.context['probe_dir'] = probe_dir
    runs.submit('parallelfor', ep.parallelfor_pipeline, {'probe_dir': str(probe_dir), 'n': 3})
    runs.submit('exit-ok', ep.exit_handler_pipeline, {'fail': False})
    runs.submit('exit-fail', ep.exit_handler_pipeline, {'fail': True})
    runs.submit('container', ep.container_pipeline, {'msg': 'hi', 'times': 2})
    runs.submit('metrics', ep.metrics_pipeline, {'threshold': 0.5})
    runs.submit('retry-policy', ep.retry_policy_pipeline,
                {'marker': str(work / 'retry-policy.marker')})
    imported_uri = weir_server.put_object(f'imports/{unique_name("data")}.csv', IMPORTED_BYTES)
    runs.context['imported_uri'] = imported_uri
    runs.submit('nested-importer', ep.nested_importer_pipeline, {'uri': imported_uri, 'x': 1})
    runs.submit('exit-code', ep.exit_code_pipeline)
    runs.submit('missing-executable', ep.missing_executable_pipeline)
    token = unique_name('token')
    runs.context['log_token'] = token
    runs.submit('logs', ep.logs_pipeline, {'token': token})
    return runs


def assert_succeeded(done: Finished) -> None:
    assert done.run.state == 'SUCCEEDED', (
        f'run {done.run_id} ended {done.run.state} (error {done.run.error}); tasks: {done.tasks!r}')


def assert_python_visible_uri(seen: str, stored: str) -> None:
    """What `artifact.uri` is inside a lightweight Python step.

    KFP hands the artifact's URI and the SDK derives `.path` from it: gs:// → /gcs/…,
    minio:// → /minio/…, s3:// → /s3/… (and oci:// → /oci/…), while a URI of any other form,
    a plain path included, stays as is (`Artifact._get_path` in
    sdk/python/kfp/dsl/types/artifact_types.py; the launcher maps the same prefixes in
    `LocalPathForURI`, backend/src/v2/component/launcher_v2.go). Without those
    mounts a local driver can only make `.path` readable by handing a local path as the URI, as
    kfp.local does (`artifact_type_schema_to_artifact_list` in
    sdk/python/kfp/local/executor_input_utils.py); so the step sees either the stored URI or an
    absolute local path.
    """
    assert seen == stored or seen.startswith('/'), (seen, stored)


def task_detail(run: kfp_server_api.V2beta1Run, task_id: str):
    """The V2beta1PipelineTaskDetail of a task in GET /runs/{id}."""
    assert run.run_details is not None and run.run_details.task_details, (
        f'run {run.run_id} has no run_details.task_details')
    found = [d for d in run.run_details.task_details if d.task_id == task_id]
    assert len(found) == 1, f'task {task_id} not in run_details.task_details once: {found}'
    return found[0]


# --------------------------------------------------------------------------------------------
# a: parameters of every type


def test_params_defaults(batch, weir_server):
    done = batch.result('params-defaults')
    assert_succeeded(done)
    task = done.tasks.one('describe')
    assert task['kind'] == 'container' and task['state'] == DONE_OK
    assert task['attempts'] == 1
    assert_contains(input_parameters(task), {'a': 1.5, 'b': 2, 'name': 'hello', 'flag': True,
                                             'items': ['x', 'y'], 'cfg': {'k': 1}})
    seen = json.loads(output_parameter(task))
    # Pipeline defaults reach the step with their types. IR integer defaults are doubles,
    # written as floats (2.0) (`_fill_in_component_input_default_value` in
    # sdk/python/kfp/compiler/pipeline_spec_builder.py), but must arrive as ints, component
    # defaults too: KFP's launcher hands the step the ExecutorInput as Go protojson
    # (`compileCmdAndArgs` in backend/src/v2/component/launcher_v2.go), which prints an
    # integral double as `2`, and the SDK's executor passes the JSON value on unconverted
    # (`get_input_parameter_value` in sdk/python/kfp/dsl/executor.py).
    assert seen['a'] == 1.5 and seen['b'] == 2 and seen['sum'] == 3.5
    assert seen['name'] == 'hello' and seen['flag'] is True
    assert seen['items'] == ['x', 'y'] and seen['cfg'] == {'k': 1}
    assert seen['suffix'] == '.' and seen['count'] == 3
    assert seen['types'] == {'a': 'float', 'b': 'int', 'name': 'str', 'flag': 'bool',
                             'items': 'list', 'cfg': 'dict', 'count': 'int'}
    assert seen['cfg_value_types'] == ['int']
    # The root task's outputs are the pipeline outputs.
    assert output_parameter(done.tasks.root) == output_parameter(task)
    assert done.tasks.root['state'] == DONE_OK


def test_params_explicit_from_package(batch):
    done = batch.result('params-explicit')
    assert_succeeded(done)
    seen = json.loads(output_parameter(done.tasks.one('describe')))
    for key, value in PARAMS_EXPLICIT.items():
        assert seen[key] == value, key
    assert seen['types']['b'] == 'int' and seen['types']['a'] == 'float'
    assert seen['flag'] is False and seen['sum'] == 5.5
    assert seen['cfg_value_types'] == ['int']
    assert output_parameter(done.tasks.root) == output_parameter(done.tasks.one('describe'))


# --------------------------------------------------------------------------------------------
# b: chain with NamedTuple outputs


def test_chain_named_outputs(batch, weir_server):
    done = batch.result('chain')
    assert_succeeded(done)
    produce = done.tasks.one('produce')
    transform = done.tasks.one('transform')
    consume = done.tasks.one('consume')
    assert output_parameter(produce) == 42
    assert input_parameters(transform)['x'] == 42
    assert output_parameter(transform, 'text') == '42-abc'
    assert output_parameter(transform, 'length') == 6
    assert input_parameters(consume) == {'text': '42-abc', 'length': 6}
    assert output_parameter(consume) == '42-ABC/6'
    assert consume['display_name'] == 'final consumer'
    assert output_parameter(done.tasks.root) == '42-ABC/6'
    for task in (produce, transform, consume):
        assert task['parent_task_id'] == done.tasks.root['task_id']
    assert 'consume got 42-abc 6' in task_logs(weir_server.url, done.run_id, consume['task_id'])

    # The same tasks in KFP's own shape (GET /runs/{id} run_details.task_details).
    for task in (produce, transform, consume):
        detail = task_detail(done.run, task['task_id'])
        assert detail.state == 'SUCCEEDED'
        assert detail.display_name == task['display_name']
        assert detail.parent_task_id == task['parent_task_id']
        assert detail.start_time is not None and detail.end_time is not None
        assert detail.end_time >= detail.start_time


# --------------------------------------------------------------------------------------------
# c: artifacts


def test_artifacts_and_metadata(batch, weir_server):
    done = batch.result('artifacts')
    assert_succeeded(done)
    make_data = done.tasks.one('make-data')
    train = done.tasks.one('train')
    evaluate = done.tasks.one('evaluate-model')

    data = output_artifact(make_data, 'data')
    assert data['type']['schema_title'] == 'system.Dataset'
    assert_contains(data['metadata'], {'rows': 3, 'note': 'squares'})
    assert artifact_content(weir_server.url, data['artifact_id']) == b'0,0\n1,1\n2,4\n'

    # The artifact passed downstream is the same artifact.
    assert [a['artifact_id'] for a in input_artifacts(train, 'data')] == [data['artifact_id']]
    model = output_artifact(train, 'model')
    assert model['type']['schema_title'] == 'system.Model'
    assert_contains(model['metadata'], {'framework': 'none', 'rows_seen': 3})
    # Upstream metadata reaches the consumer with integers intact ("declared 3", not 3.0).
    model_text = 'model trained on 3 rows (declared 3)'
    assert artifact_content(weir_server.url, model['artifact_id']) == model_text.encode()
    # OutputPath(str): read from the parameter's output file.
    assert output_parameter(train, 'report') == 'rows=3'

    assert [a['artifact_id'] for a in input_artifacts(evaluate, 'model')] == [model['artifact_id']]
    assert input_parameters(evaluate)['report'] == 'rows=3'
    text, _, seen_uri = output_parameter(evaluate).partition(' | uri=')
    assert text == f'{model_text} | rows=3'
    assert_python_visible_uri(seen_uri, model['uri'])

    # Pipeline artifact output on the root task.
    root_model = output_artifact(done.tasks.root, 'Output')
    assert root_model['artifact_id'] == model['artifact_id']

    # KFP's task_details list artifact ids per output name.
    detail = task_detail(done.run, train['task_id'])
    assert detail.outputs['model'].artifact_ids == [model['artifact_id']]
    assert detail.inputs['data'].artifact_ids == [data['artifact_id']]


# --------------------------------------------------------------------------------------------
# d: If/Elif/Else, OneOf, legacy Condition


@pytest.mark.parametrize('seed', sorted(CONDITION_SEEDS))
def test_conditions(batch, seed):
    side, big = CONDITION_SEEDS[seed]
    done = batch.result(f'condition-{seed}')
    assert_succeeded(done)
    tasks = done.tasks
    assert output_parameter(tasks.one('flip')) == side
    assert tasks.one('condition-branches-1')['state'] == DONE_OK

    branches = {'heads': ('condition-2', 'say', 'is-heads'),
                'tails': ('condition-3', 'say-2', 'is-tails'),
                'edge': ('condition-4', 'say-3', 'is-edge')}
    for branch, (dag_name, say_name, display) in branches.items():
        dag = tasks.one(dag_name)
        assert dag['display_name'] == display
        assert dag['parent_task_id'] == tasks.one('condition-branches-1')['task_id']
        says = tasks.named(say_name)
        if branch == side:
            assert dag['state'] == DONE_OK, dag
            assert len(says) == 1 and says[0]['state'] == DONE_OK
            assert says[0]['parent_task_id'] == dag['task_id']
            assert output_parameter(says[0]) == f'got {branch}'
        else:
            assert dag['state'] == 'SKIPPED', dag
            assert all(s['state'] == 'SKIPPED' for s in says), says

    legacy = tasks.one('condition-5')
    assert legacy['display_name'] == 'is-big'
    assert legacy['parent_task_id'] == tasks.root['task_id']
    big_says = tasks.named('say-4')
    if big:
        assert legacy['state'] == DONE_OK
        assert len(big_says) == 1 and output_parameter(big_says[0]) == 'big number'
    else:
        assert legacy['state'] == 'SKIPPED'
        assert all(s['state'] == 'SKIPPED' for s in big_says), big_says

    # dsl.OneOf: the output of the branch that ran.
    assert output_parameter(tasks.root) == f'got {side}'


# --------------------------------------------------------------------------------------------
# e: ParallelFor and Collected


def test_parallelfor_and_collected(batch, weir_server):
    done = batch.result('parallelfor')
    assert_succeeded(done)
    tasks = done.tasks
    root = tasks.root
    assert output_parameter(root, 'total') == 5
    assert output_parameter(root, 'merged') == '10,20'
    assert output_parameter(root, 'picked') == '1:10+2:20'

    # Loop over a task output: one iteration per element, in order.
    loop = tasks.one('for-loop-1')
    assert loop['kind'] == 'loop' and loop['state'] == DONE_OK
    iterations = tasks.children(loop)
    assert sorted(t['iteration_index'] for t in iterations) == [0, 1, 2]
    assert all(t['kind'] == 'iteration' and t['state'] == DONE_OK for t in iterations)
    squares = tasks.by_iteration('square')
    assert sorted(squares) == [0, 1, 2]
    for index, task in squares.items():
        assert input_parameters(task)['x'] == index
        assert output_parameter(task) == index * index
    assert input_parameters(tasks.one('total'))['values'] == [0, 1, 4]

    # parallelism=2: no square step ever saw more than two running at once.
    probe_dir = batch.context['probe_dir']
    seen = {p.name: int(p.read_text()) for p in Path(probe_dir).glob('*.seen')}
    assert len(seen) == 3, seen
    assert max(seen.values()) <= 2, f'more than 2 iterations ran at once: {seen}'

    # Loop over a raw list; artifacts collected in iteration order.
    writes = tasks.by_iteration('write-number')
    assert sorted(writes) == [0, 1]
    outs = [output_artifact(writes[i], 'out') for i in (0, 1)]
    assert [artifact_content(weir_server.url, a['artifact_id']) for a in outs] == [b'10', b'20']
    assert [a['metadata'].get('x') for a in outs] == [10, 20]
    merge = tasks.one('merge')
    assert [a['artifact_id'] for a in input_artifacts(merge, 'ins')] == \
        [a['artifact_id'] for a in outs]
    assert output_parameter(merge) == '10,20'

    # Loop over dicts: item fields.
    picks = tasks.by_iteration('pick')
    assert {i: input_parameters(t) for i, t in picks.items()} == \
        {0: {'a': 1, 'b': 10}, 1: {'a': 2, 'b': 20}}
    assert input_parameters(tasks.one('join-words'))['words'] == ['1:10', '2:20']


# --------------------------------------------------------------------------------------------
# f: ExitHandler


def test_exit_handler_after_success(batch):
    done = batch.result('exit-ok')
    assert_succeeded(done)
    assert done.tasks.one('work')['state'] == DONE_OK
    assert done.tasks.one('exit-handler-1')['state'] == DONE_OK
    assert done.tasks.one('exit-handler-1')['display_name'] == 'main-block'
    cleanup = done.tasks.one('cleanup')
    assert cleanup['state'] == DONE_OK
    status = json.loads(output_parameter(cleanup))
    assert status['note'] == 'bye'
    # The KFP backend sends the MLMD execution state's name, COMPLETE (`resolveInputParameter`
    # in backend/src/v2/driver/resolve.go; `Execution.State` in
    # third_party/ml-metadata/ml_metadata/proto/metadata_store.proto); kfp.local's SUCCEEDED
    # (sdk/python/kfp/local/orchestrator/orchestrator_utils.py) is not what a backend says.
    assert status['state'] == 'COMPLETE', status
    assert status['task'] == 'exit-handler-1', status
    assert status['job'].startswith('weir-exec-exit-handler-'), status
    assert len(status['job']) == len('weir-exec-exit-handler-') + 5, status


def test_exit_handler_after_failure(batch, weir_server):
    done = batch.result('exit-fail')
    assert done.run.state == 'FAILED', done.run.state
    work = done.tasks.one('work')
    assert work['state'] == 'FAILED'
    assert 'requested failure' in task_logs(weir_server.url, done.run_id, 'work')
    assert done.tasks.one('exit-handler-1')['state'] == 'FAILED'
    cleanup = done.tasks.one('cleanup')
    assert cleanup['state'] == DONE_OK, cleanup
    status = json.loads(output_parameter(cleanup))
    assert status['state'] == 'FAILED', status
    assert status['note'] == 'bye'


# --------------------------------------------------------------------------------------------
# g: container components


def test_container_components(batch, weir_server):
    done = batch.result('container')
    assert_succeeded(done)
    tasks = done.tasks
    echo = tasks.one('echo-times')
    # STRING output files are taken verbatim, trailing newline included.
    assert output_parameter(echo, 'out_text') == 'hi\nhi\n'
    write = tasks.one('write-dataset')
    assert input_parameters(write)['text'] == 'hi\nhi\n'
    ds = output_artifact(write, 'ds')
    assert ds['type']['schema_title'] == 'system.Dataset'
    assert artifact_content(weir_server.url, ds['artifact_id']) == b'hi\nhi\n'

    with_flag = tasks.one('show-args')
    without_flag = tasks.one('show-args-2')
    assert with_flag['display_name'] == 'with-flag'
    assert without_flag['display_name'] == 'without-flag'
    for task in (with_flag, without_flag):
        assert [a['artifact_id'] for a in input_artifacts(task, 'ds')] == [ds['artifact_id']]
    # IfPresent expands only when the task passed the optional input; Concat joins the parts.
    # `.uri` is the artifact's URI as KFP records it (files are reached through `.path`).
    assert output_parameter(with_flag, 'out') == f'[--flag][on][uri={ds["uri"]}]\nhi\nhi\n'
    assert output_parameter(without_flag, 'out') == f'[uri={ds["uri"]}]\nhi\nhi\n'


# --------------------------------------------------------------------------------------------
# h: metrics, env, retries, caching


def test_metrics_and_env(batch):
    done = batch.result('metrics')
    assert_succeeded(done)
    evaluate = done.tasks.one('evaluate-metrics')
    assert output_parameter(evaluate) == 0.92
    metrics = output_artifact(evaluate, 'metrics')
    assert metrics['type']['schema_title'] == 'system.Metrics'
    assert_contains(metrics['metadata'], {'accuracy': 0.92, 'threshold': 0.5})
    cm = output_artifact(evaluate, 'cm')
    assert cm['type']['schema_title'] == 'system.ClassificationMetrics'
    assert cm['metadata'].get('confusionMatrix') == {
        'annotationSpecs': [{'displayName': 'a'}, {'displayName': 'b'}],
        'rows': [{'row': [5, 1]}, {'row': [2, 7]}]}
    # set_env_variable reaches the step (cpu/memory limits are accepted).
    assert output_parameter(done.tasks.one('read-env')) == 'weir-test'


def test_retry_policy(batch, weir_server):
    done = batch.result('retry-policy')
    assert_succeeded(done)
    task = done.tasks.one('fail-first-time')
    assert task['state'] == DONE_OK
    assert task['attempts'] == 2, task
    assert output_parameter(task) == 'recovered'
    logs = task_logs(weir_server.url, done.run_id, 'fail-first-time')
    assert 'first attempt fails on purpose' in logs
    assert 'second attempt succeeds' in logs


def count_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_caching(client, weir_server, tmp_path):
    counters = tmp_path / 'counters'
    counters.mkdir()
    pipeline = ep.make_caching_pipeline(unique_name('cache-key'))
    experiment = unique_name('exec-cache')

    def run(x: int, **kwargs) -> Finished:
        result = client.create_run_from_pipeline_func(
            pipeline, arguments={'counter_dir': str(counters), 'x': x},
            run_name=unique_name('cache'), experiment_name=experiment, **kwargs)
        done = finish(client, weir_server, result.run_id)
        assert_succeeded(done)
        return done

    first = run(1)
    for name in ('count-cached', 'count-uncached', 'count-keyed'):
        assert first.tasks.one(name)['cached'] is False, name
    assert output_parameter(first.tasks.one('count-keyed')) == 'x=1 execution-1'

    second = run(2)
    cached = second.tasks.one('count-cached')
    assert cached['cached'] is True, cached
    assert cached['state'] in ('SUCCEEDED', 'CACHED'), cached
    assert output_parameter(cached) == 'execution-1'
    assert count_lines(counters / 'cached') == 1  # the step did not run again
    uncached = second.tasks.one('count-uncached')
    assert uncached['cached'] is False
    assert output_parameter(uncached) == 'execution-2'
    assert count_lines(counters / 'uncached') == 2
    # A custom cache_key ignores the inputs: x=2 is served the x=1 result.
    keyed = second.tasks.one('count-keyed')
    assert keyed['cached'] is True, keyed
    assert output_parameter(keyed) == 'x=1 execution-1'
    assert count_lines(counters / 'keyed') == 1
    # The next step reads the artifact the cached step made in the first run.
    assert second.tasks.one('count-dataset')['cached'] is True
    assert output_parameter(second.tasks.one('read-dataset')) == 'dataset-1'
    assert count_lines(counters / 'dataset') == 1

    # enable_caching=False at submit turns caching off for the root tasks.
    third = run(2, enable_caching=False)
    for name in ('count-cached', 'count-uncached', 'count-keyed'):
        assert third.tasks.one(name)['cached'] is False, name
    assert output_parameter(third.tasks.one('count-cached')) == 'execution-2'
    assert output_parameter(third.tasks.one('count-keyed')) == 'x=2 execution-2'


# --------------------------------------------------------------------------------------------
# Run control: terminate, retry of a failed run


def test_terminate_kills_running_step(client, weir_server, tmp_path):
    pid_file = tmp_path / 'sleeper.pid'
    result = client.create_run_from_pipeline_func(
        ep.sleeper_pipeline, arguments={'pid_file': str(pid_file)},
        run_name=unique_name('terminate'), experiment_name=unique_name('exec-control'))
    wait_for_task(weir_server.url, result.run_id, 'sleep-long', {'RUNNING'})
    pid = read_pid_file(pid_file)
    assert pid_alive(pid)
    assert client.get_run(result.run_id).state == 'RUNNING'

    started = time.monotonic()
    assert client.terminate_run(result.run_id) == {}
    assert wait_for_run_state(client, result.run_id, {'CANCELED'}, timeout=15.0) == 'CANCELED'
    deadline = started + 15.0
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(pid), f'step process {pid} still alive after terminate'
    task = weir_tasks(weir_server.url, result.run_id).one('sleep-long')
    assert task['state'] not in ('PENDING', 'RUNNING', 'SUCCEEDED'), task
    run = client.get_run(result.run_id)
    assert run.finished_at is not None and run.finished_at >= run.created_at


def test_retry_failed_run(client, weir_server, tmp_path):
    counter = tmp_path / 'first.count'
    flag = tmp_path / 'gate.flag'
    result = client.create_run_from_pipeline_func(
        ep.retry_run_pipeline, arguments={'counter': str(counter), 'flag': str(flag)},
        run_name=unique_name('retry-run'), experiment_name=unique_name('exec-control'))
    failed = finish(client, weir_server, result.run_id)
    assert failed.run.state == 'FAILED'
    first = failed.tasks.one('first-step')
    assert first['state'] == DONE_OK and first['attempts'] == 1
    assert failed.tasks.one('gate')['state'] == 'FAILED'
    assert count_lines(counter) == 1

    flag.write_text('go')
    client.runs.run_service_retry_run(run_id=result.run_id)
    # The retry restarts the run asynchronously or not; it must not stay FAILED.
    wait_for_run_state(client, result.run_id, {'PENDING', 'RUNNING', 'SUCCEEDED'}, timeout=15.0)
    retried = finish(client, weir_server, result.run_id)
    assert_succeeded(retried)
    first_again = retried.tasks.one('first-step')
    assert first_again['task_id'] == first['task_id']
    assert first_again['state'] == DONE_OK
    assert first_again['attempts'] == 1, 'the succeeded step was run again'
    assert count_lines(counter) == 1, 'the succeeded step was run again'
    gate = retried.tasks.one('gate')
    assert gate['state'] == DONE_OK
    assert output_parameter(gate) == 'first-done+gate-done'
    assert output_parameter(retried.tasks.root) == 'first-done+gate-done'


# --------------------------------------------------------------------------------------------
# i: nested pipeline, importer


def test_nested_pipeline_and_importer(batch, weir_server):
    done = batch.result('nested-importer')
    assert_succeeded(done)
    tasks = done.tasks
    inner = tasks.one('weir-exec-inner')
    assert inner['kind'] == 'dag' and inner['state'] == DONE_OK
    assert output_parameter(inner) == 12
    add1, add2 = tasks.one('add'), tasks.one('add-2')
    assert add1['parent_task_id'] == inner['task_id']
    assert add2['parent_task_id'] == inner['task_id']
    assert output_parameter(add1) == 2 and output_parameter(add2) == 12
    assert output_parameter(tasks.root) == 12

    uri = batch.context['imported_uri']
    importer = tasks.one('importer')
    assert importer['kind'] == 'importer' and importer['state'] == DONE_OK
    imported = output_artifact(importer, 'artifact')
    assert imported['uri'] == uri
    assert imported['type']['schema_title'] == 'system.Dataset'
    assert_contains(imported['metadata'], {'source': 'sdk-test'})
    assert artifact_content(weir_server.url, imported['artifact_id']) == IMPORTED_BYTES

    reader = tasks.one('read-imported')
    assert [a['artifact_id'] for a in input_artifacts(reader, 'ds')] == [imported['artifact_id']]
    seen = json.loads(output_parameter(reader))
    assert seen['content'] == IMPORTED_BYTES.decode()
    assert_python_visible_uri(seen['uri'], uri)
    assert_contains(seen['metadata'], {'source': 'sdk-test'})


# --------------------------------------------------------------------------------------------
# Bad input and failing steps


def test_missing_required_parameter_is_400(client, weir_server):
    try:
        result = client.create_run_from_pipeline_func(ep.required_param_pipeline, arguments={},
                                                      run_name=unique_name('missing-param'),
                                                      experiment_name=unique_name('exec-bad'))
    except kfp_server_api.ApiException as error:
        body = assert_api_error(error, 400)
        assert ep.REQUIRED_PARAMETER in body['message'], body
        return
    # Say what became of the run that should not exist.
    time.sleep(3)
    run = client.get_run(result.run_id)
    pytest.fail(f'a run without its required parameter was accepted: 3 s later it is '
                f'{run.state} (error {run.error}); tasks: '
                f'{weir_tasks(weir_server.url, result.run_id)!r}')


def test_nonzero_exit_fails_run(batch, weir_server):
    done = batch.result('exit-code')
    assert done.run.state == 'FAILED'
    assert done.run.error is not None and '37' in done.run.error.message, done.run.error
    assert [change.state for change in done.run.state_history][-1] == 'FAILED'
    task = done.tasks.one('exit-nonzero')
    assert task['state'] == 'FAILED'
    assert task['attempts'] == 1
    assert task.get('error') and '37' in task['error']['message'], task
    detail = task_detail(done.run, task['task_id'])
    assert detail.state == 'FAILED'
    assert detail.error is not None and '37' in detail.error.message
    assert 'about to fail' in task_logs(weir_server.url, done.run_id, 'exit-nonzero')


def test_missing_executable_fails_run(batch):
    done = batch.result('missing-executable')
    assert done.run.state == 'FAILED'
    assert done.run.error is not None and ep.MISSING_EXECUTABLE in done.run.error.message
    task = done.tasks.one('run-missing')
    assert task['state'] == 'FAILED'
    assert task.get('error') and ep.MISSING_EXECUTABLE in task['error']['message'], task


def test_logs_of_a_step(batch, weir_server):
    done = batch.result('logs')
    assert_succeeded(done)
    token = batch.context['log_token']
    task = done.tasks.one('chatter')
    for selector in ('chatter', task['task_id']):
        text = task_logs(weir_server.url, done.run_id, selector)
        assert f'to stdout {token}' in text
        assert f'to stderr {token}' in text
