-- Weir schema version 3: servers hold a lease row while they serve (so an upgrade can refuse
-- while one still runs, and `weir storage status` can show them); artifacts record how many
-- objects their upload wrote (so `weir storage check` knows which must exist).
CREATE TABLE server_leases (
    id TEXT PRIMARY KEY NOT NULL,
    deployment TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    version TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
);

ALTER TABLE artifacts ADD COLUMN object_count INTEGER NOT NULL DEFAULT 0;
