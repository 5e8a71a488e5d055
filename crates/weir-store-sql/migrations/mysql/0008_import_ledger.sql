-- Weir schema version 8: the ledger of `weir import kfp`.
-- One row per source row (or object) imported: which installation (`source`, a digest of its
-- database's address), what kind and which id it had there, the digest of what it mapped to
-- (`source_sha256`) and of what weir wrote (`weir_sha256`). A re-run imports only rows whose
-- digest changed, and only where weir's copy is still what the import wrote (otherwise it
-- reports a conflict); an interrupted import resumes from here.
CREATE TABLE import_ledger (
    source VARCHAR(64) NOT NULL,
    kind VARCHAR(32) NOT NULL,
    source_id VARCHAR(255) NOT NULL,
    source_sha256 VARCHAR(64) NOT NULL,
    weir_id VARCHAR(255) NOT NULL,
    weir_sha256 VARCHAR(64) NOT NULL,
    imported_at BIGINT NOT NULL,
    PRIMARY KEY (source, kind, source_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
