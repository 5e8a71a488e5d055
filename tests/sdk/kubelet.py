"""A test kubelet: runs the pods the scheduler binds to its node as local processes.

There is no container runtime on the test machines, so this stands in for one, with the parts
of a kubelet the deploy tests exercise and no more:

- it registers a Node and reports it Ready;
- each pod gets its own network namespace on a bridge (its own IP, so every pod can listen on
  its usual port), and each container its own private mount namespace in which the pod's
  volumes are bind-mounted at their `mountPath`s: a claim's bound PersistentVolume (hostPath),
  an emptyDir, a Secret or ConfigMap written out as files;
- Service names resolve (a per-pod /etc/hosts, kept current) to the Service's ready endpoint;
- env, envFrom and `$(VAR)` expansion as Kubernetes does them; runAsUser/runAsGroup/fsGroup;
  a read-only root filesystem when the container asks for one;
- restart policies with back-off, readiness probes (httpGet, tcpSocket, exec), termination
  messages (FallbackToLogsOnError), graceful deletion, and pod phases that Jobs complete on.

Images are not pulled: `images` maps an image name to a function that turns the container into
a local command line (what the image's entrypoint would have run), with the folders the image
would have provided privately (`Launch.private_dirs`).
"""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Dict, List, Optional

import requests


@dataclass
class Launch:
    """What an image runs for a container: argv, extra environment, private folders."""
    argv: List[str]
    env: Dict[str, str] = field(default_factory=dict)
    private_dirs: List[str] = field(default_factory=list)


ImageHandler = Callable[[dict], Launch]


def now() -> str:
    return datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


class Container:
    def __init__(self, spec: dict, log_dir: Path):
        self.spec = spec
        self.name = spec['name']
        self.log_dir = log_dir
        self.process: Optional[subprocess.Popen] = None
        self.restarts = 0
        self.ready = False
        self.started_at = None
        self.last_terminated: Optional[dict] = None
        self.terminated: Optional[dict] = None  # final, when the policy does not restart it
        self.next_start = 0.0
        self.last_probe = 0.0
        self.waiting_reason = 'ContainerCreating'
        self.waiting_message = ''

    def log_path(self) -> Path:
        return self.log_dir / f'{self.name}.{self.restarts}.log'


class Pod:
    def __init__(self, obj: dict, root: Path, ip: str, index: int):
        self.obj = obj
        self.uid = obj['metadata']['uid']
        self.ns = obj['metadata']['namespace']
        self.name = obj['metadata']['name']
        self.root = root / 'pods' / self.uid
        self.ip = ip
        self.index = index
        self.netns = f'wk{self.uid[:10]}'
        self.containers = [Container(c, self.root / 'logs') for c in obj['spec']['containers']]
        # Run one at a time, in order, each to its end, before the containers start.
        self.init_containers = [Container(c, self.root / 'logs') for c in obj['spec'].get('initContainers') or []]
        self.hosts = self.root / 'hosts'
        self.passwd = self.root / 'passwd'
        self.group = self.root / 'group'
        self.volumes: Dict[str, Path] = {}
        self.started = False
        self.last_status = None
        self.start_time = now()


