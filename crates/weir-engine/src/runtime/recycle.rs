//! Attempt folders emptied and reused instead of removed and made again.
//!
//! A step's folder and the exit-status file its process leaves are the inodes a short step
//! makes and frees. On ext4 without a journal the inode allocator checks every inode freed in
//! the last few seconds (minutes, while its inode table block is dirty) one by one before it
//! hands out another, so a run of thousands of short steps spends more of its time there the
//! longer it runs (bench/RESULTS.md, "Inode churn"). A finished attempt's folder is therefore
//! emptied, with its exit-status file and executor output kept but truncated and the folders
//! every attempt makes (its temporary folder, its outputs' folders) kept but emptied, and put
//! aside; the next attempt's folder is that one, renamed into place. None of those allocates or
//! frees an inode.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::step::PRIVATE_TMP;
use weir_artifacts::layout::LIVE_LOG;

use crate::driver::{COMPONENT_DIR, COMPONENT_MODULE, EXECUTOR_OUTPUT, EXIT_FILE};

pub(super) struct Recycler {
    /// This process's spares: `<work_dir>/recycled/<pid>`.
    dir: PathBuf,
    spares: Mutex<Vec<PathBuf>>,
    /// Spares kept at most; beyond, a finished folder is removed.
    keep: usize,
}

