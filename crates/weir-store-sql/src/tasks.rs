//! Tasks and artifacts: what the engine writes.

use async_trait::async_trait;
use weir_store::*;

use crate::rows::{error_text, history_text, ArtifactRow, TaskRow, ARTIFACT_COLUMNS, TASK_COLUMNS};
use crate::{json_text, Bind, SqlStore, Stmt};

pub(crate) fn task_binds(t: &Task) -> Vec<Bind> {
    vec![
        Bind::Text(t.run_id.clone()),
        Bind::Text(t.parent_id.clone()),
        Bind::Text(t.name.clone()),
        Bind::Text(t.display_name.clone()),
        Bind::Text(t.kind.as_str().into()),
        Bind::OptInt(t.iteration_index),
        Bind::Text(t.state.as_str().into()),
        Bind::Int(t.attempts),
        Bind::Text(json_text(&t.inputs)),
        Bind::Text(json_text(&t.outputs)),
        Bind::Text(t.fingerprint.clone()),
        Bind::Text(t.pipeline_name.clone()),
        Bind::Bool(t.cached),
        Bind::Text(t.image.clone()),
        Bind::OptText(error_text(&t.error)),
        Bind::Int(t.created_at),
        Bind::Int(t.started_at),
        Bind::Int(t.finished_at),
        Bind::Int(t.retry_at),
        Bind::Int(t.pid),
        Bind::Text(history_text(&t.state_history)),
    ]
}

const TASK_SETTERS: &str = "run_id = ?, parent_id = ?, name = ?, display_name = ?, kind = ?, iteration_index = ?, \
     state = ?, attempts = ?, inputs = ?, outputs = ?, fingerprint = ?, pipeline_name = ?, cached = ?, image = ?, \
     error = ?, created_at = ?, started_at = ?, finished_at = ?, retry_at = ?, pid = ?, state_history = ?";

#[async_trait]
impl TaskStore for SqlStore {
    async fn list_tasks(&self, run_id: &str) -> StoreResult<Vec<Task>> {
        self.fetch_all::<TaskRow>(
            &format!("SELECT {TASK_COLUMNS} FROM tasks WHERE run_id = ? ORDER BY created_at, id"),
            &[Bind::Text(run_id.into())],
        )
        .await?
        .into_iter()
        .map(TaskRow::into_domain)
        .collect()
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
        if let Some(transition) = &progress.run {
            if transition.from.is_empty() {
                return Err(StoreError::Internal("a run transition needs at least one source state".into()));
            }
            let finished_at = if transition.to.is_terminal() { transition.now } else { 0 };
            let placeholders = vec!["?"; transition.from.len()].join(", ");
            let mut binds = vec![
                Bind::Text(transition.to.as_str().into()),
                Bind::Int(finished_at),
                Bind::OptText(error_text(&transition.error)),
                Bind::Text(run_id.into()),
            ];
            binds.extend(transition.from.iter().map(|s| Bind::Text(s.as_str().into())));
            statements.push(
                Stmt::new(
                    format!("UPDATE runs SET state = ?, finished_at = ?, error = ? WHERE id = ? AND state IN ({placeholders})"),
                    binds,
                )
                .or_fail(StoreError::Aborted(format!("run {run_id} changed state concurrently"))),
            );
            statements.push(crate::runs::history_insert(run_id, transition.to, &transition.error, transition.now));
        }
        for id in &progress.deleted_tasks {
            statements.push(Stmt::new(
                "DELETE FROM tasks WHERE id = ? AND run_id = ?",
                vec![Bind::Text(id.clone()), Bind::Text(run_id.into())],
            ));
        }
        for task in &progress.new_tasks {
            let mut binds = vec![Bind::Text(task.id.clone())];
            binds.extend(task_binds(task));
            statements.push(Stmt::new(
                format!("INSERT INTO tasks ({TASK_COLUMNS}) VALUES ({})", vec!["?"; 22].join(", ")),
                binds,
            ));
        }
        for task in &progress.changed_tasks {
            let mut binds = task_binds(task);
            binds.push(Bind::Text(task.id.clone()));
            statements.push(
                Stmt::new(format!("UPDATE tasks SET {TASK_SETTERS} WHERE id = ?"), binds)
                    .or_fail(StoreError::not_found("task", &task.id)),
            );
        }
        for a in &progress.new_artifacts {
            statements.push(Stmt::new(
                format!("INSERT INTO artifacts ({ARTIFACT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                vec![
                    Bind::Int(a.id),
                    Bind::Text(a.run_id.clone()),
                    Bind::Text(a.task_id.clone()),
                    Bind::Text(a.name.clone()),
                    Bind::Text(a.uri.clone()),
                    Bind::Text(a.schema_title.clone()),
                    Bind::Text(a.schema_version.clone()),
                    Bind::Text(json_text(&a.metadata)),
                    Bind::Int(a.created_at),
                    Bind::Int(a.object_count),
                ],
            ));
        }
        if statements.is_empty() {
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
        #[derive(sqlx::FromRow)]
        struct IdRow {
            id: crate::text::Text,
            state: crate::text::Text,
        }
        let rows = self
            .fetch_all::<IdRow>(
                "SELECT id, state FROM runs WHERE state IN (?, ?, ?) ORDER BY created_at, id",
                &[
                    Bind::Text(RuntimeState::Pending.as_str().into()),
                    Bind::Text(RuntimeState::Running.as_str().into()),
                    Bind::Text(RuntimeState::Canceling.as_str().into()),
                ],
            )
            .await?;
        rows.into_iter()
            .map(|r| {
                let state = RuntimeState::parse(&r.state.0).ok_or_else(|| {
                    StoreError::Internal(format!("run {} has an unknown state {:?}", r.id.0, r.state.0))
                })?;
                Ok((r.id.0, state))
            })
            .collect()
    }
}
