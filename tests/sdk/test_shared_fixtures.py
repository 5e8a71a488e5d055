"""The reference fixtures of the shared folder (KFP-COMPAT.md §2), run through kfp.Client.

An extra check beside the suite's own pipelines: the tests exist only where the shared folder
does (the suite must pass without it). Expected results are those of KFP-COMPAT.md §2; fixture
g's last step runs `cat <path> uri=<uri>`, which fails on any backend (no file named `uri=…`).
"""
from pathlib import Path

import pytest

from helpers import output_parameter, wait_for_completion, weir_tasks

FIXTURES = Path(__file__).resolve().parents[3] / 'shared' / 'fixtures' / 'kfp'

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

if FIXTURES.is_dir():

    # One backend is enough for this extra check; the suite's own pipelines cover all three.
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
