//! Runs and their state history.

use std::collections::HashMap;
use std::sync::LazyLock;

use async_trait::async_trait;
use weir_store::*;

use crate::binds::{history_binds, run_binds, task_binds};
use crate::reads::Reads;
use crate::rows::{error_text, RunRow, StateRow, RUN_COLUMNS};
use crate::schema::{RUNS, RUN_STATE_HISTORY, TASKS};
use crate::text::Text;
use crate::{bind_all, check_text, map_err, write_tx, Bind, SqlStore, Stmt};

/// Appends a state change to a run's history. Its `seq` is one after the run's last, computed
/// by the statement itself: the value bound for `seq` (1) is added to the current maximum.
pub(crate) fn history_insert(run_id: &str, state: RuntimeState, error: &Option<ErrorInfo>, now: i64) -> Stmt {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        let columns: Vec<&str> = RUN_STATE_HISTORY.data_columns().map(|c| c.name).collect();
        let values: Vec<&str> =
            columns.iter().map(|c| if *c == "seq" { "COALESCE(MAX(seq), 0) + ?" } else { "?" }).collect();
        format!(
            "INSERT INTO run_state_history ({}) SELECT {} FROM run_state_history WHERE run_id = ?",
            columns.join(", "),
            values.join(", ")
        )
    });
    let mut binds = history_binds(run_id, 1, now, state, error);
    binds.push(Bind::Text(run_id.into()));
    Stmt::new(SQL.as_str(), binds)
}

/// Moves a run to `to` if it is in one of `from` (a compare-and-set: it matches no row
/// otherwise); `finished_at` is set when `to` is terminal and cleared otherwise. `from` is not
/// empty.
pub(crate) fn transition_update(
    run_id: &str,
    from: &[RuntimeState],
    to: RuntimeState,
    error: &Option<ErrorInfo>,
    now: i64,
) -> Stmt {
    let finished_at = if to.is_terminal() { now } else { 0 };
    let placeholders = vec!["?"; from.len()].join(", ");
    let mut binds = vec![
        Bind::Text(to.as_str().into()),
        Bind::Int(finished_at),
        Bind::OptText(error_text(error)),
        Bind::Text(run_id.into()),
    ];
    binds.extend(from.iter().map(|s| Bind::Text(s.as_str().into())));
    Stmt::new(
        format!("UPDATE runs SET state = ?, finished_at = ?, error = ? WHERE id = ? AND state IN ({placeholders})"),
        binds,
    )
}

/// Runs from their rows, each with its state history.
async fn runs_with_history(reads: &mut Reads<'_>, rows: Vec<RunRow>) -> StoreResult<Vec<Run>> {
    let ids: Vec<String> = rows.iter().map(|r| r.id().to_string()).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut histories = histories(reads, &id_refs).await?;
    rows.into_iter()
        .map(|row| {
            let history = histories.remove(row.id()).unwrap_or_default();
            row.into_domain(history)
        })
        .collect()
}

/// The statements that create a run: the experiment's stamp (which fails for a missing
/// experiment), the row, its first state changes.
pub(crate) fn create_statements(run: &Run) -> Vec<Stmt> {
    let insert = Stmt::new(RUNS.insert_sql(1), run_binds(run));
    let stamp = Stmt::new(
        "UPDATE experiments SET last_run_created_at = ? WHERE id = ?",
        vec![Bind::Int(run.created_at), Bind::Text(run.experiment_id.clone())],
    )
    .or_fail(StoreError::not_found("experiment", &run.experiment_id));
    let mut statements = vec![stamp, insert];
    for change in &run.state_history {
        statements.push(history_insert(&run.id, change.state, &change.error, change.update_time));
    }
    statements
}

