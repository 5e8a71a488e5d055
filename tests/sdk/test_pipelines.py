"""Health, client construction, pipeline and pipeline-version methods of kfp.Client."""
import datetime

import kfp
import kfp_server_api
import pytest

import pipelines
from helpers import (assert_api_error, first_version_id, ids_of, is_non_increasing,
                     substring_filter, substring_filter_client_form, unique_name, walk_pages)

# ------------------------------------------------------------------------------------------
# Health and construction


def test_client_init_calls_healthz(weir_server):
    """Client(host) probes /healthz in single-user mode; trailing slashes must not matter."""
    for host in (weir_server.url, weir_server.url + '/'):
        client = kfp.Client(host=host)
        assert client.list_pipelines(page_size=1) is not None


def test_get_kfp_healthz_single_user(client):
    """The client reads multi_user; True would make it look for a pod service account."""
    health = client.get_kfp_healthz(sleep_duration=0)
    assert isinstance(health, kfp_server_api.V2beta1GetHealthzResponse)
    assert health.multi_user is False


# ------------------------------------------------------------------------------------------
# Upload


def test_upload_pipeline_with_name_and_description(client, packages):
    name = unique_name('upload')
    pipeline = client.upload_pipeline(str(packages.params_yaml), pipeline_name=name,
                                      description='uploaded by the sdk suite')
    assert pipeline.pipeline_id
    assert pipeline.display_name == name
    assert pipeline.description == 'uploaded by the sdk suite'
    assert isinstance(pipeline.created_at, datetime.datetime)

    fetched = client.get_pipeline(pipeline.pipeline_id)
    assert fetched.pipeline_id == pipeline.pipeline_id
    assert fetched.display_name == name
    assert fetched.description == 'uploaded by the sdk suite'


def test_upload_pipeline_without_name_uses_pipeline_info_name(client, compile_named):
    """The client sends `name=<pipelineInfo.name>` when no pipeline_name is given."""
    spec_name = unique_name('info-name')
    path = compile_named(pipelines.hello_pipeline, spec_name)
    pipeline = client.upload_pipeline(str(path))
    assert pipeline.display_name == spec_name
    assert client.get_pipeline_id(spec_name) == pipeline.pipeline_id


@pytest.mark.parametrize('package_attr', [
    'params_yaml', 'params_yml', 'params_json', 'params_zip', 'params_tgz'])
def test_upload_package_formats(client, packages, package_attr):
    """KFP accepts .yaml/.yml, .json, single-file .zip and .tar.gz packages."""
    name = unique_name(package_attr.replace('_', '-'))
    # pipeline_name is passed because the client itself cannot parse .json packages.
    pipeline = client.upload_pipeline(str(getattr(packages, package_attr)), pipeline_name=name)
    assert pipeline.display_name == name

    version_id = first_version_id(client, pipeline.pipeline_id)
    version = client.get_pipeline_version(pipeline.pipeline_id, version_id)
    assert version.pipeline_spec['pipelineInfo']['name'] == pipelines.PARAMS_PIPELINE_NAME
    assert version.pipeline_spec == packages.load(packages.params_yaml)


# ------------------------------------------------------------------------------------------
# Versions


def test_upload_pipeline_version_by_id_and_by_name(client, packages):
    name = unique_name('versions')
    pipeline = client.upload_pipeline(str(packages.params_yaml), pipeline_name=name)

    by_id = client.upload_pipeline_version(str(packages.chain_yaml), f'{name}-v2',
                                           pipeline_id=pipeline.pipeline_id,
                                           description='second version')
    assert by_id.pipeline_id == pipeline.pipeline_id
    assert by_id.pipeline_version_id
    assert by_id.display_name == f'{name}-v2'
    assert by_id.description == 'second version'

    # By name, the client first resolves the id with an EQUALS filter (integer operation).
    by_name = client.upload_pipeline_version(str(packages.hello_yaml), f'{name}-v3',
                                             pipeline_name=name)
    assert by_name.pipeline_id == pipeline.pipeline_id
    assert by_name.display_name == f'{name}-v3'
    assert len({by_id.pipeline_version_id, by_name.pipeline_version_id}) == 2

    listed = client.list_pipeline_versions(pipeline.pipeline_id)
    assert listed.total_size == 3
    versions = {v.display_name: v for v in listed.pipeline_versions}
    # The version created by upload_pipeline carries the pipeline's name.
    assert set(versions) == {name, f'{name}-v2', f'{name}-v3'}
    assert all(v.pipeline_id == pipeline.pipeline_id for v in listed.pipeline_versions)


