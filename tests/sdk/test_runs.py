"""Run methods of kfp.Client: create, read, list, archive, terminate, retry and delete.

Runs execute as soon as they are created (test_execution.py checks what they compute), so a
freshly created run may already be RUNNING or even SUCCEEDED when it is first read; these tests
accept exactly that and then wait for the run to finish.
"""
import datetime

import kfp_server_api
import pytest

import exec_pipelines
import pipelines
from helpers import (assert_api_error, first_version_id, ids_of, is_non_increasing,
                     output_artifact, pid_alive, read_pid_file, substring_filter,
                     substring_filter_client_form, unique_name, wait_for_completion,
                     wait_for_run_state, walk_pages, weir_tasks)

# Values of every parameter type; ints must come back as JSON integers: runtime_config.parameters
# are google.protobuf.Value doubles (backend/api/v2beta1/runtime_config.proto), which the API
# server's protojson marshaller (`CustomMarshaler`, backend/src/apiserver/common/utils.go)
# prints without a fraction when integral, so the client reads 3, not 3.0.
PARAMS_ARGUMENTS = {'a': 2.5, 'b': 3, 'name': 'sdk', 'flag': False, 'items': ['p', 'q'],
                    'cfg': {'z': 9}}
# What a run just created can be in: its (fast) steps may already have finished.
FRESH_RUN_STATES = {'PENDING', 'RUNNING', 'SUCCEEDED'}


def start_hello_run(client, packages, experiment_id: str, name: str) -> str:
    return client.run_pipeline(experiment_id, name,
                               pipeline_package_path=str(packages.hello_yaml)).run_id


def test_create_run_from_pipeline_package(client, packages):
    experiment_name = unique_name('runs-exp')
    run_name = unique_name('run-package')
    result = client.create_run_from_pipeline_package(
        str(packages.params_yaml), arguments=PARAMS_ARGUMENTS, run_name=run_name,
        experiment_name=experiment_name)
    assert result.run_id

    run = client.get_run(result.run_id)
    assert run.run_id == result.run_id
    assert run.display_name == run_name
    assert run.state in FRESH_RUN_STATES
    assert run.storage_state == 'AVAILABLE'
    assert run.experiment_id == client.get_experiment(experiment_name=experiment_name).experiment_id
    assert isinstance(run.created_at, datetime.datetime)

    parameters = run.runtime_config.parameters
    assert parameters == PARAMS_ARGUMENTS
    assert isinstance(parameters['b'], int) and not isinstance(parameters['b'], bool)
    assert isinstance(parameters['cfg']['z'], int)
    assert isinstance(parameters['a'], float)
    assert parameters['flag'] is False

    assert run.pipeline_spec['pipelineInfo']['name'] == pipelines.PARAMS_PIPELINE_NAME
    assert run.pipeline_spec == packages.load(packages.params_yaml)

    finished = wait_for_completion(client, result.run_id)
    assert finished.state == 'SUCCEEDED', finished.error
    assert finished.runtime_config.parameters == PARAMS_ARGUMENTS
    assert finished.finished_at >= finished.created_at


def test_create_run_from_pipeline_func_defaults(client):
    """No experiment → `Default`; no run name → `<pipelineInfo.name> <timestamp>`."""
    result = client.create_run_from_pipeline_func(pipelines.hello_pipeline,
                                                  arguments={'message': 'from func'})
    run = client.get_run(result.run_id)
    assert run.display_name.startswith(pipelines.HELLO_PIPELINE_NAME + ' ')
    assert run.experiment_id == client.get_experiment(experiment_name='Default').experiment_id
    assert run.runtime_config.parameters == {'message': 'from func'}
    assert run.state in FRESH_RUN_STATES
    assert run.pipeline_spec['pipelineInfo']['name'] == pipelines.HELLO_PIPELINE_NAME
    assert wait_for_completion(client, result.run_id).state == 'SUCCEEDED'


def test_run_pipeline_with_package_path(client, packages, weir_server):
    experiment = client.create_experiment(unique_name('runs-exp'))
    run_name = unique_name('run-path')
    pipeline_root = f'{weir_server.artifacts_url}/custom-root'
    created = client.run_pipeline(experiment.experiment_id, run_name,
                                  pipeline_package_path=str(packages.chain_yaml),
                                  params={'rows': 7}, pipeline_root=pipeline_root,
                                  service_account='pipeline-runner')
    assert isinstance(created, kfp_server_api.V2beta1Run)
    assert created.run_id
    assert created.display_name == run_name

    run = client.get_run(created.run_id)
    assert run.experiment_id == experiment.experiment_id
    assert run.runtime_config.parameters == {'rows': 7}
    assert isinstance(run.runtime_config.parameters['rows'], int)
    assert run.runtime_config.pipeline_root == pipeline_root
    assert run.service_account == 'pipeline-runner'
    assert run.pipeline_spec['pipelineInfo']['name'] == pipelines.CHAIN_PIPELINE_NAME
    assert run.pipeline_version_reference is None

    # Artifacts land under the run's pipeline root: <root>/<pipeline name>/<run id>/…, as in KFP
    # (`GetPipeline` and `GenerateOutputURI` in backend/src/v2/metadata/client.go;
    # `provisionOutputs` in backend/src/v2/driver/driver.go adds <task>/<salt>/<output>).
    assert wait_for_completion(client, created.run_id).state == 'SUCCEEDED'
    data = output_artifact(weir_tasks(weir_server.url, created.run_id).one('make-rows'), 'data')
    assert data['uri'].startswith(
        f'{pipeline_root}/{pipelines.CHAIN_PIPELINE_NAME}/{created.run_id}/'), data['uri']


