//! Crash safety: `kill -9` weir while a step runs, start a new weir on the same storage, and
//! the run is reconciled. A step whose process outlived weir is adopted and finishes once; one
//! that ended while weir was down is settled from the exit status it left; one whose process
//! was lost too (as in a machine restart) is retried under its policy or failed with a clear
//! error. Nothing that succeeded runs again, no run stays RUNNING. A step's result that the
//! database refuses is retried while the refusal passes (a serialisation failure), and is
//! settled from the step's kept folder by the next start when it does not. On SQLite+folder,
//! PostgreSQL+S3 and MariaDB+S3.

mod common;

use std::time::Duration;

use common::{eventually, pid_alive, spec, Storage, Weir};
use serde_json::{json, Value};
use weir_store_sql::Dialect;

async fn get(client: &reqwest::Client, url: String) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

fn task<'a>(tasks: &'a Value, name: &str) -> &'a Value {
    tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no task {name}: {tasks}"))
}

/// Creates a run of `pipeline` and waits until its step `step` runs with a recorded pid;
/// returns the run's id and that pid.
async fn run_until_running(
    client: &reqwest::Client,
    weir: &Weir,
    pipeline: &str,
    markers: &std::path::Path,
    step: &str,
) -> (String, i64) {
    let body = json!({
        "display_name": pipeline,
        "pipeline_spec": spec(pipeline),
        "runtime_config": {"parameters": {"marker_dir": markers.display().to_string()}},
    });
    let created: Value =
        client.post(format!("{}/apis/v2beta1/runs", weir.base)).json(&body).send().await.unwrap().json().await.unwrap();
    let run_id = created["run_id"].as_str().unwrap_or_else(|| panic!("{created}")).to_string();
    let tasks_url = format!("{}/apis/weir/v1/runs/{run_id}/tasks", weir.base);
    let pid = eventually(&format!("{step} to be running"), Duration::from_secs(60), || {
        let (client, url) = (client.clone(), tasks_url.clone());
        async move {
            let tasks = get(&client, url).await;
            let task = tasks["tasks"].as_array()?.iter().find(|t| t["name"] == step)?.clone();
            (task["state"] == "RUNNING" && task["pid"].as_i64()? > 0).then(|| task["pid"].as_i64().unwrap())
        }
    })
    .await;
    (run_id, pid)
}

/// Waits until the run has SUCCEEDED or FAILED; returns it.
async fn run_ended(client: &reqwest::Client, weir: &Weir, run_id: &str) -> Value {
    let run_url = format!("{}/apis/v2beta1/runs/{run_id}", weir.base);
    eventually("the run to end", Duration::from_secs(60), || {
        let (client, url) = (client.clone(), run_url.clone());
        async move {
            let run = get(&client, url).await;
            matches!(run["state"].as_str(), Some("SUCCEEDED" | "FAILED")).then_some(run)
        }
    })
    .await
}

/// The waiter of crash_adopt ran exactly once, and the consumer got its output.
async fn waiter_ran_once(client: &reqwest::Client, weir: &Weir, markers: &std::path::Path, run_id: &str) {
    let tasks = get(client, format!("{}/apis/weir/v1/runs/{run_id}/tasks", weir.base)).await;
    assert_eq!(task(&tasks, "waiter")["attempts"], 1, "{tasks}");
    assert_eq!(std::fs::read_to_string(markers.join("waiter.count")).unwrap().lines().count(), 1);
    assert_eq!(std::fs::read_to_string(markers.join("consumer.txt")).unwrap(), "released");
}

