//! Experiments.

use async_trait::async_trait;
use weir_store::*;

use crate::binds::experiment_binds;
use crate::rows::{ExperimentRow, EXPERIMENT_COLUMNS};
use crate::schema::EXPERIMENTS;
use crate::{Bind, SqlStore, Stmt};

#[async_trait]
impl ExperimentStore for SqlStore {
    async fn create_experiment(&self, e: &Experiment) -> StoreResult<()> {
        let insert = Stmt::new(EXPERIMENTS.insert_sql(1), experiment_binds(e));
        self.transaction(vec![insert]).await.map_err(|err| match err {
            StoreError::AlreadyExists(_) => StoreError::AlreadyExists(format!(
                "an experiment named {:?} already exists; choose another name",
                e.display_name
            )),
            other => other,
        })
    }

    async fn get_experiment(&self, id: &str) -> StoreResult<Experiment> {
        self.fetch_optional::<ExperimentRow>(
            &format!("SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE id = ?"),
            &[Bind::Text(id.into())],
        )
        .await?
        .ok_or_else(|| StoreError::not_found("experiment", id))?
        .into_domain()
    }

    async fn get_experiment_by_name(&self, namespace: &str, name: &str) -> StoreResult<Experiment> {
        self.fetch_optional::<ExperimentRow>(
            &format!("SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE namespace = ? AND display_name = ?"),
            &[Bind::Text(namespace.into()), Bind::Text(name.into())],
        )
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("experiment named {name:?} not found")))?
        .into_domain()
    }

    async fn list_experiments(&self, query: &ListQuery) -> StoreResult<Page<Experiment>> {
        let (rows, total) = self.list_rows::<ExperimentRow>("experiments", EXPERIMENT_COLUMNS, query).await?;
        let items = rows.into_iter().map(ExperimentRow::into_domain).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_rows(items, total, query))
    }

    async fn archive_experiment(&self, id: &str, now: i64) -> StoreResult<()> {
        let archived = Bind::Text(StorageState::Archived.as_str().into());
        self.transaction(vec![
            Stmt::new(
                "UPDATE experiments SET storage_state = ? WHERE id = ?",
                vec![archived.clone(), Bind::Text(id.into())],
            )
            .or_fail(StoreError::not_found("experiment", id)),
            Stmt::new(
                "UPDATE runs SET storage_state = ? WHERE experiment_id = ?",
                vec![archived, Bind::Text(id.into())],
            ),
            crate::gc::stamp_archived_where("r.experiment_id = ?", vec![Bind::Text(id.into())], now),
            Stmt::new(
                "UPDATE recurring_runs SET enabled = ?, updated_at = ? WHERE experiment_id = ? AND enabled = ?",
                vec![Bind::Bool(false), Bind::Int(now), Bind::Text(id.into()), Bind::Bool(true)],
            ),
        ])
        .await
    }

    async fn unarchive_experiment(&self, id: &str) -> StoreResult<()> {
        self.transaction(vec![Stmt::new(
            "UPDATE experiments SET storage_state = ? WHERE id = ?",
            vec![Bind::Text(StorageState::Available.as_str().into()), Bind::Text(id.into())],
        )
        .or_fail(StoreError::not_found("experiment", id))])
            .await
    }

    async fn delete_experiment(&self, id: &str) -> StoreResult<()> {
        // As in KFP, the experiment's runs and recurring runs are kept (a cascade removes them
        // first); its own retention policies go with it.
        self.transaction(vec![
            Stmt::new("DELETE FROM retention WHERE experiment_id = ?", vec![Bind::Text(id.into())]),
            Stmt::new("DELETE FROM experiments WHERE id = ?", vec![Bind::Text(id.into())])
                .or_fail(StoreError::not_found("experiment", id)),
        ])
        .await
    }
}
