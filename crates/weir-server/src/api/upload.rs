//! `POST /pipelines/upload` and `/pipelines/upload_version`: multipart uploads, answering
//! errors in KFP's upload shape.

use axum::extract::{Multipart, State};
use axum::Json;
use bytes::Bytes;
use weir_api_model as wire;
use weir_service::UploadParams;

use crate::convert;
use crate::error::{ApiError, ApiResult, Code};
use crate::extract::ApiQuery;
use crate::AppState;

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
