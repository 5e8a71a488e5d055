//! Tasks and artifacts: what the engine writes.

use async_trait::async_trait;
use weir_store::*;

use crate::binds::{artifact_binds, id_last, task_binds};
use crate::reads::Reads;
use crate::rows::{ArtifactRow, RunRow, TaskRow, ARTIFACT_COLUMNS, RUN_COLUMNS, TASK_COLUMNS};
use crate::schema::{ARTIFACTS, TASKS};
use crate::{Bind, Dialect, SqlStore, Stmt};

/// The run's task version, as a task write stamps it (migration 11).
const RUN_TASK_VERSION: &str = "(SELECT tasks_version FROM runs WHERE id = ?)";

/// Rows per INSERT of new tasks, or per several-row UPDATE (23 values each).
const TASKS_PER_INSERT: usize = 100;

/// `INSERT INTO tasks (…, version) VALUES (…, <the run's task version>), …`: bound by each
/// task's binds followed by its run's id.
fn insert_tasks_sql(rows: usize) -> String {
    let width = TASKS.data_columns().count();
    let row = format!("({}, {RUN_TASK_VERSION})", vec!["?"; width].join(", "));
    format!("INSERT INTO tasks ({}, version) VALUES {}", TASKS.data_list(), vec![row; rows].join(", "))
}

/// The whole-row UPDATE of a task, stamping the run's task version: bound by the task's binds
/// with the id last and its run's id before it.
fn update_task_sql() -> String {
    let sql = TASKS.update_by_id_sql();
    let (set, key) = sql.rsplit_once(" WHERE ").expect("an UPDATE has a WHERE");
    format!("{set}, version = {RUN_TASK_VERSION} WHERE {key}")
}

/// The whole-row UPDATE of several tasks of one run in one statement, for PostgreSQL:
/// `UPDATE tasks SET column = v.column, …, version = <the run's task version> FROM (VALUES
/// (…), …) AS v(id, …) WHERE tasks.id = v.id`. Bound by the run's id, then each task's binds
/// (id first). Each row is a round trip on a server database, and an engine's pass writes a
/// few to a dozen (results, claims, the planner's changes). The values' types are the binds'
/// own (sqlx sends each parameter's type), as in the one-row UPDATE.
fn update_tasks_sql(rows: usize) -> String {
    let columns: Vec<&str> = TASKS.data_columns().map(|c| c.name).collect();
    let setters: Vec<String> = columns[1..].iter().map(|c| format!("{c} = v.{c}")).collect();
    format!(
        "UPDATE tasks SET {}, version = {RUN_TASK_VERSION} FROM (VALUES {}) AS v({}) WHERE tasks.id = v.id",
        setters.join(", "),
        crate::schema::values_sql(columns.len(), rows),
        columns.join(", ")
    )
}

/// The statements that write `tasks` (whole rows) over their stored rows, each failing the
/// transaction when its task is missing. Several tasks on PostgreSQL go as one statement; a
/// task written twice is written once, as it was last given (the writes are whole rows, in
/// order, so the last one is what stays).
fn update_tasks(dialect: crate::Dialect, run_id: &str, tasks: &[Task]) -> Vec<Stmt> {
    let mut at: std::collections::HashMap<&str, usize> = std::collections::HashMap::with_capacity(tasks.len());
    let mut last: Vec<&Task> = Vec::with_capacity(tasks.len());
    for task in tasks {
        match at.get(task.id.as_str()) {
            Some(&i) => last[i] = task,
            None => {
                at.insert(&task.id, last.len());
                last.push(task);
            }
        }
    }
    if dialect == crate::Dialect::Postgres && last.len() > 1 {
        // In chunks, as inserts are: PostgreSQL takes at most 65,535 parameters a statement.
        return last
            .chunks(TASKS_PER_INSERT)
            .map(|chunk| {
                let mut binds = vec![Bind::Text(run_id.into())];
                binds.extend(chunk.iter().flat_map(|task| task_binds(task)));
                let ids: Vec<&str> = chunk.iter().map(|t| t.id.as_str()).collect();
                let missing = StoreError::not_found("task among", &ids.join(", "));
                Stmt::new(update_tasks_sql(chunk.len()), binds).or_fail_below(chunk.len() as u64, missing)
            })
            .collect();
    }
    last.iter()
        .map(|task| {
            // The id stays last, after the version's run.
            let mut binds = id_last(task_binds(task));
            binds.insert(binds.len() - 1, Bind::Text(run_id.into()));
            Stmt::new(update_task_sql(), binds).or_fail(StoreError::not_found("task", &task.id))
        })
        .collect()
}

#[derive(sqlx::FromRow)]
struct TaskVersions {
    tasks_version: i64,
    tasks_reset: i64,
}

#[derive(sqlx::FromRow)]
struct RunWithVersions {
    #[sqlx(flatten)]
    run: RunRow,
    #[sqlx(flatten)]
    versions: TaskVersions,
}

