//! The web UI's server-side costs (issue 15): a 1,000-node graph laid out and drawn, the runs
//! page on a store of many runs, and the page of a 1,000-node run. Each figure is the server's
//! whole handling of one request through the UI's router (middleware, services, SQLite store,
//! template), without the network.
//!
//! ```sh
//! cargo bench -p weir-ui --bench ui                          # 20,000 runs in the store
//! WEIR_BENCH_UI_RUNS=1000000 WEIR_BENCH_UI_SPEC=small cargo bench -p weir-ui --bench ui
//! ```
//!
//! Runs carry the 20-step spec the API-scale benchmark uses (`bench/scale-20.yaml`, compiled by
//! the kfp SDK, 49 kB as stored), finished, in the Default experiment; with
//! `WEIR_BENCH_UI_SPEC=small` a 5-step spec of 0.7 kB instead, so a million runs fit on a test
//! machine's disk (49 GB of specs otherwise). After criterion's medians it prints p50 and p99
//! over 300 further requests of each page.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::Request;
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};
use tower::ServiceExt;
use weir_artifacts::{ArtifactStore, S3Settings};
use weir_server::lifecycle::{open_storage, UpgradePolicy};
use weir_service::{Context, Services};
use weir_store::{RuntimeState, SystemClock, TaskKind};
use weir_store_sql::{ConnectSettings, SqlStore};
use weir_ui::graph::{Graph, Node, NodeKind};

const BIG_RUN_NODES: usize = 1_000;
const LOAD_BATCH: usize = 5_000;

/// `nodes` tasks in rows of ten: each depends on the one above it and, across rows, on its
/// left neighbour's upstream (so ranks, long edges and crossings all occur).
fn edges(nodes: usize) -> Vec<(usize, usize)> {
    let mut edges = Vec::new();
    for i in 10..nodes {
        edges.push((i - 10, i));
        if i % 10 != 0 && i % 3 == 0 {
            edges.push((i - 11, i));
        }
    }
    edges
}

fn graph(nodes: usize) -> Graph {
    let nodes_list = (0..nodes)
        .map(|i| Node {
            key: format!("task-{i}"),
            label: format!("task-{i}"),
            kind: NodeKind::Container,
            state: Some(RuntimeState::Succeeded),
            note: String::new(),
            condition: String::new(),
            exit_handler: false,
            href: Some(format!("/runs/x?node={i}")),
            selected: false,
        })
        .collect();
    Graph { nodes: nodes_list, edges: edges(nodes) }
}

fn big_spec(nodes: usize) -> Value {
    let mut tasks = serde_json::Map::new();
    let deps: Vec<(usize, usize)> = edges(nodes);
    for i in 0..nodes {
        let upstream: Vec<String> =
            deps.iter().filter(|(_, to)| *to == i).map(|(from, _)| format!("task-{from}")).collect();
        tasks.insert(
            format!("task-{i}"),
            json!({"taskInfo": {"name": format!("task-{i}")}, "componentRef": {"name": "comp-step"}, "dependentTasks": upstream}),
        );
    }
    json!({
        "pipelineInfo": {"name": "big"},
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfp-2.17.3",
        "deploymentSpec": {"executors": {"exec-step": {"container": {"image": "python:3.11", "command": ["true"]}}}},
        "components": {"comp-step": {"executorLabel": "exec-step"}},
        "root": {"dag": {"tasks": tasks}}
    })
}

struct Fixture {
    router: axum::Router,
    /// The KFP API on the same services: the peer each page is measured against.
    api: axum::Router,
    big_run: String,
    runs: usize,
    _dir: tempfile::TempDir,
}

