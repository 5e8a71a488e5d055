"""Reliability: weir killed with SIGKILL 20 times under load loses, duplicates and reruns
nothing, on SQLite, MariaDB and PostgreSQL.

The loop itself is tests/reliability/crash_loop.py (runnable on its own, see its docstring);
this module runs it once per backend with a fixed seed, so a failure can be replayed with
`python tests/reliability/crash_loop.py --backend BACKEND --seed SEED`. Only kills of a weir
that answered healthz just before count toward the 20 (kills during start-up come on top);
across the loop the restarted weirs must have adopted or settled at least one step left
running by a killed one, and `weir storage check` must end clean (nothing missing, no orphan).
Like the rest of the suite it needs the weir binary (WEIR_BIN) and, for mariadb and postgres,
the servers of WEIR_TEST_MYSQL_URL and WEIR_TEST_POSTGRES_URL; none is ever skipped.
"""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'reliability'))
import crash_loop  # noqa: E402

KILLS = 20
CLIENTS = 4
# Fixed so a failure replays the same kill schedule; WEIR_CRASH_LOOP_SEED explores others.
SEEDS = {'sqlite': 20251126, 'mariadb': 20251128, 'postgres': 20251127}


@pytest.mark.parametrize('backend', ['sqlite', 'mariadb', 'postgres'])
def test_crash_loop(backend, weir_bin, tmp_path):
    seed = int(os.environ.get('WEIR_CRASH_LOOP_SEED', SEEDS[backend]))
    args = crash_loop.parse_args([
        '--backend', backend, '--kills', str(KILLS), '--clients', str(CLIENTS),
        '--weir', str(weir_bin), '--seed', str(seed), '--work-root', str(tmp_path)])
    try:
        report = crash_loop.run(args)
    except crash_loop.CrashLoopError as error:
        pytest.fail(f'the crash loop could not run: {error}', pytrace=False)
    print(report.summary())  # shown with the failure, or with -rP
    if not report.ok:
        pytest.fail(f'crash loop on {backend} (seed {seed}) broke: '
                    f'{"; ".join(report.violations)} (details in the captured stdout below and '
                    f'in {report.work})', pytrace=False)
    # Also checked by the loop (EXERCISED, RECOVERY); kept here so they cannot be lost.
    # Only kills of a serving weir count (crash_loop.run kills until it has KILLS of them).
    assert report.kills >= KILLS, f'{report.kills} kills of a serving weir, {KILLS} wanted'
    assert report.adopted + report.settled > 0, 'no step was adopted or settled after a kill'
