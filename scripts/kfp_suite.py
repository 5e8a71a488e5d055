"""Runs KFP's own end-to-end pipelines against a weir server, as KFP's suite runs them.

KFP's end-to-end suite (kubeflow/pipelines `backend/test/end2end/pipeline_e2e_test.go`) uploads
every compiled package of `test_data/sdk_compiled_pipelines/valid/{critical,essential,
parallel_and_nested,integration,gpu-scheduling}` and requires each run to end SUCCEEDED, and
every package of `valid/failing` to end FAILED. Required pipeline inputs without a default get
values of their type (`GetPipelineRunTimeInputs` in `backend/test/testutil/pipeline_run_utils.go`),
and the suite creates the secrets `test-secret-1` (`username: user1`), `test-secret-2`
(`password: psw1`) and `test-secret-3` (`password: psw2`) before each test. This script does
the same against weir with `kfp.Client`, so it needs a checkout of kubeflow/pipelines:

    .venv/bin/python scripts/kfp_suite.py --kfp-repo ~/src/pipelines --host http://127.0.0.1:8888

It prints one line per package (expected and actual end, the run's error) and a summary, and
exits non-zero when a package that should run here ends otherwise. Packages that need what a
single machine does not have (a Ray cluster, an OCI registry, a TLS-enabled API server, as
KFP's suite itself skips) are listed as skipped with the reason.
"""
import argparse
import concurrent.futures
import json
import os
import random
import string
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import kfp
import yaml

FOLDERS = ['critical', 'essential', 'parallel_and_nested', 'failing', 'integration', 'gpu-scheduling']

# The secrets KFP's suite creates in its namespace before each test (pipeline_e2e_test.go).
SECRETS = {'test-secret-1': {'username': 'user1'}, 'test-secret-2': {'password': 'psw1'},
           'test-secret-3': {'password': 'psw2'}}

# What one machine cannot give a package, by file name.
NOT_HERE = {
    'ray_integration_compiled.yaml': 'needs a Ray cluster (KubeRay)',
    'modelcar.yaml': 'pulls a model image from an OCI registry',
    'pipeline_with_submit_request.yaml': 'KFP skips it unless the API server has TLS',
    'pipeline_with_artifact_upload_download.yaml': 'downloads a dataset from the Hugging Face Hub',
}


def random_text(n: int = 20) -> str:
    return ''.join(random.choice(string.ascii_letters) for _ in range(n))


def runtime_inputs(spec: dict) -> Dict[str, object]:
    """Values for required inputs that have no default, by type, as KFP's suite makes them."""
    values: Dict[str, object] = {}
    params = spec.get('root', {}).get('inputDefinitions', {}).get('parameters', {})
    for name, p in params.items():
        if 'defaultValue' in p or p.get('isOptional'):
            continue
        kind = p.get('parameterType')
        values[name] = {
            'NUMBER_INTEGER': random.randrange(1000),
            'NUMBER_DOUBLE': random.random(),
            'BOOLEAN': True,
            'STRUCT': {'A': str(random.random()), 'B': str(random.random())},
            'LIST': [random_text()],
        }.get(kind, random_text())
    return values


def pipeline_spec(path: Path) -> dict:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs[0].get('pipelineSpec', docs[0])


def packages(repo: Path, folders: List[str], only: Optional[List[str]]) -> List[Tuple[str, Path]]:
    found = []
    base = repo / 'test_data' / 'sdk_compiled_pipelines' / 'valid'
    for folder in folders:
        for path in sorted((base / folder).glob('*.yaml')):
            label = f'{folder}/{path.name}'
            if only and not any(o in label for o in only):
                continue
            found.append((folder, path))
    return found