impl Recycler {
    /// Removes the spares of weir processes that are gone (this one's pid may be reused).
    pub(super) fn new(work_dir: &Path, keep: usize) -> Self {
        let parent = work_dir.join("recycled");
        if let Ok(entries) = std::fs::read_dir(&parent) {
            for entry in entries.flatten() {
                let alive = entry
                    .file_name()
                    .to_str()
                    .and_then(|pid| pid.parse::<u32>().ok())
                    .is_some_and(|pid| pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists());
                if !alive {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        Self { dir: parent.join(std::process::id().to_string()), spares: Mutex::new(Vec::new()), keep }
    }

    /// Makes `workdir` (which does not exist) from a spare; false when there is none or the
    /// rename failed (then the caller makes the folder).
    pub(super) fn take_into(&self, workdir: &Path) -> bool {
        let Some(spare) = self.spares.lock().expect("spares").pop() else { return false };
        if let Some(parent) = workdir.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        if std::fs::rename(&spare, workdir).is_ok() {
            return true;
        }
        let _ = std::fs::remove_dir_all(&spare);
        false
    }

    /// Puts a finished attempt's folder aside for the next one, or removes it. Everything in
    /// it goes but the exit-status file, which is emptied (a driver reads an empty one as none,
    /// and the next step's process writes it in place), the executor output (emptied too; the
    /// next forked step's executor writes it in place), the component's module (emptied too;
    /// the fork server writes the next one over it), the log (emptied, or made empty when it
    /// went into the store; the next step's header is written in it), and the folders every
    /// attempt makes again ([`KEPT`]), emptied.
    pub(super) fn put(&self, folder: &Path) {
        let spare = self.dir.join(uuid::Uuid::new_v4().simple().to_string());
        let reuse = || -> std::io::Result<bool> {
            if self.spares.lock().expect("spares").len() >= self.keep {
                return Ok(false);
            }
            // A step may have changed the mode of its folder (or of one kept in it): the next
            // one gets the mode a folder made now gets, which `self.dir`'s is. Set first, so
            // that a folder made read-only can be emptied.
            std::fs::create_dir_all(&self.dir)?;
            let fresh = std::fs::metadata(&self.dir)?.permissions();
            std::fs::set_permissions(folder, fresh.clone())?;
            if !empty(folder, "", &fresh) {
                return Ok(false);
            }
            // The next step's log, made now (its log went into a folder store by rename): off
            // the next step's way, which then writes its header in place.
            let log = folder.join(LIVE_LOG);
            if !log.exists() {
                std::fs::File::create(&log)?;
            }
            std::fs::rename(folder, &spare)?;
            Ok(true)
        };
        if matches!(reuse(), Ok(true)) {
            self.spares.lock().expect("spares").push(spare);
        } else {
            let _ = std::fs::remove_dir_all(folder);
        }
    }
}

/// The folders of an attempt's layout (relative to its folder) that a spare keeps, emptied:
/// every Python step gets its temporary folder and the folder of its output parameters, and
/// making one costs an inode allocation, which this file system's allocator makes slow
/// (see the module's documentation). Other folders go.
/// The component module's folder ([`COMPONENT_DIR`]) and the bytecode cache Python makes in it
/// are kept too; emptying the cache matters: a stale `.pyc` whose source had the same size and
/// modification second would be taken for the new module's.
const KEPT: [&str; 6] =
    [PRIVATE_TMP, "outputs", "outputs/parameters", "outputs/artifacts", COMPONENT_DIR, ".weir-component/__pycache__"];

/// Empties a folder (`within` the attempt's folder at that relative path) but for its exit-status
/// file, its executor output and the component's module, truncated, and the folders of [`KEPT`], emptied with the
/// mode `fresh`; false if something else stayed.
fn empty(folder: &Path, within: &str, fresh: &std::fs::Permissions) -> bool {
    let Ok(entries) = std::fs::read_dir(folder) else { return false };
    for entry in entries {
        let Ok(entry) = entry else { return false };
        let path = entry.path();
        let Ok(kind) = entry.file_type() else { return false };
        let name = entry.file_name();
        let relative = match (within, name.to_str()) {
            (_, None) => None,
            ("", Some(name)) => Some(name.to_string()),
            (within, Some(name)) => Some(format!("{within}/{name}")),
        };
        let kept = relative.as_deref().filter(|r| kind.is_dir() && KEPT.contains(r));
        // An exit file with other links is not truncated: that would empty the other names too.
        let lone_file = || std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.nlink() == 1);
        // The files every attempt writes again, emptied rather than removed: writing one in
        // place makes no inode (on ext4 without a journal, each inode freed slows the next
        // allocations for a while: bench/RESULTS.md, "Inode churn").
        let rewritten = (within.is_empty() && (name == EXIT_FILE || name == EXECUTOR_OUTPUT || name == LIVE_LOG))
            || (within == COMPONENT_DIR && name == COMPONENT_MODULE);
        let emptied = if rewritten && lone_file() {
            std::fs::OpenOptions::new().write(true).truncate(true).open(&path).is_ok()
        } else if let Some(relative) = kept {
            std::fs::set_permissions(&path, fresh.clone()).is_ok() && empty(&path, relative, fresh)
        } else if kind.is_dir() {
            std::fs::remove_dir_all(&path).is_ok()
        } else {
            std::fs::remove_file(&path).is_ok()
        };
        if !emptied {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A finished folder comes back empty but for its emptied exit file, whose inode (like the
    /// folder's) is the one the next attempt gets.
    #[test]
    fn a_finished_folder_becomes_the_next_attempts_folder() {
        let work_dir = std::env::temp_dir().join(format!("weir-recycle-{}", uuid::Uuid::new_v4()));
        let recycler = Recycler::new(&work_dir, 1);
        let first = work_dir.join("runs/r/a.1");
        std::fs::create_dir_all(first.join("outputs/parameters")).unwrap();
        std::fs::create_dir_all(first.join("outputs/model/nested")).unwrap();
        std::fs::write(first.join(EXIT_FILE), "0").unwrap();
        std::fs::write(first.join("outputs/parameters/x"), "1").unwrap();
        std::fs::write(first.join(EXECUTOR_OUTPUT), "{}").unwrap();
        // Its log went into the store (moved by rename): none is left in the folder.
        std::fs::create_dir_all(first.join("tmp/tmpabc")).unwrap();
        let pycache = format!("{COMPONENT_DIR}/__pycache__");
        assert!(KEPT.contains(&pycache.as_str()));
        std::fs::create_dir_all(first.join(&pycache)).unwrap();
        std::fs::write(first.join(&pycache).join("ephemeral_component.cpython-311.pyc"), "").unwrap();
        let module = Path::new(COMPONENT_DIR).join(COMPONENT_MODULE);
        std::fs::write(first.join(&module), "def f(): pass\n").unwrap();
        let module_inode = std::fs::metadata(first.join(&module)).unwrap().ino();
        std::fs::write(first.join("tmp/tmpabc/ephemeral_component.py"), "").unwrap();
        let (folder_inode, exit_inode, output_inode) = (
            std::fs::metadata(&first).unwrap().ino(),
            std::fs::metadata(first.join(EXIT_FILE)).unwrap().ino(),
            std::fs::metadata(first.join(EXECUTOR_OUTPUT)).unwrap().ino(),
        );
        recycler.put(&first);
        assert!(!first.exists());
        let next = work_dir.join("runs/s/b.1");
        assert!(recycler.take_into(&next));
        assert!(!recycler.take_into(&work_dir.join("runs/s/c.1")), "one spare, taken");
        let names = |folder: &Path| {
            let mut names: Vec<String> =
                std::fs::read_dir(folder).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
            names.sort();
            names
        };
        assert_eq!(names(&next), [COMPONENT_DIR, EXIT_FILE, EXECUTOR_OUTPUT, LIVE_LOG, "outputs", PRIVATE_TMP]);
        assert_eq!(std::fs::read_to_string(next.join(LIVE_LOG)).unwrap(), "", "a log made for the next step");
        assert_eq!(names(&next.join(COMPONENT_DIR)), ["__pycache__", COMPONENT_MODULE]);
        assert!(names(&next.join(&pycache)).is_empty(), "no bytecode of the last module stays");
        assert_eq!(std::fs::read_to_string(next.join(&module)).unwrap(), "", "the last module is emptied");
        assert_eq!(std::fs::metadata(next.join(&module)).unwrap().ino(), module_inode);
        assert!(names(&next.join(PRIVATE_TMP)).is_empty(), "the temporary folder is emptied");
        assert_eq!(names(&next.join("outputs")), ["parameters"], "other folders in a kept one go");
        assert!(names(&next.join("outputs/parameters")).is_empty());
        assert_eq!(std::fs::read_to_string(next.join(EXIT_FILE)).unwrap(), "");
        assert_eq!(std::fs::metadata(&next).unwrap().ino(), folder_inode);
        assert_eq!(std::fs::metadata(next.join(EXIT_FILE)).unwrap().ino(), exit_inode);
        assert_eq!(std::fs::read_to_string(next.join(EXECUTOR_OUTPUT)).unwrap(), "", "the last output is emptied");
        assert_eq!(std::fs::metadata(next.join(EXECUTOR_OUTPUT)).unwrap().ino(), output_inode);
        // A folder the step made read-only comes back with a fresh folder's mode; an exit file
        // with another name elsewhere is removed, not emptied through both names.
        let other = work_dir.join("elsewhere");
        std::fs::write(&other, "kept").unwrap();
        std::fs::hard_link(&other, next.join(EXIT_FILE).with_extension("tmp")).unwrap();
        std::fs::remove_file(next.join(EXIT_FILE)).unwrap();
        std::fs::rename(next.join(EXIT_FILE).with_extension("tmp"), next.join(EXIT_FILE)).unwrap();
        std::fs::set_permissions(&next, std::fs::Permissions::from_mode(0o500)).unwrap();
        std::fs::write(next.join("outputs/parameters/y"), "2").unwrap();
        // A log still there (copied into a remote store) is emptied, its inode kept.
        std::fs::write(next.join(LIVE_LOG), "a step's output").unwrap();
        let log_inode = std::fs::metadata(next.join(LIVE_LOG)).unwrap().ino();
        std::fs::set_permissions(next.join("outputs/parameters"), std::fs::Permissions::from_mode(0o500)).unwrap();
        recycler.put(&next);
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "kept");
        let again = work_dir.join("runs/s/f.1");
        assert!(recycler.take_into(&again));
        let fresh = std::fs::metadata(&recycler.dir).unwrap().permissions().mode();
        assert_eq!(std::fs::metadata(&again).unwrap().permissions().mode(), fresh);
        assert_eq!(std::fs::metadata(again.join("outputs/parameters")).unwrap().permissions().mode(), fresh);
        assert!(!again.join(EXIT_FILE).exists());
        assert_eq!(std::fs::read_to_string(again.join(LIVE_LOG)).unwrap(), "");
        assert_eq!(std::fs::metadata(again.join(LIVE_LOG)).unwrap().ino(), log_inode);
        assert_eq!(std::fs::read_dir(again.join("outputs/parameters")).unwrap().count(), 0, "emptied though read-only");
        // Past `keep`, a finished folder is removed.
        let (one, two) = (work_dir.join("runs/s/d.1"), work_dir.join("runs/s/e.1"));
        std::fs::create_dir_all(&one).unwrap();
        std::fs::create_dir_all(&two).unwrap();
        recycler.put(&one);
        recycler.put(&two);
        assert!(!one.exists() && !two.exists());
        assert_eq!(std::fs::read_dir(&recycler.dir).unwrap().count(), 1);
        // A later weir removes the spares of one that is gone.
        std::fs::rename(&recycler.dir, work_dir.join("recycled/4294967295")).unwrap();
        let _later = Recycler::new(&work_dir, 1);
        assert_eq!(std::fs::read_dir(work_dir.join("recycled")).unwrap().count(), 0);
        std::fs::remove_dir_all(&work_dir).unwrap();
    }
}
