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
CREATE TABLE gc_history (
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    target_id TEXT COLLATE "C" NOT NULL,
    display_name TEXT COLLATE "C" NOT NULL,
    policy TEXT COLLATE "C" NOT NULL,
    detail TEXT COLLATE "C" NOT NULL,
    objects BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    done_at BIGINT NOT NULL
);
CREATE INDEX gc_history_at ON gc_history (at, id);

CREATE TABLE gc_pending (
    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    history_id TEXT COLLATE "C" NOT NULL,
    prefix TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX gc_pending_created_at ON gc_pending (created_at, id);

CREATE TABLE retention (
    experiment_id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    policies TEXT COLLATE "C" NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE run_archived (
    run_id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    archived_at BIGINT NOT NULL
);

CREATE INDEX artifacts_uri ON artifacts (uri);
CREATE INDEX runs_state_finished_at ON runs (state, finished_at);
