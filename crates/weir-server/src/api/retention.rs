//! Retention (weir's own): an experiment's policies and the history of removals.

use axum::extract::{Path, State};
use axum::Json;
use weir_api_model::retention::{
    ExperimentRetention, GcHistoryParams, GcRecordInfo, ListGcHistoryResponse, RetentionPolicyInfo,
    SetExperimentRetention,
};
use weir_api_model::Empty;
use weir_store::{GcRecord, RetentionPolicy};

use super::empty;
use crate::convert::wire_time;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::openapi::params::GcHistoryQuery;
use crate::openapi::responses::{BadRequest, NotFound, Unavailable};
use crate::AppState;

/// The wire form and the domain's carry the same fields: one goes to the other through JSON,
/// which also checks a policy's fields (an unknown one is refused).
fn policy_in(wire: RetentionPolicyInfo) -> Result<RetentionPolicy, ApiError> {
    let value = serde_json::to_value(wire).map_err(|e| ApiError::invalid(e.to_string()))?;
    serde_json::from_value(value).map_err(|e| ApiError::invalid(format!("invalid retention policy: {e}")))
}

fn policy_out(policy: &RetentionPolicy) -> RetentionPolicyInfo {
    serde_json::from_value(serde_json::to_value(policy).unwrap_or_default()).unwrap_or_default()
}

pub(crate) fn record_out(r: &GcRecord) -> GcRecordInfo {
    GcRecordInfo {
        id: r.id.clone(),
        at: wire_time(r.at),
        kind: r.kind.clone(),
        target_id: r.target_id.clone(),
        display_name: r.display_name.clone(),
        policy: r.policy.clone(),
        detail: r.detail.clone(),
        objects: r.objects,
        bytes: r.bytes,
        done_at: (r.done_at > 0).then(|| wire_time(r.done_at)),
    }
}

#[utoipa::path(
    get,
    path = "/apis/weir/v1/gc/history",
    operation_id = "listGcHistory",
    tag = "weir",
    summary = "Removals (runs, experiments, orphan objects), newest first.",
    params(GcHistoryQuery),
    responses(
        (status = 200, description = "OK", body = ListGcHistoryResponse),
        (status = 400, response = BadRequest),
        (status = 503, response = Unavailable),
    )
)]
pub async fn history(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<GcHistoryParams>,
) -> ApiResult<Json<ListGcHistoryResponse>> {
    let page = state.services.retention.history(params.page_size, &params.page_token).await?;
    Ok(Json(ListGcHistoryResponse {
        records: page.records.iter().map(record_out).collect(),
        next_page_token: page.next_page_token,
    }))
}

#[utoipa::path(
    get,
    path = "/apis/weir/v1/experiments/{experiment_id}/retention",
    operation_id = "getExperimentRetention",
    tag = "weir",
    summary = "An experiment's retention policies: its own, or the deployment's.",
    params(("experiment_id" = String, Path, description = "Experiment id (a UUID).")),
    responses(
        (status = 200, description = "OK", body = ExperimentRetention),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<ExperimentRetention>> {
    Ok(Json(match state.services.retention.experiment_policies(&id).await? {
        Some(own) => ExperimentRetention { policies: own.iter().map(policy_out).collect(), inherited: false },
        None => ExperimentRetention {
            policies: state.services.context.retention_policies.iter().map(policy_out).collect(),
            inherited: true,
        },
    }))
}

#[utoipa::path(
    put,
    path = "/apis/weir/v1/experiments/{experiment_id}/retention",
    operation_id = "setExperimentRetention",
    tag = "weir",
    summary = "Give an experiment policies of its own, replacing the deployment's for its runs.",
    params(("experiment_id" = String, Path, description = "Experiment id (a UUID).")),
    request_body = SetExperimentRetention,
    responses(
        (status = 200, description = "OK", body = Empty),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub async fn set(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SetExperimentRetention>,
) -> ApiResult<Json<Empty>> {
    let policies = body.policies.into_iter().map(policy_in).collect::<Result<Vec<_>, _>>()?;
    state.services.retention.set_experiment_policies(&id, Some(policies)).await?;
    Ok(empty())
}

#[utoipa::path(
    delete,
    path = "/apis/weir/v1/experiments/{experiment_id}/retention",
    operation_id = "clearExperimentRetention",
    tag = "weir",
    summary = "Drop an experiment's own policies: the deployment's apply again.",
    params(("experiment_id" = String, Path, description = "Experiment id (a UUID).")),
    responses(
        (status = 200, description = "OK", body = Empty),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub async fn clear(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Empty>> {
    state.services.retention.set_experiment_policies(&id, None).await?;
    Ok(empty())
}
