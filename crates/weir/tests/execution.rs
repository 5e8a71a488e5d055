//! Steps through the real server and the local driver: packages for Python components (one
//! cached environment per set), clear errors for steps that cannot run, terminate, and retry of
//! a failed run. The kfp SDK suite (tests/sdk) runs the pipelines of every IR feature on every
//! backend; these cover the executor's own behaviour.

mod common;

use std::time::Duration;

use common::{eventually, spec, Storage, Weir};
use serde_json::{json, Value};
use weir_store_sql::Dialect;

struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    fn new(weir: &Weir) -> Self {
        Self { client: reqwest::Client::new(), base: weir.base.clone() }
    }

    async fn create(&self, pipeline: &str, parameters: Value) -> String {
        let body = json!({"display_name": pipeline, "pipeline_spec": spec(pipeline), "runtime_config": {"parameters": parameters}});
        let created: Value = self
            .client
            .post(format!("{}/apis/v2beta1/runs", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        created["run_id"].as_str().unwrap_or_else(|| panic!("{created}")).to_string()
    }

    async fn get(&self, path: &str) -> Value {
        self.client.get(format!("{}{path}", self.base)).send().await.unwrap().json().await.unwrap()
    }

    async fn text(&self, path: &str) -> String {
        self.client.get(format!("{}{path}", self.base)).send().await.unwrap().text().await.unwrap()
    }

    async fn post(&self, path: &str) -> reqwest::StatusCode {
        self.client.post(format!("{}{path}", self.base)).send().await.unwrap().status()
    }

    async fn wait(&self, run_id: &str, states: &[&str]) -> Value {
        eventually(&format!("run {run_id} to reach {states:?}"), Duration::from_secs(180), || async move {
            let run = self.get(&format!("/apis/v2beta1/runs/{run_id}")).await;
            states.contains(&run["state"].as_str().unwrap_or_default()).then_some(run)
        })
        .await
    }

    async fn task(&self, run_id: &str, name: &str) -> Value {
        let tasks = self.get(&format!("/apis/weir/v1/runs/{run_id}/tasks")).await;
        tasks["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {tasks}"))
    }
}

fn ready_markers(storage: &Storage) -> Vec<(std::path::PathBuf, std::time::SystemTime)> {
    let envs = storage.data_dir.path().join("work/envs");
    let Ok(entries) = std::fs::read_dir(envs) else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| {
            let ready = e.path().join(".ready");
            std::fs::metadata(&ready).ok().and_then(|m| m.modified().ok()).map(|t| (ready, t))
        })
        .collect()
}

#[tokio::test]
async fn python_packages_install_once_per_set() {
    let storage = Storage::new(Dialect::Sqlite);
    let weir = Weir::start(&storage);
    let api = Api::new(&weir);
    let first = api.create("packages", json!({})).await;
    let run = api.wait(&first, &["SUCCEEDED", "FAILED"]).await;
    assert_eq!(run["state"], "SUCCEEDED", "{run}");
    assert_eq!(api.task(&first, "uses-package").await["outputs"]["parameters"]["Output"], "4.8.0");
    let envs = ready_markers(&storage);
    assert_eq!(envs.len(), 1, "one environment for the package set");

    let second = api.create("packages", json!({})).await;
    assert_eq!(api.wait(&second, &["SUCCEEDED", "FAILED"]).await["state"], "SUCCEEDED");
    assert_eq!(ready_markers(&storage), envs, "the second run installs nothing");

    let bad = api.create("missing_package", json!({})).await;
    let run = api.wait(&bad, &["SUCCEEDED", "FAILED"]).await;
    assert_eq!(run["state"], "FAILED");
    let message = api.task(&bad, "needs-missing-package").await["error"]["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("cannot install the packages") && message.contains("weir-test-no-such-package-zz"),
        "{message}"
    );
    weir.stop();
    storage.db.drop_database().await;
}

