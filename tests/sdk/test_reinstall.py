"""Reinstalling weir on existing storage brings everything back (KFP's promise: the cluster
is disposable, the database and the object store are the installation).

Per backend pair, the module fixture `reinstall`:

1. starts weir A (`--name dep-a`) on fresh stores and, through kfp.Client, uploads two
   pipelines with two versions each, creates experiments, runs a small pipeline (a Dataset
   artifact, a step printing a known line) from a package and from a pipeline version,
   archives a run and an experiment (which archives its run), and creates a cron and a
   periodic recurring run (the periodic one disabled);
2. snapshots everything through the KFP API and weir's task, artifact and log endpoints;
3. stops A (SIGTERM) and deletes everything of A except its two stores: for SQLite everything
   in A's data dir but `weir.db*` and `artifacts/`, for MariaDB/PostgreSQL + S3 the whole data
   dir;
4. tries `weir server` with A's database and an empty artifact store, and with an empty
   database and A's artifact store (both must refuse and change nothing);
5. starts weir B (`--name dep-b`) with a new data dir on A's stores and snapshots again.

The tests compare the two snapshots whole, check the refusals and the storage identity
(`weir storage status --output json`), and run a new pipeline on B.
"""
import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import kfp
import pytest
import requests
from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from conftest import (BACKENDS, Stores, WeirServer, compile_pipeline, free_port,
                      provision_stores, start_weir, stop_process, weir_server_argv)
from helpers import (output_artifact, output_parameter, task_logs, unique_name,
                     wait_for_completion, walk_pages, weir_tasks)

MARKER = 'reinstall-marker'  # printed by the first step; the token follows it
CRON = '0 0 0 1 1 *'  # 6-field robfig/cron: midnight on January 1st (never fires in a test)
INTERVAL_S = 7200
REFUSAL_TIMEOUT_S = 30.0
LATER_S = 2.0


# --------------------------------------------------------------------------------------------
# The pipeline that runs on both installations


@dsl.component(base_image='python:3.11')
def write_rows(rows: int, token: str, data: Output[Dataset]) -> int:
    print(f'reinstall-marker {token}', flush=True)
    with open(data.path, 'w') as f:
        for i in range(rows):
            f.write(f'{token},{i}\n')
    data.metadata['rows'] = rows
    return rows


@dsl.component(base_image='python:3.11')
def read_rows(data: Input[Dataset], expected: int) -> str:
    with open(data.path) as f:
        n = len(f.readlines())
    return f'read {n} of {expected}'


@dsl.pipeline(name='weir-reinstall-small')
def small_pipeline(rows: int = 2, token: str = 'none') -> str:
    made = write_rows(rows=rows, token=token)
    return read_rows(data=made.outputs['data'], expected=made.outputs['Output']).output


def rows_bytes(token: str, rows: int) -> bytes:
    return ''.join(f'{token},{i}\n' for i in range(rows)).encode()


# --------------------------------------------------------------------------------------------
# Snapshots


def all_items(list_page, items_attr: str, **kwargs) -> List[Any]:
    return [item for page in walk_pages(list_page, items_attr, page_size=100, **kwargs)
            for item in page]


def as_dicts(items: List[Any]) -> List[Dict[str, Any]]:
    return [item.to_dict() for item in items]


def weir_json(url: str, path: str) -> Any:
    response = requests.get(f'{url}/apis/weir/v1/{path}', timeout=30)
    assert response.status_code == 200, (
        f'GET /apis/weir/v1/{path} answered {response.status_code}: {response.text[:500]}')
    return response.json()


def artifact_ids_of(tasks: List[Dict[str, Any]]) -> List[str]:
    ids = set()
    for task in tasks:
        for side in ('inputs', 'outputs'):
            for artifacts in ((task.get(side) or {}).get('artifacts') or {}).values():
                ids.update(a['artifact_id'] for a in artifacts)
    return sorted(ids)


