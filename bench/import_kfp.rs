//! `weir import kfp` at scale (issue 17): a KFP 2.17 installation on MariaDB holding N runs
//! (default 10,000; `WEIR_BENCH_IMPORT_RUNS=100000` for the issue's figure), each with its
//! spec snapshot, parameters and state history, and in ML Metadata its root DAG, one step with
//! parameters and one metrics artifact (12 MLMD rows a run), plus a step log per run in the
//! bucket (a folder store, so the figure is the importer's and not an S3 emulator's).
//!
//! ```sh
//! cargo bench -p weir-import-kfp --bench import_kfp
//! WEIR_BENCH_IMPORT_RUNS=100000 WEIR_BENCH_IMPORT_ONCE=1 cargo bench -p weir-import-kfp --bench import_kfp
//! ```
//!
//! With `WEIR_BENCH_IMPORT_ONCE` each operation is timed once by hand instead of criterion's ten
//! samples (at 100,000 runs ten applies take most of an hour).
//!
//! Measured, each as one whole call of the library function the CLI calls:
//! - `plan`: the dry run, the peer: it reads and maps every row in one snapshot (and checksums
//!   it) but writes nothing, so `apply / plan` is what writing costs over reading;
//! - `apply`: the import into a new SQLite weir (folder artifact store), everything included:
//!   the read, the MLMD reads, log copies, weir's transactions and ledger;
//! - `apply again`: the re-run on the imported weir, which finds every row unchanged.
//!
//! After criterion's medians it prints rows per second and the peak resident memory of one
//! apply (the process's high-water mark, reset before it through /proc/self/clear_refs).

#[path = "../crates/weir-import-kfp/tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Db, Fixture, Shape, Weir};
use criterion::{criterion_group, criterion_main, Criterion};
use weir_artifacts::{ArtifactStore, S3Settings};
use weir_import_kfp::{plan, PlanOptions};
use weir_store::StoreAdmin;
use weir_store_sql::Dialect;

const ROWS_PER_INSERT: usize = 500;

