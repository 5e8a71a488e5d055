-- Weir schema version 4: recurring runs fire exactly once per slot. A slot row is written in
-- the same transaction as the run it creates, keyed by (recurring run, slot time), so two
-- schedulers, a restart or a reinstall can neither skip nor repeat a slot; the recurring run
-- keeps its last fired slot and run index as the cursor.
ALTER TABLE recurring_runs ADD COLUMN last_slot_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE recurring_runs ADD COLUMN last_index INTEGER NOT NULL DEFAULT 0;

CREATE TABLE recurring_run_slots (
    recurring_run_id TEXT NOT NULL,
    slot_at INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (recurring_run_id, slot_at)
);