/// Runs `pipeline` until its slow step runs, kills weir with SIGKILL, then (with
/// `lose_process`) the step's process group too, and starts a new weir on the same storage.
async fn crash_mid_step(dialect: Dialect, pipeline: &str, lose_process: bool) -> (Value, Value, String) {
    let storage = Storage::new(dialect);
    let markers = storage.data_dir.path().join("markers");
    std::fs::create_dir_all(&markers).unwrap();
    let client = reqwest::Client::new();

    let weir = Weir::start(&storage);
    let (run_id, old_pid) = run_until_running(&client, &weir, pipeline, &markers, "slow-once").await;
    assert!(pid_alive(old_pid));
    weir.kill9();
    assert!(pid_alive(old_pid), "the step outlives a killed weir");
    if lose_process {
        nix::sys::signal::killpg(nix::unistd::Pid::from_raw(old_pid as i32), nix::sys::signal::Signal::SIGKILL)
            .unwrap();
        eventually("the step's process to be gone", Duration::from_secs(10), || async move {
            (!pid_alive(old_pid)).then_some(())
        })
        .await;
    }

    let weir = Weir::start(&storage);
    let run = run_ended(&client, &weir, &run_id).await;
    let tasks = get(&client, format!("{}/apis/weir/v1/runs/{run_id}/tasks", weir.base)).await;
    let log = weir.log_text();
    // The log of a step that ran before the crash is still readable, over the CLI too.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "logs", &run_id, "quick", "--host", &weir.base])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && printed.contains("quick ran"), "{printed}");
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "logs", &run_id, "no-such-step", "--host", &weir.base])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no-such-step"));
    // The step that had succeeded ran exactly once.
    let count = std::fs::read_to_string(markers.join("quick.count")).unwrap();
    assert_eq!(count.lines().count(), 1, "quick ran again after the restart");
    weir.stop();
    storage.db.drop_database().await;
    (run, tasks, log)
}

async fn retried(dialect: Dialect) {
    let (run, tasks, log) = crash_mid_step(dialect, "crash_retry", true).await;
    assert_eq!(run["state"], "SUCCEEDED", "{run}\n{log}");
    assert_eq!(task(&tasks, "quick")["attempts"], 1);
    let slow = task(&tasks, "slow-once");
    assert_eq!(slow["attempts"], 2, "{slow}");
    assert_eq!(slow["state"], "SUCCEEDED");
    let history = run["run_details"]["task_details"].as_array().unwrap();
    assert!(!history.is_empty());
}

async fn failed_clearly(dialect: Dialect) {
    let (run, tasks, log) = crash_mid_step(dialect, "crash_no_retry", true).await;
    assert_eq!(run["state"], "FAILED", "{run}\n{log}");
    let slow = task(&tasks, "slow-once");
    assert_eq!(slow["state"], "FAILED");
    let message = slow["error"]["message"].as_str().unwrap();
    assert!(message.contains("lost when weir stopped"), "{message}");
    assert!(run["error"]["message"].as_str().unwrap().contains("lost when weir stopped"));
}

/// A step that outlives a killed weir is not run again: a new weir adopts it while it runs
/// (`release_before_restart` false) or settles it from its exit status if it ended while no
/// weir was up (true), keeping its output for the next step either way.
async fn survives(dialect: Dialect, release_before_restart: bool) {
    let storage = Storage::new(dialect);
    let markers = storage.data_dir.path().join("markers");
    std::fs::create_dir_all(&markers).unwrap();
    let client = reqwest::Client::new();
    let weir = Weir::start(&storage);
    let (run_id, pid) = run_until_running(&client, &weir, "crash_adopt", &markers, "waiter").await;
    weir.kill9();
    if release_before_restart {
        std::fs::write(markers.join("release"), "").unwrap();
        eventually("the waiter to end", Duration::from_secs(10), || async move { (!pid_alive(pid)).then_some(()) })
            .await;
    }
    let weir = Weir::start(&storage);
    if !release_before_restart {
        // Once the new weir says it adopted the step, the step must still be running.
        eventually("the new weir to adopt the step", Duration::from_secs(60), || {
            let log = weir.log_text();
            async move { log.contains("adopted a step still running from before the restart").then_some(()) }
        })
        .await;
        assert!(pid_alive(pid), "the new weir leaves the running step alone");
        std::fs::write(markers.join("release"), "").unwrap();
    }
    let run = run_ended(&client, &weir, &run_id).await;
    let log = weir.log_text();
    assert_eq!(run["state"], "SUCCEEDED", "{run}\n{log}");
    waiter_ran_once(&client, &weir, &markers, &run_id).await;
    weir.stop();
    storage.db.drop_database().await;
}