def test_get_pipeline_version_returns_spec(client, packages):
    """pipeline_spec is returned as a dict equal to the uploaded PipelineSpec."""
    name = unique_name('getversion')
    pipeline = client.upload_pipeline(str(packages.params_yaml), pipeline_name=name)
    added = client.upload_pipeline_version(str(packages.chain_yaml), f'{name}-chain',
                                           pipeline_id=pipeline.pipeline_id)

    version = client.get_pipeline_version(pipeline.pipeline_id, added.pipeline_version_id)
    assert version.pipeline_version_id == added.pipeline_version_id
    assert version.pipeline_id == pipeline.pipeline_id
    assert version.display_name == f'{name}-chain'
    assert isinstance(version.created_at, datetime.datetime)
    assert isinstance(version.pipeline_spec, dict)
    assert version.pipeline_spec['pipelineInfo']['name'] == pipelines.CHAIN_PIPELINE_NAME
    assert version.pipeline_spec == packages.load(packages.chain_yaml)


def test_list_pipeline_versions_paging(client, packages):
    name = unique_name('vpaging')
    pipeline = client.upload_pipeline(str(packages.hello_yaml), pipeline_name=name)
    expected = {first_version_id(client, pipeline.pipeline_id)}
    for i in range(3):
        expected.add(client.upload_pipeline_version(
            str(packages.hello_yaml), f'{name}-{i}',
            pipeline_id=pipeline.pipeline_id).pipeline_version_id)

    pages = walk_pages(lambda **kw: client.list_pipeline_versions(pipeline.pipeline_id, **kw),
                       'pipeline_versions', page_size=3)
    seen = [v for page in pages for v in ids_of(page, 'pipeline_version_id')]
    assert len(pages) == 2
    assert sorted(seen) == sorted(expected)


def test_delete_pipeline_version(client, packages):
    name = unique_name('delversion')
    pipeline = client.upload_pipeline(str(packages.hello_yaml), pipeline_name=name)
    added = client.upload_pipeline_version(str(packages.hello_yaml), f'{name}-extra',
                                           pipeline_id=pipeline.pipeline_id)

    assert client.delete_pipeline_version(pipeline.pipeline_id, added.pipeline_version_id) == {}
    with pytest.raises(kfp_server_api.ApiException) as error:
        client.get_pipeline_version(pipeline.pipeline_id, added.pipeline_version_id)
    assert_api_error(error.value, 404)
    remaining = client.list_pipeline_versions(pipeline.pipeline_id)
    assert remaining.total_size == 1
    assert remaining.pipeline_versions[0].pipeline_version_id != added.pipeline_version_id


def test_delete_pipeline_after_its_versions(client, packages):
    name = unique_name('delpipeline')
    pipeline = client.upload_pipeline(str(packages.hello_yaml), pipeline_name=name)
    client.upload_pipeline_version(str(packages.hello_yaml), f'{name}-v2',
                                   pipeline_id=pipeline.pipeline_id)
    for version in client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions:
        client.delete_pipeline_version(pipeline.pipeline_id, version.pipeline_version_id)

    assert client.delete_pipeline(pipeline.pipeline_id) == {}
    with pytest.raises(kfp_server_api.ApiException) as error:
        client.get_pipeline(pipeline.pipeline_id)
    assert_api_error(error.value, 404)
    assert client.get_pipeline_id(name) is None


