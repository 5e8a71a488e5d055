//! Retention and garbage collection end to end, on SQLite+folder, MariaDB+S3 and
//! PostgreSQL+S3: deletes that clean up without breaking a cache hit of another run, an
//! experiment's cascade, policies previewed and applied by `weir storage gc`, and a collection
//! killed half way that leaves nothing referring to a missing object and finishes when rerun.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{eventually, get, ok, post, spec, Storage, Weir};
use serde_json::{json, Value};
use weir_store_sql::{ConnectSettings, Dialect, SqlStore};

async fn finished(base: &str, body: Value) -> String {
    let run = post(base, "/apis/v2beta1/runs", body).await;
    let id = run["run_id"].as_str().unwrap_or_else(|| panic!("{run}")).to_string();
    eventually("the run to end", Duration::from_secs(90), || async {
        let state = get(base, &format!("/apis/v2beta1/runs/{id}")).await["state"].as_str().map(str::to_string);
        matches!(state.as_deref(), Some("SUCCEEDED" | "FAILED")).then_some(())
    })
    .await;
    id
}

fn dataset_run(text: &str, experiment: Option<&str>) -> Value {
    let mut body = json!({"display_name": text, "pipeline_spec": spec("dataset"),
                          "runtime_config": {"parameters": {"text": text}}});
    if let Some(e) = experiment {
        body["experiment_id"] = json!(e);
    }
    body
}

async fn keys(storage: &Storage) -> BTreeSet<String> {
    storage.artifact_store().list("").await.unwrap().into_iter().filter(|k| !k.starts_with(".weir/")).collect()
}

fn check(storage: &Storage) -> Value {
    let output = storage.weir(&["storage", "check", "--output", "json"]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| panic!("{output:?}"));
    assert_eq!(report["missing"], json!([]), "nothing refers to a missing object: {report}");
    assert_eq!(report["ok"], true, "{report}");
    report
}

async fn status(base: &str, path: &str) -> u16 {
    reqwest::get(format!("{base}{path}")).await.unwrap().status().as_u16()
}

