-- Weir schema version 2: execution state. One row per task (DAG, loop, iteration, step,
-- importer) and per artifact, written by the engine before it acts.
CREATE TABLE tasks (
    id VARCHAR(64) PRIMARY KEY NOT NULL,
    run_id VARCHAR(64) NOT NULL,
    parent_id VARCHAR(64) NOT NULL,
    name VARCHAR(255) NOT NULL,
    display_name VARCHAR(255) NOT NULL,
    kind VARCHAR(32) NOT NULL,
    iteration_index BIGINT,
    state VARCHAR(32) NOT NULL,
    attempts BIGINT NOT NULL,
    inputs LONGTEXT NOT NULL,
    outputs LONGTEXT NOT NULL,
    fingerprint VARCHAR(64) NOT NULL,
    pipeline_name VARCHAR(255) NOT NULL,
    cached BOOLEAN NOT NULL,
    image TEXT NOT NULL,
    error TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    retry_at BIGINT NOT NULL,
    pid BIGINT NOT NULL,
    state_history LONGTEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX tasks_run ON tasks (run_id, created_at);
CREATE INDEX tasks_cache ON tasks (pipeline_name, fingerprint, finished_at);

CREATE TABLE artifacts (
    id BIGINT PRIMARY KEY NOT NULL,
    run_id VARCHAR(64) NOT NULL,
    task_id VARCHAR(64) NOT NULL,
    name VARCHAR(255) NOT NULL,
    uri TEXT NOT NULL,
    schema_title VARCHAR(255) NOT NULL,
    schema_version VARCHAR(64) NOT NULL,
    metadata LONGTEXT NOT NULL,
    created_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX artifacts_run ON artifacts (run_id);
