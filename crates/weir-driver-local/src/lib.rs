//! Steps as local processes: one process group per attempt, so terminating a step stops
//! everything it started; stdout and stderr go to the attempt's log file.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use async_trait::async_trait;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use weir_engine::driver::{AttemptRef, Driver, Exit, Leftover, ProcessSpec, RunningStep, StartError};

mod forkserver;
mod mounts;
pub use forkserver::ForkServer;
pub use mounts::private_mounts_available;

#[derive(Debug, Default, Clone)]
pub struct LocalDriver;

struct LocalStep {
    child: tokio::process::Child,
    pid: i64,
}

#[async_trait]
impl RunningStep for LocalStep {
    fn handle(&self) -> i64 {
        self.pid
    }

    async fn wait(mut self: Box<Self>) -> Exit {
        match self.child.wait().await {
            Ok(status) => match (status.code(), status.signal()) {
                (Some(code), _) => Exit::Code(code),
                (None, Some(signal)) => Exit::Signal(signal),
                (None, None) => Exit::Code(-1),
            },
            Err(_) => Exit::Code(-1),
        }
    }
}

/// The process group of a live process (field 5 of `/proc/PID/stat`).
fn process_group(pid: i64) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split(' ').collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(2)?.parse().ok()
}

/// Runs `"$@"`, writes its exit status to `.weir-exit`, and ends the way the step ended.
const EXIT_WRAPPER: &str = r#""$@"; code=$?; printf %s "$code" > .weir-exit; if [ "$code" -gt 128 ] && [ "$code" -lt 160 ]; then kill -$((code - 128)) $$; fi; exit "$code""#;

pub use weir_engine::driver::EXIT_FILE;

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// A step that is already a shell script (`sh -c SCRIPT …`, the usual shape of a KFP container
/// command) records its own exit status: an EXIT trap is put in front of its script, which
/// saves the second shell a wrapper costs (about half of a short step's process time). Scripts
/// that set traps or `exec` keep the wrapper, as the trap would be replaced or never run.
fn with_exit_trap(program: &str, args: &[String], exit_file: &std::path::Path) -> Option<Vec<String>> {
    let shell = program.rsplit('/').next().unwrap_or(program);
    if !matches!(shell, "sh" | "bash" | "dash") {
        return None;
    }
    let (flags, script) = (args.first()?, args.get(1)?);
    let flag_letters = flags.strip_prefix('-')?;
    if !flag_letters.ends_with('c') || !flag_letters.chars().all(|c| c.is_ascii_lowercase()) {
        return None;
    }
    if script.contains("trap") || script.contains("exec") {
        return None;
    }
    let path = shell_quote(&exit_file.display().to_string());
    let trapped = format!("trap 'printf %s \"$?\" > {}' EXIT\n{script}", path.replace('\'', "'\\''"));
    let mut out = vec![program.to_string(), flags.clone(), trapped];
    out.extend(args[2..].iter().cloned());
    Some(out)
}

/// Finds the program the way `execvp` would, or refuses it with the message a direct spawn
/// would give (the shell in between would only print "not found" into the step's log).
fn which(program: &str, env: &[(String, String)], workdir: &std::path::Path) -> Result<std::path::PathBuf, StartError> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |path: &std::path::Path| {
        std::fs::metadata(path).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
    };
    let candidates: Vec<std::path::PathBuf> = if program.contains('/') {
        vec![workdir.join(program)]
    } else {
        let path = env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_default();
        path.split(':').filter(|d| !d.is_empty()).map(|d| std::path::Path::new(d).join(program)).collect()
    };
    if let Some(found) = candidates.iter().find(|c| executable(c)) {
        return Ok(found.clone());
    }
    if candidates.iter().any(|c| c.exists()) {
        return Err(StartError::NotExecutable(program.to_string()));
    }
    Err(StartError::NotFound(program.to_string()))
}

