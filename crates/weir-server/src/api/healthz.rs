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
