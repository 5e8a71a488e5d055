//! `POST /pipelines/upload` and `/pipelines/upload_version`: multipart uploads, answering
//! errors in KFP's upload shape.

use axum::extract::{Multipart, State};
use axum::Json;
use bytes::Bytes;
use weir_api_model as wire;
use weir_service::UploadParams;

use crate::convert;
use crate::error::{ApiError, ApiResult, Code, UploadError};
use crate::extract::ApiQuery;
use crate::openapi::params::{UploadQuery, UploadVersionQuery};
use crate::openapi::responses::{UploadBadRequest, UploadForm};
use crate::AppState;

/// The example package of the upload endpoints: a one-step pipeline, as the kfp SDK writes it.
const UPLOAD_EXAMPLE: &str = concat!(
    "pipelineInfo:\n  name: echo\n",
    "schemaVersion: 2.1.0\n",
    "sdkVersion: kfp-2.17.3\n",
    "components:\n  comp-echo:\n    executorLabel: exec-echo\n",
    "deploymentSpec:\n  executors:\n    exec-echo:\n      container:\n",
    "        image: alpine\n        command: [echo]\n        args: [hello]\n",
    "root:\n  dag:\n    tasks:\n      echo:\n",
    "        componentRef:\n          name: comp-echo\n        taskInfo:\n          name: echo\n",
);

/// The `uploadfile` part: its file name and bytes.
async fn upload_file(mut multipart: Multipart) -> ApiResult<(String, Bytes)> {
    loop {
        let field = multipart.next_field().await.map_err(multipart_error)?;
        let Some(field) = field else {
            return Err(ApiError::invalid("the multipart form has no uploadfile part"));
        };
        if field.name() != Some("uploadfile") {
            continue;
        }
        let file_name = field.file_name().unwrap_or("pipeline.yaml").to_string();
        let bytes = field.bytes().await.map_err(multipart_error)?;
        return Ok((file_name, bytes));
    }
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            Code::ResourceExhausted,
            format!("the package is larger than the {} bytes accepted", weir_spec::MAX_PACKAGE_BYTES),
        )
    } else {
        ApiError::invalid(format!("cannot read the multipart upload: {e}"))
    }
}

#[utoipa::path(
    post,
    path = "/apis/v2beta1/pipelines/upload",
    operation_id = "uploadPipeline",
    tag = "PipelineUploadService",
    summary = "Create a pipeline and its first version from an uploaded package.",
    params(UploadQuery),
    request_body(
        description = "The package: a compiled pipeline (`.yaml`, `.yml`, `.json`) or a `.zip`/`.tar.gz` holding one, \
                       in the `uploadfile` part; at most 32 MiB.",
        content(
            (UploadForm = "multipart/form-data",
                encoding(("uploadfile" = (content_type = "application/octet-stream"))),
                example = json!({"uploadfile": UPLOAD_EXAMPLE}))
        )
    ),
    responses(
        (status = 200, description = "OK", body = wire::Pipeline),
        (status = 400, description = "Invalid package, tags or form (gRPC 3). A malformed query string answers \
                                      google.rpc.Status instead, and a body that is not multipart/form-data a \
                                      plain-text message.",
            content((UploadBadRequest = "application/json"), (String = "text/plain"))),
        (status = 409, description = "A pipeline with this name exists.", body = UploadError),
        (status = 413, description = "The package is larger than 32 MiB.", body = UploadError),
        (status = 503, description = "A store is unavailable.", body = UploadError),
    )
)]
pub async fn upload_pipeline(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<UploadParams>,
    multipart: Multipart,
) -> Result<Json<wire::Pipeline>, ApiError> {
    let result = async {
        let (file_name, bytes) = upload_file(multipart).await?;
        Ok::<_, ApiError>(state.services.pipelines.upload(&params, &file_name, bytes).await?)
    }
    .await;
    result.map(|(pipeline, _)| Json(convert::pipeline(&pipeline))).map_err(ApiError::upload_shaped)
}

#[utoipa::path(
    post,
    path = "/apis/v2beta1/pipelines/upload_version",
    operation_id = "uploadPipelineVersion",
    tag = "PipelineUploadService",
    summary = "Add a version to a pipeline from an uploaded package.",
    params(UploadVersionQuery),
    request_body(
        description = "The package: a compiled pipeline (`.yaml`, `.yml`, `.json`) or a `.zip`/`.tar.gz` holding one, \
                       in the `uploadfile` part; at most 32 MiB.",
        content(
            (UploadForm = "multipart/form-data",
                encoding(("uploadfile" = (content_type = "application/octet-stream"))),
                example = json!({"uploadfile": UPLOAD_EXAMPLE}))
        )
    ),
    responses(
        (status = 200, description = "OK", body = wire::PipelineVersion),
        (status = 400, description = "Invalid package, tags or form (gRPC 3). A malformed query string answers \
                                      google.rpc.Status instead, and a body that is not multipart/form-data a \
                                      plain-text message.",
            content((UploadBadRequest = "application/json"), (String = "text/plain"))),
        (status = 404, description = "No such pipeline.", body = UploadError),
        (status = 409, description = "A version with this name exists in the pipeline.", body = UploadError),
        (status = 413, description = "The package is larger than 32 MiB.", body = UploadError),
        (status = 503, description = "A store is unavailable.", body = UploadError),
    )
)]
pub async fn upload_pipeline_version(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<UploadParams>,
    multipart: Multipart,
) -> Result<Json<wire::PipelineVersion>, ApiError> {
    let result = async {
        let (file_name, bytes) = upload_file(multipart).await?;
        Ok::<_, ApiError>(state.services.pipelines.upload_version(&params, &file_name, bytes).await?)
    }
    .await;
    result.map(|v| Json(convert::pipeline_version(&v))).map_err(ApiError::upload_shaped)
}
