use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use weir_api_model::Healthz;

use crate::AppState;

#[utoipa::path(
    get,
    path = "/apis/v2beta1/healthz",
    operation_id = "healthz",
    tag = "HealthzService",
    summary = "Server information (what kfp.Client calls on construction).",
    responses((status = 200, description = "OK", body = Healthz))
)]
pub async fn healthz() -> Json<Healthz> {
    Json(Healthz {
        commit_sha: option_env!("WEIR_COMMIT_SHA").unwrap_or("unknown").to_string(),
        tag_name: env!("CARGO_PKG_VERSION").to_string(),
        multi_user: false,
        pipeline_store: "database".to_string(),
    })
}

/// What `GET /readyz` answers: whether both stores answer, and why not.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    #[schema(required = true)]
    pub metadata_error: Option<String>,
    #[schema(required = true)]
    pub artifacts_error: Option<String>,
}

/// `GET /readyz`: both stores answer, each within 3 s (a probe must not hang on a store that
/// accepts connections and then says nothing).
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "weir",
    summary = "Readiness: both stores answer.",
    responses(
        (status = 200, description = "Ready.", body = Readiness),
        (status = 503, description = "A store does not answer.", body = Readiness),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let limit = std::time::Duration::from_secs(3);
    let late = || Some(format!("no answer within {} s", limit.as_secs()));
    let (metadata, artifacts) = tokio::join!(
        tokio::time::timeout(limit, state.context().store.ping()),
        tokio::time::timeout(limit, state.context().artifacts.exists(weir_artifacts::IDENTITY_KEY)),
    );
    let metadata = metadata.map(|r| r.err().map(|e| e.to_string())).unwrap_or_else(|_| late());
    let artifacts = artifacts.map(|r| r.err().map(|e| e.to_string())).unwrap_or_else(|_| late());
    let ready = metadata.is_none() && artifacts.is_none();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(Readiness { ready, metadata_error: metadata, artifacts_error: artifacts }))
}

/// What `GET /apis/weir/v1/storage` answers: which storage this weir serves, and whether its
/// schema is this weir's. `weir deploy check` reads it through the Kubernetes API's service
/// proxy; the stores themselves are not reachable from outside the cluster.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StorageInfo {
    /// The identity recorded in the metadata store.
    #[schema(required = true)]
    pub identity: Option<String>,
    /// The identity marker in the artifact store (the same as `identity` when they pair).
    #[schema(required = true)]
    pub artifact_identity: Option<String>,
    /// The deployment name the storage was initialised under.
    #[schema(required = true)]
    pub deployment: Option<String>,
    pub dialect: String,
    pub artifacts_url: String,
    /// The store's schema version.
    #[schema(required = true)]
    pub schema_version: Option<i64>,
    /// The newest schema version this weir knows.
    #[schema(required = true)]
    pub head_version: Option<i64>,
    pub pending_migrations: Vec<i64>,
    /// This weir's version.
    pub weir_version: String,
}

#[utoipa::path(
    get,
    path = "/apis/weir/v1/storage",
    operation_id = "getStorage",
    tag = "weir",
    summary = "The storage this weir serves: identities in both stores and schema versions.",
    responses(
        (status = 200, description = "OK", body = StorageInfo),
        (status = 503, response = crate::openapi::responses::Unavailable),
    )
)]
pub async fn storage(State(state): State<AppState>) -> crate::error::ApiResult<Json<StorageInfo>> {
    let status = state.services.storage.status(false).await?;
    Ok(Json(StorageInfo {
        identity: status.identity,
        artifact_identity: status.artifact_identity,
        deployment: status.deployment,
        dialect: status.dialect.to_string(),
        artifacts_url: status.artifacts_url,
        schema_version: status.schema_version,
        head_version: status.head_version,
        pending_migrations: status.pending_migrations,
        weir_version: env!("CARGO_PKG_VERSION").to_string(),
    }))
}
