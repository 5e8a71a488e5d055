//! An attempt's folder staged in the object store as two tar objects: `in.tar` as weir
//! prepared it, `out.tar` with what the step changed, and `exit` last, with how it ended.
//! Paths are relative to the attempt's folder; the launcher places the files of a mapped
//! folder (an object store's artifacts seen at `/s3/…`) at the path the step sees them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use weir_artifacts::ArtifactStore;

/// What weir stages for the step.
pub const IN: &str = "in.tar";
/// What the step left.
pub const OUT: &str = "out.tar";
/// What the launcher writes last: how the step ended.
pub const EXIT: &str = "exit";

/// A file as it was placed, to tell what the step changed.
pub type Placed = HashMap<PathBuf, (u64, Option<SystemTime>)>;

/// Every file under `root` (links not followed), relative to it.
pub fn files_under(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if !root.exists() {
        return Ok(out);
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path().strip_prefix(root).unwrap_or(&entry.path()).to_path_buf());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Where a file of the attempt's folder is for the step: in a mapped folder's place, or as is.
pub fn seen_path(workdir: &Path, relative: &Path, maps: &[(PathBuf, PathBuf)]) -> PathBuf {
    let path = workdir.join(relative);
    for (folder, seen_at) in maps {
        if let Ok(rest) = path.strip_prefix(folder) {
            return seen_at.join(rest);
        }
    }
    path
}

/// Packs the files of `workdir` (its mapped folders read where the step sees them) that
/// `unchanged` does not say were placed and left alone, minus `skip`, as one tar object at
/// `key`: one request whatever the number of files, and short keys whatever their paths.
/// Returns how many files it packed.
pub async fn upload(
    store: &ArtifactStore,
    key: &str,
    workdir: &Path,
    maps: &[(PathBuf, PathBuf)],
    unchanged: &Placed,
    skip: &[PathBuf],
) -> Result<usize, String> {
    let (workdir, maps, unchanged, skip) = (workdir.to_path_buf(), maps.to_vec(), unchanged.clone(), skip.to_vec());
    let packed = tokio::task::spawn_blocking(move || pack(&workdir, &maps, &unchanged, &skip))
        .await
        .map_err(|e| e.to_string())??;
    let (file, count) = packed;
    store.put_file(key, file.path()).await.map_err(|e| format!("cannot stage the attempt's files: {e}"))?;
    Ok(count)
}

fn pack(
    workdir: &Path,
    maps: &[(PathBuf, PathBuf)],
    unchanged: &Placed,
    skip: &[PathBuf],
) -> Result<(tempfile::NamedTempFile, usize), String> {
    let mut files = files_under(workdir).map_err(|e| format!("cannot list {}: {e}", workdir.display()))?;
    for (folder, seen_at) in maps {
        let listed = files_under(seen_at).map_err(|e| format!("cannot list {}: {e}", seen_at.display()))?;
        if let Ok(base) = folder.strip_prefix(workdir) {
            files.extend(listed.into_iter().map(|f| base.join(f)));
        }
    }
    files.sort();
    files.dedup();
    let file = tempfile::NamedTempFile::new().map_err(|e| format!("cannot make a temporary file: {e}"))?;
    let mut tar = tar::Builder::new(file.reopen().map_err(|e| e.to_string())?);
    let mut count = 0;
    for relative in files {
        if skip.contains(&relative) {
            continue;
        }
        let path = seen_path(workdir, &relative, maps);
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        if unchanged.get(&path) == Some(&(meta.len(), meta.modified().ok())) {
            continue;
        }
        tar.append_path_with_name(&path, &relative).map_err(|e| format!("cannot pack {}: {e}", path.display()))?;
        count += 1;
    }
    tar.into_inner().and_then(|mut f| std::io::Write::flush(&mut f)).map_err(|e| e.to_string())?;
    Ok((file, count))
}

/// Unpacks the tar object at `key` into `workdir` (mapped folders' files where the step sees
/// them); returns what it placed. None when there is no such object.
pub async fn download(
    store: &ArtifactStore,
    key: &str,
    workdir: &Path,
    maps: &[(PathBuf, PathBuf)],
) -> Result<Option<Placed>, String> {
    if !store.exists(key).await.map_err(|e| format!("cannot read {key}: {e}"))? {
        return Ok(None);
    }
    let file = tempfile::NamedTempFile::new().map_err(|e| format!("cannot make a temporary file: {e}"))?;
    store.get_to_file(key, file.path()).await.map_err(|e| format!("cannot fetch {key}: {e}"))?;
    let (workdir, maps) = (workdir.to_path_buf(), maps.to_vec());
    let placed = tokio::task::spawn_blocking(move || unpack(file.path(), &workdir, &maps))
        .await
        .map_err(|e| e.to_string())??;
    Ok(Some(placed))
}

fn unpack(archive: &Path, workdir: &Path, maps: &[(PathBuf, PathBuf)]) -> Result<Placed, String> {
    let file = std::fs::File::open(archive).map_err(|e| e.to_string())?;
    let mut tar = tar::Archive::new(file);
    let mut placed = Placed::new();
    for entry in tar.entries().map_err(|e| format!("cannot read the staged files: {e}"))? {
        let mut entry = entry.map_err(|e| format!("cannot read the staged files: {e}"))?;
        let relative = entry.path().map_err(|e| e.to_string())?.into_owned();
        // Only plain relative paths: nothing staged may land outside the attempt.
        if !relative.components().all(|c| matches!(c, std::path::Component::Normal(_))) {
            return Err(format!("the staged files name a path outside the attempt: {}", relative.display()));
        }
        let path = seen_path(workdir, &relative, maps);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot make {}: {e}", parent.display()))?;
        }
        entry.unpack(&path).map_err(|e| format!("cannot place {}: {e}", path.display()))?;
        if let Ok(meta) = std::fs::metadata(&path) {
            placed.insert(path, (meta.len(), meta.modified().ok()));
        }
    }
    Ok(placed)
}

