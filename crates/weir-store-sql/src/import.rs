//! What `weir import kfp` writes: entities (new, or replacing weir's copy) with their ledger
//! rows, each batch in one transaction.

use async_trait::async_trait;
use weir_store::*;

use crate::binds::{
    artifact_binds, experiment_binds, history_binds, id_last, ledger_binds, pipeline_binds, recurring_binds, run_binds,
    task_binds, version_binds,
};
use crate::schema::{
    Table, ARTIFACTS, EXPERIMENTS, IMPORT_LEDGER, PIPELINES, PIPELINE_VERSIONS, RECURRING_RUNS, RUNS,
    RUN_STATE_HISTORY, TASKS,
};
use crate::text::Text;
use crate::{Bind, SqlStore, Stmt};

/// Rows per multi-row INSERT: well under every backend's limit on bound values (PostgreSQL's
/// 65,535) at the widest table's 20 columns.
const ROWS_PER_INSERT: usize = 200;

#[derive(sqlx::FromRow)]
struct LedgerRow {
    source: Text,
    kind: Text,
    source_id: Text,
    source_sha256: Text,
    weir_id: Text,
    weir_sha256: Text,
    imported_at: i64,
}

#[derive(sqlx::FromRow)]
struct KindCount {
    kind: Text,
    n: i64,
}

/// INSERTs for the new entities and whole-row UPDATEs for the replaced ones.
fn writes<T>(table: &Table, items: &[Imported<T>], binds: impl Fn(&T) -> Vec<Bind>, out: &mut Vec<Stmt>) {
    let new: Vec<&T> = items.iter().filter(|i| !i.replace).map(|i| &i.entity).collect();
    for chunk in new.chunks(ROWS_PER_INSERT) {
        out.push(Stmt::new(table.insert_sql(chunk.len()), chunk.iter().flat_map(|e| binds(e)).collect()));
    }
    for item in items.iter().filter(|i| i.replace) {
        out.push(Stmt::new(table.update_by_id_sql(), id_last(binds(&item.entity))));
    }
}

#[async_trait]
impl ImportStore for SqlStore {
    async fn ledger_entries(&self, source: &str, kind: &str, source_ids: &[String]) -> StoreResult<Vec<LedgerEntry>> {
        let mut out = Vec::with_capacity(source_ids.len());
        for chunk in source_ids.chunks(500) {
            let placeholders = vec!["?"; chunk.len()].join(", ");
            let mut binds = vec![Bind::Text(source.into()), Bind::Text(kind.into())];
            binds.extend(chunk.iter().map(|id| Bind::Text(id.clone())));
            let rows = self
                .fetch_all::<LedgerRow>(
                    &format!(
                        "SELECT {} FROM import_ledger WHERE source = ? AND kind = ? AND source_id IN ({placeholders})",
                        IMPORT_LEDGER.column_list
                    ),
                    &binds,
                )
                .await?;
            out.extend(rows.into_iter().map(|r| LedgerEntry {
                source: r.source.0,
                kind: r.kind.0,
                source_id: r.source_id.0,
                source_sha256: r.source_sha256.0,
                weir_id: r.weir_id.0,
                weir_sha256: r.weir_sha256.0,
                imported_at: r.imported_at,
            }));
        }
        Ok(out)
    }

    async fn ledger_counts(&self, source: &str) -> StoreResult<Vec<(String, i64)>> {
        let rows = self
            .fetch_all::<KindCount>(
                "SELECT kind, COUNT(*) AS n FROM import_ledger WHERE source = ? GROUP BY kind ORDER BY kind",
                &[Bind::Text(source.into())],
            )
            .await?;
        Ok(rows.into_iter().map(|r| (r.kind.0, r.n)).collect())
    }

