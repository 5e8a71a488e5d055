-- Weir schema version 8: the ledger of `weir import kfp`.
-- One row per source row (or object) imported: which installation (`source`, a digest of its
-- database's address), what kind and which id it had there, the digest of what it mapped to
-- (`source_sha256`) and of what weir wrote (`weir_sha256`). A re-run imports only rows whose
-- digest changed, and only where weir's copy is still what the import wrote (otherwise it
-- reports a conflict); an interrupted import resumes from here.
CREATE TABLE import_ledger (
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    source_id TEXT NOT NULL,
    source_sha256 TEXT NOT NULL,
    weir_id TEXT NOT NULL,
    weir_sha256 TEXT NOT NULL,
    imported_at INTEGER NOT NULL,
    PRIMARY KEY (source, kind, source_id)
);