impl SqlStore {
    /// Inserts many finished runs with their tasks in one transaction, a few hundred rows per
    /// statement: for filling a store to measure it at scale (a million runs one
    /// transaction each would take most of an hour). The runs' experiments must exist; their
    /// `last_run_created_at` is not stamped.
    pub async fn bulk_load(&self, runs: &[Run], tasks: &[Task]) -> StoreResult<()> {
        let mut statements = Vec::new();
        for chunk in runs.chunks(500) {
            let binds = chunk.iter().flat_map(run_binds).collect();
            statements.push(Stmt::new(RUNS.insert_sql(chunk.len()), binds));
            let (mut history, mut count) = (Vec::new(), 0);
            for run in chunk {
                for (seq, change) in run.state_history.iter().enumerate() {
                    let seq = seq as i64 + 1;
                    history.extend(history_binds(&run.id, seq, change.update_time, change.state, &change.error));
                    count += 1;
                }
            }
            if count > 0 {
                statements.push(Stmt::new(RUN_STATE_HISTORY.insert_sql(count), history));
            }
        }
        for chunk in tasks.chunks(500) {
            let binds = chunk.iter().flat_map(task_binds).collect();
            statements.push(Stmt::new(TASKS.insert_sql(chunk.len()), binds));
        }
        self.transaction(statements).await
    }
}

#[async_trait]
impl RunStore for SqlStore {
    async fn create_run(&self, run: &Run) -> StoreResult<()> {
        self.transaction(create_statements(run)).await
    }

