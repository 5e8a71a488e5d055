"""deploy/ against a real Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager
and kube-scheduler built from Debian's source package (scripts/k8s/build.sh, cached outside the
clone; WEIR_K8S_BIN names a built bin folder) and started on loopback (scripts/k8s/up.sh).

Every overlay applies (server-side apply, as docs/kubernetes.md says to); adopted volumes bind
to their claims; deleting the app leaves them bound; deleting the namespace leaves the volumes
Released and retained, and applying the adoption again binds them to the new claims, more than
once; the ServiceAccount can do what the step driver needs in its namespace and nothing outside.
"""
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest

from conftest import REPO_ROOT

KUBECTL = str(Path(sys.executable).parent / 'kubectl')
SCRIPTS = REPO_ROOT / 'scripts' / 'k8s'
DEPLOY = REPO_ROOT / 'deploy'
FIELD_MANAGER = 'weir-deploy'


def free_port_triple() -> int:
    """A port p with p, p+1 and p+2 free (apiserver, etcd client, etcd peer)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            base = s.getsockname()[1]
        if base > 65000:
            continue
        try:
            socks = []
            for port in (base, base + 1, base + 2):
                sock = socket.socket()
                sock.bind(('127.0.0.1', port))
                socks.append(sock)
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError('no three free ports in a row')


class Cluster:
    def __init__(self, kubeconfig: Path):
        self.kubeconfig = str(kubeconfig)

    def kubectl(self, *args: str, stdin: str = None, check: bool = True) -> subprocess.CompletedProcess:
        out = subprocess.run([KUBECTL, '--kubeconfig', self.kubeconfig, *args], input=stdin,
                             capture_output=True, text=True, timeout=120)
        if check:
            assert out.returncode == 0, f'kubectl {" ".join(args)}:\n{out.stdout}{out.stderr}'
        return out

    def apply(self, overlay: str, namespace: str) -> str:
        rendered = subprocess.run([KUBECTL, 'kustomize', str(DEPLOY / overlay)], capture_output=True,
                                  text=True, timeout=60, check=True).stdout
        self.kubectl('apply', '--server-side', '--force-conflicts', f'--field-manager={FIELD_MANAGER}',
                     '-n', namespace, '-f', '-', stdin=rendered)
        return rendered

    def delete(self, overlay: str, namespace: str) -> None:
        rendered = subprocess.run([KUBECTL, 'kustomize', str(DEPLOY / overlay)], capture_output=True,
                                  text=True, timeout=60, check=True).stdout
        self.kubectl('delete', '--wait=true', '-n', namespace, '-f', '-', stdin=rendered)

    def get(self, kind: str, namespace: str = None) -> List[dict]:
        args = ['get', kind, '-o', 'json'] + (['-n', namespace] if namespace else [])
        return json.loads(self.kubectl(*args).stdout)['items']

    def wait_for(self, what, check, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        while True:
            value = what()
            if check(value):
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f'timed out; last seen: {value}')
            time.sleep(0.3)

    def claims(self, namespace: str):
        return {c['metadata']['name']: (c['status'].get('phase'), c['spec'].get('volumeName'))
                for c in self.get('pvc', namespace)}

    def volumes(self):
        return {v['metadata']['name']: (v['status'].get('phase'), v['spec']['persistentVolumeReclaimPolicy'],
                                        v['spec'].get('claimRef', {}).get('uid', ''))
                for v in self.get('pv')}


@contextlib.contextmanager
def control_plane(tmp_path_factory, name: str, apiserver_args: str = ''):
    """A control plane on loopback for a module's tests: (its folder, its API port)."""
    bin_dir = os.environ.get('WEIR_K8S_BIN')
    if not bin_dir:
        built = subprocess.run(['bash', str(SCRIPTS / 'build.sh')], capture_output=True, text=True)
        assert built.returncode == 0, f'building the control plane failed:\n{built.stderr[-3000:]}'
        bin_dir = built.stdout.strip().splitlines()[-1]
    folder = tmp_path_factory.mktemp(name)
    port = free_port_triple()
    up = subprocess.run(['bash', str(SCRIPTS / 'up.sh'), bin_dir, str(folder), str(port)],
                        capture_output=True, text=True, timeout=180,
                        env={**os.environ, 'WEIR_K8S_APISERVER_ARGS': apiserver_args})
    try:
        assert up.returncode == 0, f'the control plane did not start:\n{up.stdout}{up.stderr}'
        yield folder, port
    finally:
        subprocess.run(['bash', str(SCRIPTS / 'down.sh'), str(folder)], timeout=60)


@pytest.fixture(scope='module')
def cluster(tmp_path_factory):
    with control_plane(tmp_path_factory, 'k8s') as (folder, _):
        yield Cluster(folder / 'kubeconfig')


