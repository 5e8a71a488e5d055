-- Weir schema version 1: storage identity, pipelines, versions, experiments, runs, recurring runs.
CREATE TABLE storage_identity (
    id TEXT PRIMARY KEY NOT NULL,
    created_at INTEGER NOT NULL,
    initialising BOOLEAN NOT NULL
);

CREATE TABLE pipelines (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    namespace TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    tags TEXT NOT NULL
);
CREATE UNIQUE INDEX pipelines_namespace_name ON pipelines (namespace, name);
CREATE INDEX pipelines_created_at ON pipelines (created_at, id);

CREATE TABLE pipeline_versions (
    id TEXT PRIMARY KEY NOT NULL,
    pipeline_id TEXT NOT NULL REFERENCES pipelines (id),
    name TEXT NOT NULL,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    pipeline_spec TEXT NOT NULL,
    platform_spec TEXT,
    package_key TEXT NOT NULL,
    package_url TEXT NOT NULL,
    code_source_url TEXT NOT NULL,
    tags TEXT NOT NULL
);
CREATE UNIQUE INDEX pipeline_versions_pipeline_name ON pipeline_versions (pipeline_id, name);
CREATE INDEX pipeline_versions_pipeline_created_at ON pipeline_versions (pipeline_id, created_at, id);

CREATE TABLE experiments (
    id TEXT PRIMARY KEY NOT NULL,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    namespace TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    storage_state TEXT NOT NULL,
    last_run_created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX experiments_namespace_name ON experiments (namespace, display_name);
CREATE INDEX experiments_created_at ON experiments (created_at, id);

CREATE TABLE runs (
    id TEXT PRIMARY KEY NOT NULL,
    experiment_id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    namespace TEXT NOT NULL,
    storage_state TEXT NOT NULL,
    pipeline_id TEXT NOT NULL,
    pipeline_version_id TEXT NOT NULL,
    pipeline_spec TEXT NOT NULL,
    platform_spec TEXT,
    parameters TEXT NOT NULL,
    pipeline_root TEXT NOT NULL,
    service_account TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    scheduled_at INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    recurring_run_id TEXT NOT NULL
);
CREATE INDEX runs_created_at ON runs (created_at, id);
CREATE INDEX runs_experiment_created_at ON runs (experiment_id, created_at, id);
CREATE INDEX runs_state ON runs (state);
CREATE INDEX runs_recurring_run ON runs (recurring_run_id, created_at);

CREATE TABLE run_state_history (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE recurring_runs (
    id TEXT PRIMARY KEY NOT NULL,
    display_name TEXT NOT NULL,
    description TEXT NOT NULL,
    experiment_id TEXT NOT NULL,
    namespace TEXT NOT NULL,
    pipeline_id TEXT NOT NULL,
    pipeline_version_id TEXT NOT NULL,
    pipeline_spec TEXT NOT NULL,
    platform_spec TEXT,
    parameters TEXT NOT NULL,
    pipeline_root TEXT NOT NULL,
    service_account TEXT NOT NULL,
    max_concurrency INTEGER NOT NULL,
    trigger_spec TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    no_catchup BOOLEAN NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX recurring_runs_created_at ON recurring_runs (created_at, id);
CREATE INDEX recurring_runs_experiment ON recurring_runs (experiment_id, created_at, id);
