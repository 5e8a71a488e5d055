"""Property-based test of weir's HTTP API: no generated request gets a 5xx.

schemathesis reads weir's own OpenAPI document (generated from the code; `weir openapi` prints it
and the server serves it at /apis/weir/v1/openapi.json) and, for every operation in it, sends
requests generated from the
schemas: the document's examples, boundary and negative cases (coverage phase) and random valid
and invalid requests (fuzzing phase). The only property checked is that weir answers each of
them with something other than a 5xx (or a dropped connection): a bad request is the client's
error and must be reported as one.

One weir on fresh SQLite + file storage serves the whole module. Before fuzzing it is seeded
through the API (experiments, uploaded pipelines with versions, finished runs with tasks,
artifacts and logs, a failed run, recurring runs), and the seeded ids, names and page tokens
are mixed into generated path and query parameters (and stored pipelines into run and recurring
run bodies), so operations on `{id}` reach existing entities as well as missing ones. Deletes
and state changes are fine: the storage is fresh.

Each operation is its own test item (`test_no_server_error[GET /apis/v2beta1/runs]`); a 5xx
fails it with the (shrunk) request as a curl command, the response, and the weir log lines for
the error. Random examples per operation: WEIR_FUZZ_EXAMPLES (default 50). The operations whose
input goes furthest (run and recurring run creation, version creation, the lists and their
filters) are fuzzed again with valid requests only (`test_no_server_error_deep`,
WEIR_FUZZ_DEEP_EXAMPLES, default 150). Last, `test_no_panic_in_weir_log` fails if weir
panicked anywhere, for example in the scheduler after accepting a request.

WEIR_FUZZ_BACKEND picks another backend pair of conftest's (`mariadb`, `postgres`); default
`sqlite`.
"""
import copy
import json
import os
import re
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from conftest import DEFAULT_WEIR_BIN, WeirServer, provision_stores, start_weir, stop_process

MAX_EXAMPLES = int(os.environ.get('WEIR_FUZZ_EXAMPLES', '50'))
DEEP_EXAMPLES = int(os.environ.get('WEIR_FUZZ_DEEP_EXAMPLES', '150'))
BACKEND = os.environ.get('WEIR_FUZZ_BACKEND', 'sqlite')
REQUEST_TIMEOUT_S = 30
SEED_RUN_TIMEOUT_S = 120


def load_document() -> Dict[str, Any]:
    """The OpenAPI document, as the weir under test prints it (`weir openapi`). The operations
    are collected from it before any server starts, so it is not fetched from one."""
    weir_bin = Path(os.environ.get('WEIR_BIN', DEFAULT_WEIR_BIN))
    if not weir_bin.exists():
        pytest.fail(f'weir binary not found at {weir_bin}: build it first (cargo build -p weir) '
                    'or point WEIR_BIN at it', pytrace=False)
    printed = subprocess.run([str(weir_bin), 'openapi'], check=True, capture_output=True, text=True,
                             timeout=60)
    return json.loads(printed.stdout)


DOCUMENT = load_document()
# The document's example spec: one container step, `echo $message`.
ECHO_SPEC = copy.deepcopy(DOCUMENT['components']['schemas']['PipelineSpec']['examples'][0])

# Every operation: examples, coverage and fuzzing phases.
schema = schemathesis.openapi.from_dict(copy.deepcopy(DOCUMENT))
# The operations whose input goes furthest (triggers, inline specs, filters), fuzzed longer with
# valid requests only (the first test sends them invalid ones as well).
DEEP_OPERATIONS = ['createRecurringRun', 'createRun', 'createPipelineVersion',
                   'createPipelineAndVersion', 'listRuns', 'listRecurringRuns', 'listExperiments',
                   'listPipelines', 'listPipelineVersions']
DEEP_CONFIG = schemathesis.Config.from_dict({
    'phases': {'examples': {'enabled': False}, 'coverage': {'enabled': False}},
    'generation': {'mode': 'positive'},
})
deep_schema = schemathesis.openapi.from_dict(copy.deepcopy(DOCUMENT), config=DEEP_CONFIG).include(
    operation_id=DEEP_OPERATIONS)

# Filled by the `fuzz_server` fixture before any case is generated: path (or query) parameter
# name -> values that name existing entities. DELETE operations only get the expendable ones,
# so the others stay for the operations that run later.
SEEDED_PATH: Dict[str, List[Any]] = {}
SEEDED_PATH_EXPENDABLE: Dict[str, List[Any]] = {}
SEEDED_QUERY: Dict[str, List[Any]] = {}
SEEDED_VERSION_PAIRS: List[Dict[str, str]] = []
SEEDED_VERSION_PAIRS_EXPENDABLE: List[Dict[str, str]] = []
# pipeline_version_reference values of a small container pipeline, put into generated run and
# recurring run bodies so that they get past the pipeline lookup to what follows it.
SEEDED_REFERENCES: List[Dict[str, str]] = []


