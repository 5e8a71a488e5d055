"""Run methods of kfp.Client that need no execution: create, read, list, archive, terminate,
retry and delete."""
import datetime

import kfp_server_api
import pytest

import pipelines
from helpers import (assert_api_error, first_version_id, ids_of, is_non_increasing,
                     substring_filter, substring_filter_client_form, unique_name,
                     wait_for_run_state, walk_pages)

# Values of every parameter type; ints must come back as JSON integers (KFP-COMPAT.md §6.7).
PARAMS_ARGUMENTS = {'a': 2.5, 'b': 3, 'name': 'sdk', 'flag': False, 'items': ['p', 'q'],
                    'cfg': {'z': 9}}


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
    assert run.state == 'PENDING'
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


def test_create_run_from_pipeline_func_defaults(client):
    """No experiment → `Default`; no run name → `<pipelineInfo.name> <timestamp>`."""
    result = client.create_run_from_pipeline_func(pipelines.hello_pipeline,
                                                  arguments={'message': 'from func'})
    run = client.get_run(result.run_id)
    assert run.display_name.startswith(pipelines.HELLO_PIPELINE_NAME + ' ')
    assert run.experiment_id == client.get_experiment(experiment_name='Default').experiment_id
    assert run.runtime_config.parameters == {'message': 'from func'}
    assert run.state == 'PENDING'
    assert run.pipeline_spec['pipelineInfo']['name'] == pipelines.HELLO_PIPELINE_NAME


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
    assert run.state == 'PENDING'


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


def test_terminate_then_retry_run(client, packages):
    """Terminating a pending run cancels it; :retry (only via client.runs) re-queues it."""
    experiment = client.create_experiment(unique_name('runs-exp'))
    run_id = start_hello_run(client, packages, experiment.experiment_id, unique_name('cancel'))
    assert client.get_run(run_id).state == 'PENDING'

    assert client.terminate_run(run_id) == {}
    assert wait_for_run_state(client, run_id, {'CANCELED'}) == 'CANCELED'

    client.runs.run_service_retry_run(run_id=run_id)
    assert client.get_run(run_id).state == 'PENDING'


def test_delete_run(client, packages):
    experiment = client.create_experiment(unique_name('runs-exp'))
    run_id = start_hello_run(client, packages, experiment.experiment_id, unique_name('delete'))

    assert client.delete_run(run_id) == {}
    with pytest.raises(kfp_server_api.ApiException) as error:
        client.get_run(run_id)
    assert_api_error(error.value, 404)
    assert not client.list_runs(experiment_id=experiment.experiment_id).runs