/// Removes a staged attempt (both halves).
pub async fn remove(store: &ArtifactStore, prefix: &str) {
    if let Ok(keys) = store.list(prefix.trim_end_matches('/')).await {
        for key in keys {
            let _ = store.delete(&key).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_folders_are_seen_at_their_place() {
        let maps = vec![(PathBuf::from("/w/a/1/mnt"), PathBuf::from("/s3"))];
        let w = Path::new("/w/a/1");
        assert_eq!(seen_path(w, Path::new("mnt/b/k"), &maps), PathBuf::from("/s3/b/k"));
        assert_eq!(seen_path(w, Path::new("outputs/x"), &maps), PathBuf::from("/w/a/1/outputs/x"));
    }

    #[tokio::test]
    async fn a_folder_goes_round_through_the_store_and_only_changes_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let store_dir = dir.path().join("store");
        let store = ArtifactStore::open(&format!("file://{}", store_dir.display()), &Default::default()).unwrap();
        let weir_side = dir.path().join("weir/1");
        std::fs::create_dir_all(weir_side.join("mnt/b")).unwrap();
        std::fs::create_dir_all(weir_side.join("inputs")).unwrap();
        std::fs::write(weir_side.join("inputs/in.txt"), "input").unwrap();
        std::fs::write(weir_side.join("mnt/b/obj"), "object").unwrap();
        assert_eq!(upload(&store, "st/in.tar", &weir_side, &[], &Placed::new(), &[]).await.unwrap(), 2);

        // The pod: the same folder path elsewhere, the mapped folder seen at its own place.
        let pod_root = dir.path().join("pod");
        let pod_side = pod_root.join("weir/1");
        let seen = pod_root.join("s3");
        let maps = vec![(pod_side.join("mnt"), seen.clone())];
        let placed = download(&store, "st/in.tar", &pod_side, &maps).await.unwrap().unwrap();
        assert_eq!(std::fs::read_to_string(seen.join("b/obj")).unwrap(), "object");
        assert_eq!(std::fs::read_to_string(pod_side.join("inputs/in.txt")).unwrap(), "input");
        std::fs::create_dir_all(seen.join("b/out")).unwrap();
        std::fs::write(seen.join("b/out/result"), "made").unwrap();
        std::fs::write(pod_side.join("outputs.txt"), "param").unwrap();
        assert_eq!(upload(&store, "st/out.tar", &pod_side, &maps, &placed, &[]).await.unwrap(), 2);

        download(&store, "st/out.tar", &weir_side, &[]).await.unwrap().unwrap();
        assert_eq!(std::fs::read_to_string(weir_side.join("mnt/b/out/result")).unwrap(), "made");
        assert_eq!(std::fs::read_to_string(weir_side.join("outputs.txt")).unwrap(), "param");
        assert!(download(&store, "st/none.tar", &weir_side, &[]).await.unwrap().is_none());
        remove(&store, "st/").await;
        assert!(store.list("st").await.unwrap().is_empty());
    }
}
