"""Shared helpers for the SDK suite: unique names, filters, paging, error checks, and reading
executed runs through weir's own endpoints."""
import json
import time
import uuid
from typing import Any, Callable, Dict, List, Optional, Set

import kfp
import kfp_server_api
import requests

# google.rpc.Code values that KFP's grpc-gateway puts in error bodies, by HTTP status: the API
# server raises InvalidArgument (3), NotFound (5) and AlreadyExists (6) through
# NewInvalidInputError, NewResourceNotFoundError and NewAlreadyExistError in
# backend/src/common/util/error.go, and the gateway answers 400, 404 and 409 for them.
GRPC_CODE_FOR_STATUS = {400: 3, 404: 5, 409: 6}


def unique_name(prefix: str) -> str:
    """A lowercase name that no other test (or earlier run on a shared database) uses.

    Lowercase letters, digits and dashes only, so it is also a valid pipelineInfo.name.
    """
    return f'{prefix}-{uuid.uuid4().hex[:10]}'


def missing_id() -> str:
    """An id that looks real but names nothing."""
    return str(uuid.uuid4())


def substring_filter(value: str, key: str = 'display_name') -> str:
    """The documented filter form: enum name and snake_case value key."""
    return json.dumps({
        'predicates': [{'operation': 'IS_SUBSTRING', 'key': key, 'string_value': value}]
    })


def substring_filter_client_form(value: str, key: str = 'display_name') -> str:
    """The form kfp.Client's own helpers send: integer operation, camelCase value key."""
    return json.dumps({'predicates': [{'operation': 9, 'key': key, 'stringValue': value}]})


def equals_filter(value: str, key: str = 'display_name') -> str:
    return json.dumps({'predicates': [{'operation': 'EQUALS', 'key': key, 'string_value': value}]})


def walk_pages(list_page: Callable[..., Any], items_attr: str, page_size: int,
               **kwargs) -> List[List[Any]]:
    """Follows next_page_token until it is empty and returns every page's items.

    `list_page` is a kfp.Client list method; kwargs (filter, experiment_id, ...) are passed on
    every call, as a user of the client would.
    """
    pages: List[List[Any]] = []
    token = ''
    for _ in range(100):  # a server that never ends the walk must not hang the suite
        response = list_page(page_token=token, page_size=page_size, **kwargs)
        items = getattr(response, items_attr) or []
        assert len(items) <= page_size, f'page of {len(items)} exceeds page_size {page_size}'
        pages.append(items)
        token = response.next_page_token or ''
        if not token:
            return pages
    raise AssertionError('next_page_token never became empty after 100 pages')


def ids_of(items: List[Any], id_attr: str) -> List[str]:
    return [getattr(item, id_attr) for item in items]


def assert_api_error(error: kfp_server_api.ApiException, status: int,
                     upload: bool = False) -> Dict[str, Any]:
    """Checks the status and that the body is a JSON error object as KFP's servers write.

    gRPC-gateway endpoints answer google.rpc.Status `{code, message}` with the gRPC code that
    matches the HTTP status; the upload endpoints are plain HTTP handlers whose body may be
    `{error_message, error_details}` instead (`writeErrorToResponse` in
    backend/src/apiserver/server/pipeline_upload_server.go).
    """
    assert error.status == status, f'expected HTTP {status}, got {error.status}: {error.body!r}'
    assert error.body, f'HTTP {status} error without a body'
    try:
        body = json.loads(error.body)
    except ValueError as exc:
        raise AssertionError(f'error body is not JSON: {error.body!r}') from exc
    assert isinstance(body, dict), f'error body is not a JSON object: {body!r}'
    if upload and 'error_message' in body:
        assert isinstance(body['error_message'], str) and body['error_message']
        return body
    assert 'code' in body and 'message' in body, f'error body lacks code/message: {body!r}'
    assert isinstance(body['message'], str) and body['message'], body
    if not upload:
        assert body['code'] == GRPC_CODE_FOR_STATUS[status], (
            f'gRPC code {body["code"]} does not match HTTP {status}: {body!r}')
    return body


def first_version_id(client: kfp.Client, pipeline_id: str) -> str:
    """The id of the version that upload_pipeline created along with the pipeline."""
    versions = client.list_pipeline_versions(pipeline_id, sort_by='created_at').pipeline_versions
    assert versions, f'pipeline {pipeline_id} has no version after upload'
    return versions[0].pipeline_version_id


def wait_for_run_state(client: kfp.Client, run_id: str, wanted: Set[str],
                       timeout: float = 15.0) -> str:
    """Polls get_run until the state is in `wanted` (state changes may be asynchronous)."""
    deadline = time.monotonic() + timeout
    state: Optional[str] = None
    while time.monotonic() < deadline:
        state = client.get_run(run_id).state
        if state in wanted:
            return state
        time.sleep(0.1)
    raise AssertionError(f'run {run_id} stayed in state {state!r}, wanted one of {wanted}')


def is_non_increasing(values: List[Any]) -> bool:
    return all(a >= b for a, b in zip(values, values[1:]))


# --------------------------------------------------------------------------------------------
# Execution: waiting for runs and reading weir's task, artifact and log endpoints

RUN_TIMEOUT_S = 120.0
POLL_S = 0.25


def wait_for_completion(client: kfp.Client, run_id: str,
                        timeout: float = RUN_TIMEOUT_S) -> kfp_server_api.V2beta1Run:
    """client.wait_for_run_completion with a short poll interval (the default sleeps 5 s)."""
    return client.wait_for_run_completion(run_id, timeout, sleep_duration=POLL_S)


