//! Recurring runs fire exactly once per slot, with the injected clock (no test waits for a
//! schedule): catch-up in order, no_catchup, max_concurrency, start/end windows, disable and
//! enable, unpinned pipelines, restarts and two schedulers on one database (SQLite, MariaDB
//! and PostgreSQL).

mod common;

use std::sync::Arc;

use chrono_tz::Tz;
use common::{spec_json, TestApp};
use serde_json::json;
use weir_service::{Context, Services};
use weir_store::{Entity, ListQuery, ManualClock, Run, RuntimeState};
use weir_store_sql::{ConnectSettings, Dialect, SqlStore};

const V2: &str = "/apis/v2beta1";
const T0: i64 = 1_700_000_000_000; // 2023-11-14T22:13:20Z, the TestApp clock's start
const MINUTE: i64 = 60_000;

async fn create(app: &TestApp, trigger: serde_json::Value, extra: serde_json::Value) -> String {
    let mut body = json!({"display_name": "every minute", "pipeline_spec": spec_json(), "max_concurrency": 10,
                          "mode": "ENABLE", "trigger": trigger});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = app.post(&format!("{V2}/recurringruns"), body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["recurring_run_id"].as_str().unwrap().to_string()
}

async fn runs_of(app: &TestApp, id: &str) -> Vec<Run> {
    let filter =
        json!({"predicates": [{"operation": "EQUALS", "key": "recurring_run_id", "string_value": id}]}).to_string();
    let query = ListQuery::resolve(Entity::Run, &filter, "created_at", Some("200"), "", &[]).unwrap();
    let mut runs = app.state.context().store.list_runs(&query).await.unwrap().items;
    runs.sort_by_key(|r| r.scheduled_at);
    runs
}

fn every_minute() -> serde_json::Value {
    json!({"cron_schedule": {"cron": "0 * * * * *"}})
}

#[tokio::test]
async fn catch_up_fires_every_missed_slot_in_order_once() {
    let app = TestApp::new().await;
    let id = create(&app, every_minute(), json!({})).await;
    assert!(app.state.services.scheduler.tick(Tz::UTC).await.unwrap().is_empty(), "nothing is due yet");
    // Weir was down for three and a half minutes.
    app.clock.advance(3 * MINUTE + 30_000);
    let created = app.state.services.scheduler.tick(Tz::UTC).await.unwrap();
    assert_eq!(created.len(), 3);
    assert!(app.state.services.scheduler.tick(Tz::UTC).await.unwrap().is_empty(), "a slot fires once");
    let runs = runs_of(&app, &id).await;
    let slots: Vec<i64> = runs.iter().map(|r| r.scheduled_at).collect();
    // The first whole minutes after creation (22:13:20): 22:14, 22:15, 22:16.
    assert_eq!(slots, vec![T0 + 40_000, T0 + 40_000 + MINUTE, T0 + 40_000 + 2 * MINUTE]);
    let recurring = app.get(&format!("{V2}/recurringruns/{id}")).await.body;
    for (i, run) in runs.iter().enumerate() {
        assert_eq!(run.recurring_run_id, id);
        assert_eq!(run.experiment_id, recurring["experiment_id"].as_str().unwrap());
        assert!(run.display_name.starts_with(&format!("everyminute-{}-{}-", &id[..5], i + 1)), "{}", run.display_name);
        assert_eq!(run.state, RuntimeState::Pending);
    }
    // The API shows them as KFP does.
    let listed = app.get(&format!("{V2}/runs?sort_by=created_at")).await.body;
    let api_run =
        listed["runs"].as_array().unwrap().iter().find(|r| r["run_id"] == runs[0].id.as_str()).unwrap().clone();
    assert_eq!(api_run["recurring_run_id"], id.as_str());
    assert_eq!(api_run["scheduled_at"], "2023-11-14T22:14:00Z");
    app.finish().await;
}

#[tokio::test]
async fn no_catchup_fires_only_the_latest_and_max_concurrency_waits() {
    let app = TestApp::new().await;
    let latest_only = create(&app, every_minute(), json!({"no_catchup": true})).await;
    let one_at_a_time = create(&app, every_minute(), json!({"display_name": "serial", "max_concurrency": 1})).await;
    app.clock.advance(5 * MINUTE);
    app.state.services.scheduler.tick(Tz::UTC).await.unwrap();
    let latest = runs_of(&app, &latest_only).await;
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].scheduled_at, T0 + 40_000 + 4 * MINUTE);
    let serial = runs_of(&app, &one_at_a_time).await;
    assert_eq!(serial.len(), 1, "max_concurrency 1: the next slot waits for the first run");
    app.state.services.scheduler.tick(Tz::UTC).await.unwrap();
    assert_eq!(runs_of(&app, &one_at_a_time).await.len(), 1);
    app.state
        .context()
        .store
        .transition_run(&serial[0].id, &[RuntimeState::Pending], RuntimeState::Succeeded, None, T0)
        .await
        .unwrap();
    app.state.services.scheduler.tick(Tz::UTC).await.unwrap();
    let serial = runs_of(&app, &one_at_a_time).await;
    assert_eq!(serial.len(), 2, "the delayed slot fires once there is room");
    assert_eq!(serial[1].scheduled_at, T0 + 40_000 + MINUTE, "slots are not skipped");
    app.finish().await;
}

