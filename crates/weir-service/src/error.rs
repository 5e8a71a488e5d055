//! The services' one error: a gRPC status code and a message. The one HTTP fact here is the
//! status KFP's gRPC-gateway answers for each code, which both HTTP surfaces (the API and the
//! UI) answer alike; bodies are theirs.

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
    /// The HTTP status KFP's gRPC-gateway answers for this code.
    pub fn http_status(self) -> u16 {
        match self {
            Code::InvalidArgument | Code::FailedPrecondition => 400,
            Code::NotFound => 404,
            Code::AlreadyExists | Code::Aborted => 409,
            Code::ResourceExhausted => 413,
            Code::Unimplemented => 501,
            Code::Internal => 500,
            Code::Unavailable => 503,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    pub code: Code,
    pub message: String,
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        let code = match &e {
            StoreError::NotFound(_) => Code::NotFound,
            StoreError::AlreadyExists(_) => Code::AlreadyExists,
            StoreError::InvalidArgument(_) => Code::InvalidArgument,
            StoreError::FailedPrecondition(_) => Code::FailedPrecondition,
            StoreError::Aborted(_) | StoreError::Fenced(_) => Code::Aborted,
            // Both pass: a client may send the same request again.
            StoreError::Unavailable(_) | StoreError::Transient(_) => Code::Unavailable,
            StoreError::Internal(_) => Code::Internal,
        };
        Self::new(code, e.to_string())
    }
}

impl From<SpecError> for ServiceError {
    fn from(e: SpecError) -> Self {
        Self::invalid(e.0)
    }
}

impl From<ArtifactError> for ServiceError {
    fn from(e: ArtifactError) -> Self {
        let code = match &e {
            ArtifactError::NotFound(_) => Code::NotFound,
            ArtifactError::InvalidKey { .. } | ArtifactError::InvalidUrl(_) => Code::InvalidArgument,
            ArtifactError::Unavailable(_) => Code::Unavailable,
        };
        Self::new(code, e.to_string())
    }
}
