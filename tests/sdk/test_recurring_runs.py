"""Recurring-run methods of kfp.Client, and the runs a schedule fires, seen with list_runs."""
import datetime

import kfp_server_api
import pytest

import pipelines
import time

from helpers import (assert_api_error, first_version_id, ids_of, unique_name, wait_for_completion,
                     walk_pages)

CRON = '0 0 2 * * *'  # 6-field robfig/cron: 02:00:00 every day


@pytest.fixture(scope='module')
def experiment_id(client) -> str:
    return client.create_experiment(unique_name('recurring-exp')).experiment_id


def test_create_cron_recurring_run_from_package(client, packages, experiment_id):
    name = unique_name('cron')
    created = client.create_recurring_run(
        experiment_id, name, description='nightly', cron_expression=CRON, max_concurrency=2,
        no_catchup=True, params={'b': 5, 'items': ['p']},
        pipeline_package_path=str(packages.params_yaml))
    assert isinstance(created, kfp_server_api.V2beta1RecurringRun)
    assert created.recurring_run_id

    recurring = client.get_recurring_run(created.recurring_run_id)
    assert recurring.recurring_run_id == created.recurring_run_id
    assert recurring.display_name == name
    assert recurring.description == 'nightly'
    assert recurring.experiment_id == experiment_id
    assert recurring.trigger.cron_schedule.cron == CRON
    assert recurring.trigger.periodic_schedule is None
    assert int(recurring.max_concurrency) == 2  # int64: a JSON string on the wire
    assert recurring.no_catchup is True
    assert recurring.mode == 'ENABLE'
    assert recurring.status == 'ENABLED'
    assert isinstance(recurring.created_at, datetime.datetime)
    assert recurring.runtime_config.parameters == {'b': 5, 'items': ['p']}
    assert isinstance(recurring.runtime_config.parameters['b'], int)
    assert recurring.pipeline_spec['pipelineInfo']['name'] == pipelines.PARAMS_PIPELINE_NAME


def test_create_interval_recurring_run_from_pipeline_version(client, packages, experiment_id):
    pipeline = client.upload_pipeline(str(packages.hello_yaml),
                                      pipeline_name=unique_name('recurring-source'))
    version_id = first_version_id(client, pipeline.pipeline_id)

    created = client.create_recurring_run(
        experiment_id, unique_name('interval'), interval_second=3600,
        pipeline_id=pipeline.pipeline_id, version_id=version_id)
    recurring = client.get_recurring_run(created.recurring_run_id)
    assert int(recurring.trigger.periodic_schedule.interval_second) == 3600
    assert recurring.trigger.cron_schedule is None
    assert int(recurring.max_concurrency) == 1  # the client's default, always sent
    assert recurring.pipeline_version_reference.pipeline_id == pipeline.pipeline_id
    assert recurring.pipeline_version_reference.pipeline_version_id == version_id
    assert recurring.status == 'ENABLED'
    assert recurring.mode == 'ENABLE'


def test_create_disabled_recurring_run(client, packages, experiment_id):
    """enabled=False sends mode DISABLE; the schedule is created but not active."""
    created = client.create_recurring_run(
        experiment_id, unique_name('disabled'), cron_expression=CRON, enabled=False,
        pipeline_package_path=str(packages.hello_yaml))
    recurring = client.get_recurring_run(created.recurring_run_id)
    assert recurring.mode == 'DISABLE'
    assert recurring.status == 'DISABLED'


