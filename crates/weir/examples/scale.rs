//! API scale: fills a weir metadata store with finished runs that carry real pipeline specs,
//! then measures create run, get run and list runs (a page of 100 in one experiment, newest
//! first, and the next page) through the HTTP API, with one client and with concurrent
//! clients, as p50/p99 over thousands of requests.
//!
//! ```sh
//! cargo build --release -p weir --bins --examples
//! target/release/examples/scale --metadata sqlite:///tmp/s/weir.db --runs 10000,100000 --data /tmp/s
//! ```
//!
//! The runs carry the specs of two pipelines compiled by the kfp SDK (`bench/scale-20.yaml` and
//! `bench/scale-200.yaml`, made by `bench/scale_specs.py`): nine runs in ten the 20-step one, one
//! in ten the 200-step one, in each experiment; each run has the task rows a finished run of
//! its pipeline has (root, one per step, one per condition). Rows go straight into the store
//! in bulk (far faster than the API). The example starts `target/release/weir server` on the
//! store and prints, for each size, the load and a table of latencies (`--samples` requests
//! per operation, with one client and with `--clients` clients at once). Created runs carry the
//! same mix of specs; weir is started with `--executor-python /bin/false`, so each of them
//! fails at its first step instead of doing work. After the largest size it also measures, on
//! that store, the server's time to answer its first list request after a start and, with
//! `--upgrade`, `weir storage upgrade` of the newest migration (undone first, so the upgrade
//! has the real work to do, its backup included). `--data DIR` keeps the artifact folder, so the
//! store can be measured again later (runs already in the store count towards the sizes).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Map, Value};
use weir_store::testsuite::{run, task};
use weir_store::*;
use weir_store_sql::{ConnectSettings, SqlStore};

/// One loaded or created run in this many carries the 200-step spec, the others the 20-step one.
const BIG_EVERY: usize = 10;
/// Spec bytes per bulk transaction: MariaDB refuses statements over `max_allowed_packet`
/// (16 MiB by default), and a transaction's runs go in one statement.
const BATCH_SPEC_BYTES: usize = 8 << 20;
/// Loaded runs start at this time (ms), one second apart; created runs are newer.
const LOADED_FROM: i64 = 1_600_000_000_000;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_string())
}

/// Loaded runs have ids made from their number, so a get can pick any of them at random, even
/// on a store loaded by an earlier invocation.
fn run_id(n: usize) -> String {
    format!("5ca1e000-0000-4000-8000-{n:012}")
}

/// A compiled pipeline that runs carry, and the task rows a finished run of it has.
struct Pipeline {
    spec: Value,
    /// The spec as the store keeps it (compact JSON), in bytes.
    stored_bytes: usize,
    tasks: Vec<TaskTemplate>,
    /// `POST /runs` body with this spec.
    create_body: Bytes,
    parameters: Map<String, Value>,
}

struct TaskTemplate {
    name: String,
    kind: TaskKind,
    parent: Option<usize>,
    inputs: Value,
    outputs: Value,
}

impl Pipeline {
    fn load(path: &std::path::Path, experiment_id: &str) -> Self {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {} (made by bench/scale_specs.py): {e}", path.display()));
        let spec: Value = serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let stored_bytes = serde_json::to_string(&spec).unwrap().len();
        let root_inputs = io_values(&spec["root"]["inputDefinitions"], 0);
        let parameters = root_inputs["parameters"].as_object().cloned().unwrap_or_default();
        let mut tasks = vec![TaskTemplate {
            name: "root".into(),
            kind: TaskKind::Dag,
            parent: None,
            inputs: root_inputs,
            outputs: io_values(&spec["root"]["outputDefinitions"], 1),
        }];
        walk(&spec, &spec["root"]["dag"]["tasks"], 0, &mut tasks);
        let create_body = serde_json::to_vec(&json!({
            "display_name": "measured", "experiment_id": experiment_id, "pipeline_spec": spec,
        }))
        .unwrap()
        .into();
        Self { spec, stored_bytes, tasks, create_body, parameters }
    }

