"""Steps per second through weir's Kubernetes driver, against the same cluster running the same
steps as bare Jobs, in one invocation.

    .venv/bin/python bench/k8s_driver.py [--steps 40] [--rounds 3] [--weir target/release/weir]

The cluster is the tests' real control plane (etcd, kube-apiserver, controller manager,
scheduler; scripts/k8s) with the test kubelet (tests/sdk/kubelet.py: pods as local processes),
so the figures are of orchestration, not of pulling images or starting containers. Each round:

- **weir**: a ParallelFor of N `sh -c true` container steps, compiled by the SDK, submitted with
  kfp.Client and polled until SUCCEEDED. Includes the run's planning, one Job per step (its
  launcher init container, the attempt's folder staged through the S3 server and back), the
  watch, and the results recorded.
- **bare Jobs**: the same N `sh -c true` containers as Jobs created with one `kubectl apply`,
  waited on until all are Complete (`kubectl wait`). What the cluster costs alone.

Prints medians and ranges of the wall time and steps per second, and the ratio.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tests' / 'sdk'))

import kfp  # noqa: E402
from kfp import compiler, dsl  # noqa: E402

from kubelet import Kubelet  # noqa: E402
from test_k8s_deploy import KUBECTL, SCRIPTS, free_port_triple  # noqa: E402
from test_k8s_driver import NS, S3, Weir, images  # noqa: E402

BRIDGE, SUBNET = 'weirbrb', '10.244.11'


@dsl.container_component
def nothing():
    return dsl.ContainerSpec(image='alpine:3.19', command=['sh', '-c', 'true'])


def fan_out(n: int):
    @dsl.pipeline(name=f'bench-k8s-fan-out-{n}')
    def pipeline():
        with dsl.ParallelFor(list(range(n)), parallelism=0):
            # Every round runs its steps: no result is taken from the cache.
            nothing().set_caching_options(False)
    return pipeline


def bare_jobs(n: int, round_no: int) -> str:
    docs = []
    for i in range(n):
        docs.append({'apiVersion': 'batch/v1', 'kind': 'Job',
                     'metadata': {'name': f'bare-{round_no}-{i}', 'labels': {'bench': f'r{round_no}'}},
                     'spec': {'backoffLimit': 0, 'template': {'spec': {
                         'restartPolicy': 'Never', 'enableServiceLinks': False,
                         'containers': [{'name': 'main', 'image': 'alpine:3.19', 'command': ['sh', '-c', 'true']}]}}}})
    return json.dumps({'apiVersion': 'v1', 'kind': 'List', 'items': docs})


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument('--steps', type=int, default=40)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--weir', default=str(ROOT / 'target' / 'release' / 'weir'))
    args = parser.parse_args()
    bin_dir = os.environ.get('WEIR_K8S_BIN') or subprocess.run(
        ['bash', str(SCRIPTS / 'build.sh')], capture_output=True, text=True, check=True).stdout.split()[-1]
    work = Path(tempfile.mkdtemp(prefix='weir-bench-k8s-', dir='/var/tmp'))
    image_dir = work / 'images'
    image_dir.mkdir()
    os.chmod(work, 0o755)
    os.chmod(image_dir, 0o755)
    port = free_port_triple()
    cluster_dir = work / 'cluster'
    subprocess.run(['bash', str(SCRIPTS / 'up.sh'), bin_dir, str(cluster_dir), str(port)], check=True,
                   capture_output=True, timeout=180)
    kubeconfig = cluster_dir / 'kubeconfig'
    kubectl = lambda *a, stdin=None: subprocess.run([KUBECTL, '--kubeconfig', str(kubeconfig), *a], input=stdin,
                                                    capture_output=True, text=True, check=True, timeout=600)
    kubelet = Kubelet(cluster_dir, port, images(Path(args.weir), image_dir), bridge=BRIDGE, subnet=SUBNET)
    kubelet.start()
    weir = s3 = None
    try:
        kubectl('create', 'namespace', NS)
        kubectl('-n', NS, 'create', 'secret', 'generic', 'weir-store', '--from-literal=AWS_ACCESS_KEY_ID=weirkey',
                '--from-literal=AWS_SECRET_ACCESS_KEY=weirsecret', '--from-literal=AWS_REGION=us-east-1')
        for _ in range(120):
            if subprocess.run([KUBECTL, '--kubeconfig', str(kubeconfig), '-n', NS, 'get', 'sa', 'default'],
                              capture_output=True).returncode == 0:
                break
            time.sleep(0.5)
        s3 = S3(work)
        weir = Weir(Path(args.weir), work, kubeconfig, s3)
        # Under the test bridge: Weir's own subnet constant is the test module's.
        weir.env['WEIR_K8S_S3_ENDPOINT'] = f'http://{SUBNET}.1:{s3.port}'
        weir.env['WEIR_MAX_CONCURRENT_STEPS'] = str(args.steps)
        client = weir.start()
        package = work / 'fan-out.yaml'
        compiler.Compiler().compile(fan_out(args.steps), str(package))
        results = {'weir': [], 'bare Jobs': []}
        for round_no in range(args.rounds + 1):
            started = time.monotonic()
            run = client.create_run_from_pipeline_package(str(package), arguments={})
            while client.get_run(run.run_id).state not in ('SUCCEEDED', 'FAILED'):
                time.sleep(0.2)
            took = time.monotonic() - started
            assert client.get_run(run.run_id).state == 'SUCCEEDED'
            if round_no:
                results['weir'].append(took)
            started = time.monotonic()
            kubectl('-n', NS, 'apply', '-f', '-', stdin=bare_jobs(args.steps, round_no))
            kubectl('-n', NS, 'wait', '--for=condition=complete', '--timeout=600s', 'job', '-l', f'bench=r{round_no}')
            took = time.monotonic() - started
            kubectl('-n', NS, 'delete', 'job', '-l', f'bench=r{round_no}', '--wait=false')
            if round_no:
                results['bare Jobs'].append(took)
            print(f'round {round_no}{" (warm-up)" if not round_no else ""}: weir {results["weir"][-1:] or "-"} '
                  f'bare {results["bare Jobs"][-1:] or "-"}', file=sys.stderr)
        print(f'{args.steps} steps, {args.rounds} rounds (after one warm-up)')
        print('| side | median s | min–max s | steps/s (median) |')
        print('|---|---|---|---|')
        for side, times in results.items():
            median = statistics.median(times)
            print(f'| {side} | {median:.2f} | {min(times):.2f}–{max(times):.2f} | {args.steps / median:.1f} |')
        ratio = statistics.median(results['weir']) / statistics.median(results['bare Jobs'])
        print(f'weir / bare Jobs: {ratio:.2f}x')
    finally:
        if weir:
            weir.stop()
        if s3:
            s3.process.terminate()
        kubelet.stop()
        subprocess.run(['bash', str(SCRIPTS / 'down.sh'), str(cluster_dir)], timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
