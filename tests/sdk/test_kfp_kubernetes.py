"""kfp-kubernetes platform configuration on weir's local driver (kfp_kubernetes_pipelines.py):
secrets and config maps from weir's own store as environment variables, pod labels and
annotations through field paths, deadlines enforced, CreatePVC/DeletePVC, scheduling hints
accepted, and what a local process cannot have (a volume at a path) refused when the run is
created. KFP's driver is the yardstick (`extendPodSpecPatch`, `createPVC`, `deletePVC` in
backend/src/v2/driver/k8s.go).
"""
import json
import os
import subprocess

import kfp_server_api
import pytest
import requests

import kfp_kubernetes_pipelines as kp
from conftest import compile_pipeline
from helpers import assert_api_error, output_parameter, unique_name
from test_execution import RunBatch, assert_succeeded

SECRET_VALUE = 'psw-' + unique_name('v')


def put(server_url: str, kind: str, name: str, data: dict) -> dict:
    response = requests.post(f'{server_url}/apis/weir/v1/{kind}', json={'name': name, 'data': data}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope='module')
def names(weir_server) -> dict:
    names = {key: unique_name(key) for key in ('user', 'out', 'config', 'missing')}
    put(weir_server.url, 'secrets', names['user'], {'username': 'user1'})
    put(weir_server.url, 'secrets', names['out'], {'password': SECRET_VALUE})
    put(weir_server.url, 'configmaps', names['config'], {'setting': 'on'})
    return names


@pytest.fixture(scope='module')
def runs(client, weir_server, names) -> RunBatch:
    batch = RunBatch(client, weir_server, unique_name('k8s'))
    batch.submit('secrets', kp.secrets_pipeline, {
        'from_input': names['user'], 'from_output': names['out'], 'config_map': names['config'],
        'missing': names['missing']})
    batch.submit('missing-secret', kp.missing_secret_pipeline, {'name': names['missing']})
    batch.submit('pod-metadata', kp.pod_metadata_pipeline)
    batch.submit('timeout', kp.timeout_pipeline)
    batch.submit('pvc', kp.pvc_pipeline)
    return batch


def test_secrets_and_config_maps_as_environment(runs, weir_server):
    done = runs.result('secrets')
    assert_succeeded(done)
    seen = output_parameter(done.tasks.one('read-env'))
    assert seen == {'USER_NAME': 'user1', 'PASSWORD_OUT': SECRET_VALUE, 'SETTING': 'on', 'OPTIONAL': None,
                    'NOT_SET': None}, seen
    # Inside a loop the name comes through the loop's inputs (KFP's `parallel_for_secret`).
    looped = [output_parameter(t) for t in done.tasks.named('read-env-2')]
    assert looped == [{'USER_NAME': 'user1'}] * 2, looped
    # The secret's value is neither logged nor shown by the API.
    assert SECRET_VALUE not in weir_server.log_path.read_text()
    shown = requests.get(f'{weir_server.url}/apis/weir/v1/secrets', timeout=10).json()
    assert SECRET_VALUE not in json.dumps(shown)
    assert shown['items'] and all('data' not in s for s in shown['items']), shown


def test_a_missing_secret_fails_the_step_clearly(runs):
    done = runs.result('missing-secret')
    assert done.run.state == 'FAILED', done.run.state
    task = done.tasks.one('read-env')
    assert 'does not exist' in task['error']['message'] and 'secret' in task['error']['message'], task


def test_pod_metadata_and_field_paths(runs, weir_server):
    done = runs.result('pod-metadata')
    assert_succeeded(done)
    seen = output_parameter(done.tasks.one('read-env'))
    assert seen['ANNOTATION'] == 'annotation-1' and seen['LABEL'] == 'label-1', seen
    # Kubernetes gives a missing label's field path as an empty string, not an unset variable.
    assert seen['NO_LABEL'] == '', seen
    assert seen['POD_NAME'].startswith('weir-k8s-pod-metadata-'), seen
    logs = requests.get(f'{weir_server.url}/apis/weir/v1/runs/{done.run_id}/logs', timeout=10).text
    assert 'task-label=label-1' in logs and 'task-annotation=annotation-1' in logs, logs


def test_a_deadline_stops_the_step(runs):
    done = runs.result('timeout')
    assert done.run.state == 'FAILED', done.run.state
    task = done.tasks.one('sleep-for')
    assert 'deadline of 2 s' in task['error']['message'], task
    seconds = task_time(task, 'end_time') - task_time(task, 'start_time')
    assert seconds < 30, task