async fn delete(base: &str, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new().delete(format!("{base}{path}")).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

async fn tasks(base: &str, run_id: &str) -> Vec<Value> {
    get(base, &format!("/apis/weir/v1/runs/{run_id}/tasks")).await["tasks"].as_array().cloned().unwrap_or_default()
}

async fn deletes_clean_up(dialect: Dialect) {
    let storage = Storage::new(dialect);
    let weir = Weir::start(&storage);
    let base = weir.base.clone();
    // A first run makes the dataset; a second with the same input is answered from the
    // cache: its outputs are the first run's artifacts.
    let first = finished(&base, dataset_run("shared bytes", None)).await;
    let second = finished(&base, dataset_run("shared bytes", None)).await;
    let cached = tasks(&base, &second).await.into_iter().find(|t| t["display_name"] == "make-dataset").unwrap();
    assert_eq!(cached["cached"], true, "{cached}");
    let artifact_id = cached["outputs"]["artifacts"]["data"][0]["artifact_id"].as_str().unwrap().to_string();
    let own = finished(&base, dataset_run("own bytes", None)).await;
    let before = keys(&storage).await;
    let under = |keys: &BTreeSet<String>, run: &str| keys.iter().filter(|k| k.contains(&format!("/{run}/"))).count();
    assert!(under(&before, &first) >= 2, "the first run's log and dataset: {before:?}");

    // Deleting the first run takes its log and its rows, and keeps the dataset the second
    // run's cache hit uses.
    let (code, body) = delete(&base, &format!("/apis/v2beta1/runs/{first}")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(status(&base, &format!("/apis/v2beta1/runs/{first}")).await, 404);
    eventually("the first run's log to go", Duration::from_secs(30), || async {
        let now = keys(&storage).await;
        (!now.iter().any(|k| k.starts_with(&format!("logs/{first}/")))).then_some(())
    })
    .await;
    let after = keys(&storage).await;
    assert_eq!(under(&after, &first), 1, "only the dataset the cache hit uses stays: {after:?}");
    let content = reqwest::get(format!("{base}/apis/weir/v1/artifacts/{artifact_id}/content"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(content, "shared bytes");
    let report = check(&storage);
    assert_eq!(report["orphans"], json!([]), "{report}");

    // Deleting the second run frees the dataset at last.
    assert_eq!(delete(&base, &format!("/apis/v2beta1/runs/{second}")).await.0, 200);
    eventually("the shared dataset to go", Duration::from_secs(30), || async {
        let now = keys(&storage).await;
        (under(&now, &first) == 0 && under(&now, &second) == 0).then_some(())
    })
    .await;
    assert!(under(&keys(&storage).await, &own) >= 2, "another run's objects stay");
    let report = check(&storage);
    assert_eq!(report["orphans"], json!([]), "{report}");
    // Its cache entries went with it: the same input runs afresh.
    let again = finished(&base, dataset_run("shared bytes", None)).await;
    let fresh = tasks(&base, &again).await.into_iter().find(|t| t["display_name"] == "make-dataset").unwrap();
    assert_eq!(fresh["cached"], false, "{fresh}");

    // An experiment deleted with cascade takes its runs, their objects and its recurring runs.
    let experiment = post(&base, "/apis/v2beta1/experiments", json!({"display_name": "to go"})).await;
    let experiment_id = experiment["experiment_id"].as_str().unwrap().to_string();
    let inside = finished(&base, dataset_run("inside", Some(&experiment_id))).await;
    let recurring = post(&base, "/apis/v2beta1/recurringruns", json!({"display_name": "nightly", "experiment_id": experiment_id, "pipeline_spec": spec("dataset"), "max_concurrency": 1, "mode": "DISABLE", "trigger": {"cron_schedule": {"cron": "0 0 2 * * *"}}})).await;
    let recurring_id = recurring["recurring_run_id"].as_str().unwrap().to_string();
    let (code, body) = delete(&base, &format!("/apis/v2beta1/experiments/{experiment_id}?cascade=true")).await;
    assert_eq!(code, 200, "{body}");
    eventually("the experiment to go", Duration::from_secs(30), || async {
        (status(&base, &format!("/apis/v2beta1/experiments/{experiment_id}")).await == 404).then_some(())
    })
    .await;
    assert_eq!(status(&base, &format!("/apis/v2beta1/runs/{inside}")).await, 404);
    assert_eq!(status(&base, &format!("/apis/v2beta1/recurringruns/{recurring_id}")).await, 404);
    assert_eq!(under(&keys(&storage).await, &inside), 0);
    // Without cascade, as in KFP, the Default experiment cannot go and an experiment's runs stay.
    let kept = post(&base, "/apis/v2beta1/experiments", json!({"display_name": "kept runs"})).await;
    let kept_id = kept["experiment_id"].as_str().unwrap().to_string();
    let kept_run = finished(&base, dataset_run("kept", Some(&kept_id))).await;
    assert_eq!(delete(&base, &format!("/apis/v2beta1/experiments/{kept_id}")).await.0, 200);
    assert_eq!(status(&base, &format!("/apis/v2beta1/runs/{kept_run}")).await, 200);

    // Every removal is in the history, with what its objects came to once deleted.
    let history = eventually("the history to be complete", Duration::from_secs(30), || async {
        let h = get(&base, "/apis/weir/v1/gc/history?page_size=2").await;
        let all: Vec<Value> = {
            let mut records = h["records"].as_array().cloned().unwrap_or_default();
            let mut token = h["next_page_token"].as_str().map(str::to_string);
            while let Some(t) = token.filter(|t| !t.is_empty()) {
                let next = get(&base, &format!("/apis/weir/v1/gc/history?page_size=2&page_token={t}")).await;
                records.extend(next["records"].as_array().cloned().unwrap_or_default());
                token = next["next_page_token"].as_str().map(str::to_string);
            }
            records
        };
        all.iter().all(|r| r.get("done_at").is_some()).then_some(all)
    })
    .await;
    let kinds: Vec<(&str, &str)> =
        history.iter().map(|r| (r["kind"].as_str().unwrap(), r["target_id"].as_str().unwrap())).collect();
    for expected in [("run", first.as_str()), ("run", second.as_str()), ("run", inside.as_str())] {
        assert!(kinds.contains(&expected), "{expected:?} in {kinds:?}");
    }
    assert!(kinds.contains(&("experiment", experiment_id.as_str())), "{kinds:?}");
    let objects: i64 = history.iter().map(|r| r["objects"].as_i64().unwrap()).sum();
    assert!(objects >= 4, "{history:?}");
    let first_record = history.iter().find(|r| r["target_id"] == first.as_str()).unwrap();
    assert_eq!(first_record["detail"]["artifacts_kept_for_cache"], 1, "{first_record}");
    assert_eq!(first_record["policy"], "api");
    let (code, body) = delete(&base, "/apis/v2beta1/runs/no-such-run").await;
    assert_eq!(code, 404, "{body}");
    assert_eq!(get(&base, "/apis/weir/v1/gc/history?page_size=0").await["code"], 3);
    weir.stop();
    check(&storage);
    storage.db.drop_database().await;
}

const POLICIES: &str = r#"version: 1
retention:
  interval_seconds: 0
  policies:
    - name: failed-at-once
      states: [FAILED]
      older_than: 0s
    - name: succeeded-last-2
      states: [SUCCEEDED]
      keep_last: 2
"#;

async fn policies_and_the_gc_command(dialect: Dialect) {
    let storage = Storage::new(dialect);
    let config = storage.data_dir.path().join("weir.yaml");
    std::fs::write(&config, POLICIES).unwrap();
    let config = config.to_str().unwrap().to_string();
    let weir = Weir::start_with(&storage, &["--config", &config]);
    let base = weir.base.clone();
    let mut succeeded = Vec::new();
    for i in 0..4 {
        succeeded.push(finished(&base, dataset_run(&format!("run {i}"), None)).await);
    }
    let failed = finished(&base, json!({"display_name": "fails", "pipeline_spec": spec("bad_exit")})).await;
    assert_eq!(get(&base, &format!("/apis/v2beta1/runs/{failed}")).await["state"], "FAILED");
    // An experiment with a policy of its own keeps its runs from the deployment's.
    let experiment = post(&base, "/apis/v2beta1/experiments", json!({"display_name": "own policy"})).await;
    let experiment_id = experiment["experiment_id"].as_str().unwrap().to_string();
    let path = format!("/apis/weir/v1/experiments/{experiment_id}/retention");
    let client = reqwest::Client::new();
    let put = |body: Value| {
        let (client, url) = (client.clone(), format!("{base}{path}"));
        async move {
            let r = client.put(url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (code, refused) = put(json!({"policies": [{"name": "everything"}]})).await;
    assert_eq!(code, 400);
    assert!(refused["message"].as_str().unwrap().contains("older_than, keep_last or archived_for"), "{refused}");
    let (code, refused) = put(json!({"policies": [{"name": "x", "states": ["RUNNING"], "keep_last": 1}]})).await;
    assert_eq!(code, 400, "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("not a final state"), "{refused}");
    let (code, refused) = put(json!({"policies": [{"name": "x", "older_than": "1d", "keep_lst": 3}]})).await;
    assert_eq!(code, 400, "a misspelt field is refused, not dropped: {refused}");
    assert!(refused["message"].as_str().unwrap().contains("keep_lst"), "{refused}");
    assert_eq!(get(&base, &path).await["inherited"], true, "a refused policy leaves nothing");
    let (code, body) = put(json!({"policies": [{"name": "keep-10", "keep_last": 10}]})).await;
    assert_eq!(code, 200, "{body}");
    let own = get(&base, &path).await;
    assert_eq!((own["inherited"].clone(), own["policies"][0]["name"].clone()), (json!(false), json!("keep-10")));
    let default_experiment = get(&base, &format!("/apis/v2beta1/runs/{failed}")).await["experiment_id"].clone();
    let inherited =
        get(&base, &format!("/apis/weir/v1/experiments/{}/retention", default_experiment.as_str().unwrap())).await;
    assert_eq!(inherited["inherited"], true);
    assert_eq!(inherited["policies"].as_array().unwrap().len(), 2, "{inherited}");
    assert_eq!(status(&base, "/apis/weir/v1/experiments/no-such/retention").await, 404);
    let mine = vec![
        finished(&base, dataset_run("mine 1", Some(&experiment_id))).await,
        finished(&base, dataset_run("mine 2", Some(&experiment_id))).await,
    ];
    // An object nothing refers to.
    storage.artifact_store().put("stray/left-over.bin", bytes::Bytes::from_static(b"old")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let runs_before = get(&base, "/apis/v2beta1/runs?page_size=100").await["total_size"].clone();

    // The dry run says what would go and removes nothing.
    let dry = storage.weir(&["storage", "gc", "--config", &config, "--grace-seconds", "0", "--output", "json"]);
    ok(&dry);
    let dry: Value = serde_json::from_slice(&dry.stdout).unwrap();
    let by_name =
        |name: &str| dry["policies"].as_array().unwrap().iter().find(|p| p["policy"] == name).cloned().unwrap();
    assert_eq!(by_name("failed-at-once")["runs"], 1, "{dry}");
    assert_eq!(by_name("succeeded-last-2")["runs"], 2, "{dry}");
    assert!(by_name("succeeded-last-2")["artifacts"]["objects"].as_u64().unwrap() >= 2, "{dry}");
    assert!(by_name("succeeded-last-2")["logs"]["objects"].as_u64().unwrap() >= 2, "{dry}");
    assert_eq!(by_name("keep-10")["runs"], 0, "{dry}");
    assert_eq!(dry["orphans"]["older_than_grace"]["objects"], 1, "{dry}");
    let text = storage.weir(&["storage", "gc", "--config", &config]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("dry run") && text.contains("policy succeeded-last-2: delete 2 run(s)"), "{text}");
    assert_eq!(get(&base, "/apis/v2beta1/runs?page_size=100").await["total_size"], runs_before);

    // --apply does it.
    let applied =
        storage.weir(&["storage", "gc", "--apply", "--config", &config, "--grace-seconds", "0", "--output", "json"]);
    ok(&applied);
    let applied: Value = serde_json::from_slice(&applied.stdout).unwrap();
    assert_eq!(applied["runs"]["deleted"], 3, "{applied}");
    assert_eq!(applied["orphans"]["objects"], 1, "{applied}");
    let left: BTreeSet<String> = get(&base, "/apis/v2beta1/runs?page_size=100").await["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect();
    let expected: BTreeSet<String> = succeeded[2..].iter().chain(&mine).cloned().collect();
    assert_eq!(left, expected, "the two newest succeeded runs and the experiment's own stay");
    let report = check(&storage);
    assert_eq!(report["orphans"], json!([]), "{report}");
    let history = get(&base, "/apis/weir/v1/gc/history?page_size=50").await;
    let policies: Vec<&str> =
        history["records"].as_array().unwrap().iter().map(|r| r["policy"].as_str().unwrap()).collect();
    assert_eq!(policies.iter().filter(|p| **p == "succeeded-last-2").count(), 2, "{policies:?}");
    assert_eq!(policies.iter().filter(|p| **p == "failed-at-once").count(), 1, "{policies:?}");
    assert!(history["records"].as_array().unwrap().iter().any(|r| r["kind"] == "orphans"), "{history}");
    // A second pass finds nothing more.
    let again = storage.weir(&["storage", "gc", "--apply", "--config", &config, "--output", "json"]);
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["runs"]["deleted"], 0, "{again}");
    // Stores of different deployments are refused.
    let other = Storage::new(Dialect::Sqlite);
    let refused = other.weir(&["storage", "gc", "--apply"]);
    assert!(!refused.status.success());
    weir.stop();
    storage.db.drop_database().await;
}

const EVERYTHING: &str = r#"version: 1
retention:
  interval_seconds: 0
  batch_size: 50
  policies:
    - name: all-finished
      older_than: 0s
"#;

/// A collection killed with SIGKILL half way leaves no row referring to a missing object,
/// and the next one finishes the work.
async fn a_killed_collection_resumes(dialect: Dialect) {
    let storage = Storage::new(dialect);
    // A first start makes the storage; then many finished runs with logs and outputs.
    Weir::start(&storage).stop();
    let store = SqlStore::connect(&storage.db.url, &ConnectSettings::default()).await.unwrap();
    let experiment = weir_store::ExperimentStore::get_experiment_by_name(&store, "", "Default").await.unwrap();
    let (mut runs, mut tasks) = (Vec::new(), Vec::new());
    let runs_n = if dialect == Dialect::Sqlite { 1_500 } else { 400 };
    for i in 0..runs_n {
        let mut r = weir_store::testsuite::run(&experiment.id, &format!("bulk-{i}"), 1_000 + i);
        r.state = weir_store::RuntimeState::Succeeded;
        r.finished_at = 2_000 + i;
        let mut t = weir_store::testsuite::task(&r.id, "step", weir_store::TaskKind::Container, r.created_at);
        t.attempts = 1;
        tasks.push(t);
        runs.push(r);
    }
    // A run still under way, whose step has written an output no row names yet: neither a
    // policy nor the orphan sweep may touch it, however old the object.
    let mut running = weir_store::testsuite::run(&experiment.id, "running", 500);
    running.state = weir_store::RuntimeState::Running;
    let in_progress =
        format!("{}step/t/checkpoint", weir_artifacts::layout::run_outputs_prefix("artifacts", "p", &running.id));
    runs.push(running);
    store.bulk_load(&runs, &tasks).await.unwrap();
    let artifacts = storage.artifact_store();
    artifacts.put(&in_progress, bytes::Bytes::from_static(b"epoch 1")).await.unwrap();
    let puts = runs.iter().zip(&tasks).flat_map(|(r, t)| {
        // `zip` stops at the tasks: the running run, last, has none.
        let log = weir_artifacts::layout::log_key(&r.id, &t.id, 1);
        let output =
            format!("{}step/{}/out", weir_artifacts::layout::run_outputs_prefix("artifacts", "p", &r.id), t.id);
        [log, output]
    });
    use futures::StreamExt;
    futures::stream::iter(puts.map(|key| {
        let artifacts = artifacts.clone();
        async move { artifacts.put(&key, bytes::Bytes::from_static(b"data")).await.unwrap() }
    }))
    .buffer_unordered(16)
    .collect::<Vec<()>>()
    .await;
    check(&storage);
    let config = storage.data_dir.path().join("weir.yaml");
    std::fs::write(&config, EVERYTHING).unwrap();
    let config = config.to_str().unwrap().to_string();

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["storage", "gc", "--apply", "--output", "json", "--config", &config])
        .args(storage.flags())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", std::env::var("WEIR_TEST_S3_ENDPOINT").unwrap_or_default())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let count = |sql: &'static str| {
        let url = storage.db.url.clone();
        async move {
            let store = SqlStore::connect(&url, &ConnectSettings::default()).await.unwrap();
            let rows = weir_store::StoreAdmin::table_counts(&store).await.unwrap();
            store.close().await;
            rows.into_iter().find(|(t, _)| t == sql).map(|(_, n)| n).unwrap_or_default()
        }
    };
    eventually("the collection to be under way", Duration::from_secs(60), || async {
        (count("gc_history").await >= 60).then_some(())
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let runs_left = count("runs").await;
    assert!(runs_left > 1, "the kill came before the end (the running run always stays)");
    check(&storage);

    let rerun =
        storage.weir(&["storage", "gc", "--apply", "--output", "json", "--config", &config, "--grace-seconds", "0"]);
    ok(&rerun);
    assert_eq!(count("runs").await, 1, "only the running run stays");
    assert_eq!(count("tasks").await, 0);
    assert_eq!(count("gc_pending").await, 0);
    assert_eq!(count("gc_history").await, runs_n, "one record per run");
    let report = check(&storage);
    assert_eq!(report["orphans"], json!([]), "{report}");
    assert_eq!(keys(&storage).await, BTreeSet::from([in_progress]), "every object went but the running step's");
    store.close().await;
    storage.db.drop_database().await;
}

/// Logs are kept one file per attempt in the run's folder of logs; a log an earlier weir kept
/// in a folder per task is still shown, counted as referred to (not missing, not an orphan),
/// and goes with its run.
async fn logs_kept_by_an_earlier_weir_are_read_and_kept(dialect: Dialect) {
    let storage = Storage::new(dialect);
    let weir = Weir::start(&storage);
    let base = weir.base.clone();
    let run = finished(&base, dataset_run("earlier logs", None)).await;
    let store = storage.artifact_store();
    let logs = store.list(&format!("logs/{run}")).await.unwrap();
    let task_logs: Vec<&String> = logs.iter().filter(|k| k.ends_with(".1.log")).collect();
    assert!(
        !task_logs.is_empty() && task_logs.len() == logs.len(),
        "one file per attempt, no folder per task: {logs:?}"
    );
    // One log moved where an earlier weir kept it.
    let moved = task_logs[0].clone();
    let task_id = moved.trim_start_matches(&format!("logs/{run}/")).trim_end_matches(".1.log").to_string();
    let earlier = format!("logs/{run}/{task_id}/1.log");
    let text = store.get(&moved).await.unwrap();
    store.put(&earlier, text.clone()).await.unwrap();
    store.delete(&moved).await.unwrap();
    let shown = reqwest::get(format!("{base}/apis/weir/v1/runs/{run}/logs?task={task_id}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.is_empty() && shown.contains(String::from_utf8_lossy(&text).as_ref()), "{shown}");
    let report = check(&storage);
    assert_eq!(report["orphans"], json!([]), "{report}");
    // Without it anywhere, the metadata refers to a missing log.
    store.delete(&earlier).await.unwrap();
    let output = storage.weir(&["storage", "check", "--output", "json"]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| panic!("{output:?}"));
    let missing = report["missing"].to_string();
    assert!(missing.contains(&format!("{task_id}.1.log")), "{report}");
    store.put(&earlier, text).await.unwrap();
    let (code, body) = delete(&base, &format!("/apis/v2beta1/runs/{run}")).await;
    assert_eq!(code, 200, "{body}");
    eventually("the run's logs to go", Duration::from_secs(30), || async {
        store.list(&format!("logs/{run}")).await.unwrap().is_empty().then_some(())
    })
    .await;
    weir.stop();
    storage.db.drop_database().await;
}

#[tokio::test]
async fn sqlite_logs_kept_by_an_earlier_weir_are_read_and_kept() {
    logs_kept_by_an_earlier_weir_are_read_and_kept(Dialect::Sqlite).await;
}

#[tokio::test]
async fn postgres_logs_kept_by_an_earlier_weir_are_read_and_kept() {
    logs_kept_by_an_earlier_weir_are_read_and_kept(Dialect::Postgres).await;
}

#[tokio::test]
async fn sqlite_deletes_clean_up() {
    deletes_clean_up(Dialect::Sqlite).await;
}

#[tokio::test]
async fn mariadb_deletes_clean_up() {
    deletes_clean_up(Dialect::MySql).await;
}

#[tokio::test]
async fn postgres_deletes_clean_up() {
    deletes_clean_up(Dialect::Postgres).await;
}

#[tokio::test]
async fn sqlite_policies_and_the_gc_command() {
    policies_and_the_gc_command(Dialect::Sqlite).await;
}

#[tokio::test]
async fn mariadb_policies_and_the_gc_command() {
    policies_and_the_gc_command(Dialect::MySql).await;
}

#[tokio::test]
async fn postgres_policies_and_the_gc_command() {
    policies_and_the_gc_command(Dialect::Postgres).await;
}

#[tokio::test]
async fn sqlite_a_killed_collection_resumes() {
    a_killed_collection_resumes(Dialect::Sqlite).await;
}

#[tokio::test]
async fn mariadb_a_killed_collection_resumes() {
    a_killed_collection_resumes(Dialect::MySql).await;
}

#[tokio::test]
async fn postgres_a_killed_collection_resumes() {
    a_killed_collection_resumes(Dialect::Postgres).await;
}
