//! Pipelines and their versions: uploads, creation from a spec, reads, deletion.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use weir_api_model::{self as wire, ListParams};
use weir_store::{Entity, Page, Pipeline, PipelineVersion};

use crate::error::{Code, ServiceError, ServiceResult};
use crate::{inline_spec, list_query, new_id, require, Context};

/// Query parameters of the two upload endpoints.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct UploadParams {
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub namespace: Option<String>,
    /// JSON object of tags.
    pub tags: Option<String>,
    pub code_source_url: Option<String>,
    /// `upload_version`'s pipeline (one word, as the client sends it).
    pub pipelineid: Option<String>,
}

/// `name`, else `display_name`, else the uploaded file's name, as KFP's `buildPipelineName`.
fn upload_names(params: &UploadParams, file_name: &str) -> (String, String) {
    let nonempty = |v: &Option<String>| v.as_ref().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let name =
        nonempty(&params.name).or_else(|| nonempty(&params.display_name)).unwrap_or_else(|| file_name.to_string());
    let display_name = nonempty(&params.display_name).unwrap_or_else(|| name.clone());
    (name, display_name)
}

fn parse_tags(text: &Option<String>) -> ServiceResult<BTreeMap<String, String>> {
    match text.as_deref().map(str::trim) {
        None | Some("") => Ok(BTreeMap::new()),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| ServiceError::invalid(format!("tags must be a JSON object of strings: {e}"))),
    }
}

/// The rows an upload writes after its package file.
enum NewRows {
    Pipeline(Pipeline, PipelineVersion),
    Version(PipelineVersion),
}

#[derive(Clone)]
pub struct PipelineService {
    ctx: Arc<Context>,
}

