-- Weir schema version 1: storage identity, pipelines, versions, experiments, runs, recurring runs.
CREATE TABLE storage_identity (
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    created_at BIGINT NOT NULL,
    initialising BOOLEAN NOT NULL
);

CREATE TABLE pipelines (
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    display_name TEXT COLLATE "C" NOT NULL,
    description TEXT COLLATE "C" NOT NULL,
    namespace TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    tags TEXT COLLATE "C" NOT NULL
);
CREATE UNIQUE INDEX pipelines_namespace_name ON pipelines (namespace, name);
CREATE INDEX pipelines_created_at ON pipelines (created_at, id);

CREATE TABLE pipeline_versions (
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    pipeline_id TEXT COLLATE "C" NOT NULL REFERENCES pipelines (id),
    name TEXT COLLATE "C" NOT NULL,
    display_name TEXT COLLATE "C" NOT NULL,
    description TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    pipeline_spec TEXT COLLATE "C" NOT NULL,
    platform_spec TEXT COLLATE "C",
    package_key TEXT COLLATE "C" NOT NULL,
    package_url TEXT COLLATE "C" NOT NULL,
    code_source_url TEXT COLLATE "C" NOT NULL,
    tags TEXT COLLATE "C" NOT NULL
);
CREATE UNIQUE INDEX pipeline_versions_pipeline_name ON pipeline_versions (pipeline_id, name);
CREATE INDEX pipeline_versions_pipeline_created_at ON pipeline_versions (pipeline_id, created_at, id);

CREATE TABLE experiments (
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    display_name TEXT COLLATE "C" NOT NULL,
    description TEXT COLLATE "C" NOT NULL,
    namespace TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    storage_state TEXT COLLATE "C" NOT NULL,
    last_run_created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX experiments_namespace_name ON experiments (namespace, display_name);
CREATE INDEX experiments_created_at ON experiments (created_at, id);

CREATE TABLE runs (
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    experiment_id TEXT COLLATE "C" NOT NULL,
    display_name TEXT COLLATE "C" NOT NULL,
    description TEXT COLLATE "C" NOT NULL,
    namespace TEXT COLLATE "C" NOT NULL,
    storage_state TEXT COLLATE "C" NOT NULL,
    pipeline_id TEXT COLLATE "C" NOT NULL,
    pipeline_version_id TEXT COLLATE "C" NOT NULL,
    pipeline_spec TEXT COLLATE "C" NOT NULL,
    platform_spec TEXT COLLATE "C",
    parameters TEXT COLLATE "C" NOT NULL,
    pipeline_root TEXT COLLATE "C" NOT NULL,
    service_account TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    scheduled_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    state TEXT COLLATE "C" NOT NULL,
    error TEXT COLLATE "C",
    recurring_run_id TEXT COLLATE "C" NOT NULL
);
CREATE INDEX runs_created_at ON runs (created_at, id);
CREATE INDEX runs_experiment_created_at ON runs (experiment_id, created_at, id);
CREATE INDEX runs_state ON runs (state);
CREATE INDEX runs_recurring_run ON runs (recurring_run_id, created_at);

CREATE TABLE run_state_history (
    run_id TEXT COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    update_time BIGINT NOT NULL,
    state TEXT COLLATE "C" NOT NULL,
    error TEXT COLLATE "C",
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE recurring_runs (
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    display_name TEXT COLLATE "C" NOT NULL,
    description TEXT COLLATE "C" NOT NULL,
    experiment_id TEXT COLLATE "C" NOT NULL,
    namespace TEXT COLLATE "C" NOT NULL,
    pipeline_id TEXT COLLATE "C" NOT NULL,
    pipeline_version_id TEXT COLLATE "C" NOT NULL,
    pipeline_spec TEXT COLLATE "C" NOT NULL,
    platform_spec TEXT COLLATE "C",
    parameters TEXT COLLATE "C" NOT NULL,
    pipeline_root TEXT COLLATE "C" NOT NULL,
    service_account TEXT COLLATE "C" NOT NULL,
    max_concurrency BIGINT NOT NULL,
    trigger_spec TEXT COLLATE "C" NOT NULL,
    enabled BOOLEAN NOT NULL,
    no_catchup BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX recurring_runs_created_at ON recurring_runs (created_at, id);
CREATE INDEX recurring_runs_experiment ON recurring_runs (experiment_id, created_at, id);
