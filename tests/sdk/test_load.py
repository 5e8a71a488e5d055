"""Reliability: 50 concurrent clients creating, listing and getting runs for a minute get no
error, weir's memory stays bounded, the engine keeps executing runs, and the runs created are
the runs stored, one to one (every run id a create answered exists once with the display name
and parameters sent, no other run exists, and the store's runs table has exactly that many
rows), on SQLite, MariaDB and PostgreSQL. The collector works all along (`--gc`): it applies
retention every second and removes the finished runs of a second experiment that a quarter of
the creates go to; the load's own runs must all stay, and `weir storage check` must find
nothing missing afterwards.

The load itself is tests/reliability/load.py (runnable on its own, see its docstring); CI time
is short, so this runs it for 60 s per backend. By hand, run it for longer, e.g.

    .venv/bin/python tests/reliability/load.py --backend sqlite --duration 300
    .venv/bin/python tests/reliability/load.py --backend postgres --duration 300   # no cap

Creates are not held back: 50 clients looping without pause create runs far faster than the
engine of a small machine finishes them, and weir must take that. It does by queueing: at most
`--max-running-runs` (64) runs are under way, the rest wait PENDING oldest first, so memory
stays bounded by the runs under way and runs keep finishing while the queue grows. (Before
that limit, the engine advanced every unfinished run in turn: memory grew with the backlog
and no run finished.) WEIR_LOAD_MAX_BACKLOG=N holds creates back while N runs are unfinished;
WEIR_LOAD_DURATION=SECONDS runs longer.

Like the rest of the suite it needs the weir binary (WEIR_BIN) and, for mariadb and postgres,
the servers of WEIR_TEST_MYSQL_URL and WEIR_TEST_POSTGRES_URL; none is ever skipped. The
report is printed (shown with -rP or on failure).
"""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'reliability'))
import load  # noqa: E402

CLIENTS = 50
DURATION_S = float(os.environ.get('WEIR_LOAD_DURATION', 60))
MAX_BACKLOG = int(os.environ.get('WEIR_LOAD_MAX_BACKLOG', 0))


@pytest.mark.parametrize('backend', ['sqlite', 'mariadb', 'postgres'])
def test_load(backend, weir_bin, tmp_path):
    args = load.parse_args([
        '--backend', backend, '--clients', str(CLIENTS), '--duration', str(DURATION_S),
        '--max-backlog', str(MAX_BACKLOG), '--weir', str(weir_bin), '--gc',
        '--work-root', str(tmp_path), '--out', str(tmp_path / 'report.json')])
    try:
        report = load.run(args)
    except load.LoadError as error:
        pytest.fail(f'the load could not run: {error}', pytrace=False)
    print(report.summary())
    assert report.runs_created > 0 and report.steps_finished > 0
    assert report.gc_removed > 0 and report.gc_missing == 0, report.summary()
    if not report.ok:
        pytest.fail(f'load on {backend} broke: {"; ".join(report.failures)} (report in the '
                    f'captured stdout below, weir log in {report.work})', pytrace=False)
    # Also among report.failures; kept here so the comparison cannot be dropped unnoticed.
    assert report.run_rows is not None and report.runs_listed > 0
