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
    /// What the server said when it was ready: its pid, and how many pages a spare copies
    /// before it is asked for a step (0: it rehearses a step instead).
    #[cfg_attr(not(test), allow(dead_code))]
    ready: Value,
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
        let ready = match lines.next_line().await {
            Ok(Some(line)) if line.contains("\"ready\"") => serde_json::from_str(&line).unwrap_or_default(),
            other => return Err(StartError::Runner(format!("the Python fork server did not start: {other:?}"))),
        };
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
        Ok(Server { stdin, _child: child, ready })
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
            "module_dir": spec.workdir.join(weir_engine::driver::COMPONENT_DIR),
            "log": spec.log_path,
            "binds": spec.binds,
            "output_file": spec.output_file,
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

#[cfg(test)]
mod tests {
    use super::*;
    use weir_engine::driver::Driver;

    /// The test environment's interpreter, which has kfp (`scripts/test.sh` makes it first).
    fn python() -> PathBuf {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
        assert!(venv.exists(), "{} is missing: run `bash scripts/test.sh --venv-only`", venv.display());
        venv
    }

    const SOURCE: &str = "import kfp\nfrom kfp import dsl\nfrom kfp.dsl import *\nfrom typing import *\n\n\
        def add(x: int, fail: bool) -> int:\n    import os, time\n    import tempfile\n    print('adding', x, os.environ.get('GREETING'), tempfile.gettempdir(), __file__, dsl.get_uri('x'))\n    \
        if fail:\n        raise ValueError('asked to fail')\n    if x < 0:\n        time.sleep(60)\n    return x + 1\n";

    /// A step of `add(x, fail)`, as the engine asks for it, in a folder of its own, with its
    /// task root in `dir/store`.
    fn spec(dir: &Path, task_id: &str, x: i64, fail: bool) -> PythonSpec {
        let workdir = dir.join(task_id);
        std::fs::create_dir_all(workdir.join("tmp")).unwrap();
        let executor_input = json!({
            "inputs": {"parameterValues": {"x": x, "fail": fail}},
            "outputs": {
                "parameters": {"Output": {"outputFile": workdir.join("Output")}},
                "outputFile": dir.join("store").join(task_id).join("executor_output.json"),
            },
        });
        PythonSpec {
            task_id: task_id.into(),
            source: SOURCE.into(),
            args: vec![
                "--executor_input".into(),
                executor_input.to_string(),
                "--function_to_execute".into(),
                "add".into(),
            ],
            env: vec![
                ("GREETING".into(), format!("hello-{task_id}")),
                ("PATH".into(), "/usr/bin:/bin".into()),
                ("TMPDIR".into(), workdir.join("tmp").display().to_string()),
            ],
            log_path: workdir.join("log.txt"),
            output_file: workdir.join(weir_engine::driver::EXECUTOR_OUTPUT),
            workdir,
            binds: Vec::new(),
        }
    }

