//! Weir's web UI, served by the weir binary itself: server-rendered pages (askama templates,
//! auto-escaped) over the same services the HTTP API calls, a run graph laid out here and sent
//! as SVG, and htmx (vendored) for the parts of a page that change without a reload.
//!
//! The surface is [`router`]: the binary merges it beside the API. Pages live at real paths
//! (`/runs/<id>`, `/pipelines/<id>`, ...); the hash links `kfp.Client` prints
//! (`/#/runs/details/<id>`) are mapped onto them by the one script every page loads.

pub mod chart;
pub mod graph;
pub mod layout;
pub mod markdown;
mod pages;
mod security;
mod state;
mod view;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use weir_service::Services;

pub use pages::assets::page_weight;
pub use security::CSRF_COOKIE;
pub(crate) use state::Ui;
pub use state::{normalise_base_path, UiConfig};

/// Every page and fragment of the UI, with its security headers and cross-site request checks.
pub fn router(services: Services, config: UiConfig) -> Router {
    use pages::*;
    let ui = Ui { services, config: Arc::new(config) };
    Router::new()
        .route("/", get(runs::list))
        .route("/runs", get(runs::list))
        .route("/runs/bulk", post(runs::bulk))
        .route("/runs/new", get(new_run::form).post(new_run::submit))
        .route("/runs/{id}", get(run_details::page))
        .route("/runs/{id}/events", get(run_details::events))
        .route("/runs/{id}/nodes/{task}/log", get(run_details::log_download))
        .route("/runs/{id}/nodes/{task}/log/events", get(run_details::log_events))
        .route("/runs/{id}/actions/{action}", post(run_details::action))
        .route("/compare", get(compare::page))
        .route("/artifacts/{id}", get(artifacts::page))
        .route("/artifacts/{id}/raw", get(artifacts::raw))
        .route("/pipelines", get(pipelines::list))
        .route("/pipelines/upload", post(pipelines::upload))
        .route("/pipelines/{id}", get(pipelines::details))
        .route("/pipelines/{id}/versions", post(pipelines::upload_version))
        .route("/pipelines/{id}/delete", post(pipelines::delete))
        .route("/pipelines/{id}/versions/{version}", get(pipelines::version))
        .route("/experiments", get(experiments::list).post(experiments::create))
        .route("/experiments/{id}", get(experiments::details))
        .route("/experiments/{id}/actions/{action}", post(experiments::action))
        .route("/recurring-runs", get(recurring::list))
        .route("/recurring-runs/{id}", get(recurring::details))
        .route("/recurring-runs/{id}/actions/{action}", post(recurring::action))
        .route("/storage", get(storage::page))
        .route("/static/{file}", get(assets::serve))
        .layer(axum::middleware::from_fn_with_state(ui.clone(), security::guard))
        // Pipeline files up to the API's own limit, plus the form around them.
        .layer(axum::extract::DefaultBodyLimit::max(weir_spec::MAX_PACKAGE_BYTES + (1 << 20)))
        .with_state(ui)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_paths_are_normalised_or_refused() {
        assert_eq!(normalise_base_path("").unwrap(), "");
        assert_eq!(normalise_base_path("/").unwrap(), "");
        assert_eq!(normalise_base_path("ml/").unwrap(), "/ml");
        assert_eq!(normalise_base_path("/a/b-c").unwrap(), "/a/b-c");
        assert!(normalise_base_path("/a b").is_err());
        assert!(normalise_base_path("/a//b").is_err());
        assert!(normalise_base_path("/\"><script>").is_err());
    }
}