#[tokio::test]
async fn steps_that_cannot_run_fail_with_a_clear_error() {
    let storage = Storage::new(Dialect::Sqlite);
    let weir = Weir::start(&storage);
    let api = Api::new(&weir);
    let missing = api.create("missing_tool", json!({})).await;
    let bad = api.create("bad_exit", json!({})).await;

    let run = api.wait(&missing, &["SUCCEEDED", "FAILED"]).await;
    assert_eq!(run["state"], "FAILED");
    let message = run["error"]["message"].as_str().unwrap();
    assert!(message.contains("weir-no-such-tool") && message.contains("does not exist"), "{message}");

    let run = api.wait(&bad, &["SUCCEEDED", "FAILED"]).await;
    assert_eq!(run["state"], "FAILED");
    let message = run["error"]["message"].as_str().unwrap();
    assert!(message.contains("exited with code 7") && message.contains("about to fail"), "{message}");

    // A missing required parameter or a wrong type is refused at creation, and nothing runs.
    let body = json!({"display_name": "x", "pipeline_spec": spec("retry_run"), "runtime_config": {"parameters": {}}});
    let response = api.client.post(format!("{}/apis/v2beta1/runs", api.base)).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    assert!(text.contains("marker_dir"), "{text}");
    let body = json!({"display_name": "x", "pipeline_spec": spec("retry_run"), "runtime_config": {"parameters": {"marker_dir": 5}}});
    assert_eq!(
        api.client.post(format!("{}/apis/v2beta1/runs", api.base)).json(&body).send().await.unwrap().status(),
        400
    );
    // The server keeps serving.
    assert_eq!(api.get("/apis/v2beta1/healthz").await["multi_user"], false);
    weir.stop();
    storage.db.drop_database().await;
}

