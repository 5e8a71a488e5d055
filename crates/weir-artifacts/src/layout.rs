//! Where weir keeps things: the keys of the artifact store (pipeline packages, step outputs,
//! step logs) and the folders of the engine's work folder where a running step's files live.
//! The engine writes by these rules and the server, the CLI's storage checks and backups read
//! by them, so they are written once, here.

use std::path::{Path, PathBuf};

/// The key prefix of step outputs when neither the run nor the pipeline names a root inside
/// the store.
pub const DEFAULT_ROOT: &str = "artifacts";

/// Where the original file of a pipeline version is kept.
pub fn package_key(pipeline_id: &str, version_id: &str, file_name: &str) -> String {
    let safe: String = file_name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
        .collect();
    let safe = safe.trim_start_matches('.');
    let file = if safe.is_empty() { "pipeline.yaml" } else { safe };
    format!("pipelines/{pipeline_id}/{version_id}/{file}")
}

/// The key of a run's pipeline root inside the store: the run's own root, else the pipeline's
/// default, when either is inside the store at `store_url`; else [`DEFAULT_ROOT`].
pub fn root_key(run_root: &str, default_root: Option<&str>, store_url: &str) -> String {
    [run_root, default_root.unwrap_or_default()]
        .into_iter()
        .filter(|root| !root.is_empty())
        .find_map(|root| key_for_uri(store_url, root.trim_end_matches('/')))
        .filter(|key| !key.is_empty())
        .unwrap_or_else(|| DEFAULT_ROOT.to_string())
}

/// The folder of everything a run's steps wrote under its root (`<root>/<pipeline>/<run>/`).
pub fn run_outputs_prefix(root: &str, pipeline: &str, run_id: &str) -> String {
    format!("{root}/{}/{run_id}/", segment(pipeline))
}

/// The folder of a run's logs.
pub fn run_logs_prefix(run_id: &str) -> String {
    format!("logs/{run_id}/")
}

/// Where an attempt's log is kept: one file per attempt directly in the run's folder of logs.
/// A folder per task would cost a folder made for every step in a folder store (one more inode,
/// the costliest part of a short step on some file systems: bench/RESULTS.md).
pub fn log_key(run_id: &str, task_id: &str, attempt: i64) -> String {
    format!("logs/{run_id}/{task_id}.{attempt}.log")
}

/// Where weir kept an attempt's log before [`log_key`] (a folder per task); logs stored then stay
/// there, so readers look there when the log is not at [`log_key`].
pub fn earlier_log_key(run_id: &str, task_id: &str, attempt: i64) -> String {
    format!("logs/{run_id}/{task_id}/{attempt}.log")
}

/// Where a step's output artifact is kept: under `root` (the run's pipeline root inside the
/// store), by pipeline, run, task and output, as KFP lays out
/// `<pipeline root>/<pipeline>/<run>/<task>/<output>` (`generateOutputURI` in
/// backend/src/v2/component/launcher_v2.go), with the task's id added so that the iterations
/// of a loop do not share a key.
pub fn output_key(root: &str, pipeline: &str, run_id: &str, task_name: &str, task_id: &str, output: &str) -> String {
    format!("{}/{}", task_root_key(root, pipeline, run_id, task_name, task_id), segment(output))
}

/// The folder of a task's outputs, KFP's "task root": what `dsl.get_uri()` builds on
/// (`taskRootRemote` in backend/src/v2/driver/driver.go).
pub fn task_root_key(root: &str, pipeline: &str, run_id: &str, task_name: &str, task_id: &str) -> String {
    format!("{root}/{}/{run_id}/{}/{task_id}", segment(pipeline), segment(task_name))
}

/// The folder of a store whose URL is `file:///…`: steps read and write its artifacts where
/// they are kept, under their durable URIs in path form.
pub fn local_store_root(store_url: &str) -> Option<PathBuf> {
    let path = store_url.strip_prefix("file://")?;
    path.starts_with('/').then(|| PathBuf::from(path.trim_end_matches('/')))
}

/// The key of an artifact named by the path form of its URI in a local store (`/store/key`,
/// what steps see), as [`key_for_uri`] finds it for `file:///store/key`.
pub fn key_for_path(store_url: &str, path: &str) -> Option<String> {
    let root = local_store_root(store_url)?;
    key_for_uri(&root.display().to_string(), path)
}

/// A name made safe as one segment of a key or a path: no separators, no leading dot.
pub fn segment(part: &str) -> String {
    let cleaned: String =
        part.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    let cleaned = cleaned.trim_start_matches('.').to_string();
    if cleaned.is_empty() {
        "_".into()
    } else {
        cleaned
    }
}

/// Which artifacts live in weir's store: the key of a URI under the store's URL. A URI
/// outside it, or one that climbs out of it (`store/../elsewhere`), has none.
pub fn key_for_uri(store_url: &str, uri: &str) -> Option<String> {
    let base = store_url.trim_end_matches('/');
    let key = uri.strip_prefix(base).and_then(|rest| rest.strip_prefix('/'))?;
    let inside = key.split('/').all(|part| !part.is_empty() && part != "." && part != "..");
    inside.then(|| key.to_string())
}

/// The URI of a key of the store at `store_url`.
pub fn uri_for_key(store_url: &str, key: &str) -> String {
    format!("{}/{key}", store_url.trim_end_matches('/'))
}

/// The private folder of one attempt of a step in the engine's work folder (its live log is
/// [`LIVE_LOG`] there). One level per attempt: every folder created and removed per step
/// costs, and steps are many.
pub fn attempt_dir(work_dir: &Path, run_id: &str, task_id: &str, attempt: i64) -> PathBuf {
    run_dir(work_dir, run_id).join(format!("{task_id}.{attempt}"))
}

/// The folder of a run's attempts in the engine's work folder.
pub fn run_dir(work_dir: &Path, run_id: &str) -> PathBuf {
    work_dir.join("runs").join(run_id)
}

/// The log a running attempt writes, in its folder.
pub const LIVE_LOG: &str = "log.txt";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_outside_the_store_have_none() {
        assert_eq!(key_for_uri("s3://b/p", "s3://b/p/artifacts/x"), Some("artifacts/x".into()));
        assert_eq!(key_for_uri("s3://b/p", "s3://b/other/x"), None);
        assert_eq!(key_for_uri("file:///data/", "file:///data/artifacts/x"), Some("artifacts/x".into()));
        assert_eq!(key_for_uri("s3://b/p", "s3://b/p/../q/x"), None);
        assert_eq!(key_for_uri("s3://b/p", "s3://b/p/a//x"), None);
        assert_eq!(key_for_uri("s3://b/p", "s3://b/p/./x"), None);
        assert_eq!(key_for_uri("file:///data", "file:///data/artifacts/../../etc/passwd"), None);
    }

    #[test]
    fn output_keys_are_one_segment_per_name() {
        assert_eq!(
            output_key("artifacts", "my pipe", "r1", "train/x", "t1", ".model"),
            "artifacts/my_pipe/r1/train_x/t1/model"
        );
        assert_eq!(uri_for_key("s3://b/p/", "artifacts/x"), "s3://b/p/artifacts/x");
    }
}
