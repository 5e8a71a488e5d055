"""The reinstall promise, end to end on a real Kubernetes control plane with a test kubelet
(kubelet.py: pods as local processes in their own network and mount namespaces).

Storage and app from `weir deploy render` (adopting two Retain volumes, PostgreSQL and an S3
server on them); the weir pod serves the real kfp.Client, which makes pipelines, versions, an
experiment, runs and a recurring run. Then the app is deleted, then the whole namespace; the
same overlay applied again binds the same volumes, and everything is back: the same listings,
the same object bytes, and the schedule fires again. Last, an upgrade across a schema
migration: the new pod refuses the older schema and says so in its status; the upgrade Job
takes a backup into the object store and migrates; weir serves everything again.
"""
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import boto3
import kfp
import pytest
import requests
from kfp import compiler, dsl

from conftest import REPO_ROOT
from kubelet import Kubelet, Launch
from test_k8s_deploy import KUBECTL, Cluster, apply_folder, control_plane, render

PG_SHIM = Path(__file__).parent / 'k8s_images' / 'postgres.sh'
NS = 'weir'


def s3s_binary() -> str:
    path = os.environ.get('WEIR_S3S_FS') or str(Path.home() / '.cache/weir-ci/s3s-fs-0.13.0/bin/s3s-fs')
    assert Path(path).exists(), f'{path} is missing: scripts/test.sh installs it (cargo install s3s-fs)'
    return path


def images(weir_bin: Path, image_dir: Path) -> dict:
    """Local stand-ins for the images, their files copied into `image_dir` as an image carries
    its own: a pod's emptyDir on /tmp must not hide a binary that lives under /tmp (a clone there)."""
    for source, name in [(weir_bin, 'weir'), (PG_SHIM, 'postgres.sh'), (Path(s3s_binary()), 's3s-fs')]:
        shutil.copy2(source, image_dir / name)
        os.chmod(image_dir / name, 0o755)
    s3s = image_dir / 's3s-fs'
    return {
        'weir': lambda spec: Launch([str(image_dir / 'weir'), *spec['args']]),
        'postgres': lambda spec: Launch(['bash', str(image_dir / 'postgres.sh')], private_dirs=['/var/run/postgresql']),
        # SeaweedFS's S3 API on its volume, played by s3s-fs (an S3 server on a folder).
        'chrislusf/seaweedfs': lambda spec: Launch([
            'sh', '-c', f'exec {s3s} --host 0.0.0.0 --port 9000 --access-key "$AWS_ACCESS_KEY_ID" '
                        '--secret-key "$AWS_SECRET_ACCESS_KEY" /data']),
    }


@pytest.fixture(scope='module')
def kube(tmp_path_factory, weir_bin):
    image_dir = Path(tempfile.mkdtemp(prefix='weir-e2e-images-', dir='/var/tmp'))
    os.chmod(image_dir, 0o755)
    try:
        with control_plane(tmp_path_factory, 'k8s-e2e') as (folder, port):
            kubelet = Kubelet(folder, port, images(weir_bin, image_dir))
            try:
                kubelet.start()
                yield Cluster(folder / 'kubeconfig'), kubelet
            finally:
                kubelet.stop()
    finally:
        shutil.rmtree(image_dir, ignore_errors=True)


def wait(what, check, timeout=120.0, describe=lambda: ''):
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        try:
            value = what()
            if check(value):
                return value
        except Exception as e:  # not there yet
            value = repr(e)
        time.sleep(0.5)
    raise AssertionError(f'timed out; last seen: {value}\n{describe()}')


def pod(cluster: Cluster, app: str):
    pods = [p for p in cluster.get('pods', NS) if p['metadata']['labels'].get('app.kubernetes.io/name') == app
            and not p['metadata'].get('deletionTimestamp')]
    return pods[0] if pods else None


def ready_ip(cluster: Cluster, app: str):
    p = pod(cluster, app)
    if p and any(c['type'] == 'Ready' and c['status'] == 'True' for c in p['status'].get('conditions', [])):
        return p['status']['podIP']
    return None


def diagnose(cluster: Cluster, kubelet: Kubelet):
    def text():
        out = [f'kubelet errors: {kubelet.errors[-5:]}']
        for p in cluster.get('pods', NS):
            out.append(f'{p["metadata"]["name"]}: {json.dumps(p.get("status", {}).get("containerStatuses"))[:1500]}')
            out.append(kubelet.logs(NS, p['metadata']['name'])[-3000:])
        return '\n'.join(out)
    return text


