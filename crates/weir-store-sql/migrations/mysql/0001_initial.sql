-- Weir schema version 1: storage identity, pipelines, versions, experiments, runs, recurring runs.
CREATE TABLE storage_identity (
    id VARCHAR(64) PRIMARY KEY NOT NULL,
    created_at BIGINT NOT NULL,
    initialising BOOLEAN NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE pipelines (
    id VARCHAR(64) PRIMARY KEY NOT NULL,
    name VARCHAR(255) NOT NULL,
    display_name VARCHAR(255) NOT NULL,
    description TEXT NOT NULL,
    namespace VARCHAR(63) NOT NULL,
    created_at BIGINT NOT NULL,
    tags TEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE UNIQUE INDEX pipelines_namespace_name ON pipelines (namespace, name);
CREATE INDEX pipelines_created_at ON pipelines (created_at, id);

CREATE TABLE pipeline_versions (
    id VARCHAR(64) PRIMARY KEY NOT NULL,
    pipeline_id VARCHAR(64) NOT NULL ,
    name VARCHAR(255) NOT NULL,
    display_name VARCHAR(255) NOT NULL,
    description TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    pipeline_spec LONGTEXT NOT NULL,
    platform_spec LONGTEXT,
    package_key TEXT NOT NULL,
    package_url TEXT NOT NULL,
    code_source_url TEXT NOT NULL,
    tags TEXT NOT NULL,
    FOREIGN KEY (pipeline_id) REFERENCES pipelines (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE UNIQUE INDEX pipeline_versions_pipeline_name ON pipeline_versions (pipeline_id, name);
CREATE INDEX pipeline_versions_pipeline_created_at ON pipeline_versions (pipeline_id, created_at, id);

CREATE TABLE experiments (
    id VARCHAR(64) PRIMARY KEY NOT NULL,
    display_name VARCHAR(255) NOT NULL,
    description TEXT NOT NULL,
    namespace VARCHAR(63) NOT NULL,
    created_at BIGINT NOT NULL,
    storage_state VARCHAR(64) NOT NULL,
    last_run_created_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE UNIQUE INDEX experiments_namespace_name ON experiments (namespace, display_name);
CREATE INDEX experiments_created_at ON experiments (created_at, id);

CREATE TABLE runs (
    id VARCHAR(64) PRIMARY KEY NOT NULL,
    experiment_id VARCHAR(64) NOT NULL,
    display_name VARCHAR(255) NOT NULL,
    description TEXT NOT NULL,
    namespace VARCHAR(63) NOT NULL,
    storage_state VARCHAR(64) NOT NULL,
    pipeline_id VARCHAR(64) NOT NULL,
    pipeline_version_id VARCHAR(64) NOT NULL,
    pipeline_spec LONGTEXT NOT NULL,
    platform_spec LONGTEXT,
    parameters LONGTEXT NOT NULL,
    pipeline_root TEXT NOT NULL,
    service_account TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    scheduled_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    state VARCHAR(64) NOT NULL,
    error TEXT,
    recurring_run_id VARCHAR(64) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX runs_created_at ON runs (created_at, id);
CREATE INDEX runs_experiment_created_at ON runs (experiment_id, created_at, id);
CREATE INDEX runs_state ON runs (state);
CREATE INDEX runs_recurring_run ON runs (recurring_run_id, created_at);

CREATE TABLE run_state_history (
    run_id VARCHAR(64) NOT NULL ,
    seq BIGINT NOT NULL,
    update_time BIGINT NOT NULL,
    state VARCHAR(64) NOT NULL,
    error TEXT,
    PRIMARY KEY (run_id, seq),
    FOREIGN KEY (run_id) REFERENCES runs (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE recurring_runs (
    id VARCHAR(64) PRIMARY KEY NOT NULL,
    display_name VARCHAR(255) NOT NULL,
    description TEXT NOT NULL,
    experiment_id VARCHAR(64) NOT NULL,
    namespace VARCHAR(63) NOT NULL,
    pipeline_id VARCHAR(64) NOT NULL,
    pipeline_version_id VARCHAR(64) NOT NULL,
    pipeline_spec LONGTEXT NOT NULL,
    platform_spec LONGTEXT,
    parameters LONGTEXT NOT NULL,
    pipeline_root TEXT NOT NULL,
    service_account TEXT NOT NULL,
    max_concurrency BIGINT NOT NULL,
    trigger_spec TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    no_catchup BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX recurring_runs_created_at ON recurring_runs (created_at, id);
CREATE INDEX recurring_runs_experiment ON recurring_runs (experiment_id, created_at, id);
