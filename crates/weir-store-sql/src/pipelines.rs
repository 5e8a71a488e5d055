//! Pipelines and pipeline versions.

use async_trait::async_trait;
use weir_store::*;

use crate::binds::{pipeline_binds, version_binds};
use crate::rows::{PipelineRow, VersionRow, PIPELINE_COLUMNS, VERSION_COLUMNS};
use crate::schema::{PIPELINES, PIPELINE_VERSIONS};
use crate::{Bind, SqlStore, Stmt};

fn insert_pipeline(p: &Pipeline) -> Stmt {
    Stmt::new(PIPELINES.insert_sql(1), pipeline_binds(p))
}

fn insert_version(v: &PipelineVersion) -> Stmt {
    Stmt::new(PIPELINE_VERSIONS.insert_sql(1), version_binds(v))
}

fn pipeline_conflict(p: &Pipeline, e: StoreError) -> StoreError {
    match e {
        StoreError::AlreadyExists(_) => {
            StoreError::AlreadyExists(format!("a pipeline named {:?} already exists; choose another name", p.name))
        }
        other => other,
    }
}

fn version_conflict(v: &PipelineVersion, e: StoreError) -> StoreError {
    match e {
        StoreError::AlreadyExists(_) => StoreError::AlreadyExists(format!(
            "pipeline {} already has a version named {:?}; choose another name",
            v.pipeline_id, v.name
        )),
        StoreError::FailedPrecondition(_) => StoreError::not_found("pipeline", &v.pipeline_id),
        other => other,
    }
}

#[async_trait]
impl PipelineStore for SqlStore {
    async fn create_pipeline(&self, pipeline: &Pipeline, first_version: Option<&PipelineVersion>) -> StoreResult<()> {
        let mut statements = vec![insert_pipeline(pipeline)];
        if let Some(v) = first_version {
            statements.push(insert_version(v));
        }
        self.transaction(statements).await.map_err(|e| match (&e, first_version) {
            (StoreError::AlreadyExists(msg), Some(v)) if msg.contains("pipeline_versions") => version_conflict(v, e),
            _ => pipeline_conflict(pipeline, e),
        })
    }

    async fn get_pipeline(&self, id: &str) -> StoreResult<Pipeline> {
        self.fetch_optional::<PipelineRow>(
            &format!("SELECT {PIPELINE_COLUMNS} FROM pipelines WHERE id = ?"),
            &[Bind::Text(id.into())],
        )
        .await?
        .ok_or_else(|| StoreError::not_found("pipeline", id))?
        .into_domain()
    }

    async fn get_pipeline_by_name(&self, namespace: &str, name: &str) -> StoreResult<Pipeline> {
        self.fetch_optional::<PipelineRow>(
            &format!("SELECT {PIPELINE_COLUMNS} FROM pipelines WHERE namespace = ? AND name = ?"),
            &[Bind::Text(namespace.into()), Bind::Text(name.into())],
        )
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("pipeline named {name:?} not found")))?
        .into_domain()
    }

    async fn list_pipelines(&self, query: &ListQuery) -> StoreResult<Page<Pipeline>> {
        let (rows, total) = self.list_rows::<PipelineRow>("pipelines", PIPELINE_COLUMNS, query).await?;
        let items = rows.into_iter().map(PipelineRow::into_domain).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_rows(items, total, query))
    }

    async fn delete_pipeline(&self, id: &str, cascade: bool) -> StoreResult<Vec<PipelineVersion>> {
        self.get_pipeline(id).await?;
        let versions = self
            .fetch_all::<VersionRow>(
                &format!(
                    "SELECT {VERSION_COLUMNS} FROM pipeline_versions WHERE pipeline_id = ? ORDER BY created_at, id"
                ),
                &[Bind::Text(id.into())],
            )
            .await?
            .into_iter()
            .map(VersionRow::into_domain)
            .collect::<StoreResult<Vec<_>>>()?;
        if !versions.is_empty() && !cascade {
            return Err(StoreError::InvalidArgument(format!(
                "pipeline {id} has {} version(s) (for example {}); delete them first or set cascade=true",
                versions.len(),
                versions[0].id
            )));
        }
        let mut statements = Vec::new();
        if cascade {
            statements
                .push(Stmt::new("DELETE FROM pipeline_versions WHERE pipeline_id = ?", vec![Bind::Text(id.into())]));
        }
        statements.push(
            Stmt::new("DELETE FROM pipelines WHERE id = ?", vec![Bind::Text(id.into())])
                .or_fail(StoreError::not_found("pipeline", id)),
        );
        // A version added between the read and the delete makes the delete fail on the foreign
        // key; report that as the precondition it is.
        self.transaction(statements).await.map_err(|e| match e {
            StoreError::FailedPrecondition(_) => {
                StoreError::InvalidArgument(format!("pipeline {id} gained a version while being deleted; try again"))
            }
            other => other,
        })?;
        Ok(versions)
    }
}

#[async_trait]
impl PipelineVersionStore for SqlStore {
    async fn create_pipeline_version(&self, version: &PipelineVersion) -> StoreResult<()> {
        self.get_pipeline(&version.pipeline_id).await?;
        self.transaction(vec![insert_version(version)]).await.map_err(|e| version_conflict(version, e))
    }

    async fn get_pipeline_version(&self, pipeline_id: &str, id: &str) -> StoreResult<PipelineVersion> {
        let mut sql = format!("SELECT {VERSION_COLUMNS} FROM pipeline_versions WHERE id = ?");
        let mut binds = vec![Bind::Text(id.into())];
        if !pipeline_id.is_empty() {
            sql.push_str(" AND pipeline_id = ?");
            binds.push(Bind::Text(pipeline_id.into()));
        }
        self.fetch_optional::<VersionRow>(&sql, &binds)
            .await?
            .ok_or_else(|| StoreError::not_found("pipeline version", id))?
            .into_domain()
    }

    async fn latest_pipeline_version(&self, pipeline_id: &str) -> StoreResult<PipelineVersion> {
        self.fetch_optional::<VersionRow>(
            &format!(
                "SELECT {VERSION_COLUMNS} FROM pipeline_versions WHERE pipeline_id = ? \
                 ORDER BY created_at DESC, id DESC LIMIT 1"
            ),
            &[Bind::Text(pipeline_id.into())],
        )
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("pipeline {pipeline_id} has no versions")))?
        .into_domain()
    }

    async fn list_pipeline_versions(&self, query: &ListQuery) -> StoreResult<Page<PipelineVersion>> {
        let (rows, total) = self.list_rows::<VersionRow>("pipeline_versions", VERSION_COLUMNS, query).await?;
        let items = rows.into_iter().map(VersionRow::into_domain).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_rows(items, total, query))
    }

    async fn delete_pipeline_version(&self, pipeline_id: &str, id: &str) -> StoreResult<PipelineVersion> {
        let version = self.get_pipeline_version(pipeline_id, id).await?;
        self.transaction(vec![Stmt::new("DELETE FROM pipeline_versions WHERE id = ?", vec![Bind::Text(id.into())])
            .or_fail(StoreError::not_found("pipeline version", id))])
            .await?;
        Ok(version)
    }
}
