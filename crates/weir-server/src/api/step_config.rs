//! Secrets and config maps steps are given (`/apis/weir/v1/secrets`, `/apis/weir/v1/configmaps`):
//! weir's stand-in for the Kubernetes Secrets and ConfigMaps kfp-kubernetes pipelines name. A
//! secret's values are never answered, only its keys.

use axum::extract::{Path, State};
use axum::Json;
use weir_api_model::step_config::{ListStepConfigsResponse, StepConfigInfo, StepConfigInput};
use weir_api_model::Empty;
use weir_store::{StepConfig, StepConfigKind};

use super::empty;
use crate::error::ApiResult;
use crate::extract::ApiJson;
use crate::openapi::responses::{BadRequest, Conflict, NotFound, PayloadTooLarge, Unavailable};
use crate::AppState;

fn info(config: &StepConfig) -> StepConfigInfo {
    StepConfigInfo {
        name: config.name.clone(),
        keys: config.data.keys().cloned().collect(),
        data: (config.kind == StepConfigKind::ConfigMap).then(|| config.data.clone()),
        created_at: crate::convert::wire_time(config.created_at),
    }
}

macro_rules! step_config_api {
    ($kind:expr, $path:literal, $item:literal, $tag:literal,
     $create:ident, $create_id:literal, $list:ident, $list_id:literal,
     $get:ident, $get_id:literal, $delete:ident, $delete_id:literal) => {
        #[utoipa::path(
                                            post,
                                            path = $path,
                                            operation_id = $create_id,
                                            tag = $tag,
                                            request_body = StepConfigInput,
                                            responses(
                                                (status = 200, description = "OK", body = StepConfigInfo),
                                                (status = 400, response = BadRequest),
                                                (status = 409, response = Conflict),
                                                (status = 413, response = PayloadTooLarge),
                                                (status = 503, response = Unavailable),
                                            )
                                        )]
        pub async fn $create(
            State(state): State<AppState>,
            ApiJson(body): ApiJson<StepConfigInput>,
        ) -> ApiResult<Json<StepConfigInfo>> {
            Ok(Json(info(&state.services.step_config.create($kind, &body).await?)))
        }

        #[utoipa::path(
                                            get,
                                            path = $path,
                                            operation_id = $list_id,
                                            tag = $tag,
                                            responses(
                                                (status = 200, description = "OK", body = ListStepConfigsResponse),
                                                (status = 503, response = Unavailable),
                                            )
                                        )]
        pub async fn $list(State(state): State<AppState>) -> ApiResult<Json<ListStepConfigsResponse>> {
            let items = state.services.step_config.list($kind).await?;
            Ok(Json(ListStepConfigsResponse { items: items.iter().map(info).collect() }))
        }

        #[utoipa::path(
                                            get,
                                            path = $item,
                                            operation_id = $get_id,
                                            tag = $tag,
                                            params(("name" = String, Path, description = "Its name.")),
                                            responses(
                                                (status = 200, description = "OK", body = StepConfigInfo),
                                                (status = 404, response = NotFound),
                                                (status = 503, response = Unavailable),
                                            )
                                        )]
        pub async fn $get(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<StepConfigInfo>> {
            Ok(Json(info(&state.services.step_config.get($kind, &name).await?)))
        }

        #[utoipa::path(
                                            delete,
                                            path = $item,
                                            operation_id = $delete_id,
                                            tag = $tag,
                                            params(("name" = String, Path, description = "Its name.")),
                                            responses(
                                                (status = 200, description = "OK", body = Empty),
                                                (status = 404, response = NotFound),
                                                (status = 503, response = Unavailable),
                                            )
                                        )]
        pub async fn $delete(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Empty>> {
            state.services.step_config.delete($kind, &name).await?;
            Ok(empty())
        }
    };
}

step_config_api!(
    StepConfigKind::Secret,
    "/apis/weir/v1/secrets",
    "/apis/weir/v1/secrets/{name}",
    "weir",
    create_secret,
    "createSecret",
    list_secrets,
    "listSecrets",
    get_secret,
    "getSecret",
    delete_secret,
    "deleteSecret"
);

step_config_api!(
    StepConfigKind::ConfigMap,
    "/apis/weir/v1/configmaps",
    "/apis/weir/v1/configmaps/{name}",
    "weir",
    create_config_map,
    "createConfigMap",
    list_config_maps,
    "listConfigMaps",
    get_config_map,
    "getConfigMap",
    delete_config_map,
    "deleteConfigMap"
);
