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

/// `GET /readyz`: both stores answer.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let metadata = state.store.ping().await.err().map(|e| e.to_string());
    let artifacts = state.artifacts.exists(weir_artifacts::IDENTITY_KEY).await.err().map(|e| e.to_string());
    let ready = metadata.is_none() && artifacts.is_none();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({"ready": ready, "metadata_error": metadata, "artifacts_error": artifacts})))
}
