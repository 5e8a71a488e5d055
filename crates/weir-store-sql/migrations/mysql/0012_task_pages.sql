-- Weir schema version 12: a run's tasks in the order they are listed and paged.
-- `(run_id, created_at)` left a page's bound on `(created_at, id)` outside the index, so each
-- page of a run's tasks read the run's tasks before it again: paging through 20,000 tasks read
-- 20,000 rows a page. The new index holds the whole order; the one it extends goes.
CREATE INDEX tasks_run_order ON tasks (run_id, created_at, id);
DROP INDEX tasks_run ON tasks;