    fn read(path: PathBuf) -> String {
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// kfp's executor_main gets a stand-in for argparse's parser: a compiled component's
    /// `--option value` command line is answered as argparse answers it, and every other form
    /// (or a missing required option) goes to argparse itself.
    #[test]
    fn the_executors_parser_answers_as_argparse_does() {
        const CHECK: &str = r#"
import argparse, contextlib, importlib.util, io, sys
spec = importlib.util.spec_from_file_location('forkserver', sys.argv[1])
server = importlib.util.module_from_spec(spec)
spec.loader.exec_module(server)
assert server.executor_main.argparse.ArgumentParser is server.PlainArgumentParser
assert server.executor_main.argparse.Namespace is argparse.Namespace

def declare(parser):
    parser.add_argument('--component_module_path', type=str, help='module')
    parser.add_argument('--function_to_execute', type=str, required=True, help='function')
    parser.add_argument('--executor_input', type=str, help='input')
    return parser

def answer(parser, argv):
    sys.argv = ['executor_main', *argv]
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            return parser.parse_known_args()
        except SystemExit as e:
            return ('exit', e.code)

plain = ['--executor_input', '{"a": [1, "-x"]}', '--function_to_execute', 'f']
cases = [
    (plain, True),
    (['--function_to_execute', 'f', '--component_module_path', '/m.py', '--executor_input', ''], True),
    (['--function_to_execute', 'f'], True),
    (['--executor_input={}', '--function_to_execute', 'f'], False),
    (['--executor_in', '{}', '--function_to_execute', 'f'], False),
    (['--function_to_execute', 'f', '--function_to_execute', 'g'], False),
    (['--function_to_execute', 'f', '--other', 'x'], False),
    (['--executor_input', '-1', '--function_to_execute', 'f'], False),
    (['--executor_input', '{}'], False),
    (['--function_to_execute'], False),
    (['f'], False),
]
for argv, quick in cases:
    stand_in = declare(server.PlainArgumentParser(description='d'))
    assert (stand_in._plain(argv) is not None) == quick, argv
    expected = answer(declare(argparse.ArgumentParser(description='d')), argv)
    assert answer(stand_in, argv) == expected, (argv, answer(stand_in, argv), expected)
# A parser made otherwise reads nothing itself.
assert declare(server.PlainArgumentParser(fromfile_prefix_chars='@'))._plain(plain) is None
print(len(cases))
"#;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("forkserver.py");
        std::fs::write(&script, SCRIPT).unwrap();
        let out = std::process::Command::new(python()).arg("-c").arg(CHECK).arg(&script).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "11");
    }

