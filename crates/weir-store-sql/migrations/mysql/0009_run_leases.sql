-- Weir schema version 9: several weir replicas on one database, each run driven by one.
-- `run_leases` has a row per run some replica drives: `owner` is the id of that replica's
-- server lease (`server_leases`), renewed by its heartbeat. A run without a row, or whose owner
-- has no live lease, is taken by another replica with one statement only one can win (an
-- insert, or a compare-and-set of the dead owner). Every write of the engine for a run checks
-- `owner` in its transaction first (and locks the row), so a replica that lost a run (frozen,
-- partitioned) writes nothing more for it: fencing. `takeovers` counts owner changes.
-- The row goes when the run ends; a retried run is taken again.
CREATE TABLE run_leases (
    run_id VARCHAR(64) PRIMARY KEY NOT NULL,
    owner VARCHAR(64) NOT NULL,
    taken_at BIGINT NOT NULL,
    takeovers BIGINT NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE INDEX run_leases_owner ON run_leases (owner);