class Kubelet:
    def __init__(self, kubeconfig_dir: Path, api_port: int, images: Dict[str, ImageHandler],
                 node: str = 'weir-test-node', bridge: str = 'weirbr0', subnet: str = '10.244.7'):
        self.api = f'https://127.0.0.1:{api_port}'
        self.session = requests.Session()
        self.session.verify = str(kubeconfig_dir / 'pki' / 'ca.crt')
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE would replace the cluster's CA
        self.session.headers['Authorization'] = 'Bearer admin-token'
        self.images = images
        self.node = node
        self.bridge = bridge
        self.subnet = subnet
        # Not under /tmp: a container's emptyDir on /tmp would hide the sources of its other mounts.
        self.root = Path(tempfile.mkdtemp(prefix='weir-kubelet-', dir='/var/tmp'))
        os.chmod(self.root, 0o755)
        self.pods: Dict[str, Pod] = {}
        self.free = list(range(2, 250))
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.errors: List[str] = []

    # -- API ---------------------------------------------------------------------------------

    def get(self, path: str, **params) -> Optional[dict]:
        r = self.session.get(self.api + path, params=params, timeout=30)
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return r.json()

    def patch_status(self, pod: Pod, status: dict):
        r = self.session.patch(f'{self.api}/api/v1/namespaces/{pod.ns}/pods/{pod.name}/status',
                               data=json.dumps({'status': status}),
                               headers={'Content-Type': 'application/merge-patch+json'}, timeout=30)
        if r.status_code not in (200, 404, 409):
            r.raise_for_status()

    # -- node and network --------------------------------------------------------------------

    def start(self):
        sh(f'ip link add {self.bridge} type bridge', check=False)
        sh(f'ip addr add {self.subnet}.1/24 dev {self.bridge}', check=False)
        # A bridge takes the lowest MAC of its ports unless given one: each new pod's veth could
        # change it, and pods would send to the old one until their ARP entry went stale (~30 s).
        third = int(self.subnet.split('.')[2])
        sh(f'ip link set {self.bridge} address 02:77:65:69:72:{third:02x}')
        sh(f'ip link set {self.bridge} up')
        node = {'apiVersion': 'v1', 'kind': 'Node',
                'metadata': {'name': self.node, 'labels': {'kubernetes.io/hostname': self.node,
                                                           'kubernetes.io/os': 'linux'}}}
        r = self.session.post(f'{self.api}/api/v1/nodes', data=json.dumps(node), timeout=30)
        if r.status_code not in (201, 409):
            r.raise_for_status()
        status = {'status': {
            'capacity': {'cpu': '8', 'memory': '32Gi', 'pods': '110'},
            'allocatable': {'cpu': '8', 'memory': '32Gi', 'pods': '110'},
            'addresses': [{'type': 'InternalIP', 'address': f'{self.subnet}.1'},
                          {'type': 'Hostname', 'address': self.node}],
            'conditions': [{'type': 'Ready', 'status': 'True', 'reason': 'KubeletReady',
                            'message': 'weir test kubelet', 'lastHeartbeatTime': now(),
                            'lastTransitionTime': now()}],
            'nodeInfo': {'kubeletVersion': 'v1.20.2', 'kubeProxyVersion': 'v1.20.2', 'osImage': 'local',
                         'operatingSystem': 'linux', 'architecture': 'amd64', 'containerRuntimeVersion': 'local://0',
                         'kernelVersion': os.uname().release, 'machineID': '', 'systemUUID': '',
                         'bootID': ''}}}
        r = self.session.patch(f'{self.api}/api/v1/nodes/{self.node}/status', data=json.dumps(status),
                               headers={'Content-Type': 'application/merge-patch+json'}, timeout=30)
        r.raise_for_status()
        # The API server taints a new node not-ready; the node lifecycle controller (not run
        # here) would lift that taint once the node reports Ready.
        r = self.session.patch(f'{self.api}/api/v1/nodes/{self.node}', data=json.dumps({'spec': {'taints': None}}),
                               headers={'Content-Type': 'application/merge-patch+json'}, timeout=30)
        r.raise_for_status()
        self.thread.start()

    def stop(self):
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join(timeout=60)
        for pod in list(self.pods.values()):
            self.kill_pod(pod, grace=5)
        sh(f'ip link del {self.bridge}', check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    # -- the loop ----------------------------------------------------------------------------

    def loop(self):
        last_hosts = 0.0
        while not self.stop_event.is_set():
            try:
                listed = self.get('/api/v1/pods', fieldSelector=f'spec.nodeName={self.node}')['items']
                seen = set()
                for obj in listed:
                    uid = obj['metadata']['uid']
                    seen.add(uid)
                    pod = self.pods.get(uid)
                    if obj['metadata'].get('deletionTimestamp'):
                        grace = obj['metadata'].get('deletionGracePeriodSeconds') or 0
                        if pod:
                            self.kill_pod(pod, grace=min(grace, 10))
                            del self.pods[uid]
                        self.session.delete(
                            f'{self.api}/api/v1/namespaces/{obj["metadata"]["namespace"]}/pods/{obj["metadata"]["name"]}',
                            data=json.dumps({'gracePeriodSeconds': 0, 'preconditions': {'uid': uid}}), timeout=30)
                        continue
                    if pod is None:
                        pod = self.admit(obj)
                        if pod is None:
                            continue
                    pod.obj = obj
                    self.tend(pod)
                for uid in list(self.pods):
                    if uid not in seen:
                        self.kill_pod(self.pods.pop(uid), grace=0)
                if time.time() - last_hosts > 1:
                    self.write_hosts()
                    last_hosts = time.time()
            except Exception as e:  # keep running: the API may be briefly unavailable
                self.errors.append(repr(e))
                del self.errors[:-20]
            self.stop_event.wait(0.3)

    def admit(self, obj: dict) -> Optional[Pod]:
        """Prepares a new pod's volumes and network; None while a claim is not yet bound."""
        volumes = {}
        for volume in obj['spec'].get('volumes', []):
            path = self.volume_path(obj, volume)
            if path is None:
                return None
            volumes[volume['name']] = path
        index = self.free.pop(0)
        pod = Pod(obj, self.root, f'{self.subnet}.{index}', index)
        veth = f'vh{pod.uid[:8]}'
        try:
            pod.root.mkdir(parents=True, exist_ok=True)
            (pod.root / 'logs').mkdir(exist_ok=True)
            for name, path in volumes.items():
                if path == Path('<emptyDir>'):
                    path = pod.root / 'volumes' / name
                    path.mkdir(parents=True, exist_ok=True)
                    os.chmod(path, 0o777)
                pod.volumes[name] = path
            for volume in obj['spec'].get('volumes', []):
                self.materialise(pod, volume)
            self.apply_fs_group(pod)
            pod.hosts.write_text(self.hosts_text(pod))
            self.write_identity_files(pod)
            sh(f'ip netns add {pod.netns}')
            sh(f'ip link add {veth} type veth peer name eth0 netns {pod.netns}')
            sh(f'ip link set {veth} master {self.bridge} up')
            for command in ('ip link set lo up', 'ip link set eth0 up', f'ip addr add {pod.ip}/24 dev eth0',
                            f'ip route add default via {self.subnet}.1'):
                sh(f'ip netns exec {pod.netns} {command}')
        except Exception as e:
            # Left as if never admitted, to be tried again on the next pass.
            sh(f'ip netns del {pod.netns}', check=False)
            sh(f'ip link del {veth}', check=False)
            self.free.append(index)
            self.errors.append(f'admitting {pod.ns}/{pod.name}: {e!r}')
            return None
        self.pods[pod.uid] = pod
        return pod

    def volume_path(self, obj: dict, volume: dict) -> Optional[Path]:
        if 'persistentVolumeClaim' in volume:
            claim = self.get(f'/api/v1/namespaces/{obj["metadata"]["namespace"]}/persistentvolumeclaims/'
                             f'{volume["persistentVolumeClaim"]["claimName"]}')
            if not claim or claim.get('status', {}).get('phase') != 'Bound':
                return None
            pv = self.get(f'/api/v1/persistentvolumes/{claim["spec"]["volumeName"]}')
            path = Path(pv['spec']['hostPath']['path'])
            path.mkdir(parents=True, exist_ok=True)
            return path
        if 'hostPath' in volume:
            return Path(volume['hostPath']['path'])
        # emptyDir, and the files of secrets, config maps and projections, live with the pod.
        return Path('<emptyDir>')

    def materialise(self, pod: Pod, volume: dict):
        target = pod.volumes[volume['name']]
        files: Dict[str, bytes] = {}
        if 'secret' in volume:
            secret = self.get(f'/api/v1/namespaces/{pod.ns}/secrets/{volume["secret"]["secretName"]}') or {}
            files = {k: base64.b64decode(v) for k, v in (secret.get('data') or {}).items()}
        elif 'configMap' in volume:
            cm = self.get(f'/api/v1/namespaces/{pod.ns}/configmaps/{volume["configMap"]["name"]}') or {}
            files = {k: v.encode() for k, v in (cm.get('data') or {}).items()}
            files.update({k: base64.b64decode(v) for k, v in (cm.get('binaryData') or {}).items()})
        for name, data in files.items():
            (target / name).write_bytes(data)
            os.chmod(target / name, 0o644)

    def apply_fs_group(self, pod: Pod):
        group = (pod.obj['spec'].get('securityContext') or {}).get('fsGroup')
        if group is None:
            return
        for volume in pod.obj['spec'].get('volumes', []):
            if 'persistentVolumeClaim' in volume or 'emptyDir' in volume:
                path = pod.volumes[volume['name']]
                os.chown(path, -1, group)
                os.chmod(path, os.stat(path).st_mode | 0o2070)

    def write_identity_files(self, pod: Pod):
        """An image has its own /etc/passwd naming the users it runs as; so does the pod."""
        passwd = Path('/etc/passwd').read_text()
        group = Path('/etc/group').read_text()
        known = {line.split(':')[2] for line in passwd.splitlines() if line.count(':') >= 2}
        known_groups = {line.split(':')[2] for line in group.splitlines() if line.count(':') >= 2}
        for container in pod.containers:
            uid, gid = self.user_of(pod, container.spec)
            if uid is not None and str(uid) not in known:
                passwd += f'u{uid}:x:{uid}:{gid or uid}::/tmp:/bin/sh\n'
                known.add(str(uid))
            if gid is not None and str(gid) not in known_groups:
                group += f'g{gid}:x:{gid}:\n'
                known_groups.add(str(gid))
        pod.passwd.write_text(passwd)
        pod.group.write_text(group)
        os.chmod(pod.passwd, 0o644)
        os.chmod(pod.group, 0o644)

    @staticmethod
    def user_of(pod: Pod, spec: dict):
        pod_sc = pod.obj['spec'].get('securityContext') or {}
        sc = spec.get('securityContext') or {}
        uid = sc.get('runAsUser', pod_sc.get('runAsUser'))
        gid = sc.get('runAsGroup', pod_sc.get('runAsGroup'))
        return uid, gid

    # -- Services ----------------------------------------------------------------------------

    def hosts_text(self, pod: Pod) -> str:
        lines = ['127.0.0.1 localhost', f'{pod.ip} {pod.name}']
        endpoints = self.get(f'/api/v1/namespaces/{pod.ns}/endpoints') or {'items': []}
        for ep in endpoints['items']:
            name = ep['metadata']['name']
            ips = [a['ip'] for s in ep.get('subsets') or [] for a in s.get('addresses') or []]
            if ips:
                lines.append(f'{ips[0]} {name} {name}.{pod.ns} {name}.{pod.ns}.svc {name}.{pod.ns}.svc.cluster.local')
        return '\n'.join(lines) + '\n'

    def write_hosts(self):
        for pod in list(self.pods.values()):
            text = self.hosts_text(pod)
            # Rewritten in place: the containers see this file through a bind mount of its inode.
            if pod.hosts.read_text() != text:
                with open(pod.hosts, 'r+') as f:
                    f.truncate(0)
                    f.write(text)

    # -- containers --------------------------------------------------------------------------

    def tend(self, pod: Pod):
        policy = pod.obj['spec'].get('restartPolicy', 'Always')
        if not self.tend_init(pod, policy):
            self.report(pod)
            return
        for c in pod.containers:
            if c.terminated:
                continue
            if c.process is None:
                self.start_when_due(pod, c)
                continue
            code = c.process.poll()
            if code is None:
                self.probe(pod, c)
                continue
            c.ready = False
            self.ended(c, code, restart=policy == 'Always' or (policy == 'OnFailure' and code != 0))
        self.report(pod)

    def start_when_due(self, pod: Pod, c: Container):
        if time.time() >= c.next_start:
            try:
                self.start_container(pod, c)
            except Exception as e:
                self.cannot_start(c, e)

    def ended(self, c: Container, code: int, restart: bool):
        """Records a container's end: terminated for good, or restarted after a back-off."""
        record = {'exitCode': code, 'reason': 'Completed' if code == 0 else 'Error',
                  'message': self.termination_message(c, code), 'startedAt': c.started_at, 'finishedAt': now()}
        c.process = None
        if restart:
            c.last_terminated = record
            c.restarts += 1
            c.waiting_reason = 'CrashLoopBackOff'
            c.next_start = time.time() + min(2 ** min(c.restarts, 4), 10)
        else:
            c.terminated = record

    def tend_init(self, pod: Pod, policy: str) -> bool:
        """Runs the pod's init containers in order; True once all ended well."""
        for c in pod.init_containers:
            if c.terminated and c.terminated['exitCode'] == 0:
                continue
            if c.terminated:
                return False  # failed for good: the pod has failed
            if c.process is None:
                self.start_when_due(pod, c)
                return False
            code = c.process.poll()
            if code is None:
                return False
            # An init container that failed runs again unless the pod never restarts.
            self.ended(c, code, restart=code != 0 and policy != 'Never')
            if code != 0:
                return False
        return True

    def cannot_start(self, c: Container, e: Exception):
        """An image with no local stand-in is one the kubelet cannot pull."""
        if isinstance(e, PullError):
            c.waiting_reason, c.waiting_message = 'ImagePullBackOff', str(e)
        else:
            c.waiting_reason, c.waiting_message = 'CreateContainerError', repr(e)
            self.errors.append(f'{c.name}: {e!r}')
        c.terminated = None
        c.next_start = time.time() + 5

    def termination_message(self, c: Container, code: int) -> str:
        policy = c.spec.get('terminationMessagePolicy', 'File')
        if policy == 'FallbackToLogsOnError' and code != 0:
            try:
                text = c.log_path().read_text(errors='replace')
            except OSError:
                return ''
            lines = text.splitlines()[-80:]
            return '\n'.join(lines)[-2048:]
        return ''

    def env_of(self, pod: Pod, spec: dict) -> Dict[str, str]:
        env: Dict[str, str] = {}
        for source in spec.get('envFrom') or []:
            prefix = source.get('prefix', '')
            if 'configMapRef' in source:
                cm = self.get(f'/api/v1/namespaces/{pod.ns}/configmaps/{source["configMapRef"]["name"]}') or {}
                env.update({prefix + k: v for k, v in (cm.get('data') or {}).items()})
            if 'secretRef' in source:
                secret = self.get(f'/api/v1/namespaces/{pod.ns}/secrets/{source["secretRef"]["name"]}') or {}
                env.update({prefix + k: base64.b64decode(v).decode() for k, v in (secret.get('data') or {}).items()})
        for item in spec.get('env') or []:
            if 'value' in item:
                env[item['name']] = expand(item['value'], env)
            elif 'valueFrom' in item:
                source = item['valueFrom']
                if 'secretKeyRef' in source:
                    ref = source['secretKeyRef']
                    secret = self.get(f'/api/v1/namespaces/{pod.ns}/secrets/{ref["name"]}')
                    if secret is None:
                        raise RuntimeError(f'secret {ref["name"]} not found')
                    env[item['name']] = base64.b64decode(secret['data'][ref['key']]).decode()
                elif 'configMapKeyRef' in source:
                    ref = source['configMapKeyRef']
                    cm = self.get(f'/api/v1/namespaces/{pod.ns}/configmaps/{ref["name"]}')
                    if cm is None:
                        raise RuntimeError(f'config map {ref["name"]} not found')
                    env[item['name']] = cm['data'][ref['key']]
                elif 'fieldRef' in source:
                    path = source['fieldRef']['fieldPath']
                    meta = pod.obj['metadata']
                    for kind in ('labels', 'annotations'):
                        if path.startswith(f"metadata.{kind}['") and path.endswith("']"):
                            env[item['name']] = (meta.get(kind) or {}).get(path[len(kind) + 11:-2], '')
                            break
                    else:
                        env[item['name']] = {
                            'metadata.name': pod.name, 'metadata.namespace': pod.ns, 'status.podIP': pod.ip,
                            'spec.nodeName': self.node, 'metadata.uid': pod.uid,
                            'spec.serviceAccountName': pod.obj['spec'].get('serviceAccountName', 'default'),
                        }[path]
            else:
                env[item['name']] = ''
        return env

    def start_container(self, pod: Pod, c: Container):
        image = c.spec['image']
        name = image.split('@')[0].rsplit(':', 1)[0] if ':' in image.split('/')[-1] else image
        handler = self.images.get(name)
        if handler is None:
            raise PullError(f'Back-off pulling image "{image}"')
        env = {'PATH': '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
               'HOSTNAME': pod.name, 'HOME': '/root'}
        for key in ('LANG', 'LC_ALL'):
            if key in os.environ:
                env[key] = os.environ[key]
        env.update(self.env_of(pod, c.spec))
        spec = dict(c.spec)
        spec['command'] = [expand(a, env) for a in c.spec.get('command') or []]
        spec['args'] = [expand(a, env) for a in c.spec.get('args') or []]
        launch = handler(spec)
        env.update(launch.env)
        uid, gid = self.user_of(pod, c.spec)
        fs_group = (pod.obj['spec'].get('securityContext') or {}).get('fsGroup')
        mounts = [{'source': str(pod.hosts), 'target': '/etc/hosts', 'ro': True},
                  {'source': str(pod.passwd), 'target': '/etc/passwd', 'ro': True},
                  {'source': str(pod.group), 'target': '/etc/group', 'ro': True}]
        for m in c.spec.get('volumeMounts') or []:
            source = pod.volumes[m['name']]
            if m.get('subPath'):
                source = source / m['subPath']
                source.mkdir(parents=True, exist_ok=True)
            mounts.append({'source': str(source), 'target': m['mountPath'], 'ro': bool(m.get('readOnly'))})
        sc = c.spec.get('securityContext') or {}
        plan = {'mounts': mounts, 'private_dirs': launch.private_dirs,
                'read_only_root': bool(sc.get('readOnlyRootFilesystem')),
                'uid': uid, 'gid': gid if gid is not None else uid, 'groups': [fs_group] if fs_group else [],
                'workdir': c.spec.get('workingDir') or '/', 'argv': launch.argv, 'env': env}
        plan_path = pod.root / f'{c.name}.{c.restarts}.plan.json'
        plan_path.write_text(json.dumps(plan))
        log = open(c.log_path(), 'wb')
        c.process = subprocess.Popen(
            ['ip', 'netns', 'exec', pod.netns, 'unshare', '--mount', '--propagation', 'private',
             sys.executable, os.path.abspath(__file__), '--exec', str(plan_path)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        c.started_at = now()
        c.last_probe = time.time()
        c.waiting_reason = ''

    def probe(self, pod: Pod, c: Container):
        probe = c.spec.get('readinessProbe')
        if probe is None:
            c.ready = True
            return
        if time.time() - c.last_probe < 1:
            return
        c.last_probe = time.time()
        ports = {p.get('name'): p['containerPort'] for p in c.spec.get('ports') or []}
        try:
            if 'httpGet' in probe:
                port = probe['httpGet']['port']
                port = ports.get(port, port)
                with urllib.request.urlopen(f'http://{pod.ip}:{port}{probe["httpGet"].get("path", "/")}',
                                            timeout=2) as r:
                    c.ready = 200 <= r.status < 400
            elif 'tcpSocket' in probe:
                port = probe['tcpSocket']['port']
                with socket.create_connection((pod.ip, ports.get(port, port)), timeout=2):
                    c.ready = True
            elif 'exec' in probe:
                out = subprocess.run(['nsenter', '-t', str(c.process.pid), '-m', '-n', '--', *probe['exec']['command']],
                                     capture_output=True, timeout=10)
                c.ready = out.returncode == 0
        except Exception:
            c.ready = False

    def container_status(self, c: Container) -> dict:
        if c.terminated:
            state = {'terminated': c.terminated}
        elif c.process is not None:
            state = {'running': {'startedAt': c.started_at}}
        else:
            state = {'waiting': {'reason': c.waiting_reason or 'ContainerCreating'}}
            if c.waiting_message:
                state['waiting']['message'] = c.waiting_message
        status = {'name': c.name, 'ready': c.ready, 'restartCount': c.restarts, 'image': c.spec['image'],
                  'imageID': '', 'started': c.process is not None, 'state': state}
        if c.last_terminated:
            status['lastState'] = {'terminated': c.last_terminated}
        return status

    def report(self, pod: Pod):
        initialising = any(not c.terminated for c in pod.init_containers)
        for c in pod.containers:
            if initialising and c.process is None and not c.terminated:
                c.waiting_reason = 'PodInitializing'
            elif c.waiting_reason == 'PodInitializing':
                c.waiting_reason = 'ContainerCreating'
        statuses = [self.container_status(c) for c in pod.containers]
        init_failed = any(c.terminated and c.terminated['exitCode'] != 0 for c in pod.init_containers)
        if init_failed:
            phase = 'Failed'
        elif all(c.terminated for c in pod.containers):
            phase = 'Succeeded' if all(c.terminated['exitCode'] == 0 for c in pod.containers) else 'Failed'
        elif any(c.process is not None for c in pod.containers) or any(c.restarts for c in pod.containers):
            phase = 'Running'
        else:
            phase = 'Pending'
        ready = all(c.ready for c in pod.containers)
        conditions = [{'type': t, 'status': s, 'lastTransitionTime': pod.start_time} for t, s in (
            ('PodScheduled', 'True'), ('Initialized', 'False' if initialising else 'True'),
            ('ContainersReady', 'True' if ready else 'False'), ('Ready', 'True' if ready else 'False'))]
        status = {'phase': phase, 'hostIP': f'{self.subnet}.1', 'podIP': pod.ip, 'podIPs': [{'ip': pod.ip}],
                  'startTime': pod.start_time, 'conditions': conditions, 'containerStatuses': statuses}
        if pod.init_containers:
            status['initContainerStatuses'] = [self.container_status(c) for c in pod.init_containers]
        key = json.dumps(status, sort_keys=True)
        if key != pod.last_status:
            self.patch_status(pod, status)
            pod.last_status = key

    def kill_pod(self, pod: Pod, grace: int):
        for c in pod.init_containers + pod.containers:
            if c.process and c.process.poll() is None:
                try:
                    os.killpg(c.process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.time() + grace
        for c in pod.init_containers + pod.containers:
            if c.process:
                try:
                    c.process.wait(timeout=max(deadline - time.time(), 0.1))
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(c.process.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    c.process.wait()
        sh(f'ip netns del {pod.netns}', check=False)
        self.free.append(pod.index)

    def logs(self, namespace: str, name: str) -> str:
        for pod in self.pods.values():
            if pod.ns == namespace and pod.name == name:
                return '\n'.join(p.read_text(errors='replace') for p in sorted((pod.root / 'logs').iterdir()))
        return ''


class PullError(RuntimeError):
    """The image has no local stand-in: as an image that cannot be pulled."""


def expand(text: str, env: Dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: a defined variable is replaced, $$ is a literal $."""
    out, i = [], 0
    while i < len(text):
        if text.startswith('$$', i):
            out.append('$')
            i += 2
        elif text.startswith('$(', i) and ')' in text[i:]:
            end = text.index(')', i)
            name = text[i + 2:end]
            out.append(env[name] if name in env else text[i:end + 1])
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return ''.join(out)


def sh(command: str, check: bool = True):
    out = subprocess.run(command.split(), capture_output=True, text=True)
    if check and out.returncode != 0:
        raise RuntimeError(f'{command}: {out.stderr.strip()}')


def run_plan(plan_path: str):
    """Inside the container's network and (private) mount namespace: mount, drop rights, exec."""
    plan = json.loads(Path(plan_path).read_text())
    for private in plan['private_dirs']:
        os.makedirs(private, exist_ok=True)
        subprocess.run(['mount', '-t', 'tmpfs', '-o', 'mode=1777', 'tmpfs', private], check=True)
    for m in plan['mounts']:
        target = m['target']
        if os.path.isdir(m['source']):
            os.makedirs(target, exist_ok=True)
        elif not os.path.exists(target):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            open(target, 'a').close()
        subprocess.run(['mount', '--bind', m['source'], target], check=True)
        if m['ro']:
            subprocess.run(['mount', '-o', 'remount,bind,ro', target], check=True)
    if plan['read_only_root']:
        subprocess.run(['mount', '-o', 'remount,bind,ro', '/'], check=True)
    os.chdir(plan['workdir'])
    argv = plan['argv']
    if plan['uid'] is not None:
        groups = ','.join(str(g) for g in plan['groups']) if plan['groups'] else None
        argv = ['setpriv', f'--reuid={plan["uid"]}', f'--regid={plan["gid"]}',
                *([f'--groups={groups}'] if groups else ['--clear-groups']), '--', *argv]
    sys.stdout.flush()
    os.execvpe(argv[0], argv, plan['env'])


if __name__ == '__main__':
    if len(sys.argv) == 3 and sys.argv[1] == '--exec':
        run_plan(sys.argv[2])