#[tokio::test]
async fn sqlite_adopts_a_step_that_outlives_weir() {
    survives(Dialect::Sqlite, false).await;
}

#[tokio::test]
async fn sqlite_settles_a_step_that_ended_while_weir_was_down() {
    survives(Dialect::Sqlite, true).await;
}

#[tokio::test]
async fn postgres_adopts_a_step_that_outlives_weir() {
    survives(Dialect::Postgres, false).await;
}

#[tokio::test]
async fn postgres_settles_a_step_that_ended_while_weir_was_down() {
    survives(Dialect::Postgres, true).await;
}

#[tokio::test]
async fn sqlite_crash_retries_the_lost_step() {
    retried(Dialect::Sqlite).await;
}

#[tokio::test]
async fn sqlite_crash_without_retries_fails_clearly() {
    failed_clearly(Dialect::Sqlite).await;
}

#[tokio::test]
async fn postgres_crash_retries_the_lost_step() {
    retried(Dialect::Postgres).await;
}

#[tokio::test]
async fn postgres_crash_without_retries_fails_clearly() {
    failed_clearly(Dialect::Postgres).await;
}

#[tokio::test]
async fn mariadb_adopts_a_step_that_outlives_weir() {
    survives(Dialect::MySql, false).await;
}

#[tokio::test]
async fn mariadb_crash_retries_the_lost_step() {
    retried(Dialect::MySql).await;
}

/// SQL that makes the database refuse the write of the waiter's success: `transient` times
/// with a serialisation failure (SQLSTATE 40001, what a deadlock or a conflicting
/// serialisable transaction reports), or (`transient` = 0) always, with an error that does not
/// pass. The counters are sequences, which a rolled-back transaction does not undo.
fn refuse_waiter_success(dialect: Dialect, transient: u32) -> Vec<String> {
    let (code, limit) = if transient > 0 { ("40001", transient) } else { ("P0001", u32::MAX) };
    match dialect {
        Dialect::Postgres => vec![
            "CREATE SEQUENCE weir_fault_seq".to_string(),
            format!(
                "CREATE FUNCTION weir_fault() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                   IF NEW.name = 'waiter' AND NEW.state = 'SUCCEEDED' AND nextval('weir_fault_seq') <= {limit} THEN \
                     RAISE EXCEPTION 'injected fault' USING ERRCODE = '{code}'; \
                   END IF; RETURN NEW; END $$"
            ),
            "CREATE TRIGGER weir_fault BEFORE UPDATE ON tasks FOR EACH ROW EXECUTE FUNCTION weir_fault()".to_string(),
        ],
        Dialect::MySql => {
            let code = if transient > 0 { "40001" } else { "45000" };
            vec![
                "CREATE SEQUENCE weir_fault_seq".to_string(),
                format!(
                    "CREATE TRIGGER weir_fault BEFORE UPDATE ON tasks FOR EACH ROW BEGIN \
                       IF NEW.name = 'waiter' AND NEW.state = 'SUCCEEDED' AND NEXTVAL(weir_fault_seq) <= {limit} THEN \
                         SIGNAL SQLSTATE '{code}' SET MESSAGE_TEXT = 'injected fault'; \
                       END IF; END"
                ),
            ]
        }
        // SQLite has no way to raise SQLITE_BUSY from SQL (its retryable errors are tested
        // in weir-store-sql against a real lock); a trigger raises an error that does not pass.
        Dialect::Sqlite => {
            assert_eq!(transient, 0, "SQLite triggers cannot raise a retryable error");
            vec!["CREATE TRIGGER weir_fault BEFORE UPDATE ON tasks FOR EACH ROW \
                  WHEN NEW.name = 'waiter' AND NEW.state = 'SUCCEEDED' \
                  BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
                .to_string()]
        }
    }
}

