"""Several weirs on one database: three replicas on PostgreSQL, then MariaDB, run 20 runs of 25
steps and a recurring run while two are killed with SIGKILL and one is frozen past its lease.
Every run ends SUCCEEDED, no step starts twice, the victims' runs move to the others within
the lease, the frozen one writes nothing for the runs it lost, no schedule slot fires twice,
and `weir storage check` ends clean.

The scenario is tests/reliability/replicas.py (runnable on its own, see its docstring); this
module runs it once per backend. It needs the weir binary (WEIR_BIN) and the servers of
WEIR_TEST_POSTGRES_URL and WEIR_TEST_MYSQL_URL; none is ever skipped.
"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'reliability'))
import replicas  # noqa: E402


@pytest.mark.parametrize('backend', ['postgres', 'mariadb'])
def test_three_replicas_survive_kills_and_a_freeze(backend, weir_bin, tmp_path):
    args = replicas.parse_args(['--backend', backend, '--weir', str(weir_bin),
                                '--work-root', str(tmp_path)])
    report = replicas.run(args)
    print(report)  # shown with the failure, or with -rP
    assert report.ok, '; '.join(report.violations)
    assert report.runs == replicas.RUNS
    assert len(report.takeovers_s) == 3, report.takeovers_s
    assert report.adopted + report.settled > 0