async fn fixture(runs: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/weir.db", dir.path().display());
    let store = Arc::new(SqlStore::connect(&url, &ConnectSettings::default()).await.unwrap());
    let artifacts =
        ArtifactStore::open(&format!("file://{}/artifacts", dir.path().display()), &S3Settings::default()).unwrap();
    open_storage(store.as_ref(), &artifacts, UpgradePolicy::Manual, "bench", 1).await.unwrap();
    let services = Services::new(Context::new(store.clone(), artifacts, Arc::new(SystemClock)));
    let experiment = services.experiments.default_experiment().await.unwrap();
    let spec: Value = match std::env::var("WEIR_BENCH_UI_SPEC").as_deref() {
        Ok("small") => big_spec(5),
        _ => serde_norway::from_str(include_str!("scale-20.yaml")).unwrap(),
    };
    eprintln!("runs carry a spec of {} bytes", spec.to_string().len());
    let started = Instant::now();
    let mut loaded = 0;
    while loaded < runs {
        let batch: Vec<_> = (loaded..runs.min(loaded + LOAD_BATCH))
            .map(|n| {
                let mut run = weir_store::testsuite::run(
                    &experiment.id,
                    &format!("run {n}"),
                    1_600_000_000_000 + n as i64 * 1000,
                );
                run.pipeline_spec = spec.clone();
                run.state = RuntimeState::Succeeded;
                run.finished_at = run.created_at + 60_000;
                run
            })
            .collect();
        store.bulk_load(&batch, &[]).await.unwrap();
        loaded += batch.len();
    }
    eprintln!("loaded {runs} runs in {:.1} s", started.elapsed().as_secs_f64());
    // One run of a 1,000-step pipeline, every step finished.
    let mut big = weir_store::testsuite::run(&experiment.id, "big run", 1_700_000_000_000);
    big.pipeline_spec = big_spec(BIG_RUN_NODES);
    big.state = RuntimeState::Succeeded;
    big.finished_at = big.created_at + 600_000;
    let mut root = weir_store::testsuite::task(&big.id, "root", TaskKind::Dag, big.created_at);
    root.state = RuntimeState::Succeeded;
    let mut tasks = vec![root.clone()];
    for i in 0..BIG_RUN_NODES {
        let mut task = weir_store::testsuite::task(&big.id, &format!("task-{i}"), TaskKind::Container, big.created_at);
        task.parent_id = root.id.clone();
        task.state = RuntimeState::Succeeded;
        task.attempts = 1;
        task.started_at = big.created_at + i as i64;
        task.finished_at = task.started_at + 500;
        tasks.push(task);
    }
    store.bulk_load(std::slice::from_ref(&big), &tasks).await.unwrap();
    let api = weir_server::router(weir_server::AppState::from_context(Context::clone(&services.context)));
    let router = weir_ui::router(services, weir_ui::UiConfig::default());
    Fixture { router, api, big_run: big.id, runs, _dir: dir }
}

async fn get(router: &axum::Router, path: &str) -> usize {
    let response = router.clone().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap().len()
}

fn percentiles(runtime: &tokio::runtime::Runtime, router: &axum::Router, path: &str) -> (f64, f64) {
    let mut samples: Vec<f64> = (0..300)
        .map(|_| {
            let started = Instant::now();
            runtime.block_on(get(router, path));
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    (samples[samples.len() / 2], samples[samples.len() * 99 / 100])
}

fn benches(c: &mut Criterion) {
    let g = graph(BIG_RUN_NODES);
    c.bench_function("layout 1,000 nodes", |b| {
        b.iter(|| weir_ui::layout::layout(g.nodes.len(), &g.edges, weir_ui::layout::Spacing::default()).unwrap())
    });
    c.bench_function("layout + SVG 1,000 nodes", |b| b.iter(|| g.to_svg().unwrap()));

    let runs: usize = std::env::var("WEIR_BENCH_UI_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let fixture = runtime.block_on(fixture(runs));
    let (router, api) = (&fixture.router, &fixture.api);
    let details = format!("/runs/{}", fixture.big_run);
    // What kfp.Client asks for the same data: a page of 25 runs, newest first, and one run
    // with its 1,000 task details.
    let api_list = "/apis/v2beta1/runs?page_size=25&sort_by=created_at%20desc";
    let api_get = format!("/apis/v2beta1/runs/{}", fixture.big_run);
    let bytes = runtime.block_on(get(router, "/runs"));
    eprintln!("runs page: {bytes} bytes; run details page: {} bytes", runtime.block_on(get(router, &details)));
    c.bench_function(&format!("runs page ({} runs)", fixture.runs), |b| {
        b.to_async(&runtime).iter(|| get(router, "/runs"))
    });
    c.bench_function(&format!("API list 25 runs ({} runs)", fixture.runs), |b| {
        b.to_async(&runtime).iter(|| get(api, api_list))
    });
    c.bench_function("run details (1,000-node run)", |b| b.to_async(&runtime).iter(|| get(router, &details)));
    c.bench_function("API get run (1,000-node run)", |b| b.to_async(&runtime).iter(|| get(api, &api_get)));
    for (name, app, path) in [
        ("runs page", router, "/runs"),
        ("API list 25 runs", api, api_list),
        ("run details", router, details.as_str()),
        ("API get run", api, api_get.as_str()),
    ] {
        let (p50, p99) = percentiles(&runtime, app, path);
        eprintln!("{name}: p50 {p50:.2} ms, p99 {p99:.2} ms over 300 requests");
    }
}

criterion_group! {
    name = ui;
    config = Criterion::default().sample_size(30);
    targets = benches
}
criterion_main!(ui);
