/// Failures of a store operation, in domain terms. Backends convert their driver errors into
/// these inside the backend crate (a unique violation becomes `AlreadyExists`, a lost
/// connection `Unavailable`), so no driver error type crosses this boundary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// A concurrent change got in the way, or the operation is refused as a conflict.
    #[error("{0}")]
    Aborted(String),
    #[error("{0}")]
    Unavailable(String),
    /// The database gave up on this call for a reason that passes: a deadlock, a
    /// serialisation failure, a lock wait that timed out, a busy SQLite file. Nothing was
    /// written, and the same call made again can succeed.
    #[error("{0}")]
    Transient(String),
    /// The write was for a run this replica no longer drives: another weir took it over
    /// (this one stopped renewing its lease). Nothing was written; the caller lets the run go.
    #[error("{0}")]
    Fenced(String),
    #[error("{0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// Whether the same call, made again later, can succeed: the store was unreachable, or
    /// the database aborted it for a passing reason. Callers that must not lose a write (a
    /// step's result) retry these.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Transient(_))
    }

    pub fn not_found(kind: &str, id: &str) -> Self {
        Self::NotFound(format!("{kind} {id} not found"))
    }
}
