-- Weir schema version 2: execution state. One row per task (DAG, loop, iteration, step,
-- importer) and per artifact, written by the engine before it acts.
CREATE TABLE tasks (
    id TEXT PRIMARY KEY NOT NULL,
    run_id TEXT NOT NULL,
    parent_id TEXT NOT NULL,
    name TEXT NOT NULL,
    display_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    iteration_index INTEGER,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    inputs TEXT NOT NULL,
    outputs TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    pipeline_name TEXT NOT NULL,
    cached BOOLEAN NOT NULL,
    image TEXT NOT NULL,
    error TEXT,
    created_at INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    retry_at INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    state_history TEXT NOT NULL
);
CREATE INDEX tasks_run ON tasks (run_id, created_at);
CREATE INDEX tasks_cache ON tasks (pipeline_name, fingerprint, finished_at);

CREATE TABLE artifacts (
    id INTEGER PRIMARY KEY NOT NULL,
    run_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    name TEXT NOT NULL,
    uri TEXT NOT NULL,
    schema_title TEXT NOT NULL,
    schema_version TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX artifacts_run ON artifacts (run_id);