@pytest.mark.parametrize('overlay', ['storage/bundled', 'storage/external', 'app', 'upgrade'])
def test_every_overlay_applies(cluster, overlay):
    namespace = 'apply-' + overlay.replace('/', '-')
    cluster.kubectl('create', 'namespace', namespace)
    cluster.apply(overlay, namespace)
    # Applying again fails nothing; every object is there.
    rendered = cluster.apply(overlay, namespace)
    listed = cluster.kubectl('get', '-n', namespace, '-f', '-', '-o', 'name', stdin=rendered).stdout.split()
    assert len(listed) == rendered.count('\nkind: ') + rendered.startswith('kind: '), listed
    cluster.kubectl('delete', 'namespace', namespace, '--wait=false')


def test_adopted_volumes_bind_and_outlive_the_app_and_the_namespace(cluster):
    cluster.kubectl('create', 'namespace', 'weir')
    cluster.apply('storage/adopt', 'weir')
    cluster.apply('app', 'weir')
    bound = {'postgres-pvc': ('Bound', 'weir-postgres'), 'seaweedfs-pvc': ('Bound', 'weir-seaweedfs')}
    cluster.wait_for(lambda: cluster.claims('weir'), lambda c: c == bound)

    # Deleting the app deletes no claim and no volume.
    cluster.delete('app', 'weir')
    assert not cluster.get('deployments', 'weir') or \
        {d['metadata']['name'] for d in cluster.get('deployments', 'weir')} == {'postgres', 'seaweedfs'}
    assert cluster.claims('weir') == bound
    volumes = cluster.volumes()
    assert {name: v[:2] for name, v in volumes.items() if name.startswith('weir-')} == \
        {'weir-postgres': ('Bound', 'Retain'), 'weir-seaweedfs': ('Bound', 'Retain')}

    for reinstall in range(2):
        # Even deleting the namespace leaves the volumes, Released and retained.
        cluster.kubectl('delete', 'namespace', 'weir', '--wait=true', '--timeout=90s')
        released = cluster.wait_for(cluster.volumes,
                                    lambda v: v.get('weir-postgres', ('',))[0] == 'Released'
                                    and v.get('weir-seaweedfs', ('',))[0] == 'Released')
        assert released['weir-postgres'][1] == 'Retain' and released['weir-postgres'][2], released
        # Applying the adoption again binds them to the new namespace's claims.
        cluster.kubectl('create', 'namespace', 'weir')
        cluster.apply('storage/adopt', 'weir')
        cluster.apply('app', 'weir')
        cluster.wait_for(lambda: cluster.claims('weir'), lambda c: c == bound)
        volumes = cluster.volumes()
        assert volumes['weir-postgres'][0] == 'Bound', (reinstall, volumes)


def test_the_service_account_can_drive_steps_in_its_namespace_only(cluster):
    cluster.kubectl('create', 'namespace', 'rbac')
    cluster.apply('app', 'rbac')
    account = 'system:serviceaccount:rbac:weir'

    def can(verb: str, resource: str, namespace: str) -> bool:
        out = cluster.kubectl('auth', 'can-i', verb, resource, '-n', namespace, f'--as={account}', check=False)
        return out.stdout.strip() == 'yes'

    # PVCs for kfp-kubernetes' CreatePVC and DeletePVC; the driver deletes only claims it made.
    for verb, resource in [('create', 'jobs.batch'), ('watch', 'jobs.batch'), ('delete', 'jobs.batch'),
                           ('list', 'pods'), ('watch', 'pods'), ('get', 'pods/log'),
                           ('create', 'persistentvolumeclaims'), ('delete', 'persistentvolumeclaims')]:
        assert can(verb, resource, 'rbac'), (verb, resource)
        assert not can(verb, resource, 'default'), (verb, resource, 'outside its namespace')
    for verb, resource in [('get', 'secrets'), ('create', 'pods'), ('delete', 'persistentvolumes'),
                           ('create', 'roles.rbac.authorization.k8s.io'), ('list', 'persistentvolumes')]:
        assert not can(verb, resource, 'rbac'), (verb, resource)


