//! A mount namespace of a step's own, for the folders it must see at fixed paths (an object
//! store's artifacts at `/s3/…`, as KFP's SDK derives local paths from URIs). The step's
//! mounts are private to it: the host and the other steps see none of them, and they go with
//! the step's last process.
//!
//! Made by util-linux's `unshare` and `mount` rather than by system calls between fork and
//! exec, which would take `unsafe` code: `unshare` and the shell after it `exec`, so the step
//! keeps the process (and process group) weir started.

use std::path::PathBuf;

/// Mounts each (folder, where) pair given after the count, then runs the rest of its arguments.
const MOUNT_SCRIPT: &str = r#"n=$1; shift
while [ "$n" -gt 0 ]; do
  mount --bind "$1" "$2" || { echo "weir: cannot mount $1 at $2 for the step" >&2; exit 125; }
  shift 2; n=$((n - 1))
done
exec "$@""#;

/// The `unshare` arguments that enter a new mount namespace and mount `binds`; what runs
/// then is appended by the caller.
fn arguments(binds: &[(PathBuf, PathBuf)]) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> =
        ["--mount", "--propagation", "private", "/bin/sh", "-c", MOUNT_SCRIPT, "weir-mounts"]
            .iter()
            .map(Into::into)
            .collect();
    args.push(binds.len().to_string().into());
    for (folder, seen_at) in binds {
        args.push(folder.into());
        args.push(seen_at.into());
    }
    args
}

/// A command that enters a new mount namespace, mounts `binds` and then runs what its
/// arguments, appended by the caller, say.
pub(crate) fn command(binds: &[(PathBuf, PathBuf)]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("unshare");
    command.args(arguments(binds));
    command
}

/// Whether steps can have mount namespaces here (weir runs with the privilege to make them),
/// tried once with a throwaway mount of one temporary folder on another. Without it steps see
/// their artifacts at paths in their attempt's folder, and runs that need volumes at paths are
/// refused.
pub fn private_mounts_available() -> bool {
    let probe = std::env::temp_dir().join(format!("weir-mount-probe-{}", std::process::id()));
    let (folder, seen_at) = (probe.join("folder"), probe.join("seen-at"));
    if std::fs::create_dir_all(&folder).is_err() || std::fs::create_dir_all(&seen_at).is_err() {
        return false;
    }
    let available = std::process::Command::new("unshare")
        .args(arguments(&[(folder, seen_at)]))
        .arg("true")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let _ = std::fs::remove_dir_all(&probe);
    available
}
