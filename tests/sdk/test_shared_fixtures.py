"""The reference fixtures of the shared folder (`fixtures/kfp/*.yaml`, pipelines compiled by the
kfp SDK, lettered a–i like exec_pipelines.py), run through kfp.Client.

An extra check beside the suite's own pipelines. The shared folder exists only on developer
machines (beside the repository, or at WEIR_SHARED_DIR): where it is missing these tests are
reported as skipped with the reason (`pytest -rs`, as scripts/test.sh runs it, prints it), and
the rest of the suite passes without it.

Expected results (EXPECTED below) are what each fixture's code computes under KFP's semantics:
the final run state, and the value some tasks return as `Output`, the name the SDK gives a
component's single return value (`SINGLE_OUTPUT_NAME` in sdk/python/kfp/dsl/component_factory.py);
for `root` that is the pipeline's output. Every case succeeds but two. Fixture f run with
`fail=True` ends FAILED although its cleanup step runs: KFP compiles exit tasks as lifecycle
hooks on the exit handler's sub-DAG (backend/src/v2/compiler/argocompiler/dag.go), so the hook
runs and the failure of the guarded step still fails the run. Fixture g's last step runs
`cat <path> uri=<uri>`, which fails on any backend (no file named `uri=…`), while its `echo`
step succeeds.
"""
import os
from pathlib import Path

import pytest

from helpers import output_parameter, wait_for_completion, weir_tasks

SHARED = Path(os.environ.get('WEIR_SHARED_DIR') or Path(__file__).resolve().parents[3] / 'shared')
FIXTURES = SHARED / 'fixtures' / 'kfp'
MISSING = None if FIXTURES.is_dir() else f'no shared fixtures at {FIXTURES} (the shared folder is on developer machines only)'

# fixture: (arguments, final run state, {step or 'root': expected Output})
EXPECTED = {
    'a_single_component': ({}, 'SUCCEEDED', {}),
    'b_chain_params': ({}, 'SUCCEEDED', {'root': '42-ABC'}),
    'c_artifacts': ({}, 'SUCCEEDED', {}),
    'd_condition': ({}, 'SUCCEEDED', {}),
    'e_parallelfor': ({}, 'SUCCEEDED', {'root': 5, 'merge': '10,20'}),
    'f_exit_handler': ({}, 'SUCCEEDED', {}),
    'f_exit_handler-fail': ({'fail': True}, 'FAILED', {}),
    'g_container': ({}, 'FAILED', {}),
    'h_metrics_caching_retry': ({}, 'SUCCEEDED', {}),
    'i_nested_importer': ({}, 'SUCCEEDED', {'root': 12}),
}


# One backend is enough for this extra check; the suite's own pipelines cover all three.
@pytest.mark.skipif(MISSING is not None, reason=MISSING or '')
@pytest.mark.parametrize('weir_server', ['sqlite'], indirect=True)
@pytest.mark.parametrize('case', sorted(EXPECTED))
def test_shared_fixture(client, weir_server, case):
    name = case.split('-')[0]
    arguments, state, outputs = EXPECTED[case]
    result = client.create_run_from_pipeline_package(str(FIXTURES / f'{name}.yaml'), arguments=arguments)
    run = wait_for_completion(client, result.run_id)
    assert run.state == state, run.error
    tasks = weir_tasks(weir_server.url, result.run_id)
    for step, expected in outputs.items():
        assert output_parameter(tasks.one(step)) == expected
    if name == 'g_container':
        failed = tasks.one('cat-dataset')
        assert failed['state'] == 'FAILED' and 'uri=' in failed['error']['message']
        assert tasks.one('echo')['state'] == 'SUCCEEDED'