# --------------------------------------------------------------------------------------------
# Seeding through the API


FAILING_SPEC = {
    'components': {'comp-fail': {'executorLabel': 'exec-fail'}},
    'deploymentSpec': {'executors': {'exec-fail': {'container': {
        'image': 'alpine', 'command': ['sh', '-c', 'echo failing on purpose; exit 3']}}}},
    'pipelineInfo': {'name': 'weir-fuzz-fail'},
    'root': {'dag': {'tasks': {'fail': {
        'componentRef': {'name': 'comp-fail'}, 'taskInfo': {'name': 'fail'}}}}},
    'schemaVersion': '2.1.0',
    'sdkVersion': 'kfp-2.17.3',
}


class Api:
    """Plain HTTP calls for seeding; every answer must be a 200."""

    def __init__(self, url: str):
        self.url = url
        self.session = requests.Session()

    def _check(self, response: requests.Response) -> Dict[str, Any]:
        assert response.status_code == 200, (
            f'seeding: {response.request.method} {response.request.url} answered '
            f'{response.status_code}: {response.text[:1000]}')
        return response.json() if 'json' in response.headers.get('content-type', '') else {}

    def get(self, path: str, **params) -> Dict[str, Any]:
        return self._check(self.session.get(self.url + path, params=params,
                                            timeout=REQUEST_TIMEOUT_S))

    def post(self, path: str, body: Optional[dict] = None, **kwargs) -> Dict[str, Any]:
        if body is not None:
            kwargs['json'] = body
        return self._check(self.session.post(self.url + path, timeout=REQUEST_TIMEOUT_S,
                                             **kwargs))

    def upload(self, path: str, package: Path, **params) -> Dict[str, Any]:
        with open(package, 'rb') as f:
            return self.post(path, params=params, files={'uploadfile': (package.name, f)})


def wait_finished(api: Api, run_ids: List[str]) -> None:
    deadline = time.monotonic() + SEED_RUN_TIMEOUT_S
    pending = set(run_ids)
    while pending:
        for run_id in list(pending):
            state = api.get(f'/apis/v2beta1/runs/{run_id}').get('state')
            if state in ('SUCCEEDED', 'FAILED', 'CANCELED', 'SKIPPED'):
                pending.discard(run_id)
        if pending and time.monotonic() > deadline:
            pytest.fail(f'seeded runs {sorted(pending)} did not finish within '
                        f'{SEED_RUN_TIMEOUT_S}s', pytrace=False)
        time.sleep(0.5)