# ------------------------------------------------------------------------------------------
# Lookup and listing


def test_get_pipeline_id(client, packages):
    name = unique_name('lookup')
    pipeline = client.upload_pipeline(str(packages.hello_yaml), pipeline_name=name)
    assert client.get_pipeline_id(name) == pipeline.pipeline_id
    assert client.get_pipeline_id(unique_name('absent')) is None
    # EQUALS is exact: a prefix of the name matches nothing.
    assert client.get_pipeline_id(name[:-1]) is None


@pytest.fixture(scope='module')
def five_pipelines(client, packages):
    """Five pipelines sharing a unique prefix, uploaded in non-alphabetical order."""
    prefix = unique_name('listing')
    ids = {}
    for suffix in ['c', 'a', 'e', 'b', 'd']:
        name = f'{prefix}-{suffix}'
        ids[name] = client.upload_pipeline(str(packages.hello_yaml),
                                           pipeline_name=name).pipeline_id
    return prefix, ids


def test_list_pipelines_page_walk_returns_each_once(client, five_pipelines):
    prefix, ids = five_pipelines
    pages = walk_pages(client.list_pipelines, 'pipelines', page_size=2,
                       filter=substring_filter(prefix))
    seen = [p for page in pages for p in ids_of(page, 'pipeline_id')]
    assert [len(page) for page in pages] == [2, 2, 1]
    assert sorted(seen) == sorted(ids.values())

    first = client.list_pipelines(page_size=2, filter=substring_filter(prefix))
    assert first.total_size == 5
    assert first.next_page_token


def test_list_pipelines_default_page_size(client, five_pipelines):
    """Without paging arguments the client sends page_size=10: all five fit in one page."""
    prefix, ids = five_pipelines
    response = client.list_pipelines(filter=substring_filter(prefix))
    assert response.total_size == 5
    assert sorted(ids_of(response.pipelines, 'pipeline_id')) == sorted(ids.values())
    assert not response.next_page_token


def test_list_pipelines_sort_by_display_name(client, five_pipelines):
    prefix, ids = five_pipelines
    ascending = client.list_pipelines(sort_by='display_name', filter=substring_filter(prefix))
    assert [p.display_name for p in ascending.pipelines] == sorted(ids)
    descending = client.list_pipelines(sort_by='display_name desc',
                                       filter=substring_filter(prefix))
    assert [p.display_name for p in descending.pipelines] == sorted(ids, reverse=True)


def test_list_pipelines_sort_by_created_at_desc(client, five_pipelines):
    prefix, ids = five_pipelines
    response = client.list_pipelines(sort_by='created_at desc', filter=substring_filter(prefix))
    assert len(response.pipelines) == 5
    assert is_non_increasing([p.created_at for p in response.pipelines])


def test_list_pipelines_sorted_page_walk(client, five_pipelines):
    """Page tokens carry the sort order: walking a sorted listing stays sorted."""
    prefix, ids = five_pipelines
    pages = walk_pages(client.list_pipelines, 'pipelines', page_size=2,
                       sort_by='display_name desc', filter=substring_filter(prefix))
    names = [p.display_name for page in pages for p in page]
    assert names == sorted(ids, reverse=True)


def test_list_pipelines_filter_forms(client, five_pipelines):
    """Enum-name + snake_case and integer + camelCase filters select the same pipelines."""
    prefix, ids = five_pipelines
    documented = client.list_pipelines(filter=substring_filter(f'{prefix}-a'))
    assert ids_of(documented.pipelines, 'pipeline_id') == [ids[f'{prefix}-a']]
    assert documented.total_size == 1

    client_form = client.list_pipelines(filter=substring_filter_client_form(prefix))
    assert sorted(ids_of(client_form.pipelines, 'pipeline_id')) == sorted(ids.values())

    nothing = client.list_pipelines(filter=substring_filter(unique_name('nomatch')))
    assert not nothing.pipelines
    assert not nothing.total_size  # 0 is omitted on the wire, so None or 0