    /// Steps one after another and side by side: each gets its own inputs, environment, folder
    /// and log, reports how it ended once (the server's second report of the same end is
    /// ignored), and a failure is the step's alone.
    #[tokio::test]
    async fn forked_steps_run_report_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let server = ForkServer::new(&python(), &dir.path().join("server"), Vec::new()).unwrap();
        for x in 0..4 {
            let task = format!("t{x}");
            let module = dir.path().join(&task).join(weir_engine::driver::COMPONENT_DIR).join("ephemeral_component.py");
            if x == 1 {
                // What a reused folder holds: the last step's module, emptied, or (had the
                // emptying failed) longer than this one; it is written over.
                std::fs::create_dir_all(module.parent().unwrap()).unwrap();
                std::fs::write(&module, format!("raise SystemExit(3)\n{}\n", "#".repeat(10_000))).unwrap();
            }
            let step = server.start_python(spec(dir.path(), &task, x, false)).await.unwrap();
            assert!(step.handle() > 0);
            assert_eq!(step.wait().await, Exit::Code(0), "{}", read(dir.path().join(&task).join("log.txt")));
            let output: Value =
                serde_json::from_str(&read(dir.path().join(&task).join("executor_output.json"))).unwrap();
            assert_eq!(output["parameterValues"]["Output"], json!(x + 1));
            // Its own environment, TMPDIR included (the server's rehearsal used the server's).
            let tmp = dir.path().join(&task).join("tmp");
            let log = read(dir.path().join(&task).join("log.txt"));
            // Its module in the folder weir names for it, none made in its TMPDIR, and no
            // bytecode written for it (nothing would read it again). Its output is in its own
            // folder; `dsl.get_uri()` still gives its task root, where nothing was made.
            let task_root = dir.path().join("store").join(&task);
            assert!(
                log.contains(&format!(
                    "adding {x} hello-{task} {} {} {}",
                    tmp.display(),
                    module.display(),
                    task_root.join("x").display()
                )),
                "{log}"
            );
            assert!(!dir.path().join("store").exists(), "a step without artifacts makes nothing in the store");
            assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
            assert!(!module.with_file_name("__pycache__").exists());
            assert_eq!(read(dir.path().join(&task).join(crate::EXIT_FILE)), "0");
        }
        let (ok, failing) = tokio::join!(
            server.start_python(spec(dir.path(), "side-ok", 10, false)),
            server.start_python(spec(dir.path(), "side-fail", 20, true)),
        );
        let (ok, failing) = tokio::join!(ok.unwrap().wait(), failing.unwrap().wait());
        assert_eq!(ok, Exit::Code(0));
        assert_eq!(failing, Exit::Code(1));
        let log = read(dir.path().join("side-fail").join("log.txt"));
        assert!(log.contains("ValueError: asked to fail"), "{log}");
        assert_eq!(read(dir.path().join("side-fail").join(crate::EXIT_FILE)), "1");
        let output: Value =
            serde_json::from_str(&read(dir.path().join("side-ok").join("executor_output.json"))).unwrap();
        assert_eq!(output["parameterValues"]["Output"], json!(11));
    }

    /// The server learns which pages a step writes to, and the spare forked for the next step
    /// has them copied before it is asked for it; that step then runs as any other.
    #[tokio::test]
    async fn a_spare_has_a_steps_pages_copied_before_it_is_asked() {
        let dir = tempfile::tempdir().unwrap();
        let server = ForkServer::new(&python(), &dir.path().join("server"), Vec::new()).unwrap();
        let first = server.start_python(spec(dir.path(), "first", 1, false)).await.unwrap();
        assert_eq!(first.wait().await, Exit::Code(0));
        let ready = server.server.lock().await.as_ref().expect("a server").ready.clone();
        let (pid, pages) = (ready["pid"].as_i64().unwrap(), ready["step_pages"].as_u64().unwrap());
        // A rehearsed step writes to about a thousand pages of the server's (kfp's modules,
        // the executor's objects); a few dozen would mean the probe's pages were misread, and
        // none that the kernel cannot copy them on request (before Linux 5.14).
        assert!(pages > 200, "{ready}");
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let page_kib: u64 = smaps
            .lines()
            .find_map(|l| l.strip_prefix("KernelPageSize:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        let private_kib = |pid: &str| {
            let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
            rollup
                .lines()
                .find_map(|l| l.strip_prefix("Private_Dirty:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        // The spare: a child of the server's under the server's own name (a step renames itself
        // for its task).
        let server_comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
        let spares = || -> Vec<String> {
            let processes = std::fs::read_dir("/proc").unwrap().flatten();
            processes
                .filter_map(|entry| entry.file_name().into_string().ok())
                .filter(|child| child.bytes().all(|b| b.is_ascii_digit()))
                .filter(|child| {
                    // `pid (comm) state ppid …`: the fields after the name's closing parenthesis.
                    let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
                    let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1));
                    ppid == Some(pid.to_string().as_str())
                        && std::fs::read_to_string(format!("/proc/{child}/comm")).is_ok_and(|c| c == server_comm)
                })
                .collect()
        };
        let mut seen = 0;
        for _ in 0..200 {
            seen = spares().iter().map(|c| private_kib(c)).max().unwrap_or(0);
            if seen >= pages * page_kib * 8 / 10 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(seen >= pages * page_kib * 8 / 10, "the spare has {seen} KiB of its own, the step's pages are {pages}");
        let next = server.start_python(spec(dir.path(), "next", 2, false)).await.unwrap();
        assert_eq!(next.wait().await, Exit::Code(0), "{}", read(dir.path().join("next").join("log.txt")));
        let output: Value = serde_json::from_str(&read(dir.path().join("next").join("executor_output.json"))).unwrap();
        assert_eq!(output["parameterValues"]["Output"], json!(3));
    }

    /// A forked step is its own process group, named for its task: the local driver stops
    /// it by its handle and a restarted weir recognises it.
    #[tokio::test]
    async fn forked_steps_are_stopped_and_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let server = ForkServer::new(&python(), &dir.path().join("server"), Vec::new()).unwrap();
        let step = server.start_python(spec(dir.path(), "sleeper", -1, false)).await.unwrap();
        let pid = step.handle();
        let log = dir.path().join("sleeper").join("log.txt");
        for _ in 0..200 {
            if std::fs::read_to_string(&log).is_ok_and(|l| l.contains("adding -1")) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(is_forked_step(pid, "sleeper") && !is_forked_step(pid, "other"));
        assert!(crate::LocalDriver.is_running_step(pid, "sleeper"));
        crate::LocalDriver.kill(pid);
        let exit = tokio::time::timeout(std::time::Duration::from_secs(10), step.wait()).await.unwrap();
        assert_eq!(exit, Exit::Signal(9));
        // The server carries on with the next step.
        let next = server.start_python(spec(dir.path(), "after", 1, false)).await.unwrap();
        assert_eq!(next.wait().await, Exit::Code(0));
    }
}
