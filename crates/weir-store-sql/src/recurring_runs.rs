//! Recurring runs (KFP's jobs).

use async_trait::async_trait;
use weir_store::*;

use crate::rows::{RecurringRow, RECURRING_COLUMNS};
use crate::{json_text, Bind, SqlStore, Stmt};

#[async_trait]
impl RecurringRunStore for SqlStore {
    async fn create_recurring_run(&self, r: &RecurringRun) -> StoreResult<()> {
        self.get_experiment(&r.experiment_id).await?;
        self.transaction(vec![Stmt::new(
            format!("INSERT INTO recurring_runs ({RECURRING_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
            vec![
                Bind::Text(r.id.clone()),
                Bind::Text(r.display_name.clone()),
                Bind::Text(r.description.clone()),
                Bind::Text(r.experiment_id.clone()),
                Bind::Text(r.namespace.clone()),
                Bind::Text(r.pipeline_id.clone()),
                Bind::Text(r.pipeline_version_id.clone()),
                Bind::Text(json_text(&r.pipeline_spec)),
                Bind::OptText(r.platform_spec.as_ref().map(json_text)),
                Bind::Text(serde_json::to_string(&r.parameters).unwrap_or_else(|_| "{}".into())),
                Bind::Text(r.pipeline_root.clone()),
                Bind::Text(r.service_account.clone()),
                Bind::Int(r.max_concurrency),
                Bind::Text(serde_json::to_string(&r.trigger).unwrap_or_default()),
                Bind::Bool(r.enabled),
                Bind::Bool(r.no_catchup),
                Bind::Int(r.created_at),
                Bind::Int(r.updated_at),
                Bind::Int(r.last_slot_at),
                Bind::Int(r.last_index),
            ],
        )])
        .await
    }

    async fn get_recurring_run(&self, id: &str) -> StoreResult<RecurringRun> {
        self.fetch_optional::<RecurringRow>(
            &format!("SELECT {RECURRING_COLUMNS} FROM recurring_runs WHERE id = ?"),
            &[Bind::Text(id.into())],
        )
        .await?
        .ok_or_else(|| StoreError::not_found("recurring run", id))?
        .into_domain()
    }

    async fn list_recurring_runs(&self, query: &ListQuery) -> StoreResult<Page<RecurringRun>> {
        let (rows, total) = self.list_rows::<RecurringRow>("recurring_runs", RECURRING_COLUMNS, query).await?;
        let items = rows.into_iter().map(RecurringRow::into_domain).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_rows(items, total, query))
    }

    async fn set_recurring_run_enabled(&self, id: &str, enabled: bool, now: i64) -> StoreResult<()> {
        self.get_recurring_run(id).await?;
        // As in KFP, only a real change moves updated_at.
        self.transaction(vec![Stmt::new(
            "UPDATE recurring_runs SET enabled = ?, updated_at = ? WHERE id = ? AND enabled <> ?",
            vec![Bind::Bool(enabled), Bind::Int(now), Bind::Text(id.into()), Bind::Bool(enabled)],
        )])
        .await
    }

    async fn delete_recurring_run(&self, id: &str) -> StoreResult<()> {
        // Runs it created are kept, as in KFP.
        self.transaction(vec![
            Stmt::new("DELETE FROM recurring_run_slots WHERE recurring_run_id = ?", vec![Bind::Text(id.into())]),
            Stmt::new("DELETE FROM recurring_runs WHERE id = ?", vec![Bind::Text(id.into())])
                .or_fail(StoreError::not_found("recurring run", id)),
        ])
        .await
    }

    async fn enabled_recurring_runs(&self) -> StoreResult<Vec<RecurringRun>> {
        self.fetch_all::<RecurringRow>(
            &format!("SELECT {RECURRING_COLUMNS} FROM recurring_runs WHERE enabled = ? ORDER BY created_at, id"),
            &[Bind::Bool(true)],
        )
        .await?
        .into_iter()
        .map(RecurringRow::into_domain)
        .collect()
    }

    async fn active_runs_of(&self, recurring_run_id: &str) -> StoreResult<i64> {
        self.count(
            "SELECT COUNT(*) FROM runs WHERE recurring_run_id = ? AND state IN (?, ?, ?, ?)",
            &[
                Bind::Text(recurring_run_id.into()),
                Bind::Text(RuntimeState::Pending.as_str().into()),
                Bind::Text(RuntimeState::Running.as_str().into()),
                Bind::Text(RuntimeState::Canceling.as_str().into()),
                Bind::Text(RuntimeState::Paused.as_str().into()),
            ],
        )
        .await
    }

    async fn fire_slot(&self, recurring: &RecurringRun, slot_at: i64, run: &Run) -> StoreResult<()> {
        let mut statements = vec![
            // The cursor moves only from where this scheduler saw it: another scheduler that
            // got there first makes this transaction abort.
            Stmt::new(
                "UPDATE recurring_runs SET last_slot_at = ?, last_index = ? WHERE id = ? AND last_slot_at = ? AND enabled = ?",
                vec![
                    Bind::Int(slot_at),
                    Bind::Int(recurring.last_index + 1),
                    Bind::Text(recurring.id.clone()),
                    Bind::Int(recurring.last_slot_at),
                    Bind::Bool(true),
                ],
            )
            .or_fail(StoreError::Aborted(format!("recurring run {} moved on or was disabled", recurring.id))),
            Stmt::new(
                "INSERT INTO recurring_run_slots (recurring_run_id, slot_at, run_id, created_at) VALUES (?, ?, ?, ?)",
                vec![Bind::Text(recurring.id.clone()), Bind::Int(slot_at), Bind::Text(run.id.clone()), Bind::Int(run.created_at)],
            ),
        ];
        statements.extend(crate::runs::create_statements(run));
        self.transaction(statements).await
    }
}
