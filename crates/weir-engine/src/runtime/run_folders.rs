//! When a run's folder in the work folder goes.
//!
//! A run's folder holds its attempts' folders and its workspace. It goes when the run ends,
//! but only once empty: the pass that ends a run can come while the last steps' folders are
//! still being emptied or recycled (a step's result and the pass it lets happen run beside
//! the removal of its folder, and the engine's loop may end a run on its own). So whoever
//! comes last removes it: the pass that ended the run, or the last attempt whose folder went
//! after that.
//!
//! A pass sets a mark that the run ended before it tries the folder; an attempt removes its
//! own folder before it looks for the mark (the mark is set and read under a lock; the folders
//! are removed outside it). So either the pass finds the folder empty, or the attempt finds
//! the mark and tries again.

use std::collections::HashSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use weir_artifacts::layout;

pub(super) struct RunFolders {
    work_dir: PathBuf,
    /// Ended runs whose folder still held an attempt's folder when the run ended.
    ended: Mutex<HashSet<String>>,
}

impl RunFolders {
    pub(super) fn new(work_dir: &Path) -> Self {
        Self { work_dir: work_dir.to_path_buf(), ended: Mutex::new(HashSet::new()) }
    }

    /// The run ended: its workspace goes with it, as KFP's workspace volume goes with its
    /// workflow, and then its folder, or, while an attempt's folder is still in it, when the
    /// last of those goes ([`RunFolders::attempt_gone`]).
    pub(super) async fn run_ended(&self, run_id: &str) {
        let run_dir = layout::run_dir(&self.work_dir, run_id);
        let _ = tokio::fs::remove_dir_all(run_dir.join("workspace")).await;
        self.ended.lock().expect("ended runs").insert(run_id.to_string());
        self.try_remove(run_id).await;
    }

    /// An attempt's folder of the run is gone (removed or recycled): the run's folder goes
    /// too if the run has ended and this was the last one in it.
    pub(super) async fn attempt_gone(&self, run_id: &str) {
        if self.ended.lock().expect("ended runs").contains(run_id) {
            self.try_remove(run_id).await;
        }
    }

    /// Removes the run's folder if it is empty; forgets the run once the folder is gone.
    async fn try_remove(&self, run_id: &str) {
        let removed = tokio::fs::remove_dir(layout::run_dir(&self.work_dir, run_id)).await;
        if removed.is_ok() || removed.is_err_and(|e| e.kind() == ErrorKind::NotFound) {
            self.ended.lock().expect("ended runs").remove(run_id);
        }
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.ended.lock().expect("ended runs").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_run_folder_goes_with_whichever_comes_last() {
        let work_dir = std::env::temp_dir().join(format!("weir-run-folders-{}", uuid::Uuid::new_v4()));
        let work = work_dir.as_path();
        let folders = RunFolders::new(work);
        let attempt = |run: &str, name: &str| {
            let dir = layout::attempt_dir(work, run, name, 1);
            std::fs::create_dir_all(&dir).unwrap();
            dir
        };

        // The run ends while two attempts' folders are still there: it stays until both go.
        let (a, b) = (attempt("r1", "a"), attempt("r1", "b"));
        std::fs::create_dir_all(layout::run_dir(work, "r1").join("workspace/x")).unwrap();
        folders.run_ended("r1").await;
        assert!(!layout::run_dir(work, "r1").join("workspace").exists(), "the workspace goes at once");
        std::fs::remove_dir_all(a).unwrap();
        folders.attempt_gone("r1").await;
        assert!(layout::run_dir(work, "r1").exists(), "one attempt's folder is still in it");
        std::fs::remove_dir_all(b).unwrap();
        folders.attempt_gone("r1").await;
        assert!(!layout::run_dir(work, "r1").exists());
        assert_eq!(folders.remembered(), 0, "a run whose folder went is forgotten");

        // The attempt's folder goes first: the pass ending the run removes the run's folder.
        let c = attempt("r2", "c");
        std::fs::remove_dir_all(c).unwrap();
        folders.attempt_gone("r2").await;
        assert!(layout::run_dir(work, "r2").exists(), "a running run keeps its folder");
        folders.run_ended("r2").await;
        assert!(!layout::run_dir(work, "r2").exists());
        assert_eq!(folders.remembered(), 0);
        std::fs::remove_dir_all(work).unwrap();
    }
}
