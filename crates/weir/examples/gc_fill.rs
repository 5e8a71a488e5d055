//! Fills a weir storage with finished runs for `bench/gc.py`: each run has a root task and one
//! container step that ran once, its log object and one output object under its folder, as a
//! finished one-step run leaves them. Rows go in bulk; objects are written 64 at a time.
//!
//! ```sh
//! target/release/examples/gc_fill --metadata sqlite:///tmp/g/weir.db --artifacts file:///tmp/g/artifacts --runs 100000
//! ```
//!
//! The storage must exist (a weir started on it once): the runs go into its Default experiment.

use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use weir_artifacts::{layout, ArtifactStore, S3Settings};
use weir_store::testsuite::{run, task};
use weir_store::{ExperimentStore, RuntimeState, TaskKind};
use weir_store_sql::{ConnectSettings, SqlStore};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_string())
}

#[tokio::main]
async fn main() {
    let metadata = arg("--metadata", "");
    let artifacts_url = arg("--artifacts", "");
    let runs_n: usize = arg("--runs", "100000").parse().expect("--runs N");
    let s3 = S3Settings { endpoint: std::env::var("AWS_ENDPOINT_URL").ok(), ..Default::default() };
    let store = SqlStore::connect(&metadata, &ConnectSettings::default()).await.expect("metadata store");
    let artifacts = ArtifactStore::open(&artifacts_url, &s3).expect("artifact store");
    let experiment = store.get_experiment_by_name("", "Default").await.expect("a storage weir has started on");
    let started = Instant::now();
    let mut keys = Vec::with_capacity(runs_n * 2);
    for chunk_start in (0..runs_n).step_by(5_000) {
        let (mut runs, mut tasks) = (Vec::new(), Vec::new());
        for i in chunk_start..(chunk_start + 5_000).min(runs_n) {
            let at = 1_600_000_000_000 + i as i64 * 1_000;
            let mut r = run(&experiment.id, &format!("gc-{i}"), at);
            r.state = if i % 10 == 0 { RuntimeState::Failed } else { RuntimeState::Succeeded };
            r.finished_at = at + 500;
            let mut root = task(&r.id, "root", TaskKind::Dag, at);
            root.state = r.state;
            let mut step = task(&r.id, "step", TaskKind::Container, at);
            step.parent_id = root.id.clone();
            step.state = r.state;
            step.attempts = 1;
            keys.push(layout::log_key(&r.id, &step.id, 1));
            keys.push(layout::output_key("artifacts", "p", &r.id, "step", &step.id, "data"));
            tasks.extend([root, step]);
            runs.push(r);
        }
        store.bulk_load(&runs, &tasks).await.expect("bulk load");
    }
    let rows_s = started.elapsed().as_secs_f64();
    let payload = Bytes::from(vec![b'x'; 512]);
    futures::stream::iter(keys.iter().map(|key| {
        let (artifacts, payload) = (artifacts.clone(), payload.clone());
        async move { artifacts.put(key, payload).await.expect("put") }
    }))
    .buffer_unordered(64)
    .collect::<Vec<()>>()
    .await;
    eprintln!(
        "filled {runs_n} runs ({} task rows) in {rows_s:.1} s and {} objects in {:.1} s",
        runs_n * 2,
        keys.len(),
        started.elapsed().as_secs_f64() - rows_s
    );
    store.close().await;
}