#[async_trait]
impl Driver for LocalDriver {
    async fn start(&self, spec: ProcessSpec) -> Result<Box<dyn RunningStep>, StartError> {
        let Some((program, args)) = spec.argv.split_first() else {
            return Err(StartError::NoCommand);
        };
        // Appends: the engine may have written a header line already.
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(&spec.log_path).map_err(StartError::Log)?;
        let log_err = log.try_clone().map_err(StartError::Log)?;
        let resolved = which(program, &spec.env, &spec.workdir)?;
        // The step's exit status is recorded in its folder, so a weir restarted after the step
        // ended knows how it ended instead of running it again: by the step's own shell, or by
        // a shell between weir and the step (a step ended by a signal ends that shell by the
        // same signal).
        let exit_file = spec.workdir.join(EXIT_FILE);
        let mut command = match with_exit_trap(program, args, &exit_file) {
            Some(argv) if spec.binds.is_empty() => {
                // By its full path: a program looked up in a PATH the step's environment
                // changes makes std fall back from posix_spawn to fork, which copies weir's
                // page tables for every step.
                let mut command = tokio::process::Command::new(&resolved);
                command.arg0(&argv[0]).args(&argv[1..]);
                command
            }
            Some(argv) => {
                let mut command = mounts::command(&spec.binds);
                command.arg(&resolved).args(&argv[1..]);
                command
            }
            None => {
                let mut command = match spec.binds.is_empty() {
                    true => tokio::process::Command::new("/bin/sh"),
                    false => {
                        let mut command = mounts::command(&spec.binds);
                        command.arg("/bin/sh");
                        command
                    }
                };
                command.arg("-c").arg(EXIT_WRAPPER).arg("weir-step").arg(program).args(args);
                command
            }
        };
        command
            .current_dir(&spec.workdir)
            // The spec's environment is the step's whole environment: weir's own (its store
            // URLs and keys among it) is not inherited.
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .process_group(0)
            .kill_on_drop(false);

        let child = command.spawn().map_err(|source| StartError::Spawn { program: program.to_string(), source })?;
        let pid = child.id().map(i64::from).unwrap_or_default();
        Ok(Box::new(LocalStep { child, pid }))
    }

