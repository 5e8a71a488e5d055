"""Experiment methods of kfp.Client."""
import datetime

import kfp_server_api
import pytest

from helpers import (assert_api_error, equals_filter, ids_of, substring_filter, unique_name,
                     walk_pages)


def test_create_experiment_is_get_or_create(client):
    """create_experiment looks the name up first, so a second call returns the same id."""
    name = unique_name('exp')
    created = client.create_experiment(name, description='made by the sdk suite')
    assert created.experiment_id
    assert created.display_name == name
    assert created.description == 'made by the sdk suite'

    again = client.create_experiment(name, description='ignored on the second call')
    assert again.experiment_id == created.experiment_id
    assert again.description == 'made by the sdk suite'
    assert client.list_experiments(filter=equals_filter(name)).total_size == 1


def test_get_experiment_by_id_and_by_name(client):
    name = unique_name('exp-get')
    created = client.create_experiment(name, description='lookup')

    by_id = client.get_experiment(experiment_id=created.experiment_id)
    assert by_id.experiment_id == created.experiment_id
    assert by_id.display_name == name
    assert by_id.description == 'lookup'
    assert by_id.storage_state == 'AVAILABLE'
    assert isinstance(by_id.created_at, datetime.datetime)

    by_name = client.get_experiment(experiment_name=name)
    assert by_name.experiment_id == created.experiment_id


def test_get_experiment_unknown_name_raises_value_error(client):
    """An empty filtered list is what makes the client raise ValueError (not a 404)."""
    with pytest.raises(ValueError, match='No experiment is found with name'):
        client.get_experiment(experiment_name=unique_name('no-such-exp'))


def test_default_experiment_exists(client):
    """Single-user KFP creates `Default` at start-up; runs without an experiment land there."""
    response = client.list_experiments(filter=equals_filter('Default'))
    assert response.total_size == 1
    assert [e.display_name for e in response.experiments] == ['Default']
    assert client.get_experiment(experiment_name='Default').experiment_id == \
        response.experiments[0].experiment_id

    everything = walk_pages(client.list_experiments, 'experiments', page_size=10)
    names = [e.display_name for page in everything for e in page]
    assert names.count('Default') == 1


def test_list_experiments_paging_sorting_filter(client):
    prefix = unique_name('exp-list')
    ids = {}
    for suffix in ['b', 'c', 'a']:
        name = f'{prefix}-{suffix}'
        ids[name] = client.create_experiment(name).experiment_id

    pages = walk_pages(client.list_experiments, 'experiments', page_size=2,
                       filter=substring_filter(prefix))
    assert [len(page) for page in pages] == [2, 1]
    assert sorted(e for page in pages for e in ids_of(page, 'experiment_id')) == \
        sorted(ids.values())

    ascending = client.list_experiments(sort_by='display_name', filter=substring_filter(prefix))
    assert [e.display_name for e in ascending.experiments] == sorted(ids)
    assert ascending.total_size == 3
    descending = client.list_experiments(sort_by='display_name desc',
                                         filter=substring_filter(prefix))
    assert [e.display_name for e in descending.experiments] == sorted(ids, reverse=True)


def test_archive_and_unarchive_experiment(client):
    experiment = client.create_experiment(unique_name('exp-archive'))

    assert client.archive_experiment(experiment.experiment_id) == {}
    assert client.get_experiment(experiment_id=experiment.experiment_id).storage_state == \
        'ARCHIVED'

    assert client.unarchive_experiment(experiment.experiment_id) == {}
    assert client.get_experiment(experiment_id=experiment.experiment_id).storage_state == \
        'AVAILABLE'


def test_delete_experiment(client):
    name = unique_name('exp-delete')
    experiment = client.create_experiment(name)

    assert client.delete_experiment(experiment.experiment_id) == {}
    with pytest.raises(kfp_server_api.ApiException) as error:
        client.get_experiment(experiment_id=experiment.experiment_id)
    assert_api_error(error.value, 404)
    with pytest.raises(ValueError):
        client.get_experiment(experiment_name=name)