    fn steps(&self) -> usize {
        self.tasks.iter().filter(|t| t.kind == TaskKind::Container).count()
    }

    /// Run `n` as a finished run of this pipeline, with its tasks.
    fn finished_run(&self, n: usize, experiment_id: &str) -> (Run, Vec<Task>) {
        let created = LOADED_FROM + n as i64 * 1000;
        let mut r = run(experiment_id, &format!("run-{n}"), created);
        r.id = run_id(n);
        r.pipeline_spec = self.spec.clone();
        r.parameters = self.parameters.clone();
        r.pipeline_root = "file:///data/artifacts/pipelines".into();
        let finished = created + 10 * self.tasks.len() as i64;
        r.state = RuntimeState::Succeeded;
        r.finished_at = finished;
        r.state_history = history(created, finished);
        let mut ids: Vec<String> = Vec::with_capacity(self.tasks.len());
        let tasks = self
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let at = created + i as i64 * 10;
                let mut row = task(&r.id, &t.name, t.kind, at);
                ids.push(row.id.clone());
                row.parent_id = t.parent.map(|p| ids[p].clone()).unwrap_or_default();
                row.state = RuntimeState::Succeeded;
                row.attempts = i64::from(t.kind == TaskKind::Container);
                row.inputs = serde_json::from_value(t.inputs.clone()).expect("task inputs");
                row.outputs = serde_json::from_value(t.outputs.clone()).expect("task outputs");
                row.pipeline_name = self.spec["pipelineInfo"]["name"].as_str().unwrap_or_default().into();
                if t.kind == TaskKind::Container {
                    row.fingerprint = format!("{:064x}", ((n as u128) << 16) | i as u128);
                } else {
                    row.image = String::new();
                }
                row.started_at = at + 1;
                row.finished_at = if t.kind == TaskKind::Container { at + 9 } else { finished };
                row.state_history = history(at, row.finished_at);
                row
            })
            .collect();
        (r, tasks)
    }
}

fn history(created: i64, finished: i64) -> Vec<StateChange> {
    [(created, RuntimeState::Pending), (created + 1, RuntimeState::Running), (finished, RuntimeState::Succeeded)]
        .into_iter()
        .map(|(update_time, state)| StateChange { update_time, state, error: None })
        .collect()
}

/// The tasks of a DAG in the spec, depth first: a container per executor, a DAG task (and its
/// own tasks) per sub-DAG, such as a condition's.
fn walk(spec: &Value, dag_tasks: &Value, parent: usize, out: &mut Vec<TaskTemplate>) {
    for (name, t) in dag_tasks.as_object().into_iter().flatten() {
        let component = &spec["components"][t["componentRef"]["name"].as_str().unwrap_or_default()];
        let template = |kind| TaskTemplate {
            name: name.clone(),
            kind,
            parent: Some(parent),
            inputs: io_values(&component["inputDefinitions"], out.len() as i64 * 2),
            outputs: io_values(&component["outputDefinitions"], out.len() as i64 * 2 + 1),
        };
        if component.get("dag").is_some() {
            out.push(template(TaskKind::Dag));
            let index = out.len() - 1;
            walk(spec, &component["dag"]["tasks"], index, out);
        } else {
            out.push(template(TaskKind::Container));
        }
    }
}

/// A task's inputs or outputs as weir keeps them: parameter values by the declared type, and
/// artifact ids.
fn io_values(definitions: &Value, artifact_id: i64) -> Value {
    let parameters: Map<String, Value> = definitions["parameters"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, p)| {
            let value = match p["parameterType"].as_str().unwrap_or_default() {
                "NUMBER_INTEGER" => json!(1000),
                "NUMBER_DOUBLE" => json!(0.61),
                "BOOLEAN" => json!(true),
                "STRING" => json!("gs://bucket/table"),
                _ => json!({}),
            };
            (name.clone(), value)
        })
        .collect();
    let artifacts: Map<String, Value> = definitions["artifacts"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, _)| (name.clone(), json!([1_000_000 + artifact_id])))
        .collect();
    json!({"parameters": parameters, "artifacts": artifacts})
}