#[tokio::test]
async fn terminate_stops_the_step_and_retry_reruns_only_what_failed() {
    let storage = Storage::new(Dialect::Sqlite);
    let markers = storage.data_dir.path().join("markers");
    std::fs::create_dir_all(&markers).unwrap();
    let weir = Weir::start(&storage);
    let api = Api::new(&weir);
    let params = json!({"marker_dir": markers.display().to_string()});

    let sleeping = api.create("terminate", params.clone()).await;
    let pid_file = markers.join("sleeper.pid");
    let pid: i32 = eventually("the sleeper to start", Duration::from_secs(60), || {
        let pid_file = pid_file.clone();
        async move { std::fs::read_to_string(pid_file).ok().and_then(|t| t.trim().parse().ok()) }
    })
    .await;
    assert_eq!(api.post(&format!("/apis/v2beta1/runs/{sleeping}:terminate")).await, 200);
    let run = api.wait(&sleeping, &["CANCELED"]).await;
    assert!(run["finished_at"] != "1970-01-01T00:00:00Z");
    assert!(!common::pid_alive(pid as i64), "the step's process is gone");
    assert_eq!(api.task(&sleeping, "sleeper").await["state"], "CANCELED");

    let failing = api.create("retry_run", params).await;
    assert_eq!(api.wait(&failing, &["SUCCEEDED", "FAILED"]).await["state"], "FAILED");
    std::fs::write(markers.join("fixed"), "").unwrap();
    assert_eq!(api.post(&format!("/apis/v2beta1/runs/{failing}:retry")).await, 200);
    let run = api.wait(&failing, &["SUCCEEDED", "FAILED"]).await;
    assert_eq!(run["state"], "SUCCEEDED", "{run}");
    assert_eq!(
        std::fs::read_to_string(markers.join("first.count")).unwrap().lines().count(),
        1,
        "the succeeded step kept its result"
    );
    assert_eq!(api.task(&failing, "first").await["attempts"], 1);
    let states: Vec<&str> =
        run["state_history"].as_array().unwrap().iter().map(|s| s["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["PENDING", "RUNNING", "FAILED", "PENDING", "RUNNING", "SUCCEEDED"]);

    // The engine's metrics saw each of those ends.
    let metrics = api.text("/metrics").await;
    let count = |line_start: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {line_start} in\n{metrics}"))
    };
    assert!(count("weir_steps_started_total") >= 3.0, "{metrics}");
    for outcome in ["canceled", "failed", "succeeded"] {
        assert!(count(&format!("weir_steps_finished_total{{outcome=\"{outcome}\"}}")) >= 1.0, "{metrics}");
    }
    assert!(count("weir_step_orchestration_seconds_count") >= 2.0, "{metrics}");
    assert_eq!(count("weir_runs_queued"), 0.0);
    weir.stop();
    storage.db.drop_database().await;
}

/// SIGTERM: weir stops taking work, lets a running step finish within the grace period, and
/// exits 0; with no grace left, the step is stopped and recorded to run again at the next start.
#[tokio::test]
async fn sigterm_lets_steps_finish_then_exits_cleanly() {
    let storage = Storage::new(Dialect::Sqlite);
    let markers = storage.data_dir.path().join("markers");
    std::fs::create_dir_all(&markers).unwrap();
    let params = json!({"marker_dir": markers.display().to_string()});

    let weir = Weir::start(&storage);
    let api = Api::new(&weir);
    let run_id = api.create("short", params.clone()).await;
    let pid_file = markers.join("short.pid");
    eventually("the step to start", Duration::from_secs(60), || {
        let pid_file = pid_file.clone();
        async move { pid_file.exists().then_some(()) }
    })
    .await;
    let status = weir.stop_status();
    assert!(status.success(), "{status:?}");
    assert!(markers.join("short.finished").exists(), "the step finished during the grace period");
    let weir = Weir::start(&storage);
    let api = Api::new(&weir);
    // The step's result was recorded before the stop; the run ends at the new weir's first pass.
    let run = api.wait(&run_id, &["SUCCEEDED", "FAILED"]).await;
    assert_eq!(run["state"], "SUCCEEDED", "{run}\n{}", weir.log_text());
    assert_eq!(api.task(&run_id, "short-sleep").await["attempts"], 1);
    weir.stop();

    // No grace: the step is stopped, recorded as pending, and runs again after the restart.
    let weir = Weir::start_with(&storage, &["--shutdown-grace-seconds", "0"]);
    let api = Api::new(&weir);
    let run_id = api.create("terminate", params).await;
    let pid_file = markers.join("sleeper.pid");
    let pid: i32 = eventually("the sleeper to start", Duration::from_secs(60), || {
        let pid_file = pid_file.clone();
        async move { std::fs::read_to_string(pid_file).ok().and_then(|t| t.trim().parse().ok()) }
    })
    .await;
    let started = std::time::Instant::now();
    let status = weir.stop_status();
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(!common::pid_alive(pid as i64), "the step was stopped");
    std::fs::remove_file(&pid_file).unwrap();
    let weir = Weir::start(&storage);
    let api = Api::new(&weir);
    let again: i32 = eventually("the step to run again", Duration::from_secs(60), || {
        let pid_file = pid_file.clone();
        async move { std::fs::read_to_string(pid_file).ok().and_then(|t| t.trim().parse().ok()) }
    })
    .await;
    assert_ne!(again, pid);
    let sleeper = api.task(&run_id, "sleeper").await;
    assert_eq!(sleeper["attempts"], 2, "{sleeper}");
    assert_eq!(api.post(&format!("/apis/v2beta1/runs/{run_id}:terminate")).await, 200);
    api.wait(&run_id, &["CANCELED"]).await;
    weir.stop();
    storage.db.drop_database().await;
}

/// With `--max-running-runs 1`, a second run waits PENDING while the first is under way and
/// starts when it ends: a flood of submissions queues, oldest first.
#[tokio::test]
async fn runs_beyond_the_limit_wait_their_turn() {
    let storage = Storage::new(Dialect::Sqlite);
    let markers = storage.data_dir.path().join("markers");
    std::fs::create_dir_all(&markers).unwrap();
    let weir = Weir::start_with(&storage, &["--max-running-runs", "1"]);
    let api = Api::new(&weir);
    let params = json!({"marker_dir": markers.display().to_string()});
    let first = api.create("terminate", params.clone()).await;
    api.wait(&first, &["RUNNING"]).await;
    let second = api.create("terminate", params).await;
    // Once the engine has counted the second run as queued, it must still be PENDING.
    eventually("the engine to queue the second run", Duration::from_secs(60), || async {
        let metrics = api.text("/metrics").await;
        let queued = metrics.lines().find_map(|l| l.strip_prefix("weir_runs_queued ")?.parse::<f64>().ok());
        (queued == Some(1.0)).then_some(())
    })
    .await;
    assert_eq!(api.get(&format!("/apis/v2beta1/runs/{second}")).await["state"], "PENDING");
    assert_eq!(api.post(&format!("/apis/v2beta1/runs/{first}:terminate")).await, 200);
    api.wait(&first, &["CANCELED"]).await;
    api.wait(&second, &["RUNNING"]).await;
    assert_eq!(api.post(&format!("/apis/v2beta1/runs/{second}:terminate")).await, 200);
    api.wait(&second, &["CANCELED"]).await;
    weir.stop();
    storage.db.drop_database().await;
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

/// A step's environment is what KFP gives a step, what its component sets and what the
/// operator names: weir's own (the metadata URL with its password, the S3 keys) never reaches
/// it, neither in `env` nor in the block its process started with, for a spawned container
/// step and for a Python step forked from the warm interpreter alike.
#[tokio::test]
async fn steps_get_only_an_allowlisted_environment() {
    let storage = Storage::new(Dialect::Sqlite);
    let markers = storage.data_dir.path().join("markers");
    std::fs::create_dir_all(&markers).unwrap();
    let weir = Weir::start_with_env(
        &storage,
        &["--step-env", "OPERATOR_NAMED", "--step-env", "OPERATOR_SET=fixed"],
        &[
            ("WEIR_METADATA_PASSWORD_PROBE", "db-secret"),
            ("WEIR_S3_SECRET_ACCESS_KEY", "s3-secret"),
            ("OPERATOR_NAMED", "passed"),
            ("UNNAMED_TOKEN", "not-for-steps"),
        ],
    );
    let api = Api::new(&weir);
    let run_id = api.create("env_probe", json!({"marker_dir": markers.display().to_string()})).await;
    let run = api.wait(&run_id, &["SUCCEEDED", "FAILED"]).await;
    assert_eq!(run["state"], "SUCCEEDED", "{run}\n{}", weir.log_text());
    for file in ["container.env", "container.proc", "python.env", "python.proc"] {
        let seen = lines(&markers.join(file));
        let names: Vec<&str> = seen.iter().filter_map(|l| l.split_once('=').map(|(n, _)| n)).collect();
        for leaked in [
            "WEIR_METADATA_PASSWORD_PROBE",
            "WEIR_S3_SECRET_ACCESS_KEY",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "UNNAMED_TOKEN",
        ] {
            assert!(!names.contains(&leaked), "{file} shows {leaked}: {seen:?}");
        }
        for value in ["db-secret", "s3-secret", "not-for-steps", &storage.db.url] {
            assert!(!seen.iter().any(|l| l.contains(value)), "{file} shows {value:?}: {seen:?}");
        }
        for expected in ["OPERATOR_NAMED=passed", "OPERATOR_SET=fixed"] {
            assert!(seen.iter().any(|l| l == expected), "{file} lacks {expected}: {seen:?}");
        }
        // Its temporary folder is its own, in its attempt's folder, as a container's /tmp is.
        if file.ends_with(".env") {
            let tmpdir = seen.iter().find_map(|l| l.strip_prefix("TMPDIR=")).unwrap_or_default();
            assert!(tmpdir.contains("/work/runs/") && tmpdir.ends_with("/tmp"), "{file}: {seen:?}");
        }
        // A forked step's starting block is the warm interpreter's (the base environment);
        // its own variables are in `os.environ`.
        if file != "python.proc" {
            assert!(seen.iter().any(|l| l == "FROM_COMPONENT=yes"), "{file}: {seen:?}");
            assert!(names.contains(&"KFP_POD_NAME") && names.contains(&"PATH"), "{file}: {seen:?}");
        }
    }
    // The folders made in the store for the steps' executor outputs (their tasks', and those
    // above them up to the store's root folder) go with the run's end, or were never made (a
    // forked Python step writes its executor output in its own folder): nothing left them
    // anything to keep.
    let root = storage.data_dir.path().join("artifacts/artifacts");
    eventually("the run's empty folders in the store to go", Duration::from_secs(30), || {
        let nothing = std::fs::read_dir(&root).map_or(true, |mut entries| entries.next().is_none());
        async move { nothing.then_some(()) }
    })
    .await;
    weir.stop();
    storage.db.drop_database().await;
}

/// An importer may name a local file only inside a folder the operator allows: a host file
/// elsewhere, a `..` out of the allowed folder and a link out of it are refused, and the run
/// fails saying why; an allowed file is imported.
#[tokio::test]
async fn importers_read_local_files_only_from_allowed_folders() {
    let storage = Storage::new(Dialect::Sqlite);
    let markers = storage.data_dir.path().join("markers");
    let allowed = storage.data_dir.path().join("shared-data");
    std::fs::create_dir_all(&markers).unwrap();
    std::fs::create_dir_all(&allowed).unwrap();
    std::fs::write(allowed.join("data.txt"), "allowed bytes").unwrap();
    let secret = storage.data_dir.path().join("host-secret.txt");
    std::fs::write(&secret, "host secret").unwrap();
    std::os::unix::fs::symlink(&secret, allowed.join("link.txt")).unwrap();
    let weir = Weir::start_with(&storage, &["--allow-local-artifacts", allowed.to_str().unwrap()]);
    let api = Api::new(&weir);
    let hostile = [
        secret.display().to_string(),
        format!("file://{}", secret.display()),
        format!("file://{}/../host-secret.txt", allowed.display()),
        format!("{}/link.txt", allowed.display()),
    ];
    for uri in hostile {
        let run_id = api.create("import_local", json!({"uri": uri, "marker_dir": markers.display().to_string()})).await;
        let run = api.wait(&run_id, &["SUCCEEDED", "FAILED"]).await;
        assert_eq!(run["state"], "FAILED", "{uri}: {run}");
        let message =
            api.task(&run_id, "read-input").await["error"]["message"].as_str().unwrap_or_default().to_string();
        assert!(
            message.contains("outside the artifact store") || message.contains("links are not followed"),
            "{uri}: {message}"
        );
        assert!(!markers.join("imported.txt").exists(), "{uri} was read");
    }
    let uri = format!("file://{}/data.txt", allowed.display());
    let run_id = api.create("import_local", json!({"uri": uri, "marker_dir": markers.display().to_string()})).await;
    let run = api.wait(&run_id, &["SUCCEEDED", "FAILED"]).await;
    assert_eq!(run["state"], "SUCCEEDED", "{run}");
    assert_eq!(std::fs::read_to_string(markers.join("imported.txt")).unwrap(), "allowed bytes");
    weir.stop();
    storage.db.drop_database().await;
}

/// Deleting a run while its step runs stops the step's processes (as KFP's deletion of the
/// workflow stops its pods), records nothing for it and leaves no folder behind.
#[tokio::test]
async fn deleting_a_running_run_stops_its_steps() {
    let storage = Storage::new(Dialect::Sqlite);
    let markers = storage.data_dir.path().join("markers");
    std::fs::create_dir_all(&markers).unwrap();
    let weir = Weir::start(&storage);
    let api = Api::new(&weir);
    let run_id = api.create("terminate", json!({"marker_dir": markers.display().to_string()})).await;
    let pid_file = markers.join("sleeper.pid");
    let pid: i64 = eventually("the sleeper to start", Duration::from_secs(60), || {
        let pid_file = pid_file.clone();
        async move { std::fs::read_to_string(pid_file).ok().and_then(|t| t.trim().parse().ok()) }
    })
    .await;
    let deleted = api.client.delete(format!("{}/apis/v2beta1/runs/{run_id}", api.base)).send().await.unwrap();
    assert_eq!(deleted.status(), 200);
    eventually("the deleted run's step to stop", Duration::from_secs(30), || async move {
        (!common::pid_alive(pid)).then_some(())
    })
    .await;
    let run_folder = storage.data_dir.path().join("work/runs").join(&run_id);
    eventually("the deleted run's folder to go", Duration::from_secs(30), || {
        let run_folder = run_folder.clone();
        async move { (!run_folder.exists()).then_some(()) }
    })
    .await;
    let log = weir.log_text();
    assert!(log.contains("stopping a step of a deleted run"), "{log}");
    assert!(!log.contains("could not record a step's result"), "{log}");
    weir.stop();
    storage.db.drop_database().await;
}

/// A step's result and the step it lets start are one write: a chain of three steps takes one
/// task write to start, one per step after that, and nothing more (the run's task version,
/// which each write of tasks takes the next of, counts them). Two writes per step (the result,
/// then the next step) would make it seven. A step that runs 200 ms has its process id written
/// too, one more write: each step that took 150 ms or more is allowed one. The run's folder
/// goes with its last step's.
#[tokio::test]
async fn a_steps_result_and_the_next_step_are_one_write() {
    use weir_store::TaskStore;
    use weir_store_sql::{ConnectSettings, SqlStore};

    let storage = Storage::new(Dialect::Sqlite);
    let weir = Weir::start(&storage);
    let api = Api::new(&weir);
    let run_id = api.create("chain", json!({"text": "a"})).await;
    let run = api.wait(&run_id, &["SUCCEEDED", "FAILED"]).await;
    assert_eq!(run["state"], "SUCCEEDED", "{run}");
    assert_eq!(api.task(&run_id, "relay-3").await["outputs"]["parameters"]["out"], "a+++");
    let store = SqlStore::connect(&storage.db.url, &ConnectSettings::default()).await.unwrap();
    let changes = store.task_changes(&run_id, None).await.unwrap();
    let slow = changes
        .tasks
        .iter()
        .filter(|t| t.kind == weir_store::TaskKind::Container && t.finished_at - t.started_at >= 150)
        .count() as i64;
    assert!(
        (4..=4 + slow).contains(&changes.version),
        "{} task writes for a chain of three steps, {slow} of which ran 150 ms or more",
        changes.version
    );
    let run_dir = storage.data_dir.path().join("work/runs").join(&run_id);
    eventually("the run's folder to go", Duration::from_secs(30), || {
        let gone = !run_dir.exists();
        async move { gone.then_some(()) }
    })
    .await;
    weir.stop();
    storage.db.drop_database().await;
}

/// Results of a run's steps that end while another of its results is being written queue,
/// and the next writer writes them all in one transaction with the pass they let happen; so
/// do the claims of steps that were waiting for a slot and get the slots those results free.
///
/// Twelve steps of a `ParallelFor` and six slots: six steps run and end together while the
/// first result's write is held (the run's row locked, or the SQLite file's write lock). The
/// first result is written alone once let through, the other five together after it, so the
/// six rows carry two task versions at most (six without the batch). The six steps that were
/// waiting get the freed slots meanwhile; their claims queue too, and are written RUNNING in
/// at most two passes: their rows carry at most two start times (six claims alone each take
/// the clock again).
async fn results_that_end_together_are_written_together(dialect: Dialect) {
    use weir_store_sql::testing::{query_ints, HeldWrites};

    let storage = Storage::new(dialect);
    let markers = storage.data_dir.path().join("markers");
    std::fs::create_dir_all(&markers).unwrap();
    let weir = Weir::start_with(&storage, &["--max-concurrent-steps", "6"]);
    let api = Api::new(&weir);
    let run_id = api.create("gates", json!({"marker_dir": markers.to_str().unwrap()})).await;
    let count = |prefix: &'static str, at_least: usize| {
        let markers = markers.clone();
        move || {
            let n = std::fs::read_dir(&markers)
                .unwrap()
                .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(prefix))
                .count();
            async move { (n >= at_least).then_some(()) }
        }
    };
    eventually("six steps to start", Duration::from_secs(60), count("started-", 6)).await;
    // Past the process-id write each step gets once it has run 200 ms.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = HeldWrites::hold(&storage.db.url, &run_id).await;
    std::fs::write(markers.join("go"), "").unwrap();
    eventually("the six steps to end", Duration::from_secs(30), count("done-", 6)).await;
    // Weir has seen the six processes end and settled them (it logs each just before its
    // result is written or queued): one result's write waits for the held lock, the other
    // five for the run's, and the six waiting steps' claims with them.
    eventually("the six results to be settled", Duration::from_secs(30), || {
        let settled = weir.log_text().matches("step finished").count();
        async move { (settled >= 6).then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::fs::read_dir(&markers)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("started-"));
    assert_eq!(started.count(), 6, "a step started while its claim's write was held");
    held.release().await;
    let run = api.wait(&run_id, &["SUCCEEDED", "FAILED"]).await;
    assert_eq!(run["state"], "SUCCEEDED", "{run}\n{}", weir.log_text());
    let rows = |column: &str| {
        let sql =
            format!("SELECT {column} FROM tasks WHERE run_id = '{run_id}' AND name = 'gate' ORDER BY started_at, id");
        let url = storage.db.url.clone();
        async move { query_ints(&url, &sql).await }
    };
    let (versions, starts) = (rows("version").await, rows("started_at").await);
    assert_eq!(starts.len(), 12, "{starts:?}");
    // The first six started before any slot came free, the last six in the slots they left.
    let distinct = |values: &[i64]| values.iter().collect::<std::collections::BTreeSet<_>>().len();
    // Two, or one if a pass of the engine's loop took the run's lock first and waited too.
    assert!(distinct(&versions[..6]) <= 2, "the six results were written at task versions {versions:?}");
    // Two if one claim was queued in time for the held write.
    assert!(distinct(&starts[6..]) <= 2, "the six waiting steps were claimed at {starts:?}");
    weir.stop();
    storage.db.drop_database().await;
}

#[tokio::test]
async fn sqlite_results_that_end_together_are_written_together() {
    results_that_end_together_are_written_together(Dialect::Sqlite).await;
}

#[tokio::test]
async fn postgres_results_that_end_together_are_written_together() {
    results_that_end_together_are_written_together(Dialect::Postgres).await;
}

/// When a run ends, the folders weir made for it in a local store that nothing was written in
/// go (a Python step's task folder, made for its executor output when the step starts from its
/// command line; a forked one writes it in its own folder); what a step left is kept as it
/// left it, empty folders too (an output artifact that is a folder holding an empty one).
#[tokio::test]
async fn a_finished_runs_empty_folders_go_and_its_outputs_stay() {
    for flags in [&[][..], &["--no-python-fork-server"][..]] {
        finished_runs_empty_folders_go_and_outputs_stay(flags).await;
    }
}

async fn finished_runs_empty_folders_go_and_outputs_stay(flags: &[&str]) {
    let storage = Storage::new(Dialect::Sqlite);
    let weir = Weir::start_with(&storage, flags);
    let api = Api::new(&weir);
    let run_id = api.create("folders", json!({})).await;
    let run = api.wait(&run_id, &["SUCCEEDED", "FAILED"]).await;
    assert_eq!(run["state"], "SUCCEEDED", "{run}\n{}", weir.log_text());
    let run_folder = storage.data_dir.path().join("artifacts/artifacts/exec-folders").join(&run_id);
    let python_task = api.task(&run_id, "says-nothing").await;
    let python_folder = run_folder.join("says-nothing").join(python_task["task_id"].as_str().unwrap());
    eventually("the Python step's empty task folder to go", Duration::from_secs(30), || {
        let gone = !python_folder.exists() && !run_folder.join("says-nothing").exists();
        async move { gone.then_some(()) }
    })
    .await;
    let folder_task = api.task(&run_id, "make-folder").await;
    let artifact = run_folder.join("make-folder").join(folder_task["task_id"].as_str().unwrap()).join("out");
    assert!(artifact.join("assets").is_dir(), "{} lost the step's empty folder", artifact.display());
    // A step that writes under its task root by itself (`dsl.get_uri()`) finds the folder there
    // (forked, its executor output does not make it), and what it wrote stays.
    let notes = api.task(&run_id, "notes-beside").await;
    let note = notes["outputs"]["parameters"]["Output"].as_str().unwrap().to_string();
    let expected = run_folder.join("notes-beside").join(notes["task_id"].as_str().unwrap()).join("note.txt");
    assert_eq!(std::path::Path::new(&note), expected, "{flags:?}");
    assert_eq!(std::fs::read_to_string(&expected).unwrap(), "kept", "{flags:?}");
    weir.stop();
    storage.db.drop_database().await;
}
