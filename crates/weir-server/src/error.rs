//! API errors: the services' gRPC codes, mapped once to the HTTP status and to the
//! `google.rpc.Status` body KFP clients get from the real server.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
pub use weir_service::Code;
use weir_service::ServiceError;

/// The HTTP status KFP's gRPC-gateway answers for a code.
pub fn http_status(code: Code) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// How the error body is shaped: gRPC-gateway endpoints send `google.rpc.Status`, the
/// upload endpoints KFP's `{error_message, error_details}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shape {
    #[default]
    Status,
    Upload,
}

/// The error body of the gRPC-gateway endpoints.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(
    as = Status,
    description = "google.rpc.Status, the body of every error except those of the upload endpoints. `code` is \
                   the gRPC code (3 INVALID_ARGUMENT -> 400 (also 9 FAILED_PRECONDITION), 5 NOT_FOUND -> 404, \
                   6 ALREADY_EXISTS and 10 ABORTED -> 409, 8 RESOURCE_EXHAUSTED -> 413, 14 UNAVAILABLE -> 503, \
                   13 INTERNAL -> 500); `details` repeats it as one google.rpc.Status."
)]
pub struct StatusBody {
    pub code: i32,
    pub message: String,
    pub details: Vec<StatusDetail>,
}

/// The one entry of `details`: the same status as an `Any`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatusDetail {
    #[serde(rename = "@type")]
    pub type_url: StatusTypeUrl,
    pub code: i32,
    pub message: String,
}

/// The `@type` of a `details` entry.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub enum StatusTypeUrl {
    #[serde(rename = "type.googleapis.com/google.rpc.Status")]
    Status,
}

/// The error body of the upload endpoints (KFP's upload handler in
/// `backend/src/apiserver/server/pipeline_upload_server.go` writes `{error_message, error_details}`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(description = "The upload endpoints' error body (KFP's `{error_message, error_details}`).")]
pub struct UploadError {
    pub error_message: String,
    pub error_details: String,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    pub shape: Shape,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), shape: Shape::Status }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    pub fn upload_shaped(mut self) -> Self {
        self.shape = Shape::Upload;
        self
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        Self::new(e.code, e.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = http_status(self.code);
        // A 5xx hides internals: the client gets an error id, the log gets the detail, once.
        let message = if status.is_server_error() && self.code != Code::Unavailable {
            let error_id = uuid::Uuid::new_v4();
            tracing::error!(error.id = %error_id, error.message = %self.message, "internal error");
            format!("internal error {error_id}; the server log has the details")
        } else {
            if status.is_server_error() {
                tracing::warn!(error.message = %self.message, "store unavailable");
            }
            self.message
        };
        let code = self.code as i32;
        match self.shape {
            Shape::Status => {
                let detail = StatusDetail { type_url: StatusTypeUrl::Status, code, message: message.clone() };
                (status, Json(StatusBody { code, message, details: vec![detail] })).into_response()
            }
            Shape::Upload => {
                (status, Json(UploadError { error_message: message.clone(), error_details: message })).into_response()
            }
        }
    }
}