    fn kill(&self, pid: i64) {
        if pid > 0 {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }

    fn left_nothing_running(&self, pid: i64) -> bool {
        // A step is its own process group; signal 0 only asks whether any member is left.
        pid > 0 && killpg(Pid::from_raw(pid as i32), None) == Err(nix::errno::Errno::ESRCH)
    }

    /// Running if its recorded process group still is the step (or, when the weir before
    /// stopped before recording it, if a process group of the step is found); otherwise ended
    /// with the status the step left in its folder ([`EXIT_FILE`]), or lost.
    async fn leftover(&self, attempt: AttemptRef<'_>) -> Leftover {
        let alive = if attempt.handle > 0 && self.is_running_step(attempt.handle, attempt.task_id) {
            Some(attempt.handle)
        } else {
            self.find_step(attempt.task_id)
        };
        if let Some(pid) = alive {
            return Leftover::Running(pid);
        }
        let exit_file = attempt.workdir.join(EXIT_FILE);
        match tokio::fs::read_to_string(exit_file).await.ok().and_then(|s| s.trim().parse::<i32>().ok()) {
            Some(code) => Leftover::Ended(Exit::Code(code)),
            None => Leftover::Lost,
        }
    }
}

impl LocalDriver {
    /// The process group of step `task_id`, found without its recorded pid: a weir stopped
    /// between starting a step and recording its pid leaves a step no row points to.
    pub fn find_step(&self, task_id: &str) -> Option<i64> {
        let entries = std::fs::read_dir("/proc").ok()?;
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i64>().ok()))
            // A step is its own process group; its children carry the same task id.
            .filter(|pid| process_group(*pid) == Some(*pid))
            .find(|pid| self.is_running_step(*pid, task_id))
    }

    /// Whether `pid` is still the step `task_id` (a process a previous weir left behind).
    pub fn is_running_step(&self, pid: i64, task_id: &str) -> bool {
        if forkserver::is_forked_step(pid, task_id) {
            return true;
        }
        // The environment of a live process names its task; a reused pid does not.
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else { return false };
        let needle = format!("WEIR_TASK_ID={task_id}");
        environ.split(|b| *b == 0).any(|entry| entry == needle.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step of task `t1`; tests that look steps up by task id give their own.
    fn spec(dir: &std::path::Path, argv: &[&str]) -> ProcessSpec {
        spec_of("t1", dir, argv)
    }

    fn spec_of(task_id: &str, dir: &std::path::Path, argv: &[&str]) -> ProcessSpec {
        ProcessSpec {
            task_id: task_id.into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: vec![("WEIR_TASK_ID".into(), task_id.into()), ("GREETING".into(), "hi".into())],
            workdir: dir.to_path_buf(),
            log_path: dir.join("log.txt"),
            binds: Vec::new(),
            pod: None,
        }
    }

    /// A folder mounted for one step is where the step looks, and nowhere else: the host (and
    /// so every other step) still sees what was there.
    #[tokio::test]
    async fn binds_are_the_steps_alone() {
        let dir = tempfile::tempdir().unwrap();
        let folder = tempfile::tempdir().unwrap();
        let seen_at = tempfile::tempdir().unwrap();
        std::fs::write(folder.path().join("x"), "from the folder").unwrap();
        if !crate::private_mounts_available() {
            // Only root can make mount namespaces; weir then never asks for binds.
            let root = std::fs::read_to_string("/proc/self/status")
                .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")));
            assert!(!root, "root, yet no mount namespace could be made");
            return;
        }
        let target = seen_at.path().join("x");
        let script = format!("cat {} && echo written > {}/y", target.display(), seen_at.path().display());
        let mut spec = spec_of("bind-task", dir.path(), &["sh", "-c", &script]);
        spec.binds = vec![(folder.path().to_path_buf(), seen_at.path().to_path_buf())];
        let step = LocalDriver.start(spec).await.unwrap();
        assert_eq!(step.wait().await, Exit::Code(0));
        let log = std::fs::read_to_string(dir.path().join("log.txt")).unwrap();
        assert!(log.contains("from the folder"), "{log}");
        assert_eq!(std::fs::read_to_string(folder.path().join("y")).unwrap(), "written\n");
        assert!(!seen_at.path().join("x").exists() && !seen_at.path().join("y").exists(), "the host saw the mount");
    }

    /// A step that leaves a process running is not done with its folder until that process is
    /// gone; an empty exit file (a reused folder's) tells a restarted weir nothing.
    #[tokio::test]
    async fn a_step_that_left_a_process_running_is_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let alone = LocalDriver.start(spec_of("t-alone", dir.path(), &["sh", "-c", "true"])).await.unwrap();
        let pid = alone.handle();
        assert_eq!(alone.wait().await, Exit::Code(0));
        assert!(LocalDriver.left_nothing_running(pid));
        let leaver = LocalDriver
            .start(spec_of("t-leaver", dir.path(), &["sh", "-c", "sleep 30 >/dev/null 2>&1 & exit 0"]))
            .await
            .unwrap();
        let pid = leaver.handle();
        assert_eq!(leaver.wait().await, Exit::Code(0));
        assert!(!LocalDriver.left_nothing_running(pid), "its sleep is still running");
        LocalDriver.kill(pid);
        let mut gone = false;
        // The killed sleep is a zombie until the machine's init reaps it.
        for _ in 0..500 {
            if LocalDriver.left_nothing_running(pid) {
                gone = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(gone, "the killed group is empty");
        std::fs::write(dir.path().join(EXIT_FILE), "").unwrap();
        let attempt = AttemptRef { task_id: "t-none", workdir: dir.path(), handle: 0 };
        assert_eq!(LocalDriver.leftover(attempt).await, Leftover::Lost);
    }

    #[tokio::test]
    async fn runs_logs_and_reports_exit_codes() {
        let dir = tempfile::tempdir().unwrap();
        let step =
            LocalDriver.start(spec(dir.path(), &["sh", "-c", "echo $GREETING; echo oops >&2; exit 3"])).await.unwrap();
        assert_eq!(step.wait().await, Exit::Code(3));
        let log = std::fs::read_to_string(dir.path().join("log.txt")).unwrap();
        assert!(log.contains("hi") && log.contains("oops"), "{log}");
    }

    /// Shell steps record their exit status through a trap (one process), other steps through
    /// the wrapper; either way the file lands in the step's folder, whatever the script does.
    #[tokio::test]
    async fn exit_status_is_recorded_in_the_step_folder() {
        let parent = tempfile::tempdir().unwrap();
        // A quote in the folder's name must survive the trap's quoting.
        let dir = parent.path().join("it's here");
        std::fs::create_dir(&dir).unwrap();
        let cases: &[(&[&str], i32, &str)] = &[
            (&["sh", "-c", "echo \"$0 $1\"; cd /; exit 3", "zero", "one"], 3, "zero one"),
            (&["/bin/sh", "-ec", "false; echo unreachable"], 1, ""),
            (&["sh", "-c", "exec sh -c 'exit 4'"], 4, ""),
            (&["sh", "-c", "trap 'echo own trap' EXIT; exit 5"], 5, "own trap"),
            (&["true"], 0, ""),
        ];
        for (argv, code, said) in cases {
            let _ = std::fs::remove_file(dir.join(EXIT_FILE));
            let _ = std::fs::remove_file(dir.join("log.txt"));
            let step = LocalDriver.start(spec_of("t-exit", &dir, argv)).await.unwrap();
            assert_eq!(step.wait().await, Exit::Code(*code), "{argv:?}");
            assert_eq!(std::fs::read_to_string(dir.join(EXIT_FILE)).unwrap(), code.to_string(), "{argv:?}");
            // A restarted weir learns the same from the driver.
            let attempt = AttemptRef { task_id: "t-exit", workdir: &dir, handle: 0 };
            assert_eq!(LocalDriver.leftover(attempt).await, Leftover::Ended(Exit::Code(*code)), "{argv:?}");
            let log = std::fs::read_to_string(dir.join("log.txt")).unwrap_or_default();
            assert!(log.contains(said) && !log.contains("unreachable"), "{argv:?}: {log}");
        }
        let one = with_exit_trap("sh", &["-c".into(), "true".into()], &dir.join(EXIT_FILE)).unwrap();
        assert_eq!(one[0], "sh", "a shell step runs without a wrapper");
        assert!(with_exit_trap("python3", &["-c".into(), "pass".into()], &dir.join(EXIT_FILE)).is_none());
        assert!(with_exit_trap("sh", &["script.sh".into()], &dir.join(EXIT_FILE)).is_none());
    }

    #[tokio::test]
    async fn missing_executables_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let error = LocalDriver.start(spec(dir.path(), &["/no/such/tool", "x"])).await.err().unwrap().to_string();
        assert!(error.contains("/no/such/tool"), "{error}");
    }

    #[tokio::test]
    async fn kill_stops_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let step =
            LocalDriver.start(spec_of("t-kill", dir.path(), &["sh", "-c", "sleep 60 & sleep 60; wait"])).await.unwrap();
        let pid = step.handle();
        // The new program's environment shows in /proc once it has started; allow it a moment
        // on a loaded machine.
        let mut recognised = false;
        for _ in 0..100 {
            if LocalDriver.is_running_step(pid, "t-kill") {
                recognised = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(recognised);
        assert!(!LocalDriver.is_running_step(pid, "other"));
        let attempt = AttemptRef { task_id: "t-kill", workdir: dir.path(), handle: pid };
        assert_eq!(LocalDriver.leftover(attempt).await, Leftover::Running(pid));
        // Without the recorded pid the step is found by its task id.
        assert_eq!(LocalDriver.leftover(AttemptRef { handle: 0, ..attempt }).await, Leftover::Running(pid));
        LocalDriver.kill(pid);
        let exit = tokio::time::timeout(std::time::Duration::from_secs(10), step.wait()).await.unwrap();
        assert_eq!(exit, Exit::Signal(9));
        // Killed, it left no exit status: lost.
        assert_eq!(LocalDriver.leftover(attempt).await, Leftover::Lost);
    }
}
