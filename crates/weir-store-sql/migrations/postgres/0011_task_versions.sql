-- Weir schema version 11: task versions, so a run's readers fetch only what changed.
-- Every transaction that writes a run's tasks takes the next `runs.tasks_version` and stamps
-- the tasks it wrote with it; one that removes or replaces tasks also sets
-- `runs.tasks_reset`. A reader that last saw version N reads the tasks with versions in
-- (N, tasks_version], or all of them when tasks_reset > N: polling a run of 20,000 tasks
-- reads the few that changed, not the 20,000 rows. The run's row is locked by the write that
-- takes a version, so versions commit in order.
ALTER TABLE runs ADD COLUMN tasks_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN tasks_reset BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
CREATE INDEX tasks_run_version ON tasks (run_id, version);