fn runs() -> usize {
    std::env::var("WEIR_BENCH_IMPORT_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
}

/// A five-step pipeline's IR as the kfp SDK compiles it (1.9 kB): what each run snapshots.
fn spec() -> String {
    let mut tasks = String::new();
    let mut components = String::new();
    let mut executors = String::new();
    for i in 0..5 {
        let after = if i == 0 { String::new() } else { format!("\n        dependentTasks:\n        - step-{}", i - 1) };
        tasks.push_str(&format!(
            "      step-{i}:\n        cachingOptions: {{}}\n        componentRef:\n          name: comp-step-{i}{after}\n        taskInfo:\n          name: step-{i}\n"
        ));
        components.push_str(&format!(
            "  comp-step-{i}:\n    executorLabel: exec-step-{i}\n    inputDefinitions:\n      parameters:\n        n:\n          parameterType: NUMBER_INTEGER\n"
        ));
        executors.push_str(&format!(
            "    exec-step-{i}:\n      container:\n        args: [\"{i}\"]\n        command: [sh, -c, 'echo $0']\n        image: python:3.11\n"
        ));
    }
    format!(
        "components:\n{components}deploymentSpec:\n  executors:\n{executors}pipelineInfo:\n  name: bench-import\nroot:\n  dag:\n    tasks:\n{tasks}\
         schemaVersion: 2.1.0\nsdkVersion: kfp-2.17.3\n"
    )
}

fn q(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Inserts rows `0..n` made by `row` into `table`, many per statement.
async fn insert(fixture: &Fixture, table: &str, columns: &str, n: usize, row: impl Fn(usize) -> String) {
    for start in (0..n).step_by(ROWS_PER_INSERT) {
        let values: Vec<String> = (start..(start + ROWS_PER_INSERT).min(n)).map(&row).collect();
        fixture.execute(&format!("INSERT INTO \"{table}\" ({columns}) VALUES {}", values.join(", "))).await;
    }
}

async fn seed(fixture: &Fixture, metadb: &Fixture, objects: &ArtifactStore, n: usize) {
    let spec = q(&spec());
    fixture
        .execute(
            "INSERT INTO \"pipelines\" (\"UUID\", \"CreatedAtInSec\", \"Name\", \"DisplayName\", \"Description\", \"Status\", \"Namespace\") \
             VALUES ('p1', 1700000000, 'bench', 'bench', '', 'READY', '')",
        )
        .await;
    fixture
        .execute(&format!(
            "INSERT INTO \"pipeline_versions\" (\"UUID\", \"CreatedAtInSec\", \"Name\", \"DisplayName\", \"Parameters\", \"PipelineId\", \
             \"Status\", \"Description\", \"PipelineSpec\", \"PipelineSpecURI\") VALUES ('v1', 1700000000, 'v1', 'v1', '', 'p1', 'READY', '', {spec}, '')"
        ))
        .await;
    insert(
        fixture,
        "experiments",
        "\"UUID\", \"Name\", \"Description\", \"CreatedAtInSec\", \"Namespace\", \"StorageState\", \"LastRunCreatedAtInSec\"",
        10,
        |i| format!("('e{i}', 'experiment {i}', '', 1700000000, '', 'AVAILABLE', 0)"),
    )
    .await;
    insert(
        fixture,
        "run_details",
        "\"UUID\", \"DisplayName\", \"Name\", \"Description\", \"Namespace\", \"ExperimentUUID\", \"StorageState\", \"ServiceAccount\", \
         \"PipelineId\", \"PipelineVersionId\", \"PipelineName\", \"PipelineSpecManifest\", \"RuntimeParameters\", \"PipelineRoot\", \
         \"CreatedAtInSec\", \"ScheduledAtInSec\", \"FinishedAtInSec\", \"Conditions\", \"State\", \"StateHistory\", \
         \"PipelineRuntimeManifest\", \"WorkflowRuntimeManifest\"",
        n,
        |i| {
            let t = 1_700_000_000 + i as i64;
            format!(
                "('{}', 'run {i}', 'wf-{i}', '', '', 'e{}', 'AVAILABLE', 'pipeline-runner', 'p1', 'v1', 'bench', {spec}, \
                 '{{\"n\": {i}}}', '', {t}, {t}, {}, 'Succeeded', 'SUCCEEDED', \
                 '[{{\"UpdateTimeInSec\":{t},\"State\":\"PENDING\"}},{{\"UpdateTimeInSec\":{},\"State\":\"SUCCEEDED\"}}]', '', '')",
                run_id(i),
                i % 10,
                t + 60,
                t + 60
            )
        },
    )
    .await;

    // ML Metadata: a run's context, its root DAG and one step (ids 2i+1, 2i+2), the step's
    // properties, and a metrics artifact (id i+1) with its OUTPUT event.
    for statement in common::mlmd_tables(Db::Maria) {
        metadb.execute(&statement).await;
    }
    metadb.execute("INSERT INTO \"MLMDEnv\" VALUES (10)").await;
    metadb
        .execute(
            "INSERT INTO \"Type\" (\"id\", \"name\", \"type_kind\") VALUES (1, 'system.DAGExecution', 0), \
             (2, 'system.ContainerExecution', 0), (4, 'system.Metrics', 1), (6, 'system.PipelineRun', 2)",
        )
        .await;
    insert(metadb, "Context", "\"id\", \"type_id\", \"name\"", n, |i| format!("({}, 6, '{}')", i + 1, run_id(i))).await;
    insert(metadb, "Execution", "\"id\", \"type_id\", \"last_known_state\", \"name\", \"create_time_since_epoch\", \"last_update_time_since_epoch\"", 2 * n, |j| {
        let i = j / 2;
        let ms = (1_700_000_000 + i as i64) * 1000;
        if j % 2 == 0 {
            format!("({}, 1, 3, 'run/{}', {ms}, {})", j + 1, run_id(i), ms + 60_000)
        } else {
            format!("({}, 2, 3, 'step-0', {}, {})", j + 1, ms + 1000, ms + 50_000)
        }
    })
    .await;
    insert(metadb, "Association", "\"id\", \"context_id\", \"execution_id\"", 2 * n, |j| {
        format!("({}, {}, {})", j + 1, j / 2 + 1, j + 1)
    })
    .await;
    let inputs = q(&common::mlmd_struct(&serde_json::json!({"n": 1})));
    insert(
        metadb,
        "ExecutionProperty",
        "\"execution_id\", \"name\", \"is_custom_property\", \"int_value\", \"string_value\"",
        4 * n,
        |k| {
            let step = 2 * (k / 4) + 2;
            match k % 4 {
                0 => format!("({step}, 'task_name', 1, NULL, 'step-0')"),
                1 => format!("({step}, 'parent_dag_id', 1, {}, NULL)", step - 1),
                2 => format!("({step}, 'pod_name', 1, NULL, 'wf-{}-step-0')", k / 4),
                _ => format!("({step}, 'inputs', 1, NULL, {inputs})"),
            }
        },
    )
    .await;
    insert(metadb, "Artifact", "\"id\", \"type_id\", \"uri\", \"state\", \"create_time_since_epoch\"", n, |i| {
        format!(
            "({}, 4, 'minio://mlpipeline/v2/artifacts/bench/{}/step-0/metrics', 2, 1700000000000)",
            i + 1,
            run_id(i)
        )
    })
    .await;
    insert(metadb, "Event", "\"id\", \"artifact_id\", \"execution_id\", \"type\"", n, |i| {
        format!("({}, {}, {}, 4)", i + 1, i + 1, 2 * i + 2)
    })
    .await;
    insert(metadb, "EventPath", "\"event_id\", \"is_index_step\", \"step_key\"", n, |i| {
        format!("({}, 0, 'metrics')", i + 1)
    })
    .await;
    insert(metadb, "ArtifactProperty", "\"artifact_id\", \"name\", \"is_custom_property\", \"double_value\"", n, |i| {
        format!("({}, 'accuracy', 1, 0.9)", i + 1)
    })
    .await;
    for i in 0..n {
        let key = format!("artifacts/wf-{i}/2023/11/14/wf-{i}-step-0/main.log");
        objects.put(&key, bytes::Bytes::from(format!("step 0 of run {i}\n"))).await.unwrap();
    }
}

fn run_id(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let n = runs();
    let folder = tempfile::tempdir().unwrap();
    let objects = ArtifactStore::open(&format!("file://{}", folder.path().display()), &S3Settings::default()).unwrap();
    let started = Instant::now();
    let (fixture, metadb) = rt.block_on(async {
        let fixture = Fixture::create(Db::Maria, Shape::V2_17).await;
        let metadb = Fixture::empty(Db::Maria).await;
        seed(&fixture, &metadb, &objects, n).await;
        (fixture, metadb)
    });
    eprintln!("seeded {n} runs in {:.1} s", started.elapsed().as_secs_f64());
    let options = common::options(&fixture, &metadb, &objects);

    if std::env::var_os("WEIR_BENCH_IMPORT_ONCE").is_some() {
        let started = Instant::now();
        let planned = rt.block_on(plan(&options)).unwrap();
        eprintln!(
            "plan of {n} runs: {:.1} s ({} runs counted)",
            started.elapsed().as_secs_f64(),
            planned.counts["runs"].total
        );
    } else {
        criterion_samples(c, &rt, &options, n);
    }
    one_apply(&rt, &options, n);
    rt.block_on(async {
        fixture.drop().await;
        metadb.drop().await;
    });
}

fn criterion_samples(c: &mut Criterion, rt: &tokio::runtime::Runtime, options: &PlanOptions, n: usize) {
    let mut group = c.benchmark_group(format!("import_kfp_{n}_runs"));
    group.sample_size(10);
    group.bench_function("plan", |b| b.to_async(rt).iter(|| async { plan(options).await.unwrap() }));
    group.bench_function("apply", |b| {
        b.to_async(rt).iter_custom(|iters| {
            async move {
                // Each apply gets a new weir, made off the clock.
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let weir = Weir::new(Dialect::Sqlite).await;
                    let started = Instant::now();
                    let report = weir.import(options, None, false).await;
                    total += started.elapsed();
                    assert_eq!(report.applied.as_ref().unwrap().kinds["run"].inserted, n as u64);
                    weir.drop().await;
                }
                total
            }
        })
    });
    let imported = rt.block_on(async {
        let weir = Weir::new(Dialect::Sqlite).await;
        weir.import(options, None, false).await;
        weir
    });
    group.bench_function("apply again", |b| {
        b.to_async(rt).iter(|| async {
            let report = imported.import(options, None, false).await;
            assert_eq!(report.applied.as_ref().unwrap().kinds["run"].unchanged, n as u64);
        })
    });
    group.finish();
    rt.block_on(imported.drop());
}

/// One apply and one re-run, timed by hand, with the memory high-water mark reset before the
/// apply.
fn one_apply(rt: &tokio::runtime::Runtime, options: &PlanOptions, n: usize) {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = peak_rss_kib();
    let (seconds, rows, again) = rt.block_on(async {
        let weir = Weir::new(Dialect::Sqlite).await;
        let started = Instant::now();
        let report = weir.import(options, None, false).await;
        let seconds = started.elapsed().as_secs_f64();
        let rows: u64 = report.applied.as_ref().unwrap().kinds.values().map(|k| k.inserted).sum();
        let counts = weir.store.table_counts().await.unwrap();
        eprintln!("weir after one apply: {counts:?}");
        let started = Instant::now();
        weir.import(options, None, false).await;
        let again = started.elapsed().as_secs_f64();
        weir.drop().await;
        (seconds, rows, again)
    });
    eprintln!(
        "one apply of {n} runs: {seconds:.1} s, {:.0} runs/s, {:.0} rows/s ({rows} rows: runs, tasks, artifacts and the rest), \
         peak RSS {} MiB (before it: {} MiB); the re-run finding all unchanged: {again:.1} s",
        n as f64 / seconds,
        rows as f64 / seconds,
        peak_rss_kib() / 1024,
        before / 1024
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