/// Which pipeline run `n` (loaded or created) carries: one in `BIG_EVERY` per experiment (loaded
/// runs alternate between two experiments).
fn is_big(n: usize) -> bool {
    (n / 2).is_multiple_of(BIG_EVERY)
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Create,
    Get,
    List,
    NextPage,
}

impl Op {
    fn label(self) -> &'static str {
        match self {
            Op::Create => "create run",
            Op::Get => "get run",
            Op::List => "list 100 (experiment, newest first)",
            Op::NextPage => "next page",
        }
    }
}

struct Ctx {
    http: reqwest::Client,
    base: String,
    small: Bytes,
    big: Bytes,
    /// Loaded runs `0..numbered` exist (ids from `run_id`).
    numbered: usize,
    list_url: String,
    next_url: String,
    created: std::sync::Mutex<Vec<String>>,
}

impl Ctx {
    /// One request, its response read whole; returns the response's size.
    async fn call(&self, op: Op, i: usize) -> usize {
        let request = match op {
            Op::Create => self
                .http
                .post(format!("{}/apis/v2beta1/runs", self.base))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(if i.is_multiple_of(BIG_EVERY) { self.big.clone() } else { self.small.clone() }),
            Op::Get => {
                let n = (mix(i as u64) % self.numbered as u64) as usize;
                self.http.get(format!("{}/apis/v2beta1/runs/{}", self.base, run_id(n)))
            }
            Op::List => self.http.get(&self.list_url),
            Op::NextPage => self.http.get(&self.next_url),
        };
        let response = request.send().await.unwrap();
        let status = response.status();
        let body = response.bytes().await.unwrap();
        assert!(status.is_success(), "{op:?}: {status} {}", String::from_utf8_lossy(&body[..body.len().min(500)]));
        if let Op::Create = op {
            let created: Value = serde_json::from_slice(&body).unwrap();
            self.created.lock().unwrap().push(created["run_id"].as_str().unwrap().to_string());
        }
        body.len()
    }
}

/// splitmix64: a spread of run numbers for gets without a random-number crate.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct Stats {
    p50: f64,
    p99: f64,
    max: f64,
    per_second: f64,
    mean_bytes: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// `samples` requests from `clients` clients at once, each sending its next request when its
/// previous one is answered; a few untimed requests first open the connections.
async fn measure(ctx: &Arc<Ctx>, op: Op, clients: usize, samples: usize) -> Stats {
    if !matches!(op, Op::Create) {
        let warm: Vec<_> = (0..clients)
            .map(|c| {
                let ctx = ctx.clone();
                tokio::spawn(async move { ctx.call(op, usize::MAX / 2 + c).await })
            })
            .collect();
        for w in warm {
            w.await.unwrap();
        }
    }
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|c| {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut bytes = 0;
                for i in (c..samples).step_by(clients) {
                    let sent = Instant::now();
                    bytes += ctx.call(op, i).await;
                    latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                }
                (latencies, bytes)
            })
        })
        .collect();
    let (mut all, mut bytes) = (Vec::with_capacity(samples), 0usize);
    for w in workers {
        let (latencies, b) = w.await.unwrap();
        all.extend(latencies);
        bytes += b;
    }
    let wall = started.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Stats {
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
        max: *all.last().unwrap(),
        per_second: all.len() as f64 / wall,
        mean_bytes: bytes as f64 / all.len() as f64,
    }
}

fn size(bytes: f64) -> String {
    if bytes >= 1e9 {
        format!("{:.1} GB", bytes / 1e9)
    } else if bytes >= 1e6 {
        format!("{:.1} MB", bytes / 1e6)
    } else {
        format!("{:.0} kB", bytes / 1e3)
    }
}