def seed(api: Api, packages) -> None:
    """Creates a bit of everything and records ids, names and page tokens for the hooks."""
    suffix = str(int(time.time() * 1000))
    experiments = [api.post('/apis/v2beta1/experiments',
                            {'display_name': f'fuzz-exp-{i}-{suffix}'})['experiment_id']
                   for i in range(3)]

    pipelines = []
    versions = []
    for i, package in enumerate([packages.hello_yaml, packages.chain_yaml, packages.params_yaml]):
        name = f'fuzz-pipeline-{i}-{suffix}'
        pipeline = api.upload('/apis/v2beta1/pipelines/upload', package, name=name)
        pipelines.append(pipeline)
        version = api.upload('/apis/v2beta1/pipelines/upload_version', package,
                             pipelineid=pipeline['pipeline_id'], name=f'{name}-v2')
        versions.append(version)
    hello, chain = pipelines[0], pipelines[1]
    echo = api.post('/apis/v2beta1/pipelines/create', {
        'pipeline': {'name': f'fuzz-echo-{suffix}'},
        'pipeline_version': {'pipeline_spec': ECHO_SPEC}})
    echo_version = api.get(f'/apis/v2beta1/pipelines/{echo["pipeline_id"]}/versions')[
        'pipeline_versions'][0]['pipeline_version_id']
    SEEDED_REFERENCES.extend([
        {'pipeline_id': echo['pipeline_id']},
        {'pipeline_version_id': echo_version},
        {'pipeline_id': echo['pipeline_id'], 'pipeline_version_id': echo_version},
    ])

    def run_of(pipeline: dict, i: int, **extra) -> str:
        body = {'display_name': f'fuzz-run-{i}-{suffix}', 'experiment_id': experiments[0],
                'pipeline_version_reference': {'pipeline_id': pipeline['pipeline_id']}}
        body.update(extra)
        return api.post('/apis/v2beta1/runs', body)['run_id']

    runs = [
        run_of(hello, 0),
        run_of(chain, 1),
        api.post('/apis/v2beta1/runs', {'display_name': f'fuzz-run-fail-{suffix}',
                                        'experiment_id': experiments[1],
                                        'pipeline_spec': FAILING_SPEC})['run_id'],
    ]
    recurring = [api.post('/apis/v2beta1/recurringruns', {
        'display_name': f'fuzz-schedule-{i}-{suffix}', 'max_concurrency': '1',
        'experiment_id': experiments[0], 'mode': 'DISABLE',
        'trigger': {'cron_schedule': {'cron': '0 0 3 * * *'}},
        'pipeline_version_reference': {'pipeline_id': hello['pipeline_id']},
    })['recurring_run_id'] for i in range(2)]
    wait_finished(api, runs)
    # One run left unfinished for :terminate, one to be deleted.
    runs += [run_of(hello, 3), run_of(hello, 4)]

    artifact_ids: List[int] = []
    task_keys: List[str] = []
    for run_id in runs[:3]:
        for task in api.get(f'/apis/weir/v1/runs/{run_id}/tasks')['tasks']:
            task_keys += [task['task_id'], task['name']]
            for section in ('inputs', 'outputs'):
                for listed in task[section]['artifacts'].values():
                    artifact_ids += [int(a['artifact_id']) for a in listed]
    assert artifact_ids, 'the chain run made no artifacts'

    page_tokens = []
    for path in ['/apis/v2beta1/pipelines', '/apis/v2beta1/experiments', '/apis/v2beta1/runs',
                 '/apis/v2beta1/recurringruns',
                 f'/apis/v2beta1/pipelines/{hello["pipeline_id"]}/versions']:
        token = api.get(path, page_size=1).get('next_page_token')
        if token:
            page_tokens.append(token)

    # The last of each kind is expendable (experiments[0] and [1] hold the runs).
    SEEDED_PATH.update({
        'pipeline_id': [p['pipeline_id'] for p in pipelines],
        'pipeline_version_id': [v['pipeline_version_id'] for v in versions],
        'name': [p['name'] for p in pipelines],
        'experiment_id': experiments,
        'run_id': runs,
        'recurring_run_id': recurring,
        'artifact_id': sorted(set(artifact_ids)),
    })
    SEEDED_PATH_EXPENDABLE.update({name: values[-1:] for name, values in SEEDED_PATH.items()})
    pairs = [{'pipeline_id': v['pipeline_id'], 'pipeline_version_id': v['pipeline_version_id']}
             for v in versions]
    SEEDED_VERSION_PAIRS.extend(pairs)
    SEEDED_VERSION_PAIRS_EXPENDABLE.extend(pairs[-1:])
    SEEDED_QUERY.update({
        'experiment_id': experiments,
        'pipelineid': [p['pipeline_id'] for p in pipelines],
        'page_token': page_tokens,
        'task': task_keys,
    })


@dataclass
class FuzzTarget:
    """The seeded server. (Not a WeirServer itself: conftest appends the log tail of those to
    every failure, which here would be pages of request lines; failures below quote the lines
    that matter.)"""
    server: WeirServer


@pytest.fixture(scope='module')
def fuzz_server(request, weir_bin, packages, tmp_path_factory) -> Iterator[FuzzTarget]:
    """A weir on fresh storage (SQLite + files unless WEIR_FUZZ_BACKEND names another pair of
    conftest's), seeded; stopped after the module."""
    data_dir = tmp_path_factory.mktemp(f'weir-fuzz-{BACKEND}')
    stores = provision_stores(request, BACKEND, data_dir)
    server = None
    try:
        server = start_weir(weir_bin, BACKEND, data_dir, stores.metadata_url,
                            stores.artifacts_url,
                            # Steps still running at the end need not be waited for.
                            {**stores.env, 'WEIR_SHUTDOWN_GRACE_SECONDS': '2'})
        seed(Api(server.url), packages)
        yield FuzzTarget(server)
    finally:
        if server is not None:
            stop_process(server.process)
        stores.cleanup()


# --------------------------------------------------------------------------------------------
# Hooks: mix seeded values into generated parameters


def _mix(value: Any, seeded: Optional[List[Any]]) -> st.SearchStrategy:
    if not seeded:
        return st.just(value)
    return st.one_of(st.just(value), st.sampled_from(seeded))


def flatmap_path_parameters(context, path_parameters):
    if not isinstance(path_parameters, dict) or not path_parameters:
        return st.just(path_parameters)
    deleting = context.operation is not None and context.operation.method.upper() == 'DELETE'
    seeded = SEEDED_PATH_EXPENDABLE if deleting else SEEDED_PATH
    seeded_pairs = SEEDED_VERSION_PAIRS_EXPENDABLE if deleting else SEEDED_VERSION_PAIRS
    mixed = st.fixed_dictionaries({name: _mix(value, seeded.get(name))
                                   for name, value in path_parameters.items()})
    if {'pipeline_id', 'pipeline_version_id'} <= path_parameters.keys() and seeded_pairs:
        pairs = st.sampled_from(seeded_pairs).map(lambda pair: {**path_parameters, **pair})
        return st.one_of(mixed, pairs)
    return mixed


