"""Steps as Kubernetes Jobs (the `kubernetes` driver), on a real control plane with the test
kubelet (kubelet.py: pods as local processes, init containers in order, unknown images as
images that cannot be pulled).

weir runs on the host against the control plane, its artifacts in an S3 server the pods reach
over the test bridge. Pipelines compiled by the SDK run with container and Python components,
artifacts, ParallelFor and kfp-kubernetes features, and end as on the local driver; failures,
retries, terminate, pods that cannot be scheduled or pulled, and a weir restart mid-step.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3
import kfp
import pytest
import requests
from kfp import dsl, kubernetes

from helpers import output_parameter, task_logs, weir_tasks
from conftest import HEALTHZ_TIMEOUT_S, database_server, start_weir, free_port, http_status, log_tail, stop_process, weir_server_argv
from kubelet import Kubelet, Launch
from test_k8s_deploy import Cluster, control_plane
from test_k8s_e2e import wait

NS = 'steps'
BRIDGE, SUBNET = 'weirbr2', '10.244.9'
DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'


def images(weir_bin: Path, image_dir: Path) -> dict:
    """weir's image (the launcher's init container) and the steps' images: their command run
    with this suite's interpreter (which has kfp, so the SDK's pip preamble finds it)."""
    shutil.copy2(weir_bin, image_dir / 'weir')
    os.chmod(image_dir / 'weir', 0o755)
    python_bin = str(Path(sys.executable).parent)
    step = lambda spec: Launch([*spec['command'], *spec['args']], env={'PATH': f'{python_bin}:{DEFAULT_PATH}'})
    return {'weir': lambda spec: Launch([str(image_dir / 'weir'), *spec['args']]),
            'python': step, 'alpine': step}


@pytest.fixture(scope='module')
def kube(tmp_path_factory, weir_bin):
    image_dir = Path(tempfile.mkdtemp(prefix='weir-driver-images-', dir='/var/tmp'))
    os.chmod(image_dir, 0o755)
    try:
        # Watches end after 4 to 8 s and etcd is compacted every 5 s, so the driver's watch of
        # Jobs and Pods must reconnect, and re-list when its resource version is gone, all the
        # time: every run here outlives several watches.
        args = '--min-request-timeout=4 --etcd-compaction-interval=5s'
        with control_plane(tmp_path_factory, 'k8s-driver', apiserver_args=args) as (folder, port):
            kubelet = Kubelet(folder, port, images(weir_bin, image_dir), bridge=BRIDGE, subnet=SUBNET)
            try:
                kubelet.start()
                yield Cluster(folder / 'kubeconfig'), kubelet, folder
            finally:
                kubelet.stop()
    finally:
        shutil.rmtree(image_dir, ignore_errors=True)


class S3:
    """An S3 server (moto) on all addresses: weir reaches it on loopback, pods over the bridge."""

    def __init__(self, folder: Path):
        self.port = free_port()
        self.log = folder / 's3.log'
        moto = Path(sys.executable).parent / 'moto_server'
        with open(self.log, 'wb') as log:
            self.process = subprocess.Popen([str(moto), '-H', '0.0.0.0', '-p', str(self.port)],
                                            stdout=log, stderr=subprocess.STDOUT)
        wait(lambda: http_status(f'http://127.0.0.1:{self.port}'), lambda s: s is not None, timeout=30)
        self.client().create_bucket(Bucket='weir')

    def client(self):
        return boto3.client('s3', endpoint_url=f'http://127.0.0.1:{self.port}', region_name='us-east-1',
                            aws_access_key_id='weirkey', aws_secret_access_key='weirsecret')

    def keys(self, prefix: str = ''):
        listed = self.client().list_objects_v2(Bucket='weir', Prefix=prefix)
        return [o['Key'] for o in listed.get('Contents', [])]


class Weir:
    def __init__(self, weir_bin: Path, folder: Path, kubeconfig: Path, s3: S3, metadata_url: str = None,
                 artifacts_url: str = 's3://weir/artifacts', extra_args=(), env=None):
        self.weir_bin, self.folder, self.s3 = weir_bin, folder, s3
        self.metadata_url = metadata_url or f'sqlite://{folder}/weir.db'
        self.artifacts_url, self.extra_args = artifacts_url, list(extra_args)
        self.env = {**os.environ,
                    'AWS_ENDPOINT_URL': f'http://127.0.0.1:{s3.port}', 'AWS_ACCESS_KEY_ID': 'weirkey',
                    'AWS_SECRET_ACCESS_KEY': 'weirsecret', 'AWS_REGION': 'us-east-1',
                    'KUBECONFIG': str(kubeconfig), 'WEIR_DRIVER': 'kubernetes', 'WEIR_K8S_NAMESPACE': NS,
                    'WEIR_K8S_LAUNCHER_IMAGE': 'weir:test',
                    'WEIR_K8S_S3_ENDPOINT': f'http://{SUBNET}.1:{s3.port}',
                    'WEIR_K8S_ARTIFACTS_SECRET': 'weir-store', 'WEIR_K8S_PENDING_TIMEOUT_SECONDS': '8',
                    **(env or {})}
        self.port = free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        self.log = folder / 'weir.log'
        self.process = None

    def start(self):
        argv = weir_server_argv(self.weir_bin, self.port, self.folder, self.metadata_url,
                                self.artifacts_url) + self.extra_args
        with open(self.log, 'ab') as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.folder, env=self.env)
        deadline = time.monotonic() + HEALTHZ_TIMEOUT_S
        while http_status(f'{self.url}/apis/v2beta1/healthz') != 200:
            assert self.process.poll() is None, f'weir exited:\n{log_tail(self.log)}'
            assert time.monotonic() < deadline, f'weir did not come up:\n{log_tail(self.log)}'
            time.sleep(0.2)
        return kfp.Client(host=self.url)

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self):
        if self.process and self.process.poll() is None:
            stop_process(self.process)


@pytest.fixture(scope='module')
def weir(kube, weir_bin, tmp_path_factory):
    cluster, kubelet, _ = kube
    folder = tmp_path_factory.mktemp('weir-k8s-driver')
    cluster.kubectl('create', 'namespace', NS)
    cluster.kubectl('-n', NS, 'create', 'secret', 'generic', 'weir-store', '--from-literal=AWS_ACCESS_KEY_ID=weirkey',
                    '--from-literal=AWS_SECRET_ACCESS_KEY=weirsecret', '--from-literal=AWS_REGION=us-east-1')
    cluster.kubectl('-n', NS, 'create', 'secret', 'generic', 'db-creds', '--from-literal=password=hunter2')
    cluster.kubectl('-n', NS, 'create', 'configmap', 'settings', '--from-literal=mode=fast')
    # The namespace's default service account (made by the controller manager) must exist.
    wait(lambda: cluster.kubectl('-n', NS, 'get', 'serviceaccount', 'default', check=False).returncode,
         lambda code: code == 0, timeout=60)
    s3 = S3(folder)
    server = Weir(weir_bin, folder, cluster.kubeconfig, s3)
    server.client = server.start()
    try:
        yield server
    finally:
        server.stop()
        stop_process(s3.process)


def run_to_end(weir, pipeline, arguments=None, timeout=180):
    run = weir.client.create_run_from_pipeline_func(pipeline, arguments=arguments or {})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = weir.client.get_run(run.run_id)
        if got.state in ('SUCCEEDED', 'FAILED', 'CANCELED', 'SKIPPED'):
            return got
        time.sleep(1)
    raise AssertionError(f'run {run.run_id} did not end:\n{log_tail(weir.log, 80)}')


def tasks_of(weir, run_id):
    return weir_tasks(weir.url, run_id).tasks


def pod_logs(kubelet, count=4):
    """The kubelet's logs of the last pods' containers (for a failure's message)."""
    files = sorted(kubelet.root.glob('pods/*/logs/*'), key=lambda p: p.stat().st_mtime)[-count:]
    return '\n'.join(f'--- {f}\n{f.read_text(errors="replace")[-2000:]}' for f in files)


def jobs(cluster):
    return cluster.get('jobs', NS)


# -- pipelines ------------------------------------------------------------------------------

@dsl.container_component
def write_text(text: str, data: dsl.Output[dsl.Dataset]):
    return dsl.ContainerSpec(image='alpine:3.19', command=['sh', '-c', 'mkdir -p "$(dirname "$1")" && printf "%s" "$0" > "$1"'],
                             args=[text, data.path])


@dsl.component(base_image='python:3.11')
def shout(data: dsl.Input[dsl.Dataset], suffix: str, loud: dsl.Output[dsl.Dataset]) -> str:
    import os
    text = open(data.path).read().upper() + suffix
    with open(loud.path, 'w') as f:
        f.write(text)
    return text + '|' + os.environ.get('DB_PASSWORD', '-') + '|' + open('/etc/settings/mode').read()


@dsl.component(base_image='python:3.11')
def square(x: int) -> int:
    return x * x


@dsl.component(base_image='python:3.11')
def total(values: list) -> int:
    return sum(values)


@dsl.pipeline(name='k8s-driver-all')
def everything(text: str = 'hello'):
    written = write_text(text=text)
    loud = shout(data=written.outputs['data'], suffix='!')
    kubernetes.use_secret_as_env(loud, secret_name='db-creds', secret_key_to_env={'password': 'DB_PASSWORD'})
    kubernetes.use_config_map_as_volume(loud, config_map_name='settings', mount_path='/etc/settings')
    kubernetes.add_pod_label(loud, 'team', 'ml')
    loud.set_cpu_limit('1').set_memory_limit('256Mi')
    with dsl.ParallelFor([1, 2, 3]) as x:
        squared = square(x=x)
    total(values=dsl.Collected(squared.output))


@dsl.component(base_image='python:3.11')
def fail_loudly():
    print('about to fail')
    raise SystemExit(3)


@dsl.pipeline(name='k8s-driver-retry')
def failing():
    fail_loudly().set_retry(num_retries=1, backoff_duration='0s')


@dsl.container_component
def from_nowhere():
    return dsl.ContainerSpec(image='registry.invalid/no-such-image:1', command=['true'])


@dsl.pipeline(name='k8s-driver-pull')
def unpullable():
    from_nowhere()


@dsl.container_component
def greedy():
    return dsl.ContainerSpec(image='alpine:3.19', command=['true'])


@dsl.pipeline(name='k8s-driver-greedy')
def unschedulable():
    greedy().set_cpu_request('64').set_cpu_limit('64')


@dsl.container_component
def sleep_then_write(seconds: int, out: dsl.OutputPath(str)):
    return dsl.ContainerSpec(image='alpine:3.19',
                             command=['sh', '-c', 'sleep "$0" && mkdir -p "$(dirname "$1")" && echo slept > "$1"'],
                             args=[seconds, out])


@dsl.pipeline(name='k8s-driver-sleep')
def sleeper(seconds: int = 10):
    sleep_then_write(seconds=seconds)


@dsl.component(base_image='python:3.11')
def write_volume(text: str):
    with open('/data/note.txt', 'w') as f:
        f.write(text)


@dsl.component(base_image='python:3.11')
def read_volume() -> str:
    return open('/data/note.txt').read()


@dsl.pipeline(name='k8s-driver-pvc')
def with_volume(text: str = 'on the claim'):
    pvc = kubernetes.CreatePVC(pvc_name_suffix='-data', access_modes=['ReadWriteOnce'], size='1Mi',
                               storage_class_name='manual')
    written = write_volume(text=text)
    kubernetes.mount_pvc(written, pvc_name=pvc.outputs['name'], mount_path='/data')
    read = read_volume().after(written)
    kubernetes.mount_pvc(read, pvc_name=pvc.outputs['name'], mount_path='/data')
    kubernetes.DeletePVC(pvc_name=pvc.outputs['name']).after(read)


@dsl.component(base_image='python:3.11')
def where_am_i() -> str:
    import os
    with open('/scratch/probe', 'w') as f:
        f.write('ok')
    return '|'.join([os.environ['POD_NAME'], os.environ['NODE'], os.environ['NOTE'], open('/scratch/probe').read(),
                     open('/etc/db/password').read()])


@dsl.pipeline(name='k8s-driver-platform')
def platform(cpu: str = '500m', memory: str = '64Mi'):
    task = where_am_i()
    task.set_cpu_limit(cpu).set_memory_limit(memory)
    kubernetes.use_field_path_as_env(task, env_name='POD_NAME', field_path='metadata.name')
    kubernetes.use_field_path_as_env(task, env_name='NODE', field_path='spec.nodeName')
    kubernetes.use_field_path_as_env(task, env_name='NOTE', field_path="metadata.annotations['note']")
    kubernetes.add_pod_annotation(task, 'note', 'from the pipeline')
    kubernetes.empty_dir_mount(task, volume_name='scratch', mount_path='/scratch')
    kubernetes.add_node_selector_json(task, node_selector_json={'kubernetes.io/hostname': 'weir-test-node'})
    kubernetes.add_node_affinity(task, match_expressions=[
        {'key': 'kubernetes.io/hostname', 'operator': 'In', 'values': ['weir-test-node']}])
    kubernetes.use_secret_as_volume(task, secret_name='db-creds', mount_path='/etc/db')
    kubernetes.set_image_pull_secrets(task, ['regcred'])
    kubernetes.set_security_context(task, run_as_user=0)
    kubernetes.add_toleration(task, key='dedicated', operator='Equal', value='ml', effect='NoSchedule')
    kubernetes.set_image_pull_policy(task, 'IfNotPresent')
    kubernetes.set_timeout(task, 120)


# -- tests ----------------------------------------------------------------------------------

def test_a_pipeline_runs_as_jobs_to_the_same_end_as_locally(weir, kube):
    cluster = kube[0]
    run = run_to_end(weir, everything)
    tasks = weir_tasks(weir.url, run.run_id)
    assert run.state == 'SUCCEEDED', (run.error, tasks, pod_logs(kube[1]))
    assert output_parameter(tasks.one('shout')) == 'HELLO!|hunter2|fast'
    assert output_parameter(tasks.one('total')) == 14
    # The Python step's artifact was kept in the store where weir keeps artifacts.
    loud = [k for k in weir.s3.keys('artifacts/') if '/loud' in k]
    assert loud and weir.s3.client().get_object(Bucket='weir', Key=loud[0])['Body'].read() == b'HELLO!'
    # Every Job was settled and removed, and nothing staged is left behind.
    assert jobs(cluster) == []
    assert weir.s3.keys('.weir/attempts/') == []
    # The step's log came back through the launcher, with the step's own output in it.
    log = task_logs(weir.url, run.run_id, 'shout')
    assert 'as a Kubernetes pod in image python:3.11' in log and 'Wrote executor output file' in log, log


def test_a_job_carries_the_steps_labels_and_the_launcher(weir, kube):
    cluster = kube[0]
    run = weir.client.create_run_from_pipeline_func(sleeper, arguments={'seconds': 6})
    job = wait(lambda: jobs(cluster), lambda j: len(j) == 1, timeout=60)[0]
    labels = job['metadata']['labels']
    assert labels['pipelines.weir.dev/run-id'] == run.run_id
    assert labels['pipelines.weir.dev/attempt'] == '1'
    pod = job['spec']['template']['spec']
    assert pod['restartPolicy'] == 'Never' and job['spec']['backoffLimit'] == 0
    assert pod['initContainers'][0]['image'] == 'weir:test'
    assert pod['containers'][0]['command'][:3] == ['/weir-launcher/weir', 'launcher', 'run']
    wait(lambda: weir.client.get_run(run.run_id).state, lambda s: s == 'SUCCEEDED', timeout=90)


def test_create_pvc_makes_a_claim_the_steps_mount_and_delete_pvc_removes_it(weir, kube, tmp_path):
    cluster = kube[0]
    folder = tmp_path / 'pv'
    folder.mkdir()
    pv = {'apiVersion': 'v1', 'kind': 'PersistentVolume', 'metadata': {'name': 'weir-driver-pv'},
          'spec': {'capacity': {'storage': '1Gi'}, 'accessModes': ['ReadWriteOnce'], 'storageClassName': 'manual',
                   'persistentVolumeReclaimPolicy': 'Retain', 'hostPath': {'path': str(folder)}}}
    cluster.kubectl('apply', '-f', '-', stdin=json.dumps(pv))
    run = run_to_end(weir, with_volume)
    tasks = weir_tasks(weir.url, run.run_id)
    assert run.state == 'SUCCEEDED', (run.error, tasks, pod_logs(kube[1]))
    assert output_parameter(tasks.one('read-volume')) == 'on the claim'
    # The claim was the cluster's: bound to the volume, written there, and deleted at the end.
    assert (folder / 'note.txt').read_text() == 'on the claim'
    name = output_parameter(tasks.one('createpvc'), 'name')
    assert name.endswith('-data')
    wait(lambda: [c['metadata']['name'] for c in cluster.get('pvc', NS)], lambda names: name not in names, timeout=30)


@dsl.pipeline(name='k8s-driver-delete-foreign')
def delete_foreign(name: str = 'precious'):
    kubernetes.DeletePVC(pvc_name=name)


def test_delete_pvc_leaves_a_claim_weir_did_not_make(weir, kube):
    cluster = kube[0]
    claim = {'apiVersion': 'v1', 'kind': 'PersistentVolumeClaim', 'metadata': {'name': 'precious'},
             'spec': {'accessModes': ['ReadWriteOnce'], 'resources': {'requests': {'storage': '1Mi'}},
                      'storageClassName': 'none'}}
    cluster.kubectl('-n', NS, 'apply', '-f', '-', stdin=json.dumps(claim))
    run_to_end(weir, delete_foreign)
    assert 'precious' in [c['metadata']['name'] for c in cluster.get('pvc', NS)]
    assert 'was not made by a pipeline' in log_tail(weir.log, 200)


def test_platform_features_reach_the_pod_and_runtime_resources_the_job(weir, kube):
    cluster = kube[0]
    seen = {}

    def watch_job():
        # The Job lives only while its step runs: read it then.
        found = jobs(cluster)
        if found:
            seen['job'] = found[0]
        return found

    run = weir.client.create_run_from_pipeline_func(platform, arguments={'cpu': '250m', 'memory': '96Mi'})
    wait(watch_job, lambda j: len(j) == 1, timeout=60)
    got = wait(lambda: weir.client.get_run(run.run_id), lambda r: r.state in ('SUCCEEDED', 'FAILED'), timeout=120)
    tasks = weir_tasks(weir.url, run.run_id)
    assert got.state == 'SUCCEEDED', (got.error, tasks, pod_logs(kube[1]))
    pod_name, node, note, probe, password = output_parameter(tasks.one('where-am-i')).split('|')
    job = seen['job']
    assert pod_name.startswith(job['metadata']['name'] + '-'), (pod_name, job['metadata']['name'])
    assert (node, note, probe, password) == ('weir-test-node', 'from the pipeline', 'ok', 'hunter2')
    spec = job['spec']['template']['spec']
    main = spec['containers'][0]
    # Runtime values of set_cpu_limit / set_memory_limit, resolved from the run's parameters.
    assert main['resources']['limits'] == {'cpu': '250m', 'memory': '96Mi'}, main['resources']
    assert main['imagePullPolicy'] == 'IfNotPresent'
    assert spec['nodeSelector'] == {'kubernetes.io/hostname': 'weir-test-node'}
    assert spec['tolerations'][0]['key'] == 'dedicated'
    required = spec['affinity']['nodeAffinity']['requiredDuringSchedulingIgnoredDuringExecution']
    assert required['nodeSelectorTerms'][0]['matchExpressions'][0]['values'] == ['weir-test-node']
    assert spec['imagePullSecrets'] == [{'name': 'regcred'}]
    assert main['securityContext'] == {'runAsUser': 0}
    assert any(v.get('secret', {}).get('secretName') == 'db-creds' for v in spec['volumes'])
    assert spec['activeDeadlineSeconds'] == 120
    assert job['spec']['template']['metadata']['annotations']['note'] == 'from the pipeline'


def test_a_failing_step_is_retried_as_a_new_job_and_fails_with_its_log(weir):
    run = run_to_end(weir, failing)
    assert run.state == 'FAILED'
    task = weir_tasks(weir.url, run.run_id).named('fail-loudly')[-1]
    assert task['state'] == 'FAILED', task
    text = str(task) + str(run.error)
    assert 'exited with code 3' in text, text
    assert 'about to fail' in text, text
    log = log_tail(weir.log, 400)
    assert log.count('step started as a Job') >= 2, log


def test_an_image_that_cannot_be_pulled_fails_the_step_with_the_reason(weir, kube):
    run = run_to_end(weir, unpullable, timeout=120)
    assert run.state == 'FAILED'
    text = str(run.error) + str([t.get('error') for t in tasks_of(weir, run.run_id)])
    assert 'ImagePullBackOff' in text and 'did not start within 8 s' in text, text
    assert jobs(kube[0]) == []


def test_a_pod_no_node_fits_fails_the_step_with_the_reason(weir, kube):
    run = run_to_end(weir, unschedulable, timeout=120)
    assert run.state == 'FAILED'
    text = str(run.error) + str([t.get('error') for t in tasks_of(weir, run.run_id)])
    assert 'cannot be scheduled' in text, text
    assert jobs(kube[0]) == []


def test_terminate_deletes_the_runs_jobs(weir, kube):
    cluster = kube[0]
    run = weir.client.create_run_from_pipeline_func(sleeper, arguments={'seconds': 120})
    wait(lambda: jobs(cluster), lambda j: len(j) == 1, timeout=60)
    wait(lambda: weir.client.get_run(run.run_id).state, lambda s: s == 'RUNNING', timeout=30)
    weir.client.terminate_run(run.run_id)
    state = wait(lambda: weir.client.get_run(run.run_id).state, lambda s: s in ('CANCELED', 'FAILED'), timeout=60)
    assert state == 'CANCELED'
    wait(lambda: jobs(cluster), lambda j: j == [], timeout=30)


def test_a_step_outlives_several_watches(weir, kube):
    """The API server ends each watch after 4 to 8 s: a 20 s step is seen to end only if the
    driver's watch reconnected (and re-listed after compaction) in between."""
    started = time.monotonic()
    run = run_to_end(weir, sleeper, {'seconds': 20}, timeout=120)
    assert run.state == 'SUCCEEDED', (run.error, pod_logs(kube[1]))
    # Seen promptly: not left until some poll far later.
    assert time.monotonic() - started < 60


def test_a_restarted_weir_adopts_the_running_job_without_a_second_attempt(weir, kube):
    cluster = kube[0]
    run = weir.client.create_run_from_pipeline_func(sleeper, arguments={'seconds': 8})
    job = wait(lambda: jobs(cluster), lambda j: len(j) == 1, timeout=60)[0]
    weir.kill()
    weir.client = weir.start()
    got = wait(lambda: weir.client.get_run(run.run_id), lambda r: r.state in ('SUCCEEDED', 'FAILED'), timeout=120)
    assert got.state == 'SUCCEEDED', (got.error, weir_tasks(weir.url, run.run_id), pod_logs(kube[1]))
    task = weir_tasks(weir.url, run.run_id).one('sleep-then-write')
    assert output_parameter(task, 'out').strip() == 'slept'
    assert task['attempts'] == 1, task
    # One attempt, in the one Job that was running when weir was killed.
    assert job['metadata']['name'].endswith('-1')
    assert log_tail(weir.log, 400).count(job['metadata']['name']) >= 1
    assert jobs(cluster) == []


def test_a_replica_on_another_host_settles_the_job_of_one_that_died(weir, kube, weir_bin, tmp_path):
    """Two weirs on one PostgreSQL database, each with its own work folder and host name (as two
    pods): the one that started a step's Job is killed; the other takes the run over when the
    lease runs out, adopts the running Job and settles it from the object store, with no
    second attempt."""
    cluster = kube[0]
    database = database_server('postgres')
    name = f'weir_k8s_{uuid.uuid4().hex[:10]}'
    replicas = []
    try:
        for host in ('replica-a', 'replica-b'):
            folder = tmp_path / host
            folder.mkdir()
            replica = Weir(weir_bin, folder, cluster.kubeconfig, weir.s3, metadata_url=database.database_url(name),
                           artifacts_url='s3://weir/replicas', env={'HOSTNAME': host},
                           extra_args=['--name', 'replicas', '--replica-lease-seconds', '6',
                                       '--work-dir', str(folder / 'work')])
            replica.client = replica.start()
            replicas.append(replica)
        run = replicas[0].client.create_run_from_pipeline_func(sleeper, arguments={'seconds': 15})
        job = wait(lambda: jobs(cluster), lambda j: len(j) == 1, timeout=60)[0]
        starter = next(r for r in replicas if job['metadata']['name'] in r.log.read_text(errors='replace'))
        survivor = next(r for r in replicas if r is not starter)
        starter.kill()
        got = wait(lambda: survivor.client.get_run(run.run_id), lambda r: r.state in ('SUCCEEDED', 'FAILED'),
                   timeout=120)
        task = weir_tasks(survivor.url, run.run_id).one('sleep-then-write')
        assert got.state == 'SUCCEEDED', (got.error, task, log_tail(survivor.log, 60))
        assert output_parameter(task, 'out').strip() == 'slept'
        assert task['attempts'] == 1, task
        assert 'adopted a step still running' in survivor.log.read_text(errors='replace')
        wait(lambda: jobs(cluster), lambda j: j == [], timeout=30)
    finally:
        for replica in replicas:
            replica.stop()
        database.drop(name)


# KFP's own end-to-end pipeline shapes (kfp_semantics_pipelines.py), run on both drivers: each
# must end the same way, task by task. The workspace pipeline is left out: KFP mounts a
# workspace PVC, which this driver does not make yet.
SAME_END = ['fstring_pipeline', 'string_inputs_pipeline', 'final_status_pipeline', 'ignore_upstream_pipeline',
            'ignore_upstream_ok_pipeline', 'pythonic_artifacts_pipeline', 'missing_output_pipeline',
            'uri_handoff_pipeline', 'hand_on_pipeline', 'forge_pipeline']


@pytest.fixture(scope='module')
def local_weir(weir_bin, tmp_path_factory):
    folder = tmp_path_factory.mktemp('weir-local-driver')
    server = start_weir(weir_bin, 'sqlite', folder, f'sqlite://{folder}/weir.db', f'file://{folder}/artifacts', {})
    server.client = kfp.Client(host=server.url)
    try:
        yield server
    finally:
        stop_process(server.process)


def ending(client, url, pipeline):
    run = client.create_run_from_pipeline_func(pipeline, arguments={}, enable_caching=False)
    got = wait(lambda: client.get_run(run.run_id), lambda r: r.state in ('SUCCEEDED', 'FAILED', 'CANCELED'),
               timeout=180, describe=lambda: json.dumps(weir_tasks(url, run.run_id).tasks)[:4000])
    tasks = weir_tasks(url, run.run_id).tasks
    states = sorted((t['name'], t['kind'], t['state']) for t in tasks if t['kind'] != 'dag' or t.get('parent_task_id'))
    outputs = sorted((t['name'], json.dumps((t.get('outputs') or {}).get('parameters') or {}, sort_keys=True))
                     for t in tasks if t['kind'] == 'container')
    return got.state, states, outputs


@pytest.mark.parametrize('name', SAME_END)
def test_kfp_pipelines_end_as_on_the_local_driver(weir, local_weir, kube, name):
    import kfp_semantics_pipelines as pipelines
    pipeline = getattr(pipelines, name)
    local = ending(local_weir.client, local_weir.url, pipeline)
    on_cluster = ending(weir.client, weir.url, pipeline)
    # Outputs naming the run (the final status report) or the store (a URI) differ by nature.
    differ = {'final_status_pipeline': {'report'}, 'uri_handoff_pipeline': {'get-uri', 'get-uri-2'}}.get(name, set())
    local, on_cluster = [(state, tasks, [o for o in outputs if o[0] not in differ])
                         for state, tasks, outputs in (local, on_cluster)]
    assert on_cluster == local, (on_cluster, local, pod_logs(kube[1]))
