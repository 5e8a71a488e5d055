use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::AppState;

/// `GET /apis/v2beta1/healthz`: what the kfp client calls on construction.
pub async fn healthz() -> Json<Value> {
    Json(json!({
        "commit_sha": option_env!("WEIR_COMMIT_SHA").unwrap_or("unknown"),
        "tag_name": env!("CARGO_PKG_VERSION"),
        "multi_user": false,
        "pipeline_store": "database",
    }))
}

/// `GET /readyz`: both stores answer, each within 3 s (a probe must not hang on a store that
/// accepts connections and then says nothing).
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
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
    (status, Json(json!({"ready": ready, "metadata_error": metadata, "artifacts_error": artifacts})))
}
