//! The launcher: weir's own binary in a step's pod, in front of the step's command, as KFP's
//! launcher is (backend/src/v2/component/launcher_v2.go). It places the attempt's folder staged
//! by weir, runs the command with its output in the pod's log and the attempt's, and stages
//! what the step left for weir to collect. No Python: any image works.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weir_artifacts::{ArtifactStore, S3Settings};

use crate::stage::{self, EXIT, IN, OUT};

/// Prefix of the variables the store's Secret gives the launcher (kept from the step).
pub const SECRET_PREFIX: &str = "WEIR_STORE_";
/// Variables for the launcher alone.
const OWN_PREFIX: &str = "WEIR_LAUNCHER_";

/// What `weir launcher run` is given.
#[derive(Debug, Clone)]
pub struct RunArgs {
    pub stage: String,
    pub workdir: PathBuf,
    pub log: PathBuf,
    /// (folder in the attempt's folder, where the step sees it)
    pub maps: Vec<(PathBuf, PathBuf)>,
    pub argv: Vec<String>,
}

/// Copies this binary into `dir` (the init container's whole work).
pub fn install(dir: &Path) -> Result<(), String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    let target = dir.join("weir");
    std::fs::copy(&me, &target).map_err(|e| format!("cannot copy weir to {}: {e}", target.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("cannot make {} executable: {e}", target.display()))?;
    }
    Ok(())
}

/// The store as the pod reaches it, from the launcher's variables.
fn open_store() -> Result<ArtifactStore, String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let url = var("WEIR_LAUNCHER_STORE").ok_or("WEIR_LAUNCHER_STORE is not set")?;
    let secret = |name: &str| var(&format!("{SECRET_PREFIX}{name}"));
    let settings = S3Settings {
        endpoint: var("WEIR_LAUNCHER_S3_ENDPOINT").or_else(|| secret("AWS_ENDPOINT_URL")),
        region: secret("AWS_REGION").or_else(|| secret("AWS_DEFAULT_REGION")),
        access_key_id: secret("AWS_ACCESS_KEY_ID"),
        secret_access_key: secret("AWS_SECRET_ACCESS_KEY"),
        session_token: secret("AWS_SESSION_TOKEN"),
        ..S3Settings::default()
    };
    ArtifactStore::open(&url, &settings).map_err(|e| format!("cannot open the artifact store {url}: {e}"))
}

/// Runs a step in its pod; returns the exit code the container ends with (the step's own).
pub async fn run(args: RunArgs) -> i32 {
    match run_inner(&args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("weir launcher: {e}");
            append_log(&args.log, format!("[weir launcher] {e}\n").as_bytes()).await;
            // The log at least goes back to weir, with why the step's results could not.
            if let Ok(store) = open_store() {
                let everything_but_the_log: Vec<PathBuf> = stage::files_under(&args.workdir)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|f| args.workdir.join(f) != args.log)
                    .collect();
                let key = format!("{}{OUT}", args.stage);
                let _ =
                    stage::upload(&store, &key, &args.workdir, &[], &Default::default(), &everything_but_the_log).await;
            }
            // 1, not the step's code: the step did not run, or its results could not be kept.
            1
        }
    }
}

async fn run_inner(args: &RunArgs) -> Result<i32, String> {
    let store = open_store()?;
    let placed = stage::download(&store, &format!("{}{IN}", args.stage), &args.workdir, &args.maps)
        .await?
        .ok_or("weir staged nothing for this attempt")?;
    let (program, rest) = args.argv.split_first().ok_or("the step has no command")?;
    let mut command = tokio::process::Command::new(program);
    command.args(rest).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (name, _) in std::env::vars() {
        if name.starts_with(SECRET_PREFIX) || name.starts_with(OWN_PREFIX) {
            command.env_remove(name);
        }
    }
    let mut child = command.spawn().map_err(|e| format!("cannot start the step {program:?}: {e}"))?;
    let log = tokio::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&args.log)
        .await
        .map_err(|e| format!("cannot open the step's log {}: {e}", args.log.display()))?;
    let log = std::sync::Arc::new(tokio::sync::Mutex::new(log));
    let out = child.stdout.take().map(|s| tokio::spawn(tee(s, log.clone(), false)));
    let err = child.stderr.take().map(|s| tokio::spawn(tee(s, log.clone(), true)));
    let status = child.wait().await.map_err(|e| format!("lost the step's process: {e}"))?;
    for copier in [out, err].into_iter().flatten() {
        let _ = copier.await;
    }
    log.lock().await.flush().await.map_err(|e| format!("cannot write the step's log: {e}"))?;
    let code = match status.code() {
        Some(code) => code,
        None => {
            #[cfg(unix)]
            {
                use std::os::unix::process::ExitStatusExt;
                128 + status.signal().unwrap_or(9)
            }
            #[cfg(not(unix))]
            1
        }
    };
    stage::upload(&store, &format!("{}{OUT}", args.stage), &args.workdir, &args.maps, &placed, &[]).await?;
    store
        .put(&format!("{}{EXIT}", args.stage), bytes::Bytes::from(code.to_string()))
        .await
        .map_err(|e| format!("cannot record how the step ended: {e}"))?;
    Ok(code)
}

/// Copies a stream of the step to the container's own (for `kubectl logs`) and its log.
async fn tee<R: tokio::io::AsyncRead + Unpin>(
    mut from: R,
    log: std::sync::Arc<tokio::sync::Mutex<tokio::fs::File>>,
    stderr: bool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stderr {
            let _ = tokio::io::stderr().write_all(&buf[..n]).await;
        } else {
            let _ = tokio::io::stdout().write_all(&buf[..n]).await;
        }
        let _ = log.lock().await.write_all(&buf[..n]).await;
    }
}

async fn append_log(path: &Path, text: &[u8]) {
    if let Ok(mut file) = tokio::fs::OpenOptions::new().append(true).create(true).open(path).await {
        let _ = file.write_all(text).await;
    }
}