/// Runs `0..n` exist when `run_id(n - 1)` does: loaded runs are numbered without gaps.
async fn numbered_runs(store: &SqlStore) -> usize {
    let exists = |n: usize| async move { store.get_run(&run_id(n)).await.is_ok() };
    if !exists(0).await {
        return 0;
    }
    let (mut lo, mut hi) = (1usize, 1usize);
    while exists(hi).await {
        lo = hi + 1;
        hi *= 2;
    }
    // Runs 0..lo exist, run `hi` does not.
    while lo < hi {
        let mid = (lo + hi) / 2;
        if exists(mid).await {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse::<f64>().ok()))
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

#[tokio::main]
async fn main() {
    let metadata = arg("--metadata", "sqlite:///tmp/weir-scale/weir.db");
    let targets: Vec<usize> = arg("--runs", "10000").split(',').map(|n| n.parse().unwrap()).collect();
    let samples: usize = arg("--samples", "2000").parse().unwrap();
    let clients: usize = arg("--clients", "16").parse().unwrap();
    let specs = std::path::PathBuf::from(arg("--specs", concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench")));
    // `--data DIR` keeps the artifact folder (and its identity marker) so a loaded store can be
    // measured again; runs already in the store count towards the sizes asked for.
    let kept = arg("--data", "");
    let temp = tempfile::tempdir().unwrap();
    let data_path = if kept.is_empty() { temp.path().to_path_buf() } else { std::path::PathBuf::from(&kept) };
    std::fs::create_dir_all(&data_path).unwrap();
    let data = Data(data_path);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let binary =
        std::path::PathBuf::from(arg("--weir", concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/release/weir")));
    let server = start(&binary, port, &metadata, data.path());
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    while http.get(format!("{base}/apis/v2beta1/healthz")).send().await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let store = Arc::new(SqlStore::connect(&metadata, &ConnectSettings::default()).await.unwrap());
    let experiment_id = match store.get_experiment_by_name("", "scale").await {
        Ok(existing) => existing.id,
        Err(_) => {
            let experiment =
                post(&http, &format!("{base}/apis/v2beta1/experiments"), &json!({"display_name": "scale"})).await;
            experiment["experiment_id"].as_str().unwrap().to_string()
        }
    };
    let other = store.get_experiment_by_name("", "Default").await.unwrap().id;
    let small = Pipeline::load(&specs.join("scale-20.yaml"), &experiment_id);
    let big = Pipeline::load(&specs.join("scale-200.yaml"), &experiment_id);
    let mean_spec = (small.stored_bytes * (BIG_EVERY - 1) + big.stored_bytes) as f64 / BIG_EVERY as f64;
    let mean_tasks = (small.tasks.len() * (BIG_EVERY - 1) + big.tasks.len()) as f64 / BIG_EVERY as f64;
    println!(
        "Specs as stored (compact JSON): {}-step {} bytes, {}-step {} bytes; one run in {BIG_EVERY} carries \
         the larger: {:.0} bytes of spec and {mean_tasks:.1} task rows per run on average ({} and {} tasks).",
        small.steps(),
        small.stored_bytes,
        big.steps(),
        big.stored_bytes,
        mean_spec,
        small.tasks.len(),
        big.tasks.len()
    );
    let counts = store.table_counts().await.unwrap();
    let mut in_store = counts.iter().find(|(t, _)| t == "runs").map(|(_, n)| *n as usize).unwrap_or(0);
    let mut numbered = numbered_runs(&store).await;
    if in_store > 0 && numbered == 0 {
        panic!("this store holds runs loaded by an earlier version of this example; load a fresh store");
    }
    let pipelines = Arc::new((small, big));
    println!();
    println!(
        "| runs in store | operation | clients | samples | p50 | p99 | max | requests/s | response |\n|---|---|---|---|---|---|---|---|---|"
    );
    let mut notes = Vec::new();
    for target in targets.iter().copied() {
        let started = Instant::now();
        let (mut last_report, loaded_before) = (Instant::now(), numbered);
        let mut pending: Option<tokio::task::JoinHandle<()>> = None;
        while in_store < target {
            // Half the runs in the measured experiment, half elsewhere; a transaction holds
            // up to 500 runs or BATCH_SPEC_BYTES of specs. The next batch is made while the
            // store writes the previous one.
            let (mut runs, mut tasks, mut bytes) = (Vec::new(), Vec::new(), 0);
            while in_store < target && runs.len() < 500 && bytes < BATCH_SPEC_BYTES {
                let n = numbered;
                let pipeline = if is_big(n) { &pipelines.1 } else { &pipelines.0 };
                let (r, t) = pipeline.finished_run(n, if n.is_multiple_of(2) { &experiment_id } else { &other });
                bytes += pipeline.stored_bytes;
                runs.push(r);
                tasks.extend(t);
                numbered += 1;
                in_store += 1;
            }
            if let Some(previous) = pending.take() {
                previous.await.unwrap();
            }
            let store = store.clone();
            pending = Some(tokio::spawn(async move { store.bulk_load(&runs, &tasks).await.unwrap() }));
            if last_report.elapsed() > Duration::from_secs(30) {
                eprintln!("loaded {in_store} runs ({:.0} s)", started.elapsed().as_secs_f64());
                last_report = Instant::now();
            }
        }
        if let Some(previous) = pending.take() {
            previous.await.unwrap();
        }
        if numbered > loaded_before {
            let load_time = started.elapsed().as_secs_f64();
            let count = numbered - loaded_before;
            notes.push(format!(
                "Loaded {count} runs up to {target} in {load_time:.0} s ({:.0} runs/s){}.",
                count as f64 / load_time,
                sqlite_size(&metadata)
                    .map(|s| format!("; the SQLite file is now {}", size(s as f64)))
                    .unwrap_or_default()
            ));
            eprintln!("{}", notes.last().unwrap());
        }

        if samples == 0 {
            continue; // `--samples 0`: load only
        }
        let list_url =
            format!("{base}/apis/v2beta1/runs?experiment_id={experiment_id}&page_size=100&sort_by=created_at%20desc");
        let first: Value = http.get(&list_url).send().await.unwrap().json().await.unwrap();
        let token = first["next_page_token"].as_str().unwrap().to_string();
        let ctx = Arc::new(Ctx {
            http: http.clone(),
            base: base.clone(),
            small: pipelines.0.create_body.clone(),
            big: pipelines.1.create_body.clone(),
            numbered,
            next_url: format!(
                "{base}/apis/v2beta1/runs?experiment_id={experiment_id}&page_size=100&page_token={token}"
            ),
            list_url,
            created: Default::default(),
        });
        // Reads first, on the loaded store; then creates, whose runs the engine then fails.
        for op in [Op::Get, Op::List, Op::NextPage, Op::Create] {
            for c in [1, clients] {
                let s = measure(&ctx, op, c, samples).await;
                println!(
                    "| {in_store} | {} | {c} | {samples} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} | {} |",
                    op.label(),
                    s.p50,
                    s.p99,
                    s.max,
                    s.per_second,
                    size(s.mean_bytes)
                );
                if let Op::Create = op {
                    in_store += samples;
                }
            }
        }
        let created = ctx.created.lock().unwrap().clone();
        settle(&http, &base, &created).await;
        notes.push(format!("At {in_store} runs: weir's peak RSS so far {:.0} MiB.", peak_rss_mib(server.0.id())));
    }
    drop(server);

    // A restart on the loaded store: time until the first list request is answered.
    let started = Instant::now();
    let server = start(&binary, port, &metadata, data.path());
    let list_url =
        format!("{base}/apis/v2beta1/runs?experiment_id={experiment_id}&page_size=100&sort_by=created_at%20desc");
    loop {
        if let Ok(response) = http.get(&list_url).send().await {
            if response.status().is_success() {
                response.bytes().await.unwrap();
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let first_request = started.elapsed();
    drop(server);

    println!();
    for note in &notes {
        println!("{note}");
    }
    println!(
        "At {in_store} runs: first list answered {:.0} ms after the server was started.",
        first_request.as_secs_f64() * 1000.0
    );
    if !std::env::args().any(|a| a == "--upgrade") {
        return;
    }
    // The newest migration on the loaded store, as `weir storage upgrade` runs it (backup
    // first). Its peak memory comes from GNU time where installed.
    store.close().await;
    weir_store_sql::testing::undo_head_migration(&metadata).await;
    let gnu_time = std::path::Path::new("/usr/bin/time");
    let mut command = if gnu_time.exists() {
        let mut c = std::process::Command::new(gnu_time);
        c.args(["-f", "peak-rss-kib %M"]).arg(&binary);
        c
    } else {
        std::process::Command::new(&binary)
    };
    let started = Instant::now();
    let mut upgrade = command
        .args(["storage", "upgrade", "--metadata", &metadata])
        .arg("--artifacts")
        .arg(format!("file://{}/artifacts", data.path().display()))
        .arg("--data-dir")
        .arg(data.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Lines as they come, timed, so the backup and the migration are told apart.
    let (mut backup_time, mut peak_kib, mut said) = (None, None, String::new());
    for line in std::io::BufRead::lines(std::io::BufReader::new(upgrade.stderr.take().unwrap())).map_while(Result::ok) {
        if line.starts_with("backup taken") {
            backup_time = Some(started.elapsed());
        }
        if let Some(kib) = line.strip_prefix("peak-rss-kib ") {
            peak_kib = kib.trim().parse::<u64>().ok();
        }
        said.push_str(&line);
        said.push('\n');
    }
    let status = upgrade.wait().unwrap();
    assert!(status.success(), "{said}");
    let upgrade_time = started.elapsed();
    let backups: u64 = std::fs::read_dir(data.path().join("backups"))
        .map(|dir| dir.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0);
    let backup_time = backup_time.unwrap_or_default();
    println!(
        "`weir storage upgrade` (one migration, backup of {:.0} MiB first) took {:.1} s: backup {:.1} s, \
         migration {:.1} s; peak RSS {}.",
        backups as f64 / 1048576.0,
        upgrade_time.as_secs_f64(),
        backup_time.as_secs_f64(),
        (upgrade_time - backup_time).as_secs_f64(),
        peak_kib.map(|k| format!("{:.0} MiB", k as f64 / 1024.0)).unwrap_or_else(|| "not measured".into())
    );
}

/// Waits until the engine has finished every created run (each fails at its first step), so
/// the next size is loaded and measured on a quiet server.
async fn settle(http: &reqwest::Client, base: &str, created: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(900);
    for id in created.iter().rev() {
        loop {
            let run: Value =
                http.get(format!("{base}/apis/v2beta1/runs/{id}")).send().await.unwrap().json().await.unwrap();
            if matches!(run["state"].as_str(), Some("SUCCEEDED" | "FAILED" | "CANCELED" | "SKIPPED")) {
                break;
            }
            if Instant::now() > deadline {
                eprintln!("created runs still under way after 15 minutes (run {id} is {})", run["state"]);
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn sqlite_size(metadata: &str) -> Option<u64> {
    let path = metadata.strip_prefix("sqlite://")?.split('?').next()?;
    let size = |p: String| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    Some(size(path.to_string()) + size(format!("{path}-wal")))
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> Value {
    http.post(url).json(body).send().await.unwrap().json().await.unwrap()
}

/// The data folder, temporary or kept.
struct Data(std::path::PathBuf);

impl Data {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

/// A weir server, stopped when dropped (also when the example panics).
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Weir on the store; its log goes to `weir.log` in the data folder. Steps get `/bin/false` as
/// their Python, so created runs fail at their first step instead of running pipelines.
fn start(binary: &std::path::Path, port: u16, metadata: &str, data: &std::path::Path) -> Server {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(data.join("weir.log")).unwrap();
    std::process::Command::new(binary)
        .args(["server", "--listen", &format!("127.0.0.1:{port}"), "--metadata", metadata, "--disable-scheduler"])
        .args(["--executor-python", "/bin/false"])
        .arg("--artifacts")
        .arg(format!("file://{}/artifacts", data.display()))
        .arg("--data-dir")
        .arg(data)
        .env("WEIR_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .map(Server)
        .expect("start weir (build it with cargo build --release -p weir)")
}