/// The run's tasks written since `after`, given the run's task versions as read.
async fn changes_since(
    reads: &mut Reads<'_>,
    run_id: &str,
    after: Option<i64>,
    versions: TaskVersions,
) -> StoreResult<TaskChanges> {
    let TaskVersions { tasks_version: version, tasks_reset: reset } = versions;
    // Versions commit in order (each write takes the next one under the run's row lock), so
    // every task up to `version` is visible now. A task written again since is read as it is
    // now (bounding the read at `version` would miss a task written below it and again
    // above it), and once more next time, which is harmless. A version below what the
    // reader saw means the run was replaced (an import, a restore).
    let complete = match after {
        Some(seen) => reset > seen || version < seen,
        None => true,
    };
    let tasks = if complete {
        list_tasks(reads, run_id).await?
    } else if after == Some(version) {
        Vec::new()
    } else {
        reads
            .fetch_all::<TaskRow>(
                &format!("SELECT {TASK_COLUMNS} FROM tasks WHERE run_id = ? AND version > ? ORDER BY created_at, id"),
                &[Bind::Text(run_id.into()), Bind::Int(after.unwrap_or_default())],
            )
            .await?
            .into_iter()
            .map(TaskRow::into_domain)
            .collect::<StoreResult<_>>()?
    };
    Ok(TaskChanges { version, complete, tasks })
}

/// A run's tasks, in the order the API lists them.
async fn list_tasks(reads: &mut Reads<'_>, run_id: &str) -> StoreResult<Vec<Task>> {
    reads
        .fetch_all::<TaskRow>(
            &format!("SELECT {TASK_COLUMNS} FROM tasks WHERE run_id = ? ORDER BY created_at, id"),
            &[Bind::Text(run_id.into())],
        )
        .await?
        .into_iter()
        .map(TaskRow::into_domain)
        .collect()
}

#[async_trait]
impl TaskStore for SqlStore {
    async fn list_tasks(&self, run_id: &str) -> StoreResult<Vec<Task>> {
        list_tasks(&mut self.reads().await?, run_id).await
    }

    async fn list_tasks_page(&self, run_id: &str, after: Option<(i64, String)>, limit: i64) -> StoreResult<Vec<Task>> {
        let (created_at, id) = after.unwrap_or((i64::MIN, String::new()));
        // The bound must be a range of `tasks_run_order` (run_id, created_at, id), or each page
        // reads every task before it. PostgreSQL and SQLite take a row comparison as one; PostgreSQL
        // cannot take the same bound spelt with OR, which MySQL's range optimiser prefers.
        let bound = match self.dialect {
            Dialect::MySql => "(created_at > ? OR (created_at = ? AND id > ?))",
            Dialect::Postgres | Dialect::Sqlite => "(created_at, id) > (?, ?)",
        };
        let mut binds = vec![Bind::Text(run_id.into()), Bind::Int(created_at)];
        if self.dialect == Dialect::MySql {
            binds.push(Bind::Int(created_at));
        }
        binds.extend([Bind::Text(id), Bind::Int(limit)]);
        self.fetch_all::<TaskRow>(
            &format!("SELECT {TASK_COLUMNS} FROM tasks WHERE run_id = ? AND {bound} ORDER BY created_at, id LIMIT ?"),
            &binds,
        )
        .await?
        .into_iter()
        .map(TaskRow::into_domain)
        .collect()
    }

    async fn task_changes(&self, run_id: &str, after: Option<i64>) -> StoreResult<TaskChanges> {
        let mut reads = self.reads().await?;
        let versions = reads
            .fetch_optional::<TaskVersions>(
                "SELECT tasks_version, tasks_reset FROM runs WHERE id = ?",
                &[Bind::Text(run_id.into())],
            )
            .await?
            .ok_or_else(|| StoreError::not_found("run", run_id))?;
        changes_since(&mut reads, run_id, after, versions).await
    }

    async fn run_with_task_changes(&self, run_id: &str, after: Option<i64>) -> StoreResult<(Run, String, TaskChanges)> {
        // RUN_COLUMNS include the task versions.
        let mut reads = self.reads().await?;
        let RunWithVersions { run, versions } = reads
            .fetch_optional::<RunWithVersions>(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?"),
                &[Bind::Text(run_id.into())],
            )
            .await?
            .ok_or_else(|| StoreError::not_found("run", run_id))?;
        // The history is read after the run's row, so it is never behind the run's state.
        let mut histories = crate::runs::histories(&mut reads, &[run_id]).await?;
        let (run, spec) = run.into_domain_raw(histories.remove(run_id).unwrap_or_default())?;
        let changes = changes_since(&mut reads, run_id, after, versions).await?;
        Ok((run, spec, changes))
    }

