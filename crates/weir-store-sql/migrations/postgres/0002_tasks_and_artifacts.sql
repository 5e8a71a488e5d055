-- Weir schema version 2: execution state. One row per task (DAG, loop, iteration, step,
-- importer) and per artifact, written by the engine before it acts.
CREATE TABLE tasks (
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    run_id TEXT COLLATE "C" NOT NULL,
    parent_id TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    display_name TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    iteration_index BIGINT,
    state TEXT COLLATE "C" NOT NULL,
    attempts BIGINT NOT NULL,
    inputs TEXT NOT NULL,
    outputs TEXT NOT NULL,
    fingerprint TEXT COLLATE "C" NOT NULL,
    pipeline_name TEXT COLLATE "C" NOT NULL,
    cached BOOLEAN NOT NULL,
    image TEXT NOT NULL,
    error TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    retry_at BIGINT NOT NULL,
    pid BIGINT NOT NULL,
    state_history TEXT NOT NULL
);
CREATE INDEX tasks_run ON tasks (run_id, created_at);
CREATE INDEX tasks_cache ON tasks (pipeline_name, fingerprint, finished_at);

CREATE TABLE artifacts (
    id BIGINT PRIMARY KEY NOT NULL,
    run_id TEXT COLLATE "C" NOT NULL,
    task_id TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    uri TEXT NOT NULL,
    schema_title TEXT NOT NULL,
    schema_version TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX artifacts_run ON artifacts (run_id);