#[tokio::test]
async fn windows_disable_enable_and_unpinned_versions() {
    let app = TestApp::new().await;
    let windowed = create(
        &app,
        json!({"periodic_schedule": {"interval_second": 60, "start_time": "2023-11-14T22:20:00Z", "end_time": "2023-11-14T22:23:00Z"}}),
        json!({"display_name": "windowed"}),
    )
    .await;
    app.clock.advance(30 * MINUTE);
    app.state.services.scheduler.tick(Tz::UTC).await.unwrap();
    let slots: Vec<String> = runs_of(&app, &windowed)
        .await
        .iter()
        .map(|r| {
            weir_api_model::serde_helpers::format_timestamp(&weir_api_model::serde_helpers::from_millis(r.scheduled_at))
        })
        .collect();
    assert_eq!(
        slots,
        ["2023-11-14T22:21:00Z", "2023-11-14T22:22:00Z", "2023-11-14T22:23:00Z"],
        "start + interval, up to the end"
    );

    // Disabled: nothing fires; enabled again: the slots missed meanwhile are caught up.
    let paused = create(&app, every_minute(), json!({"display_name": "paused"})).await;
    assert_eq!(app.post(&format!("{V2}/recurringruns/{paused}:disable"), json!(null)).await.status, 200);
    app.clock.advance(2 * MINUTE);
    app.state.services.scheduler.tick(Tz::UTC).await.unwrap();
    assert!(runs_of(&app, &paused).await.is_empty());
    assert_eq!(app.post(&format!("{V2}/recurringruns/{paused}:enable"), json!(null)).await.status, 200);
    app.state.services.scheduler.tick(Tz::UTC).await.unwrap();
    assert_eq!(runs_of(&app, &paused).await.len(), 2);

    // A recurring run naming only the pipeline takes its newest version at each firing.
    let uploaded =
        app.upload(&format!("{V2}/pipelines/upload?name=evolving"), "p.yaml", common::SPEC_YAML.as_bytes()).await;
    let pipeline_id = uploaded.body["pipeline_id"].as_str().unwrap().to_string();
    let body = json!({"display_name": "unpinned", "max_concurrency": 10, "mode": "ENABLE", "trigger": every_minute(),
                      "pipeline_version_reference": {"pipeline_id": pipeline_id}});
    let r = app.post(&format!("{V2}/recurringruns"), body).await;
    assert_eq!(r.body["pipeline_version_reference"], json!({"pipeline_id": pipeline_id}), "not pinned");
    let unpinned = r.body["recurring_run_id"].as_str().unwrap().to_string();
    app.clock.advance(MINUTE);
    let newer = app
        .upload(
            &format!("{V2}/pipelines/upload_version?name=newer&pipelineid={pipeline_id}"),
            "p.yaml",
            common::SPEC_YAML.as_bytes(),
        )
        .await;
    app.state.services.scheduler.tick(Tz::UTC).await.unwrap();
    let runs = runs_of(&app, &unpinned).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].pipeline_version_id, newer.body["pipeline_version_id"].as_str().unwrap());

    // An unknown version is bad input.
    let body = json!({"display_name": "x", "max_concurrency": 1, "trigger": every_minute(),
                      "pipeline_version_reference": {"pipeline_id": pipeline_id, "pipeline_version_id": "nope"}});
    assert_eq!(app.post(&format!("{V2}/recurringruns"), body).await.status, 400);
    app.finish().await;
}

/// Two weirs on one database, each with its own scheduler, and a third started later (a
/// restart or reinstall): every slot fires once.
async fn two_schedulers(dialect: Dialect) {
    let app = TestApp::on(dialect).await;
    let id = create(&app, json!({"periodic_schedule": {"interval_second": 1}}), json!({"display_name": "busy"})).await;
    let other_store = Arc::new(SqlStore::connect(&app.db.url, &ConnectSettings::default()).await.unwrap());
    let other_clock = Arc::new(ManualClock::new(T0));
    let artifacts = app.state.context().artifacts.clone();
    let other = Services::new(Context::new(other_store.clone(), artifacts.clone(), other_clock.clone()));
    for step in 1..=20 {
        app.clock.advance(1_500);
        other_clock.set(T0 + step * 1_500);
        let (a, b) = tokio::join!(app.state.services.scheduler.tick(Tz::UTC), other.scheduler.tick(Tz::UTC));
        a.unwrap();
        b.unwrap();
        // The runs finish (no engine here), so max_concurrency never holds a slot back.
        for run in runs_of(&app, &id).await.iter().filter(|r| r.state == RuntimeState::Pending) {
            app.state
                .context()
                .store
                .transition_run(&run.id, &[RuntimeState::Pending], RuntimeState::Succeeded, None, T0)
                .await
                .unwrap();
        }
    }
    let third = Services::new(Context::new(other_store, artifacts, Arc::new(ManualClock::new(T0 + 30_000))));
    third.scheduler.tick(Tz::UTC).await.unwrap();
    let runs = runs_of(&app, &id).await;
    let slots: Vec<i64> = runs.iter().map(|r| r.scheduled_at).collect();
    let expected: Vec<i64> = (1..=30).map(|i| T0 + i * 1_000).collect();
    assert_eq!(slots, expected, "every slot once, none skipped");
    app.finish().await;
}

#[tokio::test]
async fn sqlite_two_schedulers_fire_each_slot_once() {
    two_schedulers(Dialect::Sqlite).await;
}

#[tokio::test]
async fn mariadb_two_schedulers_fire_each_slot_once() {
    two_schedulers(Dialect::MySql).await;
}

#[tokio::test]
async fn postgres_two_schedulers_fire_each_slot_once() {
    two_schedulers(Dialect::Postgres).await;
}