    async fn get_run(&self, id: &str) -> StoreResult<Run> {
        let mut reads = self.reads().await?;
        let row = reads
            .fetch_optional::<RunRow>(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?"), &[Bind::Text(id.into())])
            .await?
            .ok_or_else(|| StoreError::not_found("run", id))?;
        let mut histories = histories(&mut reads, &[id]).await?;
        row.into_domain(histories.remove(id).unwrap_or_default())
    }

    async fn get_run_raw(&self, id: &str) -> StoreResult<(Run, String)> {
        let mut reads = self.reads().await?;
        let row = reads
            .fetch_optional::<RunRow>(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?"), &[Bind::Text(id.into())])
            .await?
            .ok_or_else(|| StoreError::not_found("run", id))?;
        let mut histories = histories(&mut reads, &[id]).await?;
        row.into_domain_raw(histories.remove(id).unwrap_or_default())
    }

    async fn list_runs(&self, query: &ListQuery) -> StoreResult<Page<Run>> {
        let built = crate::list::build(self.dialect(), query)?;
        let mut reads = self.reads().await?;
        let (rows, total) = reads.list_rows::<RunRow>("runs", RUN_COLUMNS, &built).await?;
        let items = runs_with_history(&mut reads, rows).await?;
        Ok(Page::from_rows(items, total, query))
    }

    async fn set_run_storage_state(&self, id: &str, state: StorageState, now: i64) -> StoreResult<()> {
        let key = [Bind::Text(id.into())];
        let update = [Bind::Text(state.as_str().into()), Bind::Text(id.into())];
        check_text(&key)?;
        let experiment_sql = self.sql("SELECT experiment_id FROM runs WHERE id = ?");
        let archived_sql = self.sql("SELECT COUNT(*) FROM experiments WHERE id = ? AND storage_state = ?");
        let update_sql = self.sql("UPDATE runs SET storage_state = ? WHERE id = ?");
        let mut archived = match state {
            StorageState::Archived => crate::gc::stamp_archived_where("r.id = ?", vec![Bind::Text(id.into())], now),
            StorageState::Available => {
                Stmt::new("DELETE FROM run_archived WHERE run_id = ?", vec![Bind::Text(id.into())])
            }
        };
        archived.sql = self.sql(&archived.sql);
        // The experiment is read in the transaction that writes, so the run cannot come back
        // into an experiment archived meanwhile; a failed read fails the call.
        write_tx!(self, |tx| {
            if state == StorageState::Available {
                let experiment = bind_all!(sqlx::query_scalar::<_, Text>(&experiment_sql), &key)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .ok_or_else(|| StoreError::not_found("run", id))?
                    .0;
                let binds = [Bind::Text(experiment.clone()), Bind::Text(StorageState::Archived.as_str().into())];
                let archived = bind_all!(sqlx::query_scalar::<_, i64>(&archived_sql), &binds)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if archived > 0 {
                    return Err(StoreError::FailedPrecondition(format!(
                        "run {id} is in archived experiment {experiment}; unarchive the experiment first"
                    )));
                }
            }
            let updated = bind_all!(sqlx::query(&update_sql), &update).execute(&mut *tx).await.map_err(map_err)?;
            if updated.rows_affected() == 0 {
                return Err(StoreError::not_found("run", id));
            }
            bind_all!(sqlx::query(&archived.sql), &archived.binds).execute(&mut *tx).await.map_err(map_err)?;
            Ok(())
        })
    }

    async fn delete_run(&self, id: &str) -> StoreResult<()> {
        self.transaction(vec![
            Stmt::new("DELETE FROM run_state_history WHERE run_id = ?", vec![Bind::Text(id.into())]),
            Stmt::new("DELETE FROM run_archived WHERE run_id = ?", vec![Bind::Text(id.into())]),
            Stmt::new("DELETE FROM tasks WHERE run_id = ?", vec![Bind::Text(id.into())]),
            Stmt::new("DELETE FROM artifacts WHERE run_id = ?", vec![Bind::Text(id.into())]),
            Stmt::new("DELETE FROM runs WHERE id = ?", vec![Bind::Text(id.into())])
                .or_fail(StoreError::not_found("run", id)),
        ])
        .await
    }

    async fn transition_run(
        &self,
        id: &str,
        from: &[RuntimeState],
        to: RuntimeState,
        error: Option<ErrorInfo>,
        now: i64,
    ) -> StoreResult<Run> {
        if from.is_empty() {
            return Err(StoreError::Internal("transition_run needs at least one source state".into()));
        }
        let update = transition_update(id, from, to, &error, now);
        let history = history_insert(id, to, &error, now);
        check_text(&update.binds)?;
        check_text(&history.binds)?;
        let key = [Bind::Text(id.into())];
        let (update_sql, history_sql) = (self.sql(&update.sql), self.sql(&history.sql));
        let run_sql = self.sql(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?"));
        let changes_sql =
            self.sql("SELECT run_id, update_time, state, error FROM run_state_history WHERE run_id = ? ORDER BY seq");
        // The run is read back in the transaction that moved it, so what is returned is what
        // this transition wrote (after the commit another writer could have moved it on).
        write_tx!(self, |tx| {
            let updated =
                bind_all!(sqlx::query(&update_sql), &update.binds).execute(&mut *tx).await.map_err(map_err)?;
            let moved = updated.rows_affected() > 0;
            if moved {
                bind_all!(sqlx::query(&history_sql), &history.binds).execute(&mut *tx).await.map_err(map_err)?;
            }
            let row = bind_all!(sqlx::query_as::<_, RunRow>(&run_sql), &key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?
                .ok_or_else(|| StoreError::not_found("run", id))?;
            let changes = bind_all!(sqlx::query_as::<_, StateRow>(&changes_sql), &key)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?
                .into_iter()
                .map(StateRow::into_domain)
                .collect::<StoreResult<Vec<_>>>()?;
            let run = row.into_domain(changes)?;
            if !moved {
                // Nothing was written; the transaction is rolled back.
                return Err(StoreError::FailedPrecondition(format!(
                    "run {id} is {}; this needs it to be {}",
                    run.state,
                    from.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" or ")
                )));
            }
            Ok(run)
        })
    }
}

/// The state histories of runs, in order, by run.
pub(crate) async fn histories(
    reads: &mut Reads<'_>,
    run_ids: &[&str],
) -> StoreResult<HashMap<String, Vec<StateChange>>> {
    let mut out: HashMap<String, Vec<StateChange>> = HashMap::new();
    if run_ids.is_empty() {
        return Ok(out);
    }
    let placeholders = vec!["?"; run_ids.len()].join(", ");
    let binds: Vec<Bind> = run_ids.iter().map(|id| Bind::Text((*id).to_string())).collect();
    let rows = reads
        .fetch_all::<StateRow>(
            &format!(
                "SELECT run_id, update_time, state, error FROM run_state_history \
                 WHERE run_id IN ({placeholders}) ORDER BY run_id, seq"
            ),
            &binds,
        )
        .await?;
    for row in rows {
        let run_id = row.run_id.0.clone();
        out.entry(run_id).or_default().push(row.into_domain()?);
    }
    Ok(out)
}
