//! Retention applied by the collector on a real store: archive first, delete once archived
//! long enough, with the newest run kept and every step in the history.

use std::sync::Arc;

use weir_artifacts::{ArtifactStore, S3Settings};
use weir_gc::{retention, Collector};
use weir_store::testsuite::{experiment, run};
use weir_store::*;
use weir_store_sql::{ConnectSettings, SqlStore};

#[tokio::test]
async fn archive_first_then_delete() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqlStore::connect(&format!("sqlite://{}/weir.db", dir.path().display()), &ConnectSettings::default())
            .await
            .unwrap(),
    );
    store.migrate().await.unwrap();
    let artifacts =
        ArtifactStore::open(&format!("file://{}/artifacts", dir.path().display()), &S3Settings::default()).unwrap();
    let e = experiment("kept tidy", 1);
    store.create_experiment(&e).await.unwrap();
    let mut ids = Vec::new();
    for at in [1_000, 2_000, 3_000] {
        let r = run(&e.id, &format!("r{at}"), at - 1);
        store.create_run(&r).await.unwrap();
        store.transition_run(&r.id, &[RuntimeState::Pending], RuntimeState::Succeeded, None, at).await.unwrap();
        artifacts.put(&format!("logs/{}/t/1.log", r.id), "log".into()).await.unwrap();
        ids.push(r.id);
    }
    let policies: Vec<RetentionPolicy> = serde_json::from_value(serde_json::json!([
        {"name": "archive-all-but-newest", "states": ["SUCCEEDED"], "keep_last": 1, "action": "archive"},
        {"name": "archived-5s", "archived_for": "5s"},
    ]))
    .unwrap();
    let clock = Arc::new(ManualClock::new(10_000));
    let collector = Collector::new(store.clone(), artifacts.clone(), clock.clone());
    let quiet = |_| {};
    let on_run = |_| {};

    let first = retention::apply(&collector, &policies, false, 1, &on_run, &quiet).await.unwrap();
    assert_eq!((first.archived, first.deleted), (2, 0), "batches of one still reach every run");
    for (id, state) in ids.iter().zip([StorageState::Archived, StorageState::Archived, StorageState::Available]) {
        assert_eq!(store.get_run(id).await.unwrap().storage_state, state);
    }
    let again = retention::apply(&collector, &policies, false, 10, &on_run, &quiet).await.unwrap();
    assert_eq!((again.archived, again.deleted), (0, 0), "archived runs are not archived again, nor deleted early");

    clock.advance(5_001);
    let later = retention::apply(&collector, &policies, false, 10, &on_run, &quiet).await.unwrap();
    assert_eq!((later.archived, later.deleted), (0, 2));
    assert_eq!(later.drained.objects, 2, "their logs went");
    assert!(matches!(store.get_run(&ids[0]).await, Err(StoreError::NotFound(_))));
    assert_eq!(store.get_run(&ids[2]).await.unwrap().storage_state, StorageState::Available);
    assert_eq!(artifacts.list("logs").await.unwrap(), vec![format!("logs/{}/t/1.log", ids[2])]);
    let history = store.gc_history(10, None).await.unwrap();
    let actions: Vec<(String, String)> = history
        .iter()
        .map(|r| (r.policy.clone(), r.detail["action"].as_str().unwrap_or_default().to_string()))
        .collect();
    assert_eq!(
        actions.iter().filter(|(p, a)| p == "archive-all-but-newest" && a == "archive").count(),
        2,
        "{actions:?}"
    );
    assert_eq!(actions.iter().filter(|(p, a)| p == "archived-5s" && a == "delete").count(), 2, "{actions:?}");
    assert!(history.iter().all(|r| r.done_at > 0), "{history:?}");
    // The dry run agrees: nothing more to do.
    let chosen = retention::choose(store.as_ref(), &policies, clock.now_ms()).await.unwrap();
    assert!(chosen.iter().all(|c| c.runs.is_empty()), "{chosen:?}");
}