def render(weir_bin, out: Path, *args: str) -> None:
    done = subprocess.run([str(weir_bin), 'deploy', 'render', '--out', str(out), *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def apply_folder(cluster: Cluster, folder: Path, force: bool = False) -> None:
    rendered = subprocess.run([KUBECTL, 'kustomize', str(folder)], capture_output=True, text=True,
                              timeout=60, check=True).stdout
    flags = ['--server-side', f'--field-manager={FIELD_MANAGER}'] + (['--force-conflicts'] if force else [])
    cluster.kubectl('apply', *flags, '-f', '-', stdin=rendered)


def test_weir_deploy_render_adopts_a_kfp_namespaces_volumes(cluster, weir_bin, tmp_path):
    """KFP's dynamically provisioned volumes (reclaim policy Delete, a StorageClass) left by a
    KFP namespace: the rendered overlay keeps them (Retain) and runs MySQL and SeaweedFS on
    them under KFP's claim names, in a new namespace."""
    for name, size in [('pvc-kfp-mysql', '20Gi'), ('pvc-kfp-seaweedfs', '50Gi')]:
        cluster.kubectl('apply', '-f', '-', stdin=json.dumps({
            'apiVersion': 'v1', 'kind': 'PersistentVolume', 'metadata': {'name': name},
            'spec': {'capacity': {'storage': size}, 'accessModes': ['ReadWriteOnce'],
                     'persistentVolumeReclaimPolicy': 'Delete', 'storageClassName': 'standard',
                     'hostPath': {'path': str(tmp_path / name)}}}))
    out = tmp_path / 'overlay'
    render(weir_bin, out, '--namespace', 'kfp-moved', '--image', 'weir:test', '--storage', 'adopt',
           '--database', 'mysql', '--objects', 'seaweedfs', '--adopt-volume', 'mysql=pvc-kfp-mysql',
           '--adopt-volume', 'seaweedfs=pvc-kfp-seaweedfs', '--storage-class', 'standard')
    credentials = (out / 'base/storage/servers/database.env').read_text()
    assert 'change-me' not in credentials
    cluster.kubectl('create', 'namespace', 'kfp-moved')
    apply_folder(cluster, out / 'storage', force=True)
    apply_folder(cluster, out / 'app')
    cluster.wait_for(lambda: cluster.claims('kfp-moved'),
                     lambda c: c == {'mysql-pv-claim': ('Bound', 'pvc-kfp-mysql'),
                                     'seaweedfs-pvc': ('Bound', 'pvc-kfp-seaweedfs')})
    volumes = cluster.volumes()
    assert volumes['pvc-kfp-mysql'][1] == 'Retain' and volumes['pvc-kfp-seaweedfs'][1] == 'Retain'
    image = cluster.get('deployments', 'kfp-moved')
    images = {d['metadata']['name']: d['spec']['template']['spec']['containers'][0]['image'] for d in image}
    assert images['weir'] == 'weir:test' and images['mysql'] == 'mysql:8.4'
    # Rendering again into the same folder keeps the credentials the storage was made with.
    render(weir_bin, out, '--namespace', 'kfp-moved', '--image', 'weir:test2', '--storage', 'adopt',
           '--database', 'mysql', '--adopt-volume', 'mysql=pvc-kfp-mysql',
           '--adopt-volume', 'seaweedfs=pvc-kfp-seaweedfs', '--storage-class', 'standard')
    assert (out / 'base/storage/servers/database.env').read_text() == credentials
    # A name that is no volume is refused by the API server: nothing is made from nothing.
    bad = tmp_path / 'bad'
    render(weir_bin, bad, '--namespace', 'kfp-moved', '--storage', 'adopt', '--database', 'mysql',
           '--adopt-volume', 'mysql=pvc-missing', '--adopt-volume', 'seaweedfs=pvc-kfp-seaweedfs')
    rendered = subprocess.run([KUBECTL, 'kustomize', str(bad / 'storage')], capture_output=True,
                              text=True, check=True).stdout
    refused = cluster.kubectl('apply', '--server-side', '--force-conflicts', '-f', '-', stdin=rendered, check=False)
    assert refused.returncode != 0
    assert 'pvc-missing' not in {v for v in cluster.volumes()}


@pytest.mark.parametrize('args', [
    ['--storage', 'bundled', '--database', 'mysql', '--objects', 'minio'],
    ['--storage', 'external', '--external', 'db-scheme=mysql', '--external', 'db-host=db.internal',
     '--replicas', '3'],
])
def test_weir_deploy_render_writes_overlays_that_apply(cluster, weir_bin, tmp_path, args):
    namespace = 'render-' + args[1]
    out = tmp_path / 'overlay'
    render(weir_bin, out, '--namespace', namespace, *args)
    cluster.kubectl('create', 'namespace', namespace)
    apply_folder(cluster, out / 'storage')
    apply_folder(cluster, out / 'app')
    settings = [c for c in cluster.get('configmaps', namespace) if c['metadata']['name'] == 'weir-storage'][0]
    assert settings['data']['db-scheme'] == 'mysql'
    weir = [d for d in cluster.get('deployments', namespace) if d['metadata']['name'] == 'weir'][0]
    replicas = int(args[args.index('--replicas') + 1]) if '--replicas' in args else 1
    assert weir['spec']['replicas'] == replicas
    assert weir['spec']['strategy']['type'] == ('RollingUpdate' if replicas > 1 else 'Recreate')
