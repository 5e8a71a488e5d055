-- Weir schema version 10: retention and garbage collection.
-- `gc_history` records every removal (a run, an experiment, a pipeline version, orphan
-- objects): when, what, which policy or request, and, once its objects are gone, how many
-- objects and bytes went (`done_at` stays 0 until then).
-- `gc_pending` is the journal of object deletions: the rows of a removed run go in one
-- transaction together with the journal entries naming its objects (a key, or a folder
-- ending in `/`), so a deletion cut short resumes at the next start and nothing refers to an
-- object deleted before its rows.
-- `retention` holds an experiment's own retention policies (JSON), which replace the
-- deployment's for its runs. `run_archived` records when a run was archived, so "archived
-- runs 7 days" counts from the archiving, not from the run.
-- The index on artifact URIs lets the collector ask whether an object is still referred to.
-- MariaDB indexes a TEXT column by a prefix: the first 255 characters of a URI narrow the
-- lookup to a handful of rows, which the query then compares whole.
CREATE TABLE gc_history (
    id VARCHAR(64) PRIMARY KEY NOT NULL,
    at BIGINT NOT NULL,
    kind VARCHAR(64) NOT NULL,
    target_id VARCHAR(255) NOT NULL,
    display_name TEXT NOT NULL,
    policy VARCHAR(255) NOT NULL,
    detail LONGTEXT NOT NULL,
    objects BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    done_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX gc_history_at ON gc_history (at, id);

CREATE TABLE gc_pending (
    id VARCHAR(64) PRIMARY KEY NOT NULL,
    history_id VARCHAR(64) NOT NULL,
    prefix TEXT NOT NULL,
    created_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX gc_pending_created_at ON gc_pending (created_at, id);

CREATE TABLE retention (
    experiment_id VARCHAR(64) PRIMARY KEY NOT NULL,
    policies LONGTEXT NOT NULL,
    updated_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE run_archived (
    run_id VARCHAR(64) PRIMARY KEY NOT NULL,
    archived_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE INDEX artifacts_uri ON artifacts (uri(255));
CREATE INDEX runs_state_finished_at ON runs (state, finished_at);
