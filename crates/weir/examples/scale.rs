//! API scale: fills a running weir's metadata store with runs (three tasks each), then measures
//! create run, get run and list runs (page of 100 in one experiment, newest first, and the
//! next page) through the HTTP API, as p50/p99.
//!
//! ```sh
//! cargo run --release -p weir --example scale -- --metadata sqlite:///tmp/s/weir.db --runs 10000,100000
//! ```
//! It starts `target/release/weir server` on the given metadata URL (fresh storage), loads
//! rows straight into the store in bulk (far faster than the API), and prints a table. After
//! the largest size it also measures, on that store, the server's time to answer its first
//! list request after a start and, with `--upgrade`, `weir storage upgrade` of the newest
//! migration (undone first, so the upgrade has the real work to do, its backup included).
//! `--data DIR` keeps the artifact folder, so the store can be measured again later.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use weir_store::testsuite::{run, task};
use weir_store::*;
use weir_store_sql::{ConnectSettings, SqlStore};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_string())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn timed<F, Fut>(count: usize, mut call: F) -> (f64, f64)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        let started = Instant::now();
        call(i).await;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

#[tokio::main]
async fn main() {
    let metadata = arg("--metadata", "sqlite:///tmp/weir-scale/weir.db");
    let targets: Vec<usize> = arg("--runs", "10000").split(',').map(|n| n.parse().unwrap()).collect();
    // `--data DIR` keeps the artifact folder (and its identity marker) so a loaded store can be
    // measured again; runs already in the store count towards the sizes asked for.
    let kept = arg("--data", "");
    let temp = tempfile::tempdir().unwrap();
    let data_path = if kept.is_empty() { temp.path().to_path_buf() } else { std::path::PathBuf::from(&kept) };
    std::fs::create_dir_all(&data_path).unwrap();
    let data = Data(data_path);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let binary = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/weir");
    let mut server = start(&binary, port, &metadata, data.path());
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    while http.get(format!("{base}/apis/v2beta1/healthz")).send().await.is_err() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
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
    let spec = json!({"pipelineInfo": {"name": "scale"}, "schemaVersion": "2.1.0", "root": {"dag": {"tasks": {}}}});
    println!("| runs in store | load time | create run p50 / p99 | get run p50 / p99 | list 100 (experiment, newest first) p50 / p99 | next page p50 / p99 |");
    println!("|---|---|---|---|---|---|");
    let counts = store.table_counts().await.unwrap();
    let mut loaded = counts.iter().find(|(t, _)| t == "runs").map(|(_, n)| *n as usize).unwrap_or(0);
    for target in targets.iter().copied() {
        let started = Instant::now();
        while loaded < target {
            // Half the runs in the measured experiment, half elsewhere, 3 tasks each; 5,000
            // runs per transaction.
            let batch = (target - loaded).min(5_000);
            let mut runs = Vec::with_capacity(batch);
            let mut tasks = Vec::with_capacity(batch * 3);
            for n in loaded..loaded + batch {
                let experiment = if n.is_multiple_of(2) { &experiment_id } else { &other };
                let mut r = run(experiment, &format!("run-{n}"), 1_600_000_000_000 + n as i64 * 1000);
                r.pipeline_spec = spec.clone();
                r.state = RuntimeState::Succeeded;
                tasks.extend((0..3).map(|i| task(&r.id, &format!("step-{i}"), TaskKind::Container, r.created_at + i)));
                runs.push(r);
            }
            store.bulk_load(&runs, &tasks).await.unwrap();
            loaded += batch;
        }
        let load_time = started.elapsed();
        let body = json!({"display_name": "measured", "experiment_id": experiment_id, "pipeline_spec": {"pipelineInfo": {"name": "scale-x"}, "schemaVersion": "2.1.0", "root": {"dag": {"tasks": {}}}}});
        let created = Arc::new(std::sync::Mutex::new(Vec::new()));
        let create = timed(200, |_| {
            let (http, base, body, created) = (http.clone(), base.clone(), body.clone(), created.clone());
            async move {
                let r = post(&http, &format!("{base}/apis/v2beta1/runs"), &body).await;
                created.lock().unwrap().push(r["run_id"].as_str().unwrap().to_string());
            }
        })
        .await;
        let ids = created.lock().unwrap().clone();
        let get = timed(200, |i| {
            let (http, base, id) = (http.clone(), base.clone(), ids[i % ids.len()].clone());
            async move {
                http.get(format!("{base}/apis/v2beta1/runs/{id}")).send().await.unwrap().bytes().await.unwrap();
            }
        })
        .await;
        let list_url =
            format!("{base}/apis/v2beta1/runs?experiment_id={experiment_id}&page_size=100&sort_by=created_at%20desc");
        let first: Value = http.get(&list_url).send().await.unwrap().json().await.unwrap();
        let token = first["next_page_token"].as_str().unwrap().to_string();
        let list = timed(100, |_| {
            let (http, url) = (http.clone(), list_url.clone());
            async move {
                http.get(url).send().await.unwrap().bytes().await.unwrap();
            }
        })
        .await;
        let next = timed(100, |_| {
            let (http, url) = (
                http.clone(),
                format!("{base}/apis/v2beta1/runs?experiment_id={experiment_id}&page_size=100&page_token={token}"),
            );
            async move {
                http.get(url).send().await.unwrap().bytes().await.unwrap();
            }
        })
        .await;
        println!(
            "| {target} | {:.0} s | {:.1} / {:.1} ms | {:.1} / {:.1} ms | {:.1} / {:.1} ms | {:.1} / {:.1} ms |",
            load_time.as_secs_f64(),
            create.0,
            create.1,
            get.0,
            get.1,
            list.0,
            list.1,
            next.0,
            next.1
        );
    }
    let _ = server.kill();
    let _ = server.wait();

    // A restart on the loaded store: time until the first list request is answered.
    let started = Instant::now();
    let mut server = start(&binary, port, &metadata, data.path());
    let list_url =
        format!("{base}/apis/v2beta1/runs?experiment_id={experiment_id}&page_size=100&sort_by=created_at%20desc");
    loop {
        if let Ok(response) = http.get(&list_url).send().await {
            if response.status().is_success() {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let first_request = started.elapsed();
    let _ = server.kill();
    let _ = server.wait();

    println!();
    println!(
        "At {loaded} runs: first list answered {:.0} ms after the server was started.",
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

fn start(binary: &std::path::Path, port: u16, metadata: &str, data: &std::path::Path) -> std::process::Child {
    std::process::Command::new(binary)
        .args(["server", "--listen", &format!("127.0.0.1:{port}"), "--metadata", metadata, "--disable-scheduler"])
        .arg("--artifacts")
        .arg(format!("file://{}/artifacts", data.display()))
        .arg("--data-dir")
        .arg(data)
        .env("WEIR_LOG", "warn")
        .spawn()
        .expect("start weir (build it with cargo build --release -p weir)")
}