    async fn apply_import(&self, batch: &ImportBatch) -> StoreResult<()> {
        let mut statements = Vec::new();
        writes(&PIPELINES, &batch.pipelines, pipeline_binds, &mut statements);
        writes(&PIPELINE_VERSIONS, &batch.versions, version_binds, &mut statements);
        writes(&EXPERIMENTS, &batch.experiments, experiment_binds, &mut statements);
        // A replaced run's history, tasks and artifacts are replaced with it.
        for run in batch.runs.iter().filter(|r| r.replace) {
            for table in ["run_state_history", "tasks", "artifacts"] {
                statements.push(Stmt::new(
                    format!("DELETE FROM {table} WHERE run_id = ?"),
                    vec![Bind::Text(run.entity.id.clone())],
                ));
            }
        }
        writes(&RUNS, &batch.runs, run_binds, &mut statements);
        // Readers that fetch only changed tasks read a replaced run's tasks again (migration 11).
        for run in batch.runs.iter().filter(|r| r.replace) {
            for sql in [
                "UPDATE runs SET tasks_version = tasks_version + 1 WHERE id = ?",
                "UPDATE runs SET tasks_reset = tasks_version WHERE id = ?",
            ] {
                statements.push(Stmt::new(sql, vec![Bind::Text(run.entity.id.clone())]));
            }
        }
        let history: Vec<Vec<Bind>> = batch
            .runs
            .iter()
            .flat_map(|r| {
                r.entity.state_history.iter().enumerate().map(|(seq, change)| {
                    history_binds(&r.entity.id, seq as i64 + 1, change.update_time, change.state, &change.error)
                })
            })
            .collect();
        for chunk in history.chunks(ROWS_PER_INSERT) {
            statements
                .push(Stmt::new(RUN_STATE_HISTORY.insert_sql(chunk.len()), chunk.iter().flatten().cloned().collect()));
        }
        // Each experiment's newest run of the batch, one statement per experiment.
        let mut newest: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
        for run in &batch.runs {
            let at = newest.entry(run.entity.experiment_id.as_str()).or_default();
            *at = (*at).max(run.entity.created_at);
        }
        for (experiment, at) in newest {
            statements.push(Stmt::new(
                "UPDATE experiments SET last_run_created_at = ? WHERE id = ? AND last_run_created_at < ?",
                vec![Bind::Int(at), Bind::Text(experiment.to_string()), Bind::Int(at)],
            ));
        }
        for chunk in batch.tasks.chunks(ROWS_PER_INSERT) {
            statements.push(Stmt::new(TASKS.insert_sql(chunk.len()), chunk.iter().flat_map(task_binds).collect()));
        }
        for chunk in batch.artifacts.chunks(ROWS_PER_INSERT) {
            statements
                .push(Stmt::new(ARTIFACTS.insert_sql(chunk.len()), chunk.iter().flat_map(artifact_binds).collect()));
        }
        writes(&RECURRING_RUNS, &batch.recurring_runs, recurring_binds, &mut statements);
        // Ledger rows replace earlier ones of the same source row: deleted first, a few
        // hundred per statement.
        let mut by_kind: std::collections::BTreeMap<(&str, &str), Vec<&str>> = std::collections::BTreeMap::new();
        for entry in &batch.ledger {
            by_kind.entry((&entry.source, &entry.kind)).or_default().push(&entry.source_id);
        }
        for ((source, kind), ids) in by_kind {
            for chunk in ids.chunks(ROWS_PER_INSERT) {
                let mut binds = vec![Bind::Text(source.to_string()), Bind::Text(kind.to_string())];
                binds.extend(chunk.iter().map(|id| Bind::Text(id.to_string())));
                statements.push(Stmt::new(
                    format!(
                        "DELETE FROM import_ledger WHERE source = ? AND kind = ? AND source_id IN ({})",
                        vec!["?"; chunk.len()].join(", ")
                    ),
                    binds,
                ));
            }
        }
        for chunk in batch.ledger.chunks(ROWS_PER_INSERT) {
            statements
                .push(Stmt::new(IMPORT_LEDGER.insert_sql(chunk.len()), chunk.iter().flat_map(ledger_binds).collect()));
        }
        self.transaction(statements).await
    }
}
