-- Weir schema version 5: run counts per (experiment, storage state), kept by triggers.
-- KFP's list answers carry `total_size`; a COUNT(*) over an experiment's runs grows with the
-- store (tens of milliseconds at a million runs), while the list page itself does not. The
-- triggers keep the counts exact whatever writes the runs (the API, the scheduler, a restore),
-- and a list filtered only by experiment and storage state reads them instead of counting.
-- Each trigger body is one statement (two triggers for an update), so the file needs no
-- DELIMITER. With binary logging on, creating triggers needs SUPER or
-- log_bin_trust_function_creators=1 (docs/lifecycle.md).
CREATE TABLE run_counts (
    experiment_id VARCHAR(64) NOT NULL,
    storage_state VARCHAR(64) NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (experiment_id, storage_state)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT INTO run_counts (experiment_id, storage_state, n)
SELECT experiment_id, storage_state, COUNT(*) FROM runs GROUP BY experiment_id, storage_state;

CREATE TRIGGER run_counts_insert AFTER INSERT ON runs FOR EACH ROW
    INSERT INTO run_counts (experiment_id, storage_state, n) VALUES (NEW.experiment_id, NEW.storage_state, 1)
    ON DUPLICATE KEY UPDATE n = n + 1;

CREATE TRIGGER run_counts_delete AFTER DELETE ON runs FOR EACH ROW
    UPDATE run_counts SET n = n - 1
    WHERE experiment_id = OLD.experiment_id AND storage_state = OLD.storage_state;

CREATE TRIGGER run_counts_update_old AFTER UPDATE ON runs FOR EACH ROW
    UPDATE run_counts SET n = n - 1
    WHERE experiment_id = OLD.experiment_id AND storage_state = OLD.storage_state
      AND (OLD.experiment_id <> NEW.experiment_id OR OLD.storage_state <> NEW.storage_state);

CREATE TRIGGER run_counts_update_new AFTER UPDATE ON runs FOR EACH ROW FOLLOWS run_counts_update_old
    INSERT INTO run_counts (experiment_id, storage_state, n)
    SELECT NEW.experiment_id, NEW.storage_state, 1 FROM DUAL
    WHERE OLD.experiment_id <> NEW.experiment_id OR OLD.storage_state <> NEW.storage_state
    ON DUPLICATE KEY UPDATE n = n + 1;