def task_time(task: dict, key: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(task[key].replace('Z', '+00:00')).timestamp()


def test_create_and_delete_pvc(runs):
    done = runs.result('pvc')
    assert_succeeded(done)
    name = output_parameter(done.tasks.one('createpvc'), 'name')
    assert name.endswith('-my-pvc') and len(name) > len('-my-pvc'), name
    assert output_parameter(done.tasks.one('emit')) == name
    assert done.tasks.one('deletepvc')['state'] == 'SUCCEEDED'


def test_volumes_at_paths_are_the_steps_alone(client, weir_server, names, tmp_path):
    """With mount namespaces (weir as root), a PVC, an empty dir and a secret are mounted where
    the steps ask, for them alone: the host's folders stay empty."""
    mount = tmp_path / 'mnt'
    pipeline = kp.make_volumes_pipeline(str(mount))
    if os.geteuid() != 0:
        package = compile_pipeline(pipeline, tmp_path / 'volumes.yaml')
        with pytest.raises(kfp_server_api.ApiException) as refused:
            client.create_run_from_pipeline_package(str(package), arguments={'secret': names['out']},
                                                    run_name=unique_name('volumes'))
        assert 'cannot mount a volume' in assert_api_error(refused.value, 400)['message']
        return
    result = client.create_run_from_pipeline_func(pipeline, arguments={'secret': names['out']},
                                                  run_name=unique_name('volumes'))
    from test_execution import finish
    done = finish(client, weir_server, result.run_id)
    assert_succeeded(done)
    seen = output_parameter(done.tasks.one('read-at'))
    assert seen == {f'{mount}/pvc/shared.txt': 'kept on the PVC', f'{mount}/scratch/x': None,
                    f'{mount}/secret/password': SECRET_VALUE}, seen
    leaked = [p for p in mount.rglob('*') if p.is_file()]
    assert not leaked, f'the host sees what the steps wrote: {leaked}'
    assert done.tasks.one('deletepvc')['state'] == 'SUCCEEDED'


def test_what_needs_a_cluster_is_refused_at_creation(client, weir_server, tmp_path):
    package = compile_pipeline(kp.ephemeral_pipeline, tmp_path / 'ephemeral.yaml')
    experiment = client.create_experiment(unique_name('mount'))
    before = client.list_runs(experiment_id=experiment.experiment_id, page_size=100).total_size or 0
    with pytest.raises(kfp_server_api.ApiException) as refused:
        client.create_run_from_pipeline_package(str(package), arguments={}, run_name=unique_name('mount'),
                                                experiment_name=experiment.display_name)
    body = assert_api_error(refused.value, 400)
    assert 'ephemeral volume' in body['message'] and 'exec-emit' in body['message'], body
    after = client.list_runs(experiment_id=experiment.experiment_id, page_size=100).total_size or 0
    assert after == before, 'no run is created'


def test_secret_api_and_cli(weir_server, weir_bin):
    name = unique_name('cli')
    env = {**os.environ, 'WEIR_HOST': weir_server.url}
    created = subprocess.run([str(weir_bin), 'secret', 'create', name, '--from-literal', 'password=hunter2',
                              '--from-literal', 'user=me'], capture_output=True, text=True, env=env, timeout=30)
    assert created.returncode == 0, created.stderr
    assert 'hunter2' not in created.stdout
    listed = subprocess.run([str(weir_bin), 'secret', 'list'], capture_output=True, text=True, env=env, timeout=30)
    line = [l for l in listed.stdout.splitlines() if l.startswith(name)]
    assert line and 'password' in line[0] and 'hunter2' not in listed.stdout, listed.stdout
    again = subprocess.run([str(weir_bin), 'secret', 'create', name, '--from-literal', 'a=b'],
                           capture_output=True, text=True, env=env, timeout=30)
    assert again.returncode != 0 and 'already exists' in again.stderr, again.stderr
    shown = requests.get(f'{weir_server.url}/apis/weir/v1/secrets/{name}', timeout=10).json()
    assert shown['keys'] == ['password', 'user'] and 'data' not in shown, shown
    bad = requests.post(f'{weir_server.url}/apis/weir/v1/secrets', json={'name': 'Bad Name', 'data': {}}, timeout=10)
    assert bad.status_code == 400 and 'not valid' in bad.json()['message'], bad.text
    deleted = subprocess.run([str(weir_bin), 'secret', 'delete', name], capture_output=True, text=True, env=env,
                             timeout=30)
    assert deleted.returncode == 0, deleted.stderr
    gone = requests.get(f'{weir_server.url}/apis/weir/v1/secrets/{name}', timeout=10)
    assert gone.status_code == 404, gone.text
    # Config maps show their values.
    put(weir_server.url, 'configmaps', name, {'setting': 'visible'})
    assert requests.get(f'{weir_server.url}/apis/weir/v1/configmaps/{name}', timeout=10).json()['data'] == {
        'setting': 'visible'}
