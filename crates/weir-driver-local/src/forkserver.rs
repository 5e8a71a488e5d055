//! Lightweight Python steps forked from a warm interpreter.
//!
//! Starting a Python step from its command line costs an interpreter start and the kfp
//! runtime's imports (~45 ms here); the fork server pays that once and forks each step from it
//! (a few ms). Every step is still its own process, in its own session and folder, with its own
//! environment and log, stopped by its process group like any other step.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use weir_engine::driver::{Exit, PythonDriver, PythonSpec, RunningStep, StartError};

const SCRIPT: &str = include_str!("forkserver.py");

enum Event {
    Started(i64),
    Failed(String),
    Ended(Exit),
}

type Waiters = Arc<Mutex<HashMap<u64, tokio::sync::mpsc::UnboundedSender<Event>>>>;

struct Server {
    stdin: tokio::process::ChildStdin,
    _child: tokio::process::Child,
}

/// A fork server, started on first use and restarted if it dies.
pub struct ForkServer {
    env: Vec<(String, String)>,
    python: PathBuf,
    script: PathBuf,
    server: tokio::sync::Mutex<Option<Server>>,
    waiters: Waiters,
    next_id: AtomicU64,
}

impl ForkServer {
    /// `work_dir` receives the server's script; `python` must have kfp.
    /// `env` is the environment the server (and so every step forked from it) starts with:
    /// a forked step replaces `os.environ`, but `/proc/self/environ` still shows what its
    /// process started with, so weir's own must never be there.
    pub fn new(python: &Path, work_dir: &Path, env: Vec<(String, String)>) -> std::io::Result<Self> {
        std::fs::create_dir_all(work_dir)?;
        let script = work_dir.join("weir-forkserver.py");
        std::fs::write(&script, SCRIPT)?;
        Ok(Self {
            python: python.to_path_buf(),
            script,
            env,
            server: tokio::sync::Mutex::new(None),
            waiters: Arc::new(Mutex::new(HashMap::new())),
            next_id: AtomicU64::new(1),
        })
    }

    async fn spawn(&self) -> Result<Server, StartError> {
        let mut child = tokio::process::Command::new(&self.python)
            .arg("-u")
            .arg(&self.script)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| StartError::Runner(format!("cannot start the Python fork server: {e}")))?;
        let piped = || StartError::Runner("the Python fork server has no pipes".into());
        let stdin = child.stdin.take().ok_or_else(piped)?;
        let stdout = child.stdout.take().ok_or_else(piped)?;
        let mut lines = BufReader::new(stdout).lines();
        match lines.next_line().await {
            Ok(Some(line)) if line.contains("\"ready\"") => {}
            other => return Err(StartError::Runner(format!("the Python fork server did not start: {other:?}"))),
        }
        let waiters = self.waiters.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(message) = serde_json::from_str::<Value>(&line) else { continue };
                let Some(id) = message["id"].as_u64() else { continue };
                let event = if let Some(pid) = message["pid"].as_i64() {
                    Event::Started(pid)
                } else if let Some(error) = message["error"].as_str() {
                    Event::Failed(error.to_string())
                } else if let Some(signal) = message["signal"].as_i64() {
                    Event::Ended(Exit::Signal(signal as i32))
                } else {
                    Event::Ended(Exit::Code(message["exit"].as_i64().unwrap_or(-1) as i32))
                };
                let ended = !matches!(event, Event::Started(_));
                let sender = {
                    let mut waiters = waiters.lock().expect("waiters");
                    if ended {
                        waiters.remove(&id)
                    } else {
                        waiters.get(&id).cloned()
                    }
                };
                if let Some(sender) = sender {
                    let _ = sender.send(event);
                }
            }
            // The server is gone: every step it was running is lost.
            let mut waiters = waiters.lock().expect("waiters");
            for (_, sender) in waiters.drain() {
                let _ = sender.send(Event::Ended(Exit::Signal(9)));
            }
        });
        Ok(Server { stdin, _child: child })
    }
}

struct ForkedStep {
    pid: i64,
    events: tokio::sync::mpsc::UnboundedReceiver<Event>,
}

#[async_trait]
impl RunningStep for ForkedStep {
    fn handle(&self) -> i64 {
        self.pid
    }

    async fn wait(mut self: Box<Self>) -> Exit {
        while let Some(event) = self.events.recv().await {
            if let Event::Ended(exit) = event {
                return exit;
            }
        }
        Exit::Signal(9)
    }
}

#[async_trait]
impl PythonDriver for ForkServer {
    async fn start_python(&self, spec: PythonSpec) -> Result<Box<dyn RunningStep>, StartError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, mut events) = tokio::sync::mpsc::unbounded_channel();
        self.waiters.lock().expect("waiters").insert(id, sender);
        let request = json!({
            "id": id,
            "source": spec.source,
            "args": spec.args,
            "env": spec.env.iter().cloned().collect::<HashMap<String, String>>(),
            "cwd": spec.workdir,
            "log": spec.log_path,
            "binds": spec.binds,
            "name": format!("w{}", spec.task_id.chars().filter(|c| c.is_ascii_alphanumeric()).take(14).collect::<String>()),
        });
        let mut line = serde_json::to_vec(&request).map_err(|e| StartError::Runner(e.to_string()))?;
        line.push(b'\n');
        {
            let mut server = self.server.lock().await;
            if server.is_none() {
                *server = Some(self.spawn().await?);
            }
            let written = server.as_mut().expect("server").stdin.write_all(&line).await;
            if let Err(e) = written {
                // A dead server: start a new one and try once more.
                *server = Some(self.spawn().await?);
                server
                    .as_mut()
                    .expect("server")
                    .stdin
                    .write_all(&line)
                    .await
                    .map_err(|_| StartError::Runner(format!("cannot reach the Python fork server: {e}")))?;
            }
        }
        match events.recv().await {
            Some(Event::Started(pid)) => Ok(Box::new(ForkedStep { pid, events })),
            Some(Event::Failed(error)) => Err(StartError::Runner(error)),
            Some(Event::Ended(_)) | None => {
                Err(StartError::Runner("the Python fork server stopped before the step started".into()))
            }
        }
    }
}

/// Whether a process is a forked step of `task_id` (its name was set by the fork server).
pub fn is_forked_step(pid: i64, task_id: &str) -> bool {
    let expected: String =
        format!("w{}", task_id.chars().filter(|c| c.is_ascii_alphanumeric()).take(14).collect::<String>());
    std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|comm| comm.trim() == expected).unwrap_or(false)
}
