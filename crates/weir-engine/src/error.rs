//! The engine's errors. A step's error becomes the message its task shows, so each variant
//! words what went wrong for the pipeline's author; the kind decides what the engine does
//! with it (fail or retry the step, leave it to the next start, fail the run).

use std::path::PathBuf;

use weir_spec::SpecError;
use weir_store::StoreError;

use crate::driver::StartError;
pub use crate::launch::PlanError;

/// Why one pass over a run could not go through.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The run's stored spec does not parse: the run fails with this message. Kept apart from
    /// the store's own `InvalidArgument`, which must not fail a run.
    #[error("{0}")]
    Spec(SpecError),
}

/// Why an attempt of a step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("cannot prepare the step folder: {0}")]
    Folder(std::io::Error),
    #[error("cannot create the step's log: {0}")]
    Log(std::io::Error),
    #[error(transparent)]
    Start(#[from] StartError),
    /// `detail` names a signal the code stands for and ends with the log's last lines.
    #[error("the step exited with code {code}{detail}")]
    Exited { code: i32, detail: String },
    #[error("the step was killed by signal {signal}{tail}")]
    Killed { signal: i32, tail: String },
    #[error("the step's process was lost when weir stopped (attempt {0})")]
    Lost(i64),
    #[error("cannot fetch input artifact {id} ({uri}): {source}")]
    Input { id: i64, uri: String, source: FileError },
    #[error("cannot keep output artifact {key}: {source}")]
    Output { key: String, source: FileError },
    #[error("the step wrote an invalid executor_output.json: {0}")]
    ExecutorOutput(serde_json::Error),
    #[error("the step did not produce its output parameter {0:?}")]
    MissingParameter(String),
    /// KFP's launcher only warns (`uploadOutputArtifacts` in
    /// backend/src/v2/component/launcher_v2.go), and the artifact is then recorded with
    /// nothing behind its URI; a step that breaks its contract fails instead.
    #[error("the step did not write its output artifact {name:?}: nothing at {path}")]
    MissingOutput { name: String, path: std::path::PathBuf },
    /// A step writes its outputs under its own folder of the store only; elsewhere it may only
    /// hand on one of its inputs.
    #[error(
        "output artifact {name:?} names {uri}, a place in weir's artifact store outside the step's own \
         folder that is none of its inputs; a step's outputs go under its task root (dsl.get_uri())"
    )]
    ForeignOutput { name: String, uri: String },
    #[error("output parameter {name:?}: {source}")]
    BadParameter { name: String, source: ParameterError },
    #[error(transparent)]
    Environment(#[from] EnvError),
    /// A secret or config map the step is given cannot be read.
    #[error("{0}")]
    Config(String),
    #[error("the step ran past its deadline of {seconds} s (activeDeadlineSeconds) and was stopped{tail}")]
    Deadline { seconds: u64, tail: String },
}

impl StepError {
    /// The step's files could not move because the artifact store stayed unreachable until
    /// weir stopped: the step is left, folder and all, for the next start to settle.
    pub fn store_unavailable(&self) -> bool {
        matches!(
            self,
            StepError::Input { source: FileError::StoreUnavailable(_), .. }
                | StepError::Output { source: FileError::StoreUnavailable(_), .. }
        )
    }
}

/// Moving a file between a step's folder and where it is kept.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{}: {source}", .path.display())]
    At { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Store(weir_artifacts::ArtifactError),
    /// Only during shutdown: otherwise a step waits the outage out.
    #[error("the artifact store stayed unreachable until weir stopped: {0}")]
    StoreUnavailable(String),
    #[error(
        "{} is a file of this host outside the artifact store; weir reads local files only from the folders \
         the operator allows (executor.local_artifact_roots, --allow-local-artifacts)",
        .0.display()
    )]
    NotAllowed(PathBuf),
    #[error("{} is a link; links are not followed out of an allowed folder", .0.display())]
    Link(PathBuf),
}

/// An output parameter's file that does not hold a value of its type.
#[derive(Debug, thiserror::Error)]
pub enum ParameterError {
    #[error("{0:?} is not an integer")]
    NotInteger(String),
    #[error("{0:?} is not a number")]
    NotNumber(String),
    #[error("{0:?} is not a boolean")]
    NotBoolean(String),
    #[error("not valid JSON: {0}")]
    NotJson(serde_json::Error),
}

/// Preparing the Python a step's `python3` is.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("cannot write {}: {source}", .path.display())]
    Shim { path: PathBuf, source: std::io::Error },
    #[error("cannot create a Python environment: {0}")]
    Venv(String),
    #[error("cannot ask the Python interpreter for its packages: {0}")]
    Base(std::io::Error),
    #[error("cannot inspect the new Python environment: {0}")]
    Inspect(std::io::Error),
    #[error("cannot link the base packages into the environment: {0}")]
    Link(std::io::Error),
    #[error("cannot run pip: {0}")]
    Pip(std::io::Error),
    #[error("cannot install the packages {packages:?}: {tail}")]
    Install { packages: Vec<String>, tail: String },
    #[error("cannot mark the Python environment ready: {0}")]
    Ready(std::io::Error),
}