    async fn list_artifacts(&self, run_id: &str) -> StoreResult<Vec<Artifact>> {
        self.fetch_all::<ArtifactRow>(
            &format!("SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE run_id = ? ORDER BY created_at, id"),
            &[Bind::Text(run_id.into())],
        )
        .await?
        .into_iter()
        .map(ArtifactRow::into_domain)
        .collect()
    }

    async fn get_artifacts(&self, ids: &[i64]) -> StoreResult<Vec<Artifact>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders = vec!["?"; ids.len()].join(", ");
        let binds: Vec<Bind> = ids.iter().map(|id| Bind::Int(*id)).collect();
        self.fetch_all::<ArtifactRow>(
            &format!("SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE id IN ({placeholders})"),
            &binds,
        )
        .await?
        .into_iter()
        .map(ArtifactRow::into_domain)
        .collect()
    }

    async fn save_progress(&self, run_id: &str, progress: &Progress) -> StoreResult<()> {
        let mut statements = Vec::new();
        if let Some(owner) = &progress.owner {
            statements.push(crate::run_leases::fence(run_id, owner));
        }
        // A cache hit holds its sources: a removal deleting one waits for this write (and then
        // sees the hit as a user of the source's artifacts), or wins, and this write fails.
        for source in &progress.cache_sources {
            statements.push(
                Stmt::new(
                    "UPDATE tasks SET cached = ? WHERE id = ? AND cached = ?",
                    vec![Bind::Bool(false), Bind::Text(source.clone()), Bind::Bool(false)],
                )
                .or_fail(StoreError::Aborted(format!("the cache source {source} was removed"))),
            );
        }
        if let Some(transition) = &progress.run {
            if transition.from.is_empty() {
                return Err(StoreError::Internal("a run transition needs at least one source state".into()));
            }
            let (from, to, error, now) = (&transition.from, transition.to, &transition.error, transition.now);
            let update = crate::runs::transition_update(run_id, from, to, error, now)
                .or_fail(StoreError::Aborted(format!("run {run_id} changed state concurrently")));
            statements.push(update);
            statements.push(crate::runs::history_insert(run_id, to, error, now));
            if to.is_terminal() {
                statements.push(crate::run_leases::release_ended(run_id));
            }
        }
        for id in &progress.deleted_tasks {
            statements.push(Stmt::new(
                "DELETE FROM tasks WHERE id = ? AND run_id = ?",
                vec![Bind::Text(id.clone()), Bind::Text(run_id.into())],
            ));
        }
        // The tasks written take the run's next task version, for readers that fetch only
        // what changed (migration 11); removals tell them to read everything again. The
        // version is taken first and stamped by the writes themselves: on a server database
        // each statement is a round trip.
        if !progress.new_tasks.is_empty() || !progress.changed_tasks.is_empty() || !progress.deleted_tasks.is_empty() {
            statements.push(Stmt::new(
                "UPDATE runs SET tasks_version = tasks_version + 1 WHERE id = ?",
                vec![Bind::Text(run_id.into())],
            ));
            if !progress.deleted_tasks.is_empty() {
                statements.push(Stmt::new(
                    "UPDATE runs SET tasks_reset = tasks_version WHERE id = ?",
                    vec![Bind::Text(run_id.into())],
                ));
            }
        }
        for chunk in progress.new_tasks.chunks(TASKS_PER_INSERT) {
            let binds = chunk
                .iter()
                .flat_map(|task| {
                    let mut binds = task_binds(task);
                    binds.push(Bind::Text(run_id.into()));
                    binds
                })
                .collect();
            statements.push(Stmt::new(insert_tasks_sql(chunk.len()), binds));
        }
        statements.extend(update_tasks(self.dialect, run_id, &progress.changed_tasks));
        for a in &progress.new_artifacts {
            statements.push(Stmt::new(ARTIFACTS.insert_sql(1), artifact_binds(a)));
        }
        if statements.len() == usize::from(progress.owner.is_some()) {
            return Ok(());
        }
        self.transaction(statements).await
    }

    async fn find_cached(&self, pipeline_name: &str, fingerprint: &str) -> StoreResult<Option<Task>> {
        self.fetch_optional::<TaskRow>(
            &format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE pipeline_name = ? AND fingerprint = ? AND state = ? \
                 AND cached = ? ORDER BY finished_at DESC, id DESC LIMIT 1"
            ),
            &[
                Bind::Text(pipeline_name.into()),
                Bind::Text(fingerprint.into()),
                Bind::Text(RuntimeState::Succeeded.as_str().into()),
                Bind::Bool(false),
            ],
        )
        .await?
        .map(TaskRow::into_domain)
        .transpose()
    }

    async fn active_runs(&self) -> StoreResult<Vec<(String, RuntimeState)>> {
        let runs = weir_store::RunLeaseStore::active_runs_with_owners(self).await?;
        Ok(runs.into_iter().map(|r| (r.id, r.state)).collect())
    }
}