@dsl.container_component
def produce(text: str, data: dsl.Output[dsl.Dataset]):
    return dsl.ContainerSpec(
        image='alpine:3.19',
        command=['sh', '-c', 'mkdir -p "$(dirname "$1")" && printf "%s" "$0" > "$1"'],
        args=[text, data.path])


@dsl.container_component
def shout(data: dsl.Input[dsl.Dataset], loud: dsl.Output[dsl.Dataset]):
    return dsl.ContainerSpec(
        image='alpine:3.19',
        command=['sh', '-c', 'mkdir -p "$(dirname "$1")" && tr a-z A-Z < "$0" > "$1"'],
        args=[data.path, loud.path])


@dsl.pipeline(name='k8s-reinstall')
def reinstall_pipeline(text: str = 'kept on the volumes'):
    shout(data=produce(text=text).outputs['data'])


def deploy_check(weir_bin: Path, cluster: Cluster):
    done = subprocess.run([str(weir_bin), 'deploy', 'check', '--kubeconfig', cluster.kubeconfig, '--namespace', NS,
                           '--output', 'json'], capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    report = json.loads(done.stdout)
    assert (done.returncode == 0) == (report['problems'] == []), report
    return report


def snapshot(base: str, s3, bucket: str) -> dict:
    def listing(path: str, key: str):
        body = requests.get(f'{base}/apis/v2beta1/{path}', params={'page_size': 1000}, timeout=30).json()
        return sorted(body.get(key, []), key=lambda x: json.dumps(x, sort_keys=True))
    pipelines = listing('pipelines', 'pipelines')
    versions = {p['pipeline_id']: listing(f'pipelines/{p["pipeline_id"]}/versions', 'pipeline_versions')
                for p in pipelines}
    objects = {}
    for page in s3.get_paginator('list_objects_v2').paginate(Bucket=bucket):
        for o in page.get('Contents', []):
            if o['Key'].startswith('artifacts/.weir/last-check'):
                continue
            data = s3.get_object(Bucket=bucket, Key=o['Key'])['Body'].read()
            objects[o['Key']] = hashlib.sha256(data).hexdigest()
    return {'pipelines': pipelines, 'versions': versions, 'experiments': listing('experiments', 'experiments'),
            'recurring': listing('recurringruns', 'recurringRuns'), 'runs': listing('runs', 'runs'),
            'objects': objects}


def compare(before: dict, after: dict):
    for key in ('pipelines', 'versions'):
        assert after[key] == before[key], key
    # The schedule went on firing until the app was deleted, and fires again after: compare
    # without the moving parts (an experiment's last run), and every run that had finished.
    still = lambda x: {k: v for k, v in x.items() if k not in ('updated_at', 'last_run_created_at')}  # noqa: E731
    assert [still(e) for e in after['experiments']] == [still(e) for e in before['experiments']]
    assert [still(r) for r in after['recurring']] == [still(r) for r in before['recurring']]
    after_runs = {r['run_id']: r for r in after['runs']}
    finished = [r for r in before['runs'] if r['state'] in ('SUCCEEDED', 'FAILED', 'CANCELED')]
    assert finished, before['runs']
    for run in before['runs']:
        assert run['run_id'] in after_runs, run['run_id']
    for run in finished:
        assert after_runs[run['run_id']] == run
    for key, digest in before['objects'].items():
        assert after['objects'].get(key) == digest, key


def test_reinstall_on_adopted_volumes_brings_everything_back_and_upgrades(kube, weir_bin, tmp_path):
    cluster, kubelet = kube
    why = diagnose(cluster, kubelet)
    # The volumes, as an administrator makes them (here hostPath folders pods can write).
    volumes_root = Path(tempfile.mkdtemp(prefix='weir-e2e-volumes-', dir='/var/tmp'))
    os.chmod(volumes_root, 0o755)
    for name in ('e2e-postgres', 'e2e-objects'):
        (volumes_root / name).mkdir(mode=0o777)
        os.chmod(volumes_root / name, 0o777)
        # Created, not client-side applied: kubectl's server-side apply would otherwise take the
        # volume's own fields over from that earlier apply (docs/kubernetes.md, "Adopting").
        cluster.kubectl('create', '-f', '-', stdin=json.dumps({
            'apiVersion': 'v1', 'kind': 'PersistentVolume', 'metadata': {'name': name},
            'spec': {'capacity': {'storage': '1Gi'}, 'accessModes': ['ReadWriteOnce'],
                     'persistentVolumeReclaimPolicy': 'Retain', 'hostPath': {'path': str(volumes_root / name)}}}))
    overlay = tmp_path / 'overlay'
    render(weir_bin, overlay, '--namespace', NS, '--image', 'weir:e2e', '--storage', 'adopt',
           '--adopt-volume', 'postgres=e2e-postgres', '--adopt-volume', 'seaweedfs=e2e-objects')
    objects_env = dict(line.split('=', 1) for line in
                       (overlay / 'base/storage/servers/objects.env').read_text().split())
    database_env = dict(line.split('=', 1) for line in
                        (overlay / 'base/storage/servers/database.env').read_text().split())

    def install():
        cluster.kubectl('create', 'namespace', NS)
        apply_folder(cluster, overlay / 'storage', force=True)
        apply_folder(cluster, overlay / 'app')
        s3_ip = wait(lambda: ready_ip(cluster, 'seaweedfs'), bool, describe=why)
        weir_ip = wait(lambda: ready_ip(cluster, 'weir'), bool, timeout=180, describe=why)
        s3 = boto3.client('s3', endpoint_url=f'http://{s3_ip}:9000', region_name='us-east-1',
                          aws_access_key_id=objects_env['accesskey'],
                          aws_secret_access_key=objects_env['secretkey'])
        return f'http://{weir_ip}:8888', s3

    # The first start makes the bucket in the new S3 server, as KFP's API server does.
    base, s3 = install()
    assert 'weir' in [b['Name'] for b in s3.list_buckets()['Buckets']]
    client = kfp.Client(host=base)
    package = tmp_path / 'pipeline.yaml'
    compiler.Compiler().compile(reinstall_pipeline, str(package))
    pipeline = client.upload_pipeline(str(package), pipeline_name='reinstall')
    client.upload_pipeline_version(str(package), pipeline_version_name='v2', pipeline_id=pipeline.pipeline_id)
    experiment = client.create_experiment('kept')
    run = client.create_run_from_pipeline_package(str(package), arguments={'text': 'bytes on a volume'},
                                                  experiment_name='kept', run_name='first')
    assert client.wait_for_run_completion(run.run_id, timeout=120).state == 'SUCCEEDED'
    versions = client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions
    schedule = client.create_recurring_run(
        experiment_id=experiment.experiment_id, job_name='every-3s', cron_expression='*/3 * * * * *',
        pipeline_id=pipeline.pipeline_id, version_id=versions[0].pipeline_version_id, no_catchup=True,
        max_concurrency=1)

    def scheduled_runs():
        runs = requests.get(f'{base}/apis/v2beta1/runs', params={'page_size': 1000}, timeout=30).json().get('runs', [])
        return [r for r in runs if r.get('recurring_run_id') == schedule.recurring_run_id]
    wait(scheduled_runs, lambda rs: any(r['state'] == 'SUCCEEDED' for r in rs), describe=why)
    before = snapshot(base, s3, 'weir')
    assert any('loud' in key for key in before['objects']), before['objects']
    identity = s3.get_object(Bucket='weir', Key='artifacts/.weir/identity.json')['Body'].read()
    # `weir deploy check` sees the claims bound to the retained volumes, the pair of stores
    # the pod serves and a schema that is the image's.
    report = deploy_check(weir_bin, cluster)
    assert report['problems'] == [] and report['warnings'] == [], report
    assert [(c['name'], c['phase'], c['volume'], c['reclaim_policy']) for c in report['claims']] == [
        ('postgres-pvc', 'Bound', 'e2e-postgres', 'Retain'), ('seaweedfs-pvc', 'Bound', 'e2e-objects', 'Retain')]
    assert report['storage']['identity'] == json.loads(identity)['id'] == report['storage']['artifact_identity']
    assert report['storage']['schema_version'] == report['storage']['head_version'] == 12, report
    assert report['app']['image'] == 'weir:e2e'

    # Delete the app: the weir pod goes, nothing else.
    rendered_app = subprocess.run([KUBECTL, 'kustomize', str(overlay / 'app')], capture_output=True, text=True,
                                  check=True).stdout
    cluster.kubectl('delete', '--wait=true', '-f', '-', stdin=rendered_app)
    wait(lambda: pod(cluster, 'weir'), lambda p: p is None)
    assert cluster.claims(NS) == {'postgres-pvc': ('Bound', 'e2e-postgres'), 'seaweedfs-pvc': ('Bound', 'e2e-objects')}
    # Then the whole namespace: the volumes stay, Released and retained.
    cluster.kubectl('delete', 'namespace', NS, '--wait=true', '--timeout=120s')
    wait(cluster.volumes, lambda v: v['e2e-postgres'][:2] == ('Released', 'Retain')
         and v['e2e-objects'][:2] == ('Released', 'Retain'))
    assert (volumes_root / 'e2e-postgres' / 'pgdata' / 'PG_VERSION').exists()

    # The same overlay again: the same volumes bind, and everything is back.
    reinstalled = time.time()
    base, s3 = install()
    client = kfp.Client(host=base)  # the new pod has a new address
    assert cluster.claims(NS) == {'postgres-pvc': ('Bound', 'e2e-postgres'), 'seaweedfs-pvc': ('Bound', 'e2e-objects')}
    assert s3.get_object(Bucket='weir', Key='artifacts/.weir/identity.json')['Body'].read() == identity
    compare(before, snapshot(base, s3, 'weir'))

    def fired_again():
        return [r for r in scheduled_runs() if r['state'] == 'SUCCEEDED'
                and r['created_at'] > time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(reinstalled))]
    wait(fired_again, bool, describe=why)

    # An upgrade across a schema migration. The storage is taken back to the schema before this
    # weir's newest migration, as the previous release left it (the previous image's storage).
    client.disable_recurring_run(schedule.recurring_run_id)
    wait(scheduled_runs, lambda rs: all(r['state'] in ('SUCCEEDED', 'FAILED', 'CANCELED') for r in rs))
    before = snapshot(base, s3, 'weir')
    cluster.kubectl('scale', '-n', NS, 'deployment/weir', '--replicas=0')
    wait(lambda: pod(cluster, 'weir'), lambda p: p is None)
    pg_ip = ready_ip(cluster, 'postgres')
    url = f'postgres://{database_env["username"]}:{database_env["password"]}@{pg_ip}:5432/weir'
    head = int(subprocess.run(['psql', url, '-tAc', 'SELECT max(version) FROM _sqlx_migrations'],
                              capture_output=True, text=True, check=True).stdout)
    assert head == 12, 'update the undo below with the newest migration'
    subprocess.run(['psql', url, '-qc', 'CREATE INDEX tasks_run ON tasks (run_id, created_at); '
                    'DROP INDEX tasks_run_order; DELETE FROM _sqlx_migrations WHERE version = 12'],
                   check=True)
    cluster.kubectl('scale', '-n', NS, 'deployment/weir', '--replicas=1')

    def refusal():
        p = pod(cluster, 'weir')
        states = [s.get('lastState', {}).get('terminated') or s['state'].get('terminated')
                  for s in (p or {}).get('status', {}).get('containerStatuses') or []]
        return [s['message'] for s in states if s and s.get('message')]
    messages = wait(refusal, bool, describe=why)
    assert 'weir storage upgrade' in messages[0], messages
    assert ready_ip(cluster, 'weir') is None, 'a weir never serves a schema it cannot'
    report = deploy_check(weir_bin, cluster)
    assert report['storage'] is None and any('weir storage upgrade' in p for p in report['problems']), report

    apply_folder(cluster, overlay / 'upgrade')
    job = wait(lambda: [j for j in cluster.get('jobs', NS) if j['metadata']['name'] == 'weir-upgrade'][0],
               lambda j: j.get('status', {}).get('succeeded') == 1 or j.get('status', {}).get('failed'),
               timeout=180, describe=why)
    assert job['status'].get('succeeded') == 1, why()
    backups = [o['Key'] for o in s3.list_objects_v2(Bucket='weir', Prefix='artifacts/.weir/backups/').get('Contents', [])]
    assert len(backups) == 1 and backups[0].split('/')[-1].startswith(f'weir-backup-v{head - 1}-'), backups
    base = f'http://{wait(lambda: ready_ip(cluster, "weir"), bool, timeout=180, describe=why)}:8888'
    report = deploy_check(weir_bin, cluster)
    assert report['problems'] == [] and report['storage']['schema_version'] == 12, report
    assert report['storage']['identity'] == json.loads(identity)['id']
    after = snapshot(base, s3, 'weir')
    for key in ('pipelines', 'versions', 'experiments', 'runs'):
        assert after[key] == before[key], key
    for key, digest in before['objects'].items():
        assert after['objects'].get(key) == digest, key
    shutil.rmtree(volumes_root, ignore_errors=True)