fn drop_fault(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "DROP TRIGGER weir_fault ON tasks",
        _ => "DROP TRIGGER weir_fault",
    }
}

/// Runs crash_adopt until its waiter runs, makes the database refuse the waiter's success
/// (see [`refuse_waiter_success`]), then lets the waiter finish.
async fn waiter_refused(
    dialect: Dialect,
    transient: u32,
) -> (Storage, std::path::PathBuf, reqwest::Client, Weir, String) {
    let storage = Storage::new(dialect);
    let markers = storage.data_dir.path().join("markers");
    std::fs::create_dir_all(&markers).unwrap();
    let client = reqwest::Client::new();
    let weir = Weir::start(&storage);
    let (run_id, _) = run_until_running(&client, &weir, "crash_adopt", &markers, "waiter").await;
    for statement in refuse_waiter_success(dialect, transient) {
        weir_store_sql::testing::execute_raw(&storage.db.url, &statement).await;
    }
    std::fs::write(markers.join("release"), "").unwrap();
    (storage, markers, client, weir, run_id)
}

/// The database refuses a finished step's result twelve times with a retryable error: the
/// store runs the write with the run's next pass five times, then the result alone five
/// times; the engine's retry takes over (once, in the log) and the store's next attempts get
/// it through. The step is not run again.
async fn result_survives_retryable_errors(dialect: Dialect) {
    let (storage, markers, client, weir, run_id) = waiter_refused(dialect, 12).await;
    let run = run_ended(&client, &weir, &run_id).await;
    let log = weir.log_text();
    assert_eq!(run["state"], "SUCCEEDED", "{run}\n{log}");
    assert_eq!(log.matches("cannot record a step's result yet").count(), 1, "{log}");
    waiter_ran_once(&client, &weir, &markers, &run_id).await;
    weir.stop();
    storage.db.drop_database().await;
}

#[tokio::test]
async fn postgres_step_result_survives_serialisation_failures() {
    result_survives_retryable_errors(Dialect::Postgres).await;
}

#[tokio::test]
async fn mariadb_step_result_survives_serialisation_failures() {
    result_survives_retryable_errors(Dialect::MySql).await;
}

/// The database refuses a finished step's result for good while weir runs: the step's folder
/// (with its exit status) is kept, so the next weir settles the step as succeeded instead of
/// running it again or failing the run.
async fn unrecorded_result_is_settled_after_restart(dialect: Dialect) {
    let (storage, markers, client, weir, run_id) = waiter_refused(dialect, 0).await;
    eventually("weir to give up recording the result", Duration::from_secs(60), || {
        let log = weir.log_text();
        async move { log.contains("could not record a step's result").then_some(()) }
    })
    .await;
    weir.kill9();
    weir_store_sql::testing::execute_raw(&storage.db.url, drop_fault(dialect)).await;
    let weir = Weir::start(&storage);
    let run = run_ended(&client, &weir, &run_id).await;
    let log = weir.log_text();
    assert_eq!(run["state"], "SUCCEEDED", "{run}\n{log}");
    assert!(log.contains("settled a step that ended while weir was stopped"), "{log}");
    waiter_ran_once(&client, &weir, &markers, &run_id).await;
    weir.stop();
    storage.db.drop_database().await;
}

#[tokio::test]
async fn sqlite_unrecorded_step_result_is_settled_after_restart() {
    unrecorded_result_is_settled_after_restart(Dialect::Sqlite).await;
}

#[tokio::test]
async fn postgres_unrecorded_step_result_is_settled_after_restart() {
    unrecorded_result_is_settled_after_restart(Dialect::Postgres).await;
}

#[tokio::test]
async fn mariadb_unrecorded_step_result_is_settled_after_restart() {
    unrecorded_result_is_settled_after_restart(Dialect::MySql).await;
}
