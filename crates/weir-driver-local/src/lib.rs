//! Steps as local processes: one process group per attempt, so terminating a step stops
//! everything it started; stdout and stderr go to the attempt's log file.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use async_trait::async_trait;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use weir_engine::driver::{Driver, Exit, ProcessSpec, RunningStep};

mod forkserver;
pub use forkserver::ForkServer;

#[derive(Debug, Default, Clone)]
pub struct LocalDriver;

struct LocalStep {
    child: tokio::process::Child,
    pid: i64,
}

#[async_trait]
impl RunningStep for LocalStep {
    fn pid(&self) -> i64 {
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

/// The file a step's exit status is written to, in its folder.
pub const EXIT_FILE: &str = ".weir-exit";

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
fn which(program: &str, env: &[(String, String)], workdir: &std::path::Path) -> Result<std::path::PathBuf, String> {
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
        return Err(format!("cannot start the step: {program:?} is not executable"));
    }
    Err(format!("cannot start the step: the executable {program:?} does not exist"))
}

#[async_trait]
impl Driver for LocalDriver {
    async fn start(&self, spec: ProcessSpec) -> Result<Box<dyn RunningStep>, String> {
        let Some((program, args)) = spec.argv.split_first() else {
            return Err("the step has no command".into());
        };
        // Appends: the engine may have written a header line already.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log_path)
            .map_err(|e| format!("cannot create the step's log: {e}"))?;
        let log_err = log.try_clone().map_err(|e| format!("cannot create the step's log: {e}"))?;
        let resolved = which(program, &spec.env, &spec.workdir)?;
        // The step's exit status is recorded in its folder, so a weir restarted after the step
        // ended knows how it ended instead of running it again: by the step's own shell, or by
        // a shell between weir and the step (a step ended by a signal ends that shell by the
        // same signal).
        let exit_file = spec.workdir.join(EXIT_FILE);
        let mut command = match with_exit_trap(program, args, &exit_file) {
            Some(argv) => {
                // By its full path: a program looked up in a PATH the step's environment
                // changes makes std fall back from posix_spawn to fork, which copies weir's
                // page tables for every step.
                let mut command = tokio::process::Command::new(&resolved);
                command.arg0(&argv[0]).args(&argv[1..]);
                command
            }
            None => {
                let mut command = tokio::process::Command::new("/bin/sh");
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
        let child = command.spawn().map_err(|e| format!("cannot start the step {program:?}: {e}"))?;
        let pid = child.id().map(i64::from).unwrap_or_default();
        Ok(Box::new(LocalStep { child, pid }))
    }

    fn kill(&self, pid: i64) {
        if pid > 0 {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }

    fn find_step(&self, task_id: &str) -> Option<i64> {
        let entries = std::fs::read_dir("/proc").ok()?;
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i64>().ok()))
            // A step is its own process group; its children carry the same task id.
            .filter(|pid| process_group(*pid) == Some(*pid))
            .find(|pid| self.is_running_step(*pid, task_id))
    }

    fn is_running_step(&self, pid: i64, task_id: &str) -> bool {
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

    fn spec(dir: &std::path::Path, argv: &[&str]) -> ProcessSpec {
        ProcessSpec {
            task_id: "t1".into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: vec![("WEIR_TASK_ID".into(), "t1".into()), ("GREETING".into(), "hi".into())],
            workdir: dir.to_path_buf(),
            log_path: dir.join("log.txt"),
        }
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
            let step = LocalDriver.start(spec(&dir, argv)).await.unwrap();
            assert_eq!(step.wait().await, Exit::Code(*code), "{argv:?}");
            assert_eq!(std::fs::read_to_string(dir.join(EXIT_FILE)).unwrap(), code.to_string(), "{argv:?}");
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
        let error = LocalDriver.start(spec(dir.path(), &["/no/such/tool", "x"])).await.err().unwrap();
        assert!(error.contains("/no/such/tool"), "{error}");
    }

    #[tokio::test]
    async fn kill_stops_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let step = LocalDriver.start(spec(dir.path(), &["sh", "-c", "sleep 60 & sleep 60; wait"])).await.unwrap();
        let pid = step.pid();
        // The new program's environment shows in /proc once it has started; allow it a moment
        // on a loaded machine.
        let mut recognised = false;
        for _ in 0..100 {
            if LocalDriver.is_running_step(pid, "t1") {
                recognised = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(recognised);
        assert!(!LocalDriver.is_running_step(pid, "other"));
        LocalDriver.kill(pid);
        let exit = tokio::time::timeout(std::time::Duration::from_secs(10), step.wait()).await.unwrap();
        assert_eq!(exit, Exit::Signal(9));
    }
}