def _weir_get(base_url: str, path: str, **params) -> requests.Response:
    response = requests.get(f'{base_url}/apis/weir/v1/{path}', params=params or None,
                            timeout=30)
    assert response.status_code == 200, (
        f'GET /apis/weir/v1/{path} answered {response.status_code}: {response.text[:500]}')
    return response


class WeirTasks:
    """The tasks of one run as /apis/weir/v1/runs/{id}/tasks lists them."""

    def __init__(self, run_id: str, tasks: List[Dict[str, Any]]):
        self.run_id = run_id
        self.tasks = tasks
        self.by_id = {t['task_id']: t for t in tasks}
        assert len(self.by_id) == len(tasks), f'duplicate task ids in {tasks}'

    def __repr__(self) -> str:
        return json.dumps(self.tasks, indent=1, sort_keys=True)[:6000]

    def named(self, name: str) -> List[Dict[str, Any]]:
        return [t for t in self.tasks if t.get('name') == name]

    def one(self, name: str) -> Dict[str, Any]:
        found = self.named(name)
        assert len(found) == 1, f'expected one task named {name!r}, found {len(found)}: {self!r}'
        return found[0]

    @property
    def root(self) -> Dict[str, Any]:
        roots = [t for t in self.tasks if not t.get('parent_task_id')]
        assert len(roots) == 1, f'expected one root task, found {len(roots)}: {self!r}'
        assert roots[0]['name'] == 'root' and roots[0]['kind'] == 'dag', roots[0]
        return roots[0]

    def parent(self, task: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        parent_id = task.get('parent_task_id')
        return self.by_id[parent_id] if parent_id else None

    def children(self, task: Dict[str, Any]) -> List[Dict[str, Any]]:
        return [t for t in self.tasks if t.get('parent_task_id') == task['task_id']]

    def iteration_index(self, task: Dict[str, Any]) -> Optional[int]:
        """The iteration_index of the nearest enclosing `iteration` task (or the task itself)."""
        current: Optional[Dict[str, Any]] = task
        while current is not None:
            if current['kind'] == 'iteration':
                return current['iteration_index']
            current = self.parent(current)
        return None

    def by_iteration(self, name: str) -> Dict[int, Dict[str, Any]]:
        """Tasks named `name` inside a loop, keyed by their iteration index."""
        found = {self.iteration_index(t): t for t in self.named(name)}
        assert len(found) == len(self.named(name)), f'two {name!r} tasks share an iteration'
        return found


def output_parameter(task: Dict[str, Any], key: str = 'Output') -> Any:
    parameters = (task.get('outputs') or {}).get('parameters') or {}
    assert key in parameters, (f'task {task.get("name")!r} has no output parameter {key!r}: '
                               f'{task.get("outputs")}')
    return parameters[key]


def input_parameters(task: Dict[str, Any]) -> Dict[str, Any]:
    return (task.get('inputs') or {}).get('parameters') or {}


def output_artifacts(task: Dict[str, Any], key: str) -> List[Dict[str, Any]]:
    artifacts = (task.get('outputs') or {}).get('artifacts') or {}
    assert key in artifacts, (f'task {task.get("name")!r} has no output artifact {key!r}: '
                              f'{task.get("outputs")}')
    return artifacts[key]


def output_artifact(task: Dict[str, Any], key: str) -> Dict[str, Any]:
    artifacts = output_artifacts(task, key)
    assert len(artifacts) == 1, f'expected one {key!r} artifact, got {artifacts}'
    return artifacts[0]


def input_artifacts(task: Dict[str, Any], key: str) -> List[Dict[str, Any]]:
    artifacts = (task.get('inputs') or {}).get('artifacts') or {}
    assert key in artifacts, (f'task {task.get("name")!r} has no input artifact {key!r}: '
                              f'{task.get("inputs")}')
    return artifacts[key]


def assert_contains(actual: Dict[str, Any], expected: Dict[str, Any]) -> None:
    """Every key of `expected` is in `actual` with an equal value (extra keys allowed)."""
    missing = {k: v for k, v in expected.items() if k not in actual or actual[k] != v}
    assert not missing, f'{actual!r} lacks {missing!r}'


def weir_tasks(base_url: str, run_id: str) -> WeirTasks:
    body = _weir_get(base_url, f'runs/{run_id}/tasks').json()
    assert isinstance(body.get('tasks'), list), body
    return WeirTasks(run_id, body['tasks'])


def artifact_content(base_url: str, artifact_id: str) -> bytes:
    return _weir_get(base_url, f'artifacts/{artifact_id}/content').content


def task_logs(base_url: str, run_id: str, task: str) -> str:
    """stdout+stderr of a task's attempts; `task` is a task id or a task name."""
    response = _weir_get(base_url, f'runs/{run_id}/logs', task=task)
    assert response.headers.get('content-type', '').startswith('text/plain'), response.headers
    return response.text


def wait_for_task(base_url: str, run_id: str, name: str, wanted: Set[str],
                  timeout: float = 30.0) -> Dict[str, Any]:
    """Polls the tasks endpoint until the (single) task `name` is in one of `wanted`."""
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        found = weir_tasks(base_url, run_id).named(name)
        if len(found) == 1:
            state = found[0]['state']
            if state in wanted:
                return found[0]
        time.sleep(POLL_S)
    raise AssertionError(f'task {name!r} of run {run_id} stayed in state {state!r}, '
                         f'wanted one of {wanted}')


def pid_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (Linux /proc)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # The state letter follows the parenthesised command name.
    return stat[stat.rindex(')') + 2] not in ('Z', 'X')


def read_pid_file(path, timeout: float = 30.0) -> int:
    """Waits for a step to write its pid into `path`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = open(path).read().strip()
            if text:
                return int(text)
        except FileNotFoundError:
            pass
        time.sleep(POLL_S)
    raise AssertionError(f'no pid was written to {path} within {timeout:.0f}s')