SOURCE_FIELDS = ('pipeline_spec', 'pipeline_version_reference', 'pipeline_version_id')


def flatmap_body(context, body):
    operation = context.operation
    if (operation is None or operation.method.upper() != 'POST' or not isinstance(body, dict)
            or operation.path not in ('/apis/v2beta1/runs', '/apis/v2beta1/recurringruns')
            or not SEEDED_REFERENCES):
        return st.just(body)

    def with_seeded_source(reference, experiment_id, keep_runtime_config):
        seeded = {key: value for key, value in body.items() if key not in SOURCE_FIELDS}
        seeded['pipeline_version_reference'] = reference
        if experiment_id is not None:
            seeded['experiment_id'] = experiment_id
        if not keep_runtime_config:
            seeded.pop('runtime_config', None)
        return seeded

    experiments = [None] + SEEDED_QUERY.get('experiment_id', [])
    return st.one_of(st.just(body), st.builds(with_seeded_source,
                                              st.sampled_from(SEEDED_REFERENCES),
                                              st.sampled_from(experiments), st.booleans()))


def flatmap_query(context, query):
    if not isinstance(query, dict) or not query:
        return st.just(query)
    return st.fixed_dictionaries({name: _mix(value, SEEDED_QUERY.get(name))
                                  for name, value in query.items()})


for _hook in (flatmap_path_parameters, flatmap_body, flatmap_query):
    schema.hook(_hook)
    deep_schema.hook(_hook)


# --------------------------------------------------------------------------------------------
# The property


ERROR_ID = re.compile(r'internal error ([0-9a-f-]{36})')


def log_lines(server: WeirServer) -> List[str]:
    try:
        return server.log_path.read_text(errors='replace').splitlines()
    except FileNotFoundError:
        return []


def panics(server: WeirServer) -> List[str]:
    """Each `thread … panicked at FILE:LINE:` line of the weir log with the message after it."""
    lines = log_lines(server)
    return ['\n'.join(lines[i:i + 2]) for i, line in enumerate(lines) if ' panicked at ' in line]


def explain_500(server: WeirServer, body: str) -> str:
    """The weir log lines of the error id a 500's body names."""
    ids = ERROR_ID.findall(body)
    lines = [line for line in log_lines(server) if ids and any(i in line for i in ids)]
    return '\n'.join(lines) or '\n'.join(log_lines(server)[-20:])


def check_no_server_error(case, server: WeirServer) -> None:
    try:
        response = case.call(base_url=server.url, timeout=REQUEST_TIMEOUT_S)
    except requests.exceptions.RequestException as error:
        # A handler that panics drops the connection without an answer.
        state = ('still running' if server.process.poll() is None
                 else f'exited with code {server.process.returncode}')
        raise AssertionError(
            f'{case.operation.label}: weir did not answer ({type(error).__name__}: {error}); '
            f'the weir process is {state}.\n'
            f'request: {case.as_curl_command(base_url=server.url)}\n'
            'last panics in the weir log:\n' + ('\n'.join(panics(server)[-3:]) or '(none)')
        ) from None
    if response.status_code >= 500:
        body = response.text
        raise AssertionError(
            f'{case.operation.label} answered {response.status_code}\n'
            f'request: {case.as_curl_command(base_url=server.url)}\n'
            f'response body: {body[:2000]}\n'
            f'weir log:\n{explain_500(server, body)}')


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_server_error(case, fuzz_server: FuzzTarget):
    check_no_server_error(case, fuzz_server.server)


@deep_schema.parametrize()
@settings(max_examples=DEEP_EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_server_error_deep(case, fuzz_server: FuzzTarget):
    check_no_server_error(case, fuzz_server.server)


def test_no_panic_in_weir_log(fuzz_server: FuzzTarget):
    """Runs after the generated requests: a panic they caused outside a request (in the
    scheduler or the engine) fails no request, but is a server error all the same."""
    time.sleep(1)  # let the scheduler and engine act on the last requests
    found = panics(fuzz_server.server)
    # One line per place and message, with its count (thread names and ids vary).
    places = Counter(re.sub(r"^thread '[^']*' (\(\d+\) )?", '', panic) for panic in found)
    assert not found, f'weir panicked {len(found)} time(s):\n' + '\n'.join(
        f'{count}x {place}' for place, count in places.most_common())
