//! Runs and their state history.

use std::collections::HashMap;

use async_trait::async_trait;
use weir_store::*;

use crate::rows::{error_text, RunRow, StateRow, RUN_COLUMNS};
use crate::{json_text, Bind, SqlStore, Stmt};

pub(crate) fn history_insert(run_id: &str, state: RuntimeState, error: &Option<ErrorInfo>, now: i64) -> Stmt {
    Stmt::new(
        "INSERT INTO run_state_history (run_id, seq, update_time, state, error) \
         SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ? FROM run_state_history WHERE run_id = ?",
        vec![
            Bind::Text(run_id.into()),
            Bind::Int(now),
            Bind::Text(state.as_str().into()),
            Bind::OptText(error_text(error)),
            Bind::Text(run_id.into()),
        ],
    )
}

impl SqlStore {
    async fn histories(&self, run_ids: &[&str]) -> StoreResult<HashMap<String, Vec<StateChange>>> {
        let mut out: HashMap<String, Vec<StateChange>> = HashMap::new();
        if run_ids.is_empty() {
            return Ok(out);
        }
        let placeholders = vec!["?"; run_ids.len()].join(", ");
        let binds: Vec<Bind> = run_ids.iter().map(|id| Bind::Text((*id).to_string())).collect();
        let rows = self
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

    async fn runs_with_history(&self, rows: Vec<RunRow>) -> StoreResult<Vec<Run>> {
        let ids: Vec<String> = rows.iter().map(|r| r.id().to_string()).collect();
        let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let mut histories = self.histories(&id_refs).await?;
        rows.into_iter()
            .map(|row| {
                let history = histories.remove(row.id()).unwrap_or_default();
                row.into_domain(history)
            })
            .collect()
    }
}

/// The statements that create a run: the experiment's stamp (which fails for a missing
/// experiment), the row, its first state changes.
pub(crate) fn create_statements(run: &Run) -> Vec<Stmt> {
    let insert = Stmt::new(
        format!("INSERT INTO runs ({RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
        run_binds(run),
    );
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

fn run_binds(run: &Run) -> Vec<Bind> {
    vec![
        Bind::Text(run.id.clone()),
        Bind::Text(run.experiment_id.clone()),
        Bind::Text(run.display_name.clone()),
        Bind::Text(run.description.clone()),
        Bind::Text(run.namespace.clone()),
        Bind::Text(run.storage_state.as_str().into()),
        Bind::Text(run.pipeline_id.clone()),
        Bind::Text(run.pipeline_version_id.clone()),
        Bind::Text(json_text(&run.pipeline_spec)),
        Bind::OptText(run.platform_spec.as_ref().map(json_text)),
        Bind::Text(serde_json::to_string(&run.parameters).unwrap_or_else(|_| "{}".into())),
        Bind::Text(run.pipeline_root.clone()),
        Bind::Text(run.service_account.clone()),
        Bind::Int(run.created_at),
        Bind::Int(run.scheduled_at),
        Bind::Int(run.finished_at),
        Bind::Text(run.state.as_str().into()),
        Bind::OptText(error_text(&run.error)),
        Bind::Text(run.recurring_run_id.clone()),
    ]
}

impl SqlStore {
    /// Inserts many finished runs with their tasks in one transaction, a few hundred rows per
    /// statement: for filling a store to measure it at scale (a million runs one
    /// transaction each would take most of an hour). The runs' experiments must exist; their
    /// `last_run_created_at` is not stamped.
    pub async fn bulk_load(&self, runs: &[Run], tasks: &[Task]) -> StoreResult<()> {
        let mut statements = Vec::new();
        let rows = |columns: usize, count: usize| {
            let row = format!("({})", vec!["?"; columns].join(", "));
            vec![row; count].join(", ")
        };
        for chunk in runs.chunks(500) {
            let binds = chunk.iter().flat_map(run_binds).collect();
            statements
                .push(Stmt::new(format!("INSERT INTO runs ({RUN_COLUMNS}) VALUES {}", rows(19, chunk.len())), binds));
            let mut history = Vec::new();
            for run in chunk {
                for (seq, change) in run.state_history.iter().enumerate() {
                    history.extend([
                        Bind::Text(run.id.clone()),
                        Bind::Int(seq as i64 + 1),
                        Bind::Int(change.update_time),
                        Bind::Text(change.state.as_str().into()),
                        Bind::OptText(error_text(&change.error)),
                    ]);
                }
            }
            if !history.is_empty() {
                let count = history.len() / 5;
                statements.push(Stmt::new(
                    format!(
                        "INSERT INTO run_state_history (run_id, seq, update_time, state, error) VALUES {}",
                        rows(5, count)
                    ),
                    history,
                ));
            }
        }
        for chunk in tasks.chunks(500) {
            let binds = chunk
                .iter()
                .flat_map(|t| std::iter::once(Bind::Text(t.id.clone())).chain(crate::tasks::task_binds(t)))
                .collect();
            statements.push(Stmt::new(
                format!("INSERT INTO tasks ({}) VALUES {}", crate::rows::TASK_COLUMNS, rows(22, chunk.len())),
                binds,
            ));
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
        let row = self
            .fetch_optional::<RunRow>(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?"), &[Bind::Text(id.into())])
            .await?
            .ok_or_else(|| StoreError::not_found("run", id))?;
        let mut runs = self.runs_with_history(vec![row]).await?;
        Ok(runs.remove(0))
    }

    async fn list_runs(&self, query: &ListQuery) -> StoreResult<Page<Run>> {
        let (rows, total) = self.list_rows::<RunRow>("runs", RUN_COLUMNS, query).await?;
        let items = self.runs_with_history(rows).await?;
        Ok(Page::from_rows(items, total, query))
    }

    async fn set_run_storage_state(&self, id: &str, state: StorageState) -> StoreResult<()> {
        if state == StorageState::Available {
            let run = self.get_run(id).await?;
            let archived: Option<i64> = self
                .count(
                    "SELECT COUNT(*) FROM experiments WHERE id = ? AND storage_state = ?",
                    &[Bind::Text(run.experiment_id.clone()), Bind::Text(StorageState::Archived.as_str().into())],
                )
                .await
                .ok();
            if archived.unwrap_or(0) > 0 {
                return Err(StoreError::FailedPrecondition(format!(
                    "run {id} is in archived experiment {}; unarchive the experiment first",
                    run.experiment_id
                )));
            }
        }
        self.transaction(vec![Stmt::new(
            "UPDATE runs SET storage_state = ? WHERE id = ?",
            vec![Bind::Text(state.as_str().into()), Bind::Text(id.into())],
        )
        .or_fail(StoreError::not_found("run", id))])
            .await
    }

    async fn delete_run(&self, id: &str) -> StoreResult<()> {
        self.transaction(vec![
            Stmt::new("DELETE FROM run_state_history WHERE run_id = ?", vec![Bind::Text(id.into())]),
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
        let finished_at = if to.is_terminal() { now } else { 0 };
        if from.is_empty() {
            return Err(StoreError::Internal("transition_run needs at least one source state".into()));
        }
        let placeholders = vec!["?"; from.len()].join(", ");
        let mut binds = vec![
            Bind::Text(to.as_str().into()),
            Bind::Int(finished_at),
            Bind::OptText(error_text(&error)),
            Bind::Text(id.into()),
        ];
        binds.extend(from.iter().map(|s| Bind::Text(s.as_str().into())));
        let update = Stmt::new(
            format!("UPDATE runs SET state = ?, finished_at = ?, error = ? WHERE id = ? AND state IN ({placeholders})"),
            binds,
        )
        .or_fail(StoreError::Aborted(String::new()));
        match self.transaction(vec![update, history_insert(id, to, &error, now)]).await {
            Ok(()) => self.get_run(id).await,
            Err(StoreError::Aborted(_)) => {
                let current = self.get_run(id).await?;
                Err(StoreError::FailedPrecondition(format!(
                    "run {id} is {}; this needs it to be {}",
                    current.state,
                    from.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" or ")
                )))
            }
            Err(other) => Err(other),
        }
    }
}
