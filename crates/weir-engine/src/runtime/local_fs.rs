//! A step's short filesystem calls, made on the engine's own thread.
//!
//! Between one step's end and the next one's start the engine reads the executor output,
//! moves the log into a `file://` store, readies the next attempt's folder and takes its start
//! marker: a few calls each on local files, 2 µs for a `stat` on the 2-core machines of
//! `bench/RESULTS.md`. Sent to tokio's blocking pool, each batch cost about 50 µs more (a
//! thread woken to make the calls, then the engine's task woken back), on the step's way:
//! four such trips were 0.2–0.3 ms of a Python step's 4.3 ms. So the calls are made where the
//! engine runs, and only work that may take long (removing what an earlier attempt left,
//! reading a big file) goes to the pool.

/// Runs `work` here, or on the blocking pool when `long`. `None` when the pool's thread
/// panicked.
pub(super) async fn run<T: Send + 'static>(long: bool, work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    if long {
        tokio::task::spawn_blocking(work).await.ok()
    } else {
        Some(work())
    }
}

/// Files up to this size are read here: a megabyte from the page cache is well under a
/// millisecond.
pub(super) const READ_HERE: u64 = 1 << 20;

/// Whether reading any of `paths` may take long: one is bigger than [`READ_HERE`].
pub(super) fn big(paths: &[&std::path::Path]) -> bool {
    paths.iter().any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > READ_HERE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_here_or_on_the_pool_and_gives_its_value() {
        let here = std::thread::current().id();
        let (value, on) = run(false, || (7, std::thread::current().id())).await.unwrap();
        assert_eq!((value, on), (7, here));
        let (value, on) = run(true, || (8, std::thread::current().id())).await.unwrap();
        assert_eq!(value, 8);
        assert_ne!(on, here, "long work goes to the blocking pool");
        assert_eq!(run(true, || -> u8 { panic!("boom") }).await, None);
    }

    #[test]
    fn only_a_file_over_the_limit_is_big() {
        let dir = std::env::temp_dir().join(format!("weir-local-fs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (small, large, missing) = (dir.join("s"), dir.join("l"), dir.join("m"));
        std::fs::write(&small, vec![b'x'; READ_HERE as usize]).unwrap();
        std::fs::write(&large, vec![b'x'; READ_HERE as usize + 1]).unwrap();
        assert!(!big(&[&small, &missing]));
        assert!(big(&[&small, &large]));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
