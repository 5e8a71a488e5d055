-- Weir schema version 3: servers hold a lease row while they serve (so an upgrade can refuse
-- while one still runs, and `weir storage status` can show them); artifacts record how many
-- objects their upload wrote (so `weir storage check` knows which must exist).
CREATE TABLE server_leases (
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    deployment TEXT COLLATE "C" NOT NULL,
    host TEXT COLLATE "C" NOT NULL,
    pid BIGINT NOT NULL,
    version TEXT COLLATE "C" NOT NULL,
    schema_version BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

ALTER TABLE artifacts ADD COLUMN object_count BIGINT NOT NULL DEFAULT 0;
