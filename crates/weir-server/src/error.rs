//! API errors: one code enum, mapped once to the HTTP status and to the `google.rpc.Status`
//! body KFP clients get from the real server.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use weir_artifacts::ArtifactError;
use weir_spec::SpecError;
use weir_store::StoreError;

/// gRPC status codes, as KFP's gRPC-gateway reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidArgument = 3,
    NotFound = 5,
    AlreadyExists = 6,
    FailedPrecondition = 9,
    Aborted = 10,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    ResourceExhausted = 8,
}

impl Code {
    pub fn http_status(self) -> StatusCode {
        match self {
            Code::InvalidArgument | Code::FailedPrecondition => StatusCode::BAD_REQUEST,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
            Code::ResourceExhausted => StatusCode::PAYLOAD_TOO_LARGE,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// How the error body is shaped: gRPC-gateway endpoints send `google.rpc.Status`, the
/// upload endpoints KFP's `{error_message, error_details}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shape {
    #[default]
    Status,
    Upload,
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

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let code = match &e {
            StoreError::NotFound(_) => Code::NotFound,
            StoreError::AlreadyExists(_) => Code::AlreadyExists,
            StoreError::InvalidArgument(_) => Code::InvalidArgument,
            StoreError::FailedPrecondition(_) => Code::FailedPrecondition,
            StoreError::Aborted(_) => Code::Aborted,
            // Both pass: a client may send the same request again.
            StoreError::Unavailable(_) | StoreError::Transient(_) => Code::Unavailable,
            StoreError::Internal(_) => Code::Internal,
        };
        Self::new(code, e.to_string())
    }
}

impl From<SpecError> for ApiError {
    fn from(e: SpecError) -> Self {
        Self::invalid(e.0)
    }
}

impl From<ArtifactError> for ApiError {
    fn from(e: ArtifactError) -> Self {
        let code = match &e {
            ArtifactError::NotFound(_) => Code::NotFound,
            ArtifactError::InvalidKey { .. } | ArtifactError::InvalidUrl(_) => Code::InvalidArgument,
            ArtifactError::Unavailable(_) => Code::Unavailable,
        };
        Self::new(code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.http_status();
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
        let body = match self.shape {
            Shape::Status => json!({
                "code": self.code as i32,
                "message": message,
                "details": [{
                    "@type": "type.googleapis.com/google.rpc.Status",
                    "code": self.code as i32,
                    "message": message,
                }],
            }),
            Shape::Upload => json!({ "error_message": message, "error_details": message }),
        };
        (status, Json(body)).into_response()
    }
}
