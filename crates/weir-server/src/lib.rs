//! Weir's HTTP API: the KFP v2beta1 routes, error mapping, health and metrics. The rules
//! behind the routes are weir-service's; handlers here parse, call one service, and answer.

pub mod api;
pub mod convert;
pub mod error;
pub mod extract;
pub mod lifecycle;
pub mod observability;
pub mod openapi;
mod run_details;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use weir_artifacts::ArtifactStore;
use weir_service::{Context, Services};
use weir_store::{Clock, MetadataStore};

use crate::error::{ApiError, Code};

/// Largest request body: a pipeline package (32 MiB) plus multipart framing.
pub const MAX_BODY_BYTES: usize = weir_spec::MAX_PACKAGE_BYTES + (1 << 20);

/// What every handler shares: the services, and the metrics this server renders.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    pub metrics: PrometheusHandle,
    /// Runs' task details as `get_run` answers them, kept between reads.
    run_details: Arc<run_details::RunDetailsCache>,
}

impl AppState {
    pub fn new(store: Arc<dyn MetadataStore>, artifacts: ArtifactStore, clock: Arc<dyn Clock>) -> Self {
        Self::from_context(Context::new(store, artifacts, clock))
    }

    pub fn from_context(context: Context) -> Self {
        Self {
            services: Services::new(context),
            metrics: observability::metrics_handle(),
            run_details: Default::default(),
        }
    }

    /// Wakes `engine` when a run is created, terminated or retried, and reads the logs of
    /// running steps from its working folder.
    pub fn with_engine(self, engine: Arc<tokio::sync::Notify>, work_dir: std::path::PathBuf) -> Self {
        let context = Context::clone(&self.services.context).with_engine(engine, work_dir);
        Self { services: Services::new(context), metrics: self.metrics, run_details: self.run_details }
    }

    /// Steps can have volumes mounted at paths (the engine can make mount namespaces).
    pub fn with_private_mounts(self, private_mounts: bool) -> Self {
        let mut context = Context::clone(&self.services.context);
        context.private_mounts = private_mounts;
        Self { services: Services::new(context), metrics: self.metrics, run_details: self.run_details }
    }

    /// Steps run as pods (the Kubernetes driver): all of kfp-kubernetes is accepted.
    pub fn with_cluster_steps(self, cluster_steps: bool) -> Self {
        let mut context = Context::clone(&self.services.context);
        context.cluster_steps = cluster_steps;
        Self { services: Services::new(context), metrics: self.metrics, run_details: self.run_details }
    }

    /// The deployment's retention: policies shown for experiments without their own, and
    /// whether removals keep artifacts.
    pub fn with_retention(self, policies: Vec<weir_store::RetentionPolicy>, keep_artifacts: bool) -> Self {
        let mut context = Context::clone(&self.services.context);
        context.retention_policies = policies;
        context.keep_artifacts = keep_artifacts;
        Self { services: Services::new(context), metrics: self.metrics, run_details: self.run_details }
    }

    /// The stores, clock and wake-ups the services share.
    pub fn context(&self) -> &Context {
        &self.services.context
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    use api::*;
    let v2 = Router::new()
        .route("/healthz", get(healthz::healthz))
        .route("/pipelines/upload", post(upload::upload_pipeline))
        .route("/pipelines/upload_version", post(upload::upload_pipeline_version))
        .route("/pipelines/create", post(pipelines::create_with_version))
        .route("/pipelines/names/{name}", get(pipelines::get_by_name))
        .route("/pipelines", get(pipelines::list).post(pipelines::create))
        .route("/pipelines/{id}", get(pipelines::get).delete(pipelines::delete))
        .route("/pipelines/{id}/versions", get(pipelines::list_versions).post(pipelines::create_version))
        .route("/pipelines/{id}/versions/{version}", get(pipelines::get_version).delete(pipelines::delete_version))
        .route("/experiments", get(experiments::list).post(experiments::create))
        .route("/experiments/{id}", get(experiments::get).delete(experiments::delete).post(experiments::verb))
        .route("/runs", get(runs::list).post(runs::create))
        .route("/runs/{id}", get(runs::get).delete(runs::delete).post(runs::verb))
        .route("/recurringruns", get(recurring_runs::list).post(recurring_runs::create))
        .route(
            "/recurringruns/{id}",
            get(recurring_runs::get).delete(recurring_runs::delete).post(recurring_runs::verb),
        );
    Router::new()
        .nest("/apis/v2beta1", v2)
        .route("/apis/weir/v1/openapi.json", get(openapi_json))
        .route("/apis/weir/v1/storage", get(api::healthz::storage))
        .route("/apis/weir/v1/runs/{id}/tasks", get(api::execution::tasks))
        .route("/apis/weir/v1/runs/{id}/logs", get(api::execution::logs))
        .route("/apis/weir/v1/artifacts/{id}", get(api::execution::artifact))
        .route("/apis/weir/v1/artifacts/{id}/content", get(api::execution::artifact_content))
        .route("/apis/weir/v1/secrets", get(api::step_config::list_secrets).post(api::step_config::create_secret))
        .route(
            "/apis/weir/v1/secrets/{name}",
            get(api::step_config::get_secret).delete(api::step_config::delete_secret),
        )
        .route(
            "/apis/weir/v1/configmaps",
            get(api::step_config::list_config_maps).post(api::step_config::create_config_map),
        )
        .route(
            "/apis/weir/v1/configmaps/{name}",
            get(api::step_config::get_config_map).delete(api::step_config::delete_config_map),
        )
        .route("/apis/weir/v1/gc/history", get(api::retention::history))
        .route(
            "/apis/weir/v1/experiments/{id}/retention",
            get(api::retention::get).put(api::retention::set).delete(api::retention::clear),
        )
        .route("/metrics", get(observability::metrics_endpoint))
        .route("/readyz", get(healthz::readyz))
        .fallback(|| async { ApiError::new(Code::NotFound, "no such endpoint") })
        .method_not_allowed_fallback(|| async { ApiError::new(Code::NotFound, "method not allowed on this endpoint") })
        .layer(axum::middleware::from_fn(observability::track))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// `GET /apis/weir/v1/openapi.json`: the OpenAPI document of the API weir serves (the KFP
/// v2beta1 routes and weir's own), the contract the property-based API test checks.
#[utoipa::path(
    get,
    path = "/apis/weir/v1/openapi.json",
    operation_id = "getOpenApi",
    tag = "weir",
    summary = "This document.",
    responses((status = 200, description = "OpenAPI 3.1 document.", content_type = "application/json", body = Object))
)]
pub async fn openapi_json() -> impl axum::response::IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], openapi::document())
}
