"""Shared helpers for the SDK suite: unique names, filters, paging and error checks."""
import json
import time
import uuid
from typing import Any, Callable, Dict, List, Optional, Set

import kfp
import kfp_server_api

# google.rpc.Code values that KFP's grpc-gateway puts in error bodies (KFP-COMPAT.md §1.7).
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
    `{error_message, error_details}` instead.
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