def test_run_pipeline_from_pipeline_version(client, packages):
    pipeline = client.upload_pipeline(str(packages.params_yaml),
                                      pipeline_name=unique_name('run-source'))
    version_id = first_version_id(client, pipeline.pipeline_id)
    experiment = client.create_experiment(unique_name('runs-exp'))

    created = client.run_pipeline(experiment.experiment_id, unique_name('run-version'),
                                  pipeline_id=pipeline.pipeline_id, version_id=version_id,
                                  params={'b': 11})
    run = client.get_run(created.run_id)
    assert run.pipeline_version_reference is not None
    assert run.pipeline_version_reference.pipeline_id == pipeline.pipeline_id
    assert run.pipeline_version_reference.pipeline_version_id == version_id
    assert run.runtime_config.parameters == {'b': 11}
    assert run.state in FRESH_RUN_STATES
    assert wait_for_completion(client, created.run_id).state == 'SUCCEEDED'


@pytest.fixture(scope='module')
def three_runs(client, packages):
    """Three runs in their own experiment, created in non-alphabetical name order."""
    experiment = client.create_experiment(unique_name('runs-list'))
    prefix = unique_name('listed-run')
    ids = {}
    for suffix in ['b', 'c', 'a']:
        name = f'{prefix}-{suffix}'
        ids[name] = start_hello_run(client, packages, experiment.experiment_id, name)
    return experiment.experiment_id, prefix, ids


def test_list_runs_by_experiment(client, three_runs):
    experiment_id, _, ids = three_runs
    response = client.list_runs(experiment_id=experiment_id)
    assert response.total_size == 3
    assert sorted(ids_of(response.runs, 'run_id')) == sorted(ids.values())
    assert all(run.experiment_id == experiment_id for run in response.runs)


def test_list_runs_paging(client, three_runs):
    experiment_id, _, ids = three_runs
    pages = walk_pages(client.list_runs, 'runs', page_size=2, experiment_id=experiment_id)
    assert [len(page) for page in pages] == [2, 1]
    assert sorted(r for page in pages for r in ids_of(page, 'run_id')) == sorted(ids.values())


def test_list_runs_filter_on_display_name(client, three_runs):
    experiment_id, prefix, ids = three_runs
    one = client.list_runs(experiment_id=experiment_id, filter=substring_filter(f'{prefix}-c'))
    assert ids_of(one.runs, 'run_id') == [ids[f'{prefix}-c']]
    # Without experiment_id the client sends namespace='' instead.
    everywhere = client.list_runs(filter=substring_filter_client_form(prefix))
    assert sorted(ids_of(everywhere.runs, 'run_id')) == sorted(ids.values())


def test_list_runs_sorted(client, three_runs):
    experiment_id, _, ids = three_runs
    newest_first = client.list_runs(experiment_id=experiment_id, sort_by='created_at desc')
    assert is_non_increasing([run.created_at for run in newest_first.runs])
    by_name = client.list_runs(experiment_id=experiment_id, sort_by='display_name')
    assert [run.display_name for run in by_name.runs] == sorted(ids)


def test_archive_and_unarchive_run(client, packages):
    experiment = client.create_experiment(unique_name('runs-exp'))
    run_id = start_hello_run(client, packages, experiment.experiment_id, unique_name('archive'))

    assert client.archive_run(run_id) == {}
    assert client.get_run(run_id).storage_state == 'ARCHIVED'
    assert client.unarchive_run(run_id) == {}
    assert client.get_run(run_id).storage_state == 'AVAILABLE'


def test_terminate_then_retry_run(client, tmp_path):
    """Terminating a run whose step sleeps cancels it; :retry (only via client.runs) starts it
    again and the step really runs again."""
    pid_file = tmp_path / 'sleeper.pid'
    run_id = client.create_run_from_pipeline_func(
        exec_pipelines.sleeper_pipeline, arguments={'pid_file': str(pid_file)},
        run_name=unique_name('cancel'), experiment_name=unique_name('runs-exp')).run_id
    assert client.get_run(run_id).state in {'PENDING', 'RUNNING'}

    assert client.terminate_run(run_id) == {}
    assert wait_for_run_state(client, run_id, {'CANCELED'}) == 'CANCELED'
    if pid_file.exists():
        first_pid = int(pid_file.read_text().strip() or 0)
        assert not first_pid or not pid_alive(first_pid)
        pid_file.unlink()

    client.runs.run_service_retry_run(run_id=run_id)
    assert wait_for_run_state(client, run_id, {'PENDING', 'RUNNING'}) in {'PENDING', 'RUNNING'}
    pid = read_pid_file(pid_file)
    assert pid_alive(pid)
    assert client.get_run(run_id).state == 'RUNNING'

    # Leave nothing running behind.
    assert client.terminate_run(run_id) == {}
    assert wait_for_run_state(client, run_id, {'CANCELED'}) == 'CANCELED'


def test_delete_run(client, packages):
    experiment = client.create_experiment(unique_name('runs-exp'))
    run_id = start_hello_run(client, packages, experiment.experiment_id, unique_name('delete'))

    assert client.delete_run(run_id) == {}
    with pytest.raises(kfp_server_api.ApiException) as error:
        client.get_run(run_id)
    assert_api_error(error.value, 404)
    assert not client.list_runs(experiment_id=experiment.experiment_id).runs