impl PipelineService {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }

    /// Stores a package file, then the rows; if the rows fail the file is removed again, so a
    /// refused upload leaves nothing behind. It runs as its own task: a client that gives up
    /// (a timeout during a slow store) drops the request, and that must not leave a package
    /// without rows.
    async fn store_with_package(&self, key: &str, bytes: Bytes, rows: NewRows) -> ServiceResult<()> {
        let (store, artifacts, key) = (self.ctx.store.clone(), self.ctx.artifacts.clone(), key.to_string());
        let task = tokio::spawn(async move {
            if let Err(e) = artifacts.put(&key, bytes).await {
                if matches!(e, weir_artifacts::ArtifactError::Unavailable(_)) {
                    // A write that timed out may still land when the store comes back; the key
                    // is new (a fresh version id), so removing it later cannot hurt anyone.
                    let (artifacts, key) = (artifacts.clone(), key.clone());
                    tokio::spawn(async move {
                        for wait in [2, 5, 10, 30, 120] {
                            tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
                            let _ = artifacts.delete(&key).await;
                        }
                    });
                }
                return Err(ServiceError::from(e));
            }
            let written = match &rows {
                NewRows::Pipeline(pipeline, version) => store.create_pipeline(pipeline, Some(version)).await,
                NewRows::Version(version) => store.create_pipeline_version(version).await,
            };
            if let Err(e) = written {
                if let Err(cleanup) = artifacts.delete(&key).await {
                    tracing::warn!(artifact.key = key, error = %cleanup, "could not remove the package of a refused upload");
                }
                return Err(ServiceError::from(e));
            }
            Ok(())
        });
        task.await.map_err(|e| ServiceError::new(Code::Internal, format!("the upload stopped: {e}")))?
    }

    /// A new pipeline with the uploaded package as its first version.
    pub async fn upload(
        &self,
        params: &UploadParams,
        file_name: &str,
        bytes: Bytes,
    ) -> ServiceResult<(Pipeline, PipelineVersion)> {
        let package = weir_spec::read_package(file_name, &bytes)?;
        weir_spec::validate(&package.pipeline_spec)?;
        let (name, display_name) = upload_names(params, file_name);
        let now = self.ctx.now();
        let tags = parse_tags(&params.tags)?;
        let pipeline = Pipeline {
            id: new_id(),
            name: name.clone(),
            display_name: display_name.clone(),
            description: params.description.clone().unwrap_or_default(),
            namespace: String::new(),
            created_at: now,
            tags: tags.clone(),
        };
        let version_id = new_id();
        let version = PipelineVersion {
            id: version_id.clone(),
            pipeline_id: pipeline.id.clone(),
            name,
            display_name,
            description: pipeline.description.clone(),
            created_at: now,
            pipeline_spec: package.pipeline_spec,
            platform_spec: package.platform_spec,
            package_key: weir_artifacts::package_key(&pipeline.id, &version_id, file_name),
            package_url: String::new(),
            code_source_url: params.code_source_url.clone().unwrap_or_default(),
            tags,
        };
        self.store_with_package(&version.package_key, bytes, NewRows::Pipeline(pipeline.clone(), version.clone()))
            .await?;
        Ok((pipeline, version))
    }

    /// The uploaded package as a new version of the pipeline `params.pipelineid`.
    pub async fn upload_version(
        &self,
        params: &UploadParams,
        file_name: &str,
        bytes: Bytes,
    ) -> ServiceResult<PipelineVersion> {
        let pipeline_id = params.pipelineid.clone().unwrap_or_default();
        require(&pipeline_id, "pipelineid")?;
        let package = weir_spec::read_package(file_name, &bytes)?;
        weir_spec::validate(&package.pipeline_spec)?;
        self.ctx.store.get_pipeline(&pipeline_id).await?;
        let (name, display_name) = upload_names(params, file_name);
        let version_id = new_id();
        let version = PipelineVersion {
            id: version_id.clone(),
            pipeline_id: pipeline_id.clone(),
            name,
            display_name,
            description: params.description.clone().unwrap_or_default(),
            created_at: self.ctx.now(),
            pipeline_spec: package.pipeline_spec,
            platform_spec: package.platform_spec,
            package_key: weir_artifacts::package_key(&pipeline_id, &version_id, file_name),
            package_url: String::new(),
            code_source_url: params.code_source_url.clone().unwrap_or_default(),
            tags: parse_tags(&params.tags)?,
        };
        self.store_with_package(&version.package_key, bytes, NewRows::Version(version.clone())).await?;
        Ok(version)
    }

    fn pipeline_from_request(&self, body: &wire::Pipeline) -> ServiceResult<Pipeline> {
        let name = if body.name.trim().is_empty() { body.display_name.trim() } else { body.name.trim() }.to_string();
        require(&name, "pipeline name (name or display_name)")?;
        Ok(Pipeline {
            id: new_id(),
            display_name: if body.display_name.trim().is_empty() { name.clone() } else { body.display_name.clone() },
            name,
            description: body.description.clone(),
            namespace: String::new(),
            created_at: self.ctx.now(),
            tags: body.tags.clone(),
        })
    }

    /// A version from a request body: the spec must be given inline (`pipeline_spec`), since
    /// weir does not fetch packages from URLs.
    fn version_from_request(
        &self,
        pipeline: &Pipeline,
        body: &wire::PipelineVersion,
    ) -> ServiceResult<(PipelineVersion, Bytes)> {
        let Some(spec) = &body.pipeline_spec else {
            let message = if body.package_url.as_ref().is_some_and(|u| !u.pipeline_url.is_empty()) {
                "weir does not fetch pipeline packages from package_url; upload the package (POST /apis/v2beta1/pipelines/upload_version) or send pipeline_spec"
            } else {
                "pipeline_spec is required"
            };
            return Err(ServiceError::invalid(message));
        };
        let package = inline_spec(spec)?;
        let name = [&body.name, &body.display_name, &pipeline.name]
            .into_iter()
            .find(|n| !n.trim().is_empty())
            .cloned()
            .unwrap_or_default();
        let version_id = new_id();
        let bytes = Bytes::from(serde_json::to_vec_pretty(spec).unwrap_or_default());
        let version = PipelineVersion {
            id: version_id.clone(),
            pipeline_id: pipeline.id.clone(),
            display_name: if body.display_name.trim().is_empty() { name.clone() } else { body.display_name.clone() },
            name,
            description: body.description.clone(),
            created_at: self.ctx.now(),
            pipeline_spec: package.pipeline_spec,
            platform_spec: package.platform_spec,
            package_key: weir_artifacts::package_key(&pipeline.id, &version_id, "pipeline.json"),
            package_url: String::new(),
            code_source_url: body.code_source_url.clone(),
            tags: body.tags.clone(),
        };
        Ok((version, bytes))
    }

    pub async fn create(&self, body: &wire::Pipeline) -> ServiceResult<Pipeline> {
        let pipeline = self.pipeline_from_request(body)?;
        self.ctx.store.create_pipeline(&pipeline, None).await?;
        Ok(pipeline)
    }

    pub async fn create_with_version(
        &self,
        body: &wire::CreatePipelineAndVersionRequest,
    ) -> ServiceResult<(Pipeline, PipelineVersion)> {
        let request = body.pipeline.clone().ok_or_else(|| ServiceError::invalid("pipeline is required"))?;
        let pipeline = self.pipeline_from_request(&request)?;
        let version_request = body.pipeline_version.clone().unwrap_or_default();
        let (mut version, bytes) = self.version_from_request(&pipeline, &version_request)?;
        // The first version takes the pipeline's names, as in KFP.
        version.name = pipeline.name.clone();
        version.display_name = pipeline.display_name.clone();
        if version.description.is_empty() {
            version.description = pipeline.description.clone();
        }
        self.store_with_package(&version.package_key, bytes, NewRows::Pipeline(pipeline.clone(), version.clone()))
            .await?;
        Ok((pipeline, version))
    }

    pub async fn get(&self, id: &str) -> ServiceResult<Pipeline> {
        Ok(self.ctx.store.get_pipeline(id).await?)
    }

    pub async fn get_by_name(&self, name: &str) -> ServiceResult<Pipeline> {
        Ok(self.ctx.store.get_pipeline_by_name("", name).await?)
    }

    pub async fn list(&self, params: &ListParams) -> ServiceResult<Page<Pipeline>> {
        let query = list_query(Entity::Pipeline, params, &[])?;
        Ok(self.ctx.store.list_pipelines(&query).await?)
    }

    /// Deletes a pipeline (with `cascade`, its versions too); the collector then deletes the
    /// packages of the deleted versions.
    pub async fn delete(&self, id: &str, cascade: bool) -> ServiceResult<()> {
        let versions = self.ctx.store.delete_pipeline(id, cascade).await?;
        for version in versions {
            self.remove_package(&version).await;
        }
        Ok(())
    }

    pub async fn create_version(
        &self,
        pipeline_id: &str,
        body: &wire::PipelineVersion,
    ) -> ServiceResult<PipelineVersion> {
        if !body.pipeline_id.is_empty() && body.pipeline_id != pipeline_id {
            return Err(ServiceError::invalid(format!(
                "the body names pipeline {} but the path names {pipeline_id}",
                body.pipeline_id
            )));
        }
        let pipeline = self.ctx.store.get_pipeline(pipeline_id).await?;
        let (version, bytes) = self.version_from_request(&pipeline, body)?;
        self.store_with_package(&version.package_key, bytes, NewRows::Version(version.clone())).await?;
        Ok(version)
    }

    pub async fn get_version(&self, pipeline_id: &str, id: &str) -> ServiceResult<PipelineVersion> {
        Ok(self.ctx.store.get_pipeline_version(pipeline_id, id).await?)
    }

    /// The versions of a pipeline, which must exist.
    pub async fn list_versions(&self, pipeline_id: &str, params: &ListParams) -> ServiceResult<Page<PipelineVersion>> {
        self.ctx.store.get_pipeline(pipeline_id).await?;
        let query = list_query(Entity::PipelineVersion, params, &[("pipeline_id", pipeline_id)])?;
        Ok(self.ctx.store.list_pipeline_versions(&query).await?)
    }

    pub async fn delete_version(&self, pipeline_id: &str, id: &str) -> ServiceResult<()> {
        let version = self.ctx.store.delete_pipeline_version(pipeline_id, id).await?;
        self.remove_package(&version).await;
        Ok(())
    }

    /// Records the version's removal with a journal entry for its package, then deletes the
    /// package and ends the entry; what fails is left to the collector, which retries it.
    /// Should the record itself fail, the package is deleted here all the same; one left
    /// behind is an orphan `weir storage gc` collects.
    async fn remove_package(&self, version: &PipelineVersion) {
        let (now, id) = (self.ctx.now(), crate::new_id());
        let record = weir_store::GcRecord {
            id: id.clone(),
            at: now,
            kind: "pipeline_version".into(),
            target_id: version.id.clone(),
            display_name: version.display_name.clone(),
            policy: "api".into(),
            detail: serde_json::json!({"action": "delete", "pipeline_id": version.pipeline_id}),
            objects: 0,
            bytes: 0,
            done_at: 0,
        };
        let entry = weir_store::PendingDeletion {
            id: format!("{id}-0"),
            history_id: id,
            prefix: version.package_key.clone(),
            created_at: now,
        };
        match self.ctx.store.record_removal(&record, std::slice::from_ref(&entry)).await {
            // Done at once, as the request expects; what fails here the collector retries.
            Ok(()) => {
                let key = &version.package_key;
                let size = self.ctx.artifacts.get_head(key, 0).await.map(|(_, size)| size as i64).unwrap_or(0);
                let done = match self.ctx.artifacts.delete(key).await {
                    Ok(()) => self.ctx.store.finish_deletions(&[(entry, 1, size)], self.ctx.now()).await.is_ok(),
                    Err(_) => false,
                };
                if !done {
                    self.ctx.wake_gc();
                }
            }
            Err(e) => {
                tracing::warn!(pipeline_version.id = %version.id, error = %e, "could not record a version's removal; deleting its package now");
                if let Err(e) = self.ctx.artifacts.delete(&version.package_key).await {
                    tracing::warn!(artifact.key = %version.package_key, error = %e, "could not remove the package of a deleted version");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_naming_follows_kfp() {
        let mut p = UploadParams::default();
        assert_eq!(upload_names(&p, "f.yaml"), ("f.yaml".into(), "f.yaml".into()));
        p.display_name = Some("Shown".into());
        assert_eq!(upload_names(&p, "f.yaml"), ("Shown".into(), "Shown".into()));
        p.name = Some("n".into());
        assert_eq!(upload_names(&p, "f.yaml"), ("n".into(), "Shown".into()));
    }
}
