-- Weir schema version 8: the ledger of `weir import kfp`.
-- One row per source row (or object) imported: which installation (`source`, a digest of its
-- database's address), what kind and which id it had there, the digest of what it mapped to
-- (`source_sha256`) and of what weir wrote (`weir_sha256`). A re-run imports only rows whose
-- digest changed, and only where weir's copy is still what the import wrote (otherwise it
-- reports a conflict); an interrupted import resumes from here.
CREATE TABLE import_ledger (
    source TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    source_id TEXT COLLATE "C" NOT NULL,
    source_sha256 TEXT COLLATE "C" NOT NULL,
    weir_id TEXT COLLATE "C" NOT NULL,
    weir_sha256 TEXT COLLATE "C" NOT NULL,
    imported_at BIGINT NOT NULL,
    PRIMARY KEY (source, kind, source_id)
);
