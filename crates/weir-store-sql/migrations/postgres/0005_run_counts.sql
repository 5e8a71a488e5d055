-- Weir schema version 5: run counts per (experiment, storage state), kept by a trigger.
-- KFP's list answers carry `total_size`; a COUNT(*) over an experiment's runs grows with the
-- store (tens of milliseconds at a million runs), while the list page itself does not. The
-- trigger keeps the counts exact whatever writes the runs (the API, the scheduler, a restore),
-- and a list filtered only by experiment and storage state reads them instead of counting.
CREATE TABLE run_counts (
    experiment_id TEXT COLLATE "C" NOT NULL,
    storage_state TEXT COLLATE "C" NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (experiment_id, storage_state)
);

INSERT INTO run_counts (experiment_id, storage_state, n)
SELECT experiment_id, storage_state, COUNT(*) FROM runs GROUP BY experiment_id, storage_state;

CREATE FUNCTION weir_run_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE run_counts SET n = n - 1
        WHERE experiment_id = OLD.experiment_id AND storage_state = OLD.storage_state;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO run_counts (experiment_id, storage_state, n) VALUES (NEW.experiment_id, NEW.storage_state, 1)
        ON CONFLICT (experiment_id, storage_state) DO UPDATE SET n = run_counts.n + 1;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER run_counts_insert_delete AFTER INSERT OR DELETE ON runs
FOR EACH ROW EXECUTE FUNCTION weir_run_counts();

CREATE TRIGGER run_counts_update AFTER UPDATE OF experiment_id, storage_state ON runs
FOR EACH ROW WHEN (OLD.experiment_id IS DISTINCT FROM NEW.experiment_id OR OLD.storage_state IS DISTINCT FROM NEW.storage_state)
EXECUTE FUNCTION weir_run_counts();