def test_list_recurring_runs_by_experiment(client, packages):
    """The list key is `recurringRuns` (camelCase): anything else reads as None."""
    experiment = client.create_experiment(unique_name('recurring-list'))
    ids = sorted(
        client.create_recurring_run(experiment.experiment_id, unique_name('listed'),
                                    interval_second=600 * (i + 1),
                                    pipeline_package_path=str(packages.hello_yaml)
                                    ).recurring_run_id
        for i in range(3))

    response = client.list_recurring_runs(experiment_id=experiment.experiment_id)
    assert response.recurring_runs is not None, 'list response lacks the recurringRuns key'
    assert response.total_size == 3
    assert sorted(ids_of(response.recurring_runs, 'recurring_run_id')) == ids

    pages = walk_pages(client.list_recurring_runs, 'recurring_runs', page_size=2,
                       experiment_id=experiment.experiment_id)
    assert [len(page) for page in pages] == [2, 1]
    assert sorted(r for page in pages for r in ids_of(page, 'recurring_run_id')) == ids

    everything = walk_pages(client.list_recurring_runs, 'recurring_runs', page_size=50)
    all_ids = [r for page in everything for r in ids_of(page, 'recurring_run_id')]
    assert set(ids) <= set(all_ids)
    assert len(all_ids) == len(set(all_ids))


def test_disable_and_enable_recurring_run(client, packages, experiment_id):
    created = client.create_recurring_run(experiment_id, unique_name('toggle'),
                                          cron_expression=CRON,
                                          pipeline_package_path=str(packages.hello_yaml))
    recurring_run_id = created.recurring_run_id

    assert client.disable_recurring_run(recurring_run_id) == {}
    disabled = client.get_recurring_run(recurring_run_id)
    assert disabled.status == 'DISABLED'
    assert disabled.mode == 'DISABLE'

    assert client.enable_recurring_run(recurring_run_id) == {}
    enabled = client.get_recurring_run(recurring_run_id)
    assert enabled.status == 'ENABLED'
    assert enabled.mode == 'ENABLE'


def test_delete_recurring_run(client, packages):
    experiment = client.create_experiment(unique_name('recurring-del'))
    created = client.create_recurring_run(experiment.experiment_id, unique_name('delete'),
                                          cron_expression=CRON,
                                          pipeline_package_path=str(packages.hello_yaml))

    assert client.delete_recurring_run(created.recurring_run_id) == {}
    with pytest.raises(kfp_server_api.ApiException) as error:
        client.get_recurring_run(created.recurring_run_id)
    assert_api_error(error.value, 404)
    assert not client.list_recurring_runs(experiment_id=experiment.experiment_id).recurring_runs


def test_schedule_fires_runs_seen_by_list_runs(client, packages):
    """A one-second periodic schedule fires; its runs carry the schedule's id, its experiment
    and their slot time, and run the pinned pipeline to completion. Disabled, it stops."""
    experiment = client.create_experiment(unique_name('fired'))
    pipeline = client.upload_pipeline(str(packages.hello_yaml), pipeline_name=unique_name('fired-source'))
    version_id = first_version_id(client, pipeline.pipeline_id)
    created = client.create_recurring_run(
        experiment.experiment_id, unique_name('every-second'), interval_second=1, max_concurrency=1,
        pipeline_id=pipeline.pipeline_id, version_id=version_id)
    deadline = time.time() + 60
    runs = []
    while time.time() < deadline:
        runs = client.list_runs(experiment_id=experiment.experiment_id, page_size=50).runs or []
        if runs:
            break
        time.sleep(0.25)
    assert runs, 'the schedule fired no run within 60 s'
    run = runs[0]
    assert run.recurring_run_id == created.recurring_run_id
    assert run.pipeline_version_reference.pipeline_version_id == version_id
    assert run.scheduled_at is not None and run.scheduled_at.year >= 2024
    assert wait_for_completion(client, run.run_id).state == 'SUCCEEDED'

    client.disable_recurring_run(created.recurring_run_id)
    time.sleep(0.5)  # let a tick that was already firing finish before counting
    count = len(client.list_runs(experiment_id=experiment.experiment_id, page_size=100).runs or [])
    time.sleep(2.5)
    after = client.list_runs(experiment_id=experiment.experiment_id, page_size=100).runs or []
    assert len(after) == count, 'a disabled schedule fires nothing'
    slots = sorted(r.scheduled_at for r in after)
    assert len(set(slots)) == len(slots), 'no slot fired twice'
    client.delete_recurring_run(created.recurring_run_id)
