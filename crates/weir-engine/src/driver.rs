//! Where steps run. The engine hands a driver a resolved command line and later asks it what
//! became of an attempt; the local driver runs it as a process, a Kubernetes driver would run
//! it as a Job. The engine knows an attempt only by its task, its folder and the handle the
//! driver gave it (a process group id here, stored as the task's `pid`).

use std::path::{Path, PathBuf};

use async_trait::async_trait;

pub use crate::launch::{ConfigEnv, PodVolume, VolumeSource};

/// The file in an attempt's folder where a local step's exit status is left, so a weir started
/// after the step ended learns how it ended. An empty one says nothing (a reused folder's).
pub const EXIT_FILE: &str = ".weir-exit";

/// The folder in an attempt's folder where a lightweight Python step's component module is
/// written (the SDK's launch script writes it in a `mktemp -d` folder): one the engine keeps,
/// emptied, when it reuses the attempt's folder, so a step makes no folder for it.
pub const COMPONENT_DIR: &str = ".weir-component";

/// The component's module in [`COMPONENT_DIR`], as the SDK's launch script names it.
pub const COMPONENT_MODULE: &str = "ephemeral_component.py";

/// The executor output's name (the SDK's), in an attempt's folder: where a forked Python step
/// writes it ([`PythonSpec::output_file`]), and where a step's is moved to from a local store.
pub const EXECUTOR_OUTPUT: &str = "executor_output.json";

/// One attempt of a step, ready to start.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    pub task_id: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The attempt's private working folder.
    pub workdir: PathBuf,
    /// Where stdout and stderr go.
    pub log_path: PathBuf,
    /// Folders mounted at paths of the step's own mount namespace: (folder, where the step
    /// sees it). Only given when the driver said it can ([`private_mounts`] of the settings).
    pub binds: Vec<(PathBuf, PathBuf)>,
    /// What a driver that runs steps as pods needs beyond a command line; None for a driver
    /// that is not [`Driver::remote`].
    pub pod: Option<Box<PodRequest>>,
}

/// One attempt as a pod: its image, its resources and its Kubernetes platform configuration,
/// with the names of its secrets, config maps and claims resolved.
#[derive(Debug, Clone)]
pub struct PodRequest {
    pub run_id: String,
    pub task_name: String,
    pub attempt: i64,
    pub image: String,
    /// The IR container's `resources` (requests, limits, accelerator), as compiled.
    pub resources: Option<serde_json::Value>,
    /// The executor's kfp-kubernetes configuration, for what needs no resolving (node
    /// selector, tolerations, affinity, pull secrets and policy, labels, annotations, field
    /// paths, init containers, shared memory, security context).
    pub platform: weir_spec::platform::ExecutorConfig,
    /// Variables from secrets and config maps.
    pub config_env: Vec<crate::launch::ConfigEnv>,
    /// Volumes mounted at paths of the step's choosing.
    pub volumes: Vec<crate::launch::PodVolume>,
    /// `activeDeadlineSeconds`.
    pub deadline_seconds: Option<u64>,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

/// Why a step could not start at all. The message is for the user.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the step has no command")]
    NoCommand,
    #[error("cannot start the step: the executable {0:?} does not exist")]
    NotFound(String),
    #[error("cannot start the step: {0:?} is not executable")]
    NotExecutable(String),
    #[error("cannot create the step's log: {0}")]
    Log(std::io::Error),
    #[error("cannot start the step {program:?}: {source}")]
    Spawn { program: String, source: std::io::Error },
    /// The runner between weir and the step (a fork server, a cluster) refused or failed.
    #[error("{0}")]
    Runner(String),
}

/// An attempt as the engine knows it after a restart: enough for its driver to find it.
#[derive(Debug, Clone, Copy)]
pub struct AttemptRef<'a> {
    pub task_id: &'a str,
    /// The attempt's folder, as it was given in its [`ProcessSpec`].
    pub workdir: &'a Path,
    /// The handle the driver gave the attempt ([`RunningStep::handle`]), or 0 when a weir
    /// stopped before it recorded one.
    pub handle: i64,
}

/// What became of an attempt that no live weir watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leftover {
    /// Still running, under this handle: adopt it and wait for its end.
    Running(i64),
    /// It ended, and left how.
    Ended(Exit),
    /// Neither running nor ended in a known way: it was lost.
    Lost,
}

#[async_trait]
pub trait RunningStep: Send {
    /// The driver's handle of the attempt, recorded so a restarted weir can find the step and
    /// stop it.
    fn handle(&self) -> i64;
    async fn wait(self: Box<Self>) -> Exit;
}

#[async_trait]
pub trait Driver: Send + Sync {
    /// Whether steps run away from this host (as pods): then the engine resolves nothing of
    /// the host for them (no interpreter, no secrets as files) and gives a [`PodRequest`].
    fn remote(&self) -> bool {
        false
    }
    /// Starts a step.
    async fn start(&self, spec: ProcessSpec) -> Result<Box<dyn RunningStep>, StartError>;
    /// Stops a step and everything it started.
    fn kill(&self, handle: i64);
    /// Whether nothing a step started on this host is still running once its process ended
    /// (a local step's process group is empty). Only then is its folder reused, so a process
    /// it left behind cannot write into another step's folder. Steps run elsewhere: true.
    fn left_nothing_running(&self, _handle: i64) -> bool {
        true
    }
    /// What became of an attempt an earlier weir started: still running, ended (and how), or
    /// lost. Asked once at recovery, then again while an adopted attempt runs.
    async fn leftover(&self, attempt: AttemptRef<'_>) -> Leftover;
    /// kfp-kubernetes' CreatePVC on a driver whose volumes are the cluster's: makes the claim
    /// (one that exists already is kept). `inputs` are the stub's (`size`, `access_modes`,
    /// `storage_class_name`, …). A local driver's volume is a folder made on first use.
    async fn create_volume(
        &self,
        _name: &str,
        _inputs: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), String> {
        Ok(())
    }
    /// kfp-kubernetes' DeletePVC on a remote driver; the runtime removes a local one's folder.
    async fn delete_volume(&self, _name: &str) -> Result<(), String> {
        Ok(())
    }
}

/// A lightweight Python component step: the component's source and the executor's arguments
/// (`--executor_input …`, `--function_to_execute …`).
#[derive(Debug, Clone, PartialEq)]
pub struct PythonSpec {
    pub task_id: String,
    pub source: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workdir: PathBuf,
    pub log_path: PathBuf,
    /// As [`ProcessSpec::binds`].
    pub binds: Vec<(PathBuf, PathBuf)>,
    /// Where the executor writes its output: [`EXECUTOR_OUTPUT`] in the attempt's folder,
    /// instead of the task root the executor input names (which `dsl.get_uri()` still builds
    /// on). A step whose outputs are parameters then makes no folder and no file in the
    /// store, and the file is one the reused folder keeps: the step allocates no inode for it.
    pub output_file: PathBuf,
}

/// Runs lightweight Python steps without starting an interpreter each time. What became of
/// such a step after a restart is the main [`Driver`]'s to tell.
#[async_trait]
pub trait PythonDriver: Send + Sync {
    async fn start_python(&self, spec: PythonSpec) -> Result<Box<dyn RunningStep>, StartError>;
}