def snapshot(client: kfp.Client, url: str) -> Dict[str, Any]:
    """Everything an installation shows, through the KFP API and weir's read endpoints."""
    snap: Dict[str, Any] = {}
    pipelines_ = all_items(client.list_pipelines, 'pipelines')
    snap['pipelines'] = as_dicts(pipelines_)
    snap['pipeline_versions'] = {
        p.pipeline_id: as_dicts(all_items(client.list_pipeline_versions, 'pipeline_versions',
                                          pipeline_id=p.pipeline_id))
        for p in pipelines_}
    snap['pipeline_version_get'] = {
        v['pipeline_version_id']: client.get_pipeline_version(
            pipeline_id, v['pipeline_version_id']).to_dict()
        for pipeline_id, versions in snap['pipeline_versions'].items() for v in versions}

    experiments = all_items(client.list_experiments, 'experiments')
    snap['experiments'] = as_dicts(experiments)
    snap['experiment_get'] = {e.experiment_id: client.get_experiment(
        experiment_id=e.experiment_id).to_dict() for e in experiments}

    runs = all_items(client.list_runs, 'runs')
    snap['runs'] = as_dicts(runs)
    snap['runs_by_experiment'] = {
        e.experiment_id: as_dicts(all_items(client.list_runs, 'runs',
                                            experiment_id=e.experiment_id))
        for e in experiments}
    snap['run_get'] = {r.run_id: client.get_run(r.run_id).to_dict() for r in runs}

    recurring = all_items(client.list_recurring_runs, 'recurring_runs')
    snap['recurring_runs'] = as_dicts(recurring)
    snap['recurring_run_get'] = {r.recurring_run_id: client.get_recurring_run(
        r.recurring_run_id).to_dict() for r in recurring}

    snap['tasks'] = {r.run_id: weir_tasks(url, r.run_id).tasks for r in runs}
    snap['artifacts'] = {}
    snap['artifact_sha256'] = {}
    for tasks in snap['tasks'].values():
        for artifact_id in artifact_ids_of(tasks):
            snap['artifacts'][artifact_id] = weir_json(url, f'artifacts/{artifact_id}')
            response = requests.get(f'{url}/apis/weir/v1/artifacts/{artifact_id}/content',
                                    timeout=30)
            assert response.status_code == 200, (
                f'content of artifact {artifact_id}: HTTP {response.status_code} '
                f'{response.text[:300]}')
            snap['artifact_sha256'][artifact_id] = hashlib.sha256(response.content).hexdigest()
    snap['logs'] = {}
    for run in runs:
        response = requests.get(f'{url}/apis/weir/v1/runs/{run.run_id}/logs', timeout=30)
        assert response.status_code == 200, (
            f'logs of run {run.run_id}: HTTP {response.status_code} {response.text[:300]}')
        snap['logs'][run.run_id] = response.text
    return snap


