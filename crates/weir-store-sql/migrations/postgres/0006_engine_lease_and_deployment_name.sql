-- Weir schema version 6: one engine per storage, taken atomically; the deployment's name kept
-- with its storage.
-- `engine_lease` has at most one row (id 1): the lease of the server whose engine runs steps
-- on this storage. A server takes it by inserting that row, or by replacing a dead holder's
-- lease id with a compare-and-set, so of two servers starting together exactly one gets it.
-- `storage_identity.deployment` is the name the storage was initialised under; purging
-- requires it (or the identity) typed back. Storage initialised before version 6 has none.
-- `storage_identity.singleton` makes a second identity row a unique violation: of weirs
-- initialising new storage together, one records its identity and the others adopt it.
CREATE TABLE engine_lease (
    id BIGINT PRIMARY KEY NOT NULL,
    lease_id TEXT COLLATE "C" NOT NULL,
    taken_at BIGINT NOT NULL
);

ALTER TABLE storage_identity ADD COLUMN deployment TEXT COLLATE "C" NOT NULL DEFAULT '';

ALTER TABLE storage_identity ADD COLUMN singleton BIGINT NOT NULL DEFAULT 1;
CREATE UNIQUE INDEX storage_identity_singleton ON storage_identity (singleton);
