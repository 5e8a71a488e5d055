"""Error statuses and bodies: bad uploads are rejected whole, missing things are 404, bad
list arguments are 400."""
import copy

import kfp_server_api
import pytest

from helpers import assert_api_error, missing_id, unique_name

# ------------------------------------------------------------------------------------------
# Rejected uploads leave nothing behind


def pipeline_count(client) -> int:
    return client.list_pipelines(page_size=1).total_size or 0


def assert_upload_rejected(client, path, name: str) -> None:
    """Upload must fail with 400 and neither a pipeline nor a half-created one may remain."""
    before = pipeline_count(client)
    with pytest.raises(kfp_server_api.ApiException) as error:
        # pipeline_name is given so the client uploads the file without parsing it itself.
        client.upload_pipeline(str(path), pipeline_name=name)
    assert_api_error(error.value, 400, upload=True)
    assert pipeline_count(client) == before
    assert client.get_pipeline_id(name) is None


def test_upload_invalid_yaml(client, write_spec):
    path = write_spec('pipelineInfo: {name: [unclosed\n  root: :\n')
    assert_upload_rejected(client, path, unique_name('bad-yaml'))


def test_upload_yaml_that_is_not_a_pipeline_spec(client, write_spec):
    path = write_spec({'greeting': 'hello', 'numbers': [1, 2, 3]})
    assert_upload_rejected(client, path, unique_name('not-a-spec'))


def test_upload_task_with_unknown_component(client, packages, write_spec):
    spec = copy.deepcopy(packages.load(packages.params_yaml))
    task = next(iter(spec['root']['dag']['tasks'].values()))
    task['componentRef']['name'] = 'comp-does-not-exist'
    assert_upload_rejected(client, write_spec(spec), unique_name('unknown-comp'))


def test_upload_dependency_cycle(client, packages, write_spec):
    """make-rows already feeds count-rows; making it also wait for count-rows is a cycle."""
    spec = copy.deepcopy(packages.load(packages.chain_yaml))
    tasks = spec['root']['dag']['tasks']
    assert tasks['count-rows']['dependentTasks'] == ['make-rows']
    tasks['make-rows']['dependentTasks'] = ['count-rows']
    assert_upload_rejected(client, write_spec(spec), unique_name('cycle'))


def test_upload_invalid_pipeline_info_name(client, packages, write_spec):
    """pipelineInfo.name must match ^[a-z0-9][a-z0-9-]{0,127}$.

    KFP's API server checks it on upload (`ValidatePipelineName` in
    backend/src/apiserver/common/utils.go, called from `CreatePipelineAndPipelineVersion` and
    `CreatePipelineVersion` in backend/src/apiserver/resource/resource_manager.go); the SDK
    applies the same rule (`validate_pipeline_name` in sdk/python/kfp/dsl/utils.py).
    """
    spec = copy.deepcopy(packages.load(packages.hello_yaml))
    spec['pipelineInfo']['name'] = 'Not A_Valid Name!'
    assert_upload_rejected(client, write_spec(spec), unique_name('bad-info-name'))


def test_upload_version_rejected_leaves_no_version(client, packages, write_spec):
    pipeline = client.upload_pipeline(str(packages.hello_yaml),
                                      pipeline_name=unique_name('bad-version'))
    with pytest.raises(kfp_server_api.ApiException) as error:
        client.upload_pipeline_version(str(write_spec({'not': 'a spec'})), 'broken',
                                       pipeline_id=pipeline.pipeline_id)
    assert_api_error(error.value, 400, upload=True)
    assert client.list_pipeline_versions(pipeline.pipeline_id).total_size == 1


def test_upload_duplicate_pipeline_name(client, packages):
    name = unique_name('duplicate')
    first = client.upload_pipeline(str(packages.hello_yaml), pipeline_name=name)
    before = pipeline_count(client)
    with pytest.raises(kfp_server_api.ApiException) as error:
        client.upload_pipeline(str(packages.hello_yaml), pipeline_name=name)
    assert_api_error(error.value, 409, upload=True)
    assert pipeline_count(client) == before
    assert client.get_pipeline_id(name) == first.pipeline_id


# ------------------------------------------------------------------------------------------
# Missing resources


@pytest.mark.parametrize('get', [
    pytest.param(lambda c: c.get_run(missing_id()), id='run'),
    pytest.param(lambda c: c.get_experiment(experiment_id=missing_id()), id='experiment'),
    pytest.param(lambda c: c.get_pipeline(missing_id()), id='pipeline'),
    pytest.param(lambda c: c.get_recurring_run(missing_id()), id='recurring-run'),
])
def test_get_missing_resource_is_404(client, get):
    with pytest.raises(kfp_server_api.ApiException) as error:
        get(client)
    assert_api_error(error.value, 404)


def test_get_missing_pipeline_version_is_404(client, packages):
    pipeline = client.upload_pipeline(str(packages.hello_yaml),
                                      pipeline_name=unique_name('missing-version'))
    with pytest.raises(kfp_server_api.ApiException) as error:
        client.get_pipeline_version(pipeline.pipeline_id, missing_id())
    assert_api_error(error.value, 404)


# ------------------------------------------------------------------------------------------
# Bad list arguments

LISTS = [
    pytest.param(lambda c, **kw: c.list_pipelines(**kw), id='pipelines'),
    pytest.param(lambda c, **kw: c.list_experiments(**kw), id='experiments'),
    pytest.param(lambda c, **kw: c.list_runs(**kw), id='runs'),
    pytest.param(lambda c, **kw: c.list_recurring_runs(**kw), id='recurring-runs'),
]


@pytest.mark.parametrize('list_call', LISTS)
@pytest.mark.parametrize('bad_filter', [
    pytest.param('{"predicates": [', id='not-json'),
    pytest.param('{"predicates": [{"operation": "NO_SUCH_OP", "key": "display_name", '
                 '"string_value": "x"}]}', id='unknown-operation'),
])
def test_bad_filter_is_400(client, list_call, bad_filter):
    with pytest.raises(kfp_server_api.ApiException) as error:
        list_call(client, filter=bad_filter)
    assert_api_error(error.value, 400)


@pytest.mark.parametrize('list_call', LISTS)
def test_unknown_sort_field_is_400(client, list_call):
    with pytest.raises(kfp_server_api.ApiException) as error:
        list_call(client, sort_by='no_such_field desc')
    assert_api_error(error.value, 400)