def create_secrets(weir: str, host: str) -> None:
    env = {**os.environ, 'WEIR_HOST': host}
    for name, data in SECRETS.items():
        subprocess.run([weir, 'secret', 'delete', name], capture_output=True, env=env)
        argv = [weir, 'secret', 'create', name]
        for key, value in data.items():
            argv += ['--from-literal', f'{key}={value}']
        done = subprocess.run(argv, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            print(f'could not create secret {name}: {done.stderr.strip()}', file=sys.stderr)


def run_one(client: kfp.Client, folder: str, path: Path, timeout: float) -> dict:
    label = f'{folder}/{path.name}'
    expected = 'FAILED' if folder == 'failing' else 'SUCCEEDED'
    if path.name in NOT_HERE or '_gh-' in path.name.lower():
        return {'package': label, 'expected': expected, 'state': 'SKIPPED',
                'why': NOT_HERE.get(path.name, 'KFP skips it (known issue)')}
    spec = pipeline_spec(path)
    started = time.monotonic()
    try:
        name = f'e2e-{path.stem}-{random_text(6).lower()}'
        pipeline = client.upload_pipeline(str(path), pipeline_name=name)
        versions = client.list_pipeline_versions(pipeline.pipeline_id, page_size=1)
        version_id = versions.pipeline_versions[0].pipeline_version_id
        run = client.run_pipeline(
            experiment_id=client.get_experiment(experiment_name='kfp-suite').experiment_id,
            job_name=name, params=runtime_inputs(spec), pipeline_id=pipeline.pipeline_id,
            version_id=version_id, enable_caching=False)
    except Exception as e:  # a refusal at upload or creation is the package's outcome
        return {'package': label, 'expected': expected, 'state': 'REFUSED',
                'why': str(getattr(e, 'body', e))[:400], 'seconds': time.monotonic() - started}
    detail = client.wait_for_run_completion(run.run_id, timeout=timeout)
    state = str(detail.state)
    why = ''
    if detail.error is not None and detail.error.message:
        why = detail.error.message[:400]
    return {'package': label, 'expected': expected, 'state': state, 'why': why,
            'run_id': run.run_id, 'seconds': time.monotonic() - started}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--kfp-repo', type=Path, required=True)
    parser.add_argument('--host', default='http://127.0.0.1:8888')
    parser.add_argument('--weir', default='target/release/weir',
                        help='the weir binary, for creating the secrets KFP\'s suite creates')
    parser.add_argument('--folders', default=','.join(FOLDERS))
    parser.add_argument('--only', help='comma-separated substrings of folder/file to keep')
    parser.add_argument('--jobs', type=int, default=4, help='runs under way at once')
    parser.add_argument('--timeout', type=float, default=900)
    parser.add_argument('--json', type=Path, help='write the results here too')
    args = parser.parse_args()

    client = kfp.Client(host=args.host)
    try:
        client.get_experiment(experiment_name='kfp-suite')
    except Exception:
        client.create_experiment('kfp-suite')
    create_secrets(args.weir, args.host)
    todo = packages(args.kfp_repo, args.folders.split(','), args.only.split(',') if args.only else None)
    results = []
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run_one, client, folder, path, args.timeout) for folder, path in todo]
        for future in concurrent.futures.as_completed(futures):
            r = future.result()
            results.append(r)
            ok = r['state'] == r['expected'] or r['state'] == 'SKIPPED'
            print(f"{'ok ' if ok else 'BAD'} {r['package']:<75} {r['state']:<10} "
                  f"{r.get('seconds', 0):6.1f}s {r.get('why', '')}", flush=True)
    results.sort(key=lambda r: r['package'])
    bad = [r for r in results if r['state'] not in (r['expected'], 'SKIPPED')]
    skipped = [r for r in results if r['state'] == 'SKIPPED']
    print(f'\n{len(results) - len(bad) - len(skipped)} of {len(results) - len(skipped)} end as KFP\'s '
          f'backend ends them; {len(skipped)} skipped (need what one machine lacks)')
    for r in bad:
        print(f"  {r['package']}: expected {r['expected']}, got {r['state']}: {r.get('why', '')}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
