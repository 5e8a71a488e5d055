//! Secrets and config maps steps are given.

use async_trait::async_trait;
use weir_store::*;

use crate::binds::step_config_binds;
use crate::schema::STEP_CONFIG;
use crate::text::Text;
use crate::{Bind, SqlStore, Stmt};

#[derive(sqlx::FromRow)]
struct StepConfigRow {
    kind: Text,
    name: Text,
    data: Text,
    created_at: i64,
}

impl StepConfigRow {
    fn into_domain(self) -> StoreResult<StepConfig> {
        let kind = StepConfigKind::parse(&self.kind.0)
            .ok_or_else(|| StoreError::Internal(format!("unknown step configuration kind {:?}", self.kind.0)))?;
        let data = serde_json::from_str(&self.data.0)
            .map_err(|e| StoreError::Internal(format!("{} {:?} holds invalid data: {e}", kind.noun(), self.name.0)))?;
        Ok(StepConfig { kind, name: self.name.0, data, created_at: self.created_at })
    }
}

fn not_found(kind: StepConfigKind, name: &str) -> StoreError {
    StoreError::NotFound(format!("{} {name:?} not found", kind.noun()))
}

#[async_trait]
impl StepConfigStore for SqlStore {
    async fn create_step_config(&self, config: &StepConfig) -> StoreResult<()> {
        let insert = Stmt::new(STEP_CONFIG.insert_sql(1), step_config_binds(config));
        self.transaction(vec![insert]).await.map_err(|err| match err {
            StoreError::AlreadyExists(_) => StoreError::AlreadyExists(format!(
                "a {} named {:?} already exists; delete it first to replace it",
                config.kind.noun(),
                config.name
            )),
            other => other,
        })
    }

    async fn get_step_config(&self, kind: StepConfigKind, name: &str) -> StoreResult<StepConfig> {
        self.fetch_optional::<StepConfigRow>(
            &format!("SELECT {} FROM step_config WHERE kind = ? AND name = ?", STEP_CONFIG.column_list),
            &[Bind::Text(kind.as_str().into()), Bind::Text(name.into())],
        )
        .await?
        .ok_or_else(|| not_found(kind, name))?
        .into_domain()
    }

    async fn list_step_configs(&self, kind: StepConfigKind) -> StoreResult<Vec<StepConfig>> {
        self.fetch_all::<StepConfigRow>(
            &format!("SELECT {} FROM step_config WHERE kind = ? ORDER BY name", STEP_CONFIG.column_list),
            &[Bind::Text(kind.as_str().into())],
        )
        .await?
        .into_iter()
        .map(StepConfigRow::into_domain)
        .collect()
    }

    async fn delete_step_config(&self, kind: StepConfigKind, name: &str) -> StoreResult<()> {
        self.transaction(vec![Stmt::new(
            "DELETE FROM step_config WHERE kind = ? AND name = ?",
            vec![Bind::Text(kind.as_str().into()), Bind::Text(name.into())],
        )
        .or_fail(not_found(kind, name))])
            .await
    }
}