def differences(a: Any, b: Any, path: str = '') -> List[str]:
    """Where two JSON-like values differ, as readable paths (empty when equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f'{path}.{k}: only in A ({a[k]!r:.200})' for k in a if k not in b]
        out += [f'{path}.{k}: only in B ({b[k]!r:.200})' for k in b if k not in a]
        for key in a:
            if key in b:
                out += differences(a[key], b[key], f'{path}.{key}')
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f'{path}: {len(a)} items in A, {len(b)} in B: A={a!r:.600} B={b!r:.600}']
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += differences(x, y, f'{path}[{i}]')
        return out
    return [] if a == b else [f'{path}: A={a!r:.300} B={b!r:.300}']


def assert_same(a: Any, b: Any, what: str) -> None:
    diff = differences(a, b)
    assert not diff, (f'{what} differ after reinstall ({len(diff)} differences):\n  '
                      + '\n  '.join(diff[:40]))


# --------------------------------------------------------------------------------------------
# The stores seen from outside weir


def storage_status(weir_bin: Path, metadata_url: str, artifacts_url: str, env: Dict[str, str],
                   cwd: Path) -> Dict[str, Any]:
    """`weir storage status --output json` on a pair of stores."""
    argv = [str(weir_bin), 'storage', 'status', '--metadata', metadata_url,
            '--artifacts', artifacts_url, '--output', 'json']
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=cwd,
                            env={**os.environ, **env})
    assert result.returncode == 0, (
        f'{" ".join(argv)} exited {result.returncode}:\n{result.stderr}{result.stdout}')
    try:
        return json.loads(result.stdout)
    except ValueError as error:
        raise AssertionError(f'storage status printed no JSON: {result.stdout!r}') from error


def object_manifest(stores: Stores, artifacts_url: str) -> Dict[str, str]:
    """sha256 of every object under an artifact store URL (file:// or s3://)."""
    manifest: Dict[str, str] = {}
    if artifacts_url.startswith('file://'):
        root = Path(artifacts_url[len('file://'):])
        if root.exists():
            for path in sorted(root.rglob('*')):
                if path.is_file():
                    manifest[str(path.relative_to(root))] = \
                        hashlib.sha256(path.read_bytes()).hexdigest()
        return manifest
    bucket, _, prefix = artifacts_url[len('s3://'):].partition('/')
    s3 = stores.s3_client()
    for page in s3.get_paginator('list_objects_v2').paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get('Contents', []):
            body = s3.get_object(Bucket=bucket, Key=obj['Key'])['Body'].read()
            manifest[obj['Key']] = hashlib.sha256(body).hexdigest()
    return manifest


@dataclass
class Refusal:
    """What `weir server` did when pointed at a pair of stores that do not belong together."""
    argv: List[str]
    returncode: Optional[int]  # None: it was still running after REFUSAL_TIMEOUT_S
    output: str
    metadata_url: str
    artifacts_url: str
    status_after: Dict[str, Any] = field(default_factory=dict)  # storage status of that pair
    objects_after: Dict[str, str] = field(default_factory=dict)  # of the empty artifact store

    def describe(self) -> str:
        return f'{" ".join(self.argv)}\nexit code {self.returncode}\noutput:\n{self.output}'


def try_server(weir_bin: Path, data_dir: Path, metadata_url: str, artifacts_url: str,
               env: Dict[str, str], name: str) -> Refusal:
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = weir_server_argv(weir_bin, free_port(), data_dir, metadata_url, artifacts_url, name)
    try:
        result = subprocess.run(argv, capture_output=True, text=True, cwd=data_dir,
                                timeout=REFUSAL_TIMEOUT_S, env={**os.environ, **env})
        return Refusal(argv, result.returncode, result.stdout + result.stderr, metadata_url,
                       artifacts_url)
    except subprocess.TimeoutExpired as error:  # subprocess.run has killed it
        output = (error.stdout or b'') + (error.stderr or b'')
        if isinstance(output, bytes):
            output = output.decode(errors='replace')
        return Refusal(argv, None, output, metadata_url, artifacts_url)


# --------------------------------------------------------------------------------------------
# The scenario


@dataclass
class Reinstall:
    backend: str
    stores: Stores
    root: Path
    weir_bin: Path
    weir_servers: List[WeirServer] = field(default_factory=list)  # log tails on failure
    ids: Dict[str, Any] = field(default_factory=dict)
    token: str = ''
    a_exit_code: Optional[int] = None
    status_a: Dict[str, Any] = field(default_factory=dict)  # A running
    status_removed: Dict[str, Any] = field(default_factory=dict)  # A stopped and removed
    status_refused: Dict[str, Any] = field(default_factory=dict)  # after both refusals
    status_b: Dict[str, Any] = field(default_factory=dict)  # B running
    objects_removed: Dict[str, str] = field(default_factory=dict)
    objects_refused: Dict[str, str] = field(default_factory=dict)
    a_dir_left: List[str] = field(default_factory=list)
    foreign_artifacts: Optional[Refusal] = None
    empty_database: Optional[Refusal] = None
    snap_a: Dict[str, Any] = field(default_factory=dict)
    snap_b: Dict[str, Any] = field(default_factory=dict)
    snap_b_later: Dict[str, Any] = field(default_factory=dict)  # B left alone for a moment
    server_b: Optional[WeirServer] = None
    client_b: Optional[kfp.Client] = None

    def status(self, metadata_url: Optional[str] = None,
               artifacts_url: Optional[str] = None) -> Dict[str, Any]:
        scratch = self.root / 'status-cwd'  # `weir storage status` may leave folders in cwd
        scratch.mkdir(exist_ok=True)
        return storage_status(self.weir_bin, metadata_url or self.stores.metadata_url,
                              artifacts_url or self.stores.artifacts_url, self.stores.env,
                              scratch)


@pytest.fixture(scope='module')
def small_package(tmp_path_factory) -> Path:
    return compile_pipeline(small_pipeline, tmp_path_factory.mktemp('reinstall') / 'small.yaml')


def populate(client: kfp.Client, small: Path, other: Path, other2: Path,
             token: str) -> Dict[str, Any]:
    """Step 1: what installation A holds when it is deleted."""
    ids: Dict[str, Any] = {}
    # Two pipelines with two versions each.
    p1 = client.upload_pipeline(str(small), pipeline_name=unique_name('reinstall-small'),
                                description='the pipeline that runs')
    p1v2 = client.upload_pipeline_version(str(small), unique_name('small-v2'),
                                          pipeline_id=p1.pipeline_id, description='second')
    p2 = client.upload_pipeline(str(other), pipeline_name=unique_name('reinstall-other'))
    client.upload_pipeline_version(str(other2), unique_name('other-v2'),
                                   pipeline_id=p2.pipeline_id)
    ids['pipelines'] = sorted([p1.pipeline_id, p2.pipeline_id])
    ids['run_version'] = (p1.pipeline_id, p1v2.pipeline_version_id)

    # Two experiments (the second will be archived with its run).
    keep = client.create_experiment(unique_name('reinstall-keep'), description='stays')
    gone = client.create_experiment(unique_name('reinstall-archived'))
    ids['experiment_keep'] = keep.experiment_id
    ids['experiment_archived'] = gone.experiment_id

    # Runs: from a package (stays available), from a pipeline version (archived by hand),
    # from a package in the experiment that gets archived.
    from_package = client.create_run_from_pipeline_package(
        str(small), arguments={'rows': 3, 'token': token}, run_name=unique_name('pkg'),
        experiment_id=keep.experiment_id)
    from_version = client.run_pipeline(
        keep.experiment_id, unique_name('version'), params={'rows': 2, 'token': token},
        pipeline_id=p1.pipeline_id, version_id=p1v2.pipeline_version_id)
    in_archived = client.create_run_from_pipeline_package(
        str(small), arguments={'rows': 1, 'token': token}, run_name=unique_name('in-arch'),
        experiment_id=gone.experiment_id)
    ids['run_package'] = from_package.run_id
    ids['run_version_run'] = from_version.run_id
    ids['run_in_archived'] = in_archived.run_id
    ids['rows'] = {from_package.run_id: 3, from_version.run_id: 2, in_archived.run_id: 1}
    for run_id in ids['rows']:
        wait_for_completion(client, run_id)

    client.archive_run(from_version.run_id)
    client.archive_experiment(gone.experiment_id)

    # Recurring runs: cron (enabled, from the pipeline version), periodic (disabled, package).
    cron = client.create_recurring_run(
        keep.experiment_id, unique_name('cron'), description='yearly', cron_expression=CRON,
        max_concurrency=2, no_catchup=True, params={'rows': 4, 'token': token},
        pipeline_id=p1.pipeline_id, version_id=p1v2.pipeline_version_id)
    periodic = client.create_recurring_run(
        keep.experiment_id, unique_name('periodic'), interval_second=INTERVAL_S,
        enabled=False, pipeline_package_path=str(small), params={'rows': 5})
    ids['recurring_cron'] = cron.recurring_run_id
    ids['recurring_periodic'] = periodic.recurring_run_id
    return ids


def remove_installation(backend: str, a_dir: Path) -> List[str]:
    """Step 3: delete everything of A except its stores; returns what is left in A_DIR."""
    if backend != 'sqlite':
        shutil.rmtree(a_dir)
        return []
    for entry in a_dir.iterdir():
        if entry.name.startswith('weir.db') or entry.name == 'artifacts':
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    return sorted(entry.name for entry in a_dir.iterdir())


@pytest.fixture(scope='module', params=BACKENDS)
def reinstall(request, weir_bin, tmp_path_factory, small_package, packages
              ) -> Iterator[Reinstall]:
    backend = request.param
    root = tmp_path_factory.mktemp(f'reinstall-{backend}')
    a_dir, b_dir, logs = root / 'a', root / 'b', root / 'logs'
    for folder in (a_dir, b_dir, logs):
        folder.mkdir()
    stores = provision_stores(request, backend, a_dir)
    state = Reinstall(backend, stores, root, weir_bin, token=unique_name('token'))
    try:
        # 1-2: installation A, used, then snapshotted.
        server_a = start_weir(weir_bin, backend, a_dir, stores.metadata_url,
                              stores.artifacts_url, stores.env, name='dep-a',
                              log_path=logs / 'weir-a.log')
        state.weir_servers.append(server_a)
        client_a = kfp.Client(host=server_a.url)
        state.ids = populate(client_a, small_package, packages.hello_yaml,
                             packages.params_yaml, state.token)
        state.snap_a = snapshot(client_a, server_a.url)
        state.status_a = state.status()

        # 3: A is deleted; only its stores remain.
        stop_process(server_a.process)
        state.a_exit_code = server_a.process.returncode
        state.a_dir_left = remove_installation(backend, a_dir)
        state.status_removed = state.status()
        state.objects_removed = object_manifest(stores, stores.artifacts_url)

        # 5: pairs of stores that do not belong together are refused.
        empty_artifacts = stores.new_artifacts_url(root / 'empty-artifacts')
        state.foreign_artifacts = try_server(weir_bin, root / 'try-foreign', stores.metadata_url,
                                             empty_artifacts, stores.env, 'dep-foreign')
        empty_metadata = stores.new_metadata_url(root / 'empty-metadata')
        state.empty_database = try_server(weir_bin, root / 'try-empty-db', empty_metadata,
                                          stores.artifacts_url, stores.env, 'dep-empty-db')
        for refusal in (state.foreign_artifacts, state.empty_database):
            refusal.status_after = state.status(refusal.metadata_url, refusal.artifacts_url)
        state.foreign_artifacts.objects_after = object_manifest(stores, empty_artifacts)
        state.status_refused = state.status()
        state.objects_refused = object_manifest(stores, stores.artifacts_url)

        # 4: installation B on A's stores.
        state.server_b = start_weir(weir_bin, backend, b_dir, stores.metadata_url,
                                    stores.artifacts_url, stores.env, name='dep-b',
                                    log_path=logs / 'weir-b.log')
        state.weir_servers.append(state.server_b)
        state.client_b = kfp.Client(host=state.server_b.url)
        state.snap_b = snapshot(state.client_b, state.server_b.url)
        state.status_b = state.status()
        # Whatever B does by itself after starting (recovery, schedulers) must not change
        # anything either.
        time.sleep(LATER_S)
        state.snap_b_later = snapshot(state.client_b, state.server_b.url)
        yield state
    finally:
        for server in state.weir_servers:
            stop_process(server.process)
        stores.cleanup()


# --------------------------------------------------------------------------------------------
# Installation A was what the scenario says (so that equal snapshots mean something)


def test_installation_a_as_built(reinstall):
    snap, ids = reinstall.snap_a, reinstall.ids
    assert sorted(p['pipeline_id'] for p in snap['pipelines']) == ids['pipelines']
    for pipeline_id in ids['pipelines']:
        assert len(snap['pipeline_versions'][pipeline_id]) == 2, snap['pipeline_versions']

    experiments = snap['experiment_get']
    assert experiments[ids['experiment_keep']]['storage_state'] == 'AVAILABLE'
    assert experiments[ids['experiment_archived']]['storage_state'] == 'ARCHIVED'

    runs = snap['run_get']
    assert set(runs) == set(ids['rows']), f'runs listed: {sorted(runs)}'
    for run_id, rows in ids['rows'].items():
        run = runs[run_id]
        assert run['state'] == 'SUCCEEDED', (run_id, run['state'], run.get('error'))
        assert run['finished_at'] is not None and run['created_at'] is not None
        assert run['runtime_config']['parameters'] == {'rows': rows, 'token': reinstall.token}
        assert [h['state'] for h in run['state_history']][-1] == 'SUCCEEDED'
        assert run['run_details']['task_details'], run_id
        tasks = {t['name']: t for t in snap['tasks'][run_id]}
        data = output_artifact(tasks['write-rows'], 'data')
        assert snap['artifact_sha256'][data['artifact_id']] == \
            hashlib.sha256(rows_bytes(reinstall.token, rows)).hexdigest()
        assert output_parameter(tasks['read-rows']) == f'read {rows} of {rows}'
        assert f'{MARKER} {reinstall.token}' in snap['logs'][run_id]
    assert runs[ids['run_package']]['storage_state'] == 'AVAILABLE'
    assert runs[ids['run_version_run']]['storage_state'] == 'ARCHIVED'
    assert runs[ids['run_in_archived']]['storage_state'] == 'ARCHIVED'
    assert runs[ids['run_version_run']]['pipeline_version_reference'] == {
        'pipeline_id': ids['run_version'][0], 'pipeline_version_id': ids['run_version'][1]}

    recurring = snap['recurring_run_get']
    cron, periodic = recurring[ids['recurring_cron']], recurring[ids['recurring_periodic']]
    assert cron['status'] == 'ENABLED' and cron['trigger']['cron_schedule']['cron'] == CRON
    assert periodic['status'] == 'DISABLED'
    assert int(periodic['trigger']['periodic_schedule']['interval_second']) == INTERVAL_S
    assert sorted(r['recurring_run_id'] for r in snap['recurring_runs']) == \
        sorted([ids['recurring_cron'], ids['recurring_periodic']])


def test_installation_a_stopped_cleanly(reinstall):
    assert reinstall.a_exit_code == 0, (
        f'weir A exited with {reinstall.a_exit_code} on SIGTERM (negative: killed by signal)')
    left = {'sqlite': ['artifacts', 'weir.db'], 'mariadb': [], 'postgres': []}[reinstall.backend]
    assert [n for n in reinstall.a_dir_left if not n.startswith('weir.db-')] == left
    # A stopped server is no longer listed as running on the stores.
    assert reinstall.status_removed.get('servers', []) == [], reinstall.status_removed


# --------------------------------------------------------------------------------------------
# Storage identity (weir storage status)


def stable(status: Dict[str, Any]) -> Dict[str, Any]:
    """A storage status without what describes the servers running on the stores (the
    `servers` list and the `server_leases` row count), which differ while a weir runs."""
    copy = json.loads(json.dumps(status))
    copy.pop('servers', None)
    (copy['metadata'].get('rows') or {}).pop('server_leases', None)
    return copy


def test_storage_identity_survives_reinstall(reinstall):
    before = reinstall.status_a  # A running, everything made
    identity = before['metadata']['identity']
    assert identity, before
    assert before['artifacts']['identity'] == identity, before
    assert before['metadata']['schema_version'] == before['metadata']['head_version'], before
    assert before['metadata']['pending_migrations'] == [], before
    assert before.get('paired', True) is True, before
    # The same stores, seen with A removed and with B running: identity, schema, contents.
    for when, status in (('A removed', reinstall.status_removed),
                         ('B running', reinstall.status_b)):
        assert status['metadata']['identity'] == identity, (when, status)
        assert status['artifacts']['identity'] == identity, (when, status)
        assert_same(stable(before), stable(status), f'storage status ({when})')


# --------------------------------------------------------------------------------------------
# Everything is back


def test_pipelines_and_versions_identical(reinstall):
    for key in ('pipelines', 'pipeline_versions', 'pipeline_version_get'):
        assert_same(reinstall.snap_a[key], reinstall.snap_b[key], key)


def test_experiments_identical(reinstall):
    for key in ('experiments', 'experiment_get'):
        assert_same(reinstall.snap_a[key], reinstall.snap_b[key], key)


def test_runs_identical(reinstall):
    for key in ('runs', 'runs_by_experiment', 'run_get'):
        assert_same(reinstall.snap_a[key], reinstall.snap_b[key], key)


def test_recurring_runs_identical(reinstall):
    for key in ('recurring_runs', 'recurring_run_get'):
        assert_same(reinstall.snap_a[key], reinstall.snap_b[key], key)


def test_tasks_identical(reinstall):
    assert_same(reinstall.snap_a['tasks'], reinstall.snap_b['tasks'], 'tasks')


def test_artifacts_byte_identical(reinstall):
    assert reinstall.snap_a['artifact_sha256'], 'installation A had no artifacts'
    assert_same(reinstall.snap_a['artifacts'], reinstall.snap_b['artifacts'], 'artifacts')
    assert_same(reinstall.snap_a['artifact_sha256'], reinstall.snap_b['artifact_sha256'],
                'artifact contents (sha256)')


def test_old_logs_readable(reinstall):
    assert_same(reinstall.snap_a['logs'], reinstall.snap_b['logs'], 'run logs')
    for run_id in reinstall.ids['rows']:
        assert f'{MARKER} {reinstall.token}' in reinstall.snap_b['logs'][run_id], run_id
        # Per step too, by name (the work folder where A ran the steps is gone).
        text = task_logs(reinstall.server_b.url, run_id, 'write-rows')
        assert f'{MARKER} {reinstall.token}' in text, (run_id, text)


def test_still_identical_a_moment_later(reinstall):
    assert_same(reinstall.snap_a, reinstall.snap_b_later, f'snapshots ({LATER_S:.0f}s later)')


def test_archived_stay_archived(reinstall):
    ids, client = reinstall.ids, reinstall.client_b
    assert client.get_experiment(
        experiment_id=ids['experiment_archived']).storage_state == 'ARCHIVED'
    assert client.get_experiment(experiment_id=ids['experiment_keep']).storage_state == \
        'AVAILABLE'
    assert client.get_run(ids['run_version_run']).storage_state == 'ARCHIVED'
    assert client.get_run(ids['run_in_archived']).storage_state == 'ARCHIVED'
    assert client.get_run(ids['run_package']).storage_state == 'AVAILABLE'
    assert client.get_recurring_run(ids['recurring_periodic']).status == 'DISABLED'
    assert client.get_recurring_run(ids['recurring_cron']).status == 'ENABLED'


# --------------------------------------------------------------------------------------------
# Stores that do not belong together are refused


def assert_refused(refusal: Refusal) -> None:
    assert refusal.returncode is not None, (
        f'weir server was still running after {REFUSAL_TIMEOUT_S:.0f}s:\n{refusal.describe()}')
    assert refusal.returncode != 0, f'weir server started:\n{refusal.describe()}'
    assert 'refus' in refusal.output.lower(), refusal.describe()


def test_refuses_used_database_with_empty_artifact_store(reinstall):
    refusal = reinstall.foreign_artifacts
    assert_refused(refusal)
    identity = reinstall.status_a['metadata']['identity']
    assert 'identity' in refusal.output.lower(), refusal.describe()
    assert refusal.artifacts_url in refusal.output, refusal.describe()
    assert identity in refusal.output, refusal.describe()
    # Nothing changed: the empty store is still empty and unclaimed, A's stores untouched.
    assert refusal.objects_after == {}, refusal.objects_after
    assert refusal.status_after['artifacts']['identity'] is None, refusal.status_after
    assert_same(reinstall.status_removed['metadata'], refusal.status_after['metadata'],
                'metadata store status (after the refusal)')
    assert_same(reinstall.status_removed, reinstall.status_refused, 'storage status')
    assert reinstall.objects_refused == reinstall.objects_removed


def test_refuses_empty_database_with_used_artifact_store(reinstall):
    refusal = reinstall.empty_database
    assert_refused(refusal)
    identity = reinstall.status_a['metadata']['identity']
    assert identity in refusal.output, refusal.describe()
    assert 'empty' in refusal.output.lower(), refusal.describe()
    # Nothing changed: no schema in the new database, A's artifact store untouched.
    assert refusal.status_after['metadata']['identity'] is None, refusal.status_after
    assert refusal.status_after['metadata']['schema_version'] is None, refusal.status_after
    assert_same(reinstall.status_removed['artifacts'], refusal.status_after['artifacts'],
                'artifact store status (after the refusal)')
    assert_same(reinstall.status_removed, reinstall.status_refused, 'storage status')
    assert reinstall.objects_refused == reinstall.objects_removed


# --------------------------------------------------------------------------------------------
# The new installation works


def test_new_run_on_reinstalled(reinstall):
    ids, client, url = reinstall.ids, reinstall.client_b, reinstall.server_b.url
    token = unique_name('after')
    pipeline_id, version_id = ids['run_version']
    created = client.run_pipeline(ids['experiment_keep'], unique_name('on-b'),
                                  params={'rows': 4, 'token': token},
                                  pipeline_id=pipeline_id, version_id=version_id)
    run = wait_for_completion(client, created.run_id)
    tasks = weir_tasks(url, created.run_id)
    assert run.state == 'SUCCEEDED', (run.error, tasks)
    data = output_artifact(tasks.one('write-rows'), 'data')
    content = requests.get(f'{url}/apis/weir/v1/artifacts/{data["artifact_id"]}/content',
                           timeout=30)
    assert content.status_code == 200 and content.content == rows_bytes(token, 4), content.text
    assert output_parameter(tasks.one('read-rows')) == 'read 4 of 4'
    assert f'{MARKER} {token}' in task_logs(url, created.run_id, 'write-rows')
    # It joins the old runs: ids do not collide and the experiment lists both.
    listed = [r.run_id for r in all_items(client.list_runs, 'runs',
                                          experiment_id=ids['experiment_keep'])]
    assert created.run_id in listed and ids['run_package'] in listed, listed
    assert created.run_id not in ids['rows']
    assert data['artifact_id'] not in reinstall.snap_a['artifacts']
    # The old runs and schedules are as they were.
    snap = reinstall.snap_a
    for run_id in ids['rows']:
        assert_same(snap['run_get'][run_id], client.get_run(run_id).to_dict(),
                    f'run {run_id} (after a new run)')
        assert_same(snap['tasks'][run_id], weir_tasks(url, run_id).tasks,
                    f'tasks of run {run_id} (after a new run)')
    for recurring_run_id, before in snap['recurring_run_get'].items():
        assert_same(before, client.get_recurring_run(recurring_run_id).to_dict(),
                    f'recurring run {recurring_run_id} (after a new run)')


def test_storage_status_writes_nothing(reinstall):
    """`weir storage status` only inspects: it leaves no folders where it is run (it was
    run several times above, always in the same empty scratch folder)."""
    scratch = reinstall.root / 'status-cwd'
    left = sorted(str(p.relative_to(scratch)) for p in scratch.rglob('*'))
    assert left == [], f'weir storage status created {left} in its working directory'
