//! Where steps run. The engine hands a driver a resolved command line; the local driver runs
//! it as a process, a Kubernetes driver would run it as a Job.

use std::path::PathBuf;

use async_trait::async_trait;

/// One attempt of a step, ready to start.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessSpec {
    pub task_id: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The attempt's private working folder.
    pub workdir: PathBuf,
    /// Where stdout and stderr go.
    pub log_path: PathBuf,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

#[async_trait]
pub trait RunningStep: Send {
    /// The process (group) id, recorded so a restarted weir can stop a step it lost.
    fn pid(&self) -> i64;
    async fn wait(self: Box<Self>) -> Exit;
}

#[async_trait]
pub trait Driver: Send + Sync {
    /// Starts a step. An error means it could not start at all (for example, the executable
    /// does not exist); the message is for the user.
    async fn start(&self, spec: ProcessSpec) -> Result<Box<dyn RunningStep>, String>;
    /// Stops a step and everything it started.
    fn kill(&self, pid: i64);
    /// Whether `pid` is still the step `task_id` (a process a previous weir left behind).
    fn is_running_step(&self, pid: i64, task_id: &str) -> bool;
    /// The process (group) of step `task_id`, found without its recorded pid: a weir stopped
    /// between starting a step and recording its pid leaves a step no row points to.
    fn find_step(&self, _task_id: &str) -> Option<i64> {
        None
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
}

/// Runs lightweight Python steps without starting an interpreter each time.
#[async_trait]
pub trait PythonDriver: Send + Sync {
    async fn start_python(&self, spec: PythonSpec) -> Result<Box<dyn RunningStep>, String>;
}
