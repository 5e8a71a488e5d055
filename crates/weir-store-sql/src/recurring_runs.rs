//! Recurring runs (KFP's jobs).

use async_trait::async_trait;
use weir_store::*;

use crate::binds::{recurring_binds, slot_binds};
use crate::rows::{RecurringRow, RECURRING_COLUMNS};
use crate::schema::{RECURRING_RUNS, RECURRING_RUN_SLOTS};
use crate::{Bind, SqlStore, Stmt};

#[async_trait]
impl RecurringRunStore for SqlStore {
    async fn create_recurring_run(&self, r: &RecurringRun) -> StoreResult<()> {
        self.get_experiment(&r.experiment_id).await?;
        self.transaction(vec![Stmt::new(RECURRING_RUNS.insert_sql(1), recurring_binds(r))]).await
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
            Stmt::new(RECURRING_RUN_SLOTS.insert_sql(1), slot_binds(&recurring.id, slot_at, run)),
        ];
        statements.extend(crate::runs::create_statements(run));
        self.transaction(statements).await
    }
}
