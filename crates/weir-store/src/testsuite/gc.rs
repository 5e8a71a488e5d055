//! Removals and retention queries ([`crate::GcStore`]).

use serde_json::json;

use super::{experiment, run, task, uid};
use crate::*;

async fn finished_run(store: &dyn MetadataStore, experiment_id: &str, name: &str, state: RuntimeState, at: i64) -> Run {
    let r = run(experiment_id, name, at - 1);
    store.create_run(&r).await.unwrap();
    store.transition_run(&r.id, &[RuntimeState::Pending], state, None, at).await.unwrap()
}

fn artifact(id: i64, run: &Run, task: &Task) -> Artifact {
    Artifact {
        id,
        run_id: run.id.clone(),
        task_id: task.id.clone(),
        name: "data".into(),
        uri: format!("s3://b/artifacts/p/{}/{}/data", run.id, task.id),
        schema_title: "system.Dataset".into(),
        schema_version: "0.0.1".into(),
        metadata: json!({}),
        created_at: 1,
        object_count: 1,
    }
}

fn removal(run: &Run, keep_artifacts: bool) -> Removal {
    Removal {
        history_id: uid("h"),
        policy: "test".into(),
        keep_artifacts,
        prefixes: vec![format!("logs/{}/", run.id), format!("artifacts/p/{}/", run.id)],
        now: 9_000,
    }
}

/// A run's removal deletes its rows and journals its folders; artifacts another run's cache
/// hit uses stay until that run goes too; `keep_artifacts` keeps them for good; a cache hit
/// whose source went is refused.
pub(super) async fn removals_keep_what_others_use(store: &dyn MetadataStore) {
    let e = experiment(&uid("gc"), 1_000);
    store.create_experiment(&e).await.unwrap();
    let base = (uuid::Uuid::new_v4().as_u128() as i64 & 0xffff_ffff) * 1000;
    let fingerprint = uid("f");
    let make = |r: &Run, cached: bool, outputs: Vec<i64>| {
        let mut t = task(&r.id, "step", TaskKind::Container, 2_000);
        t.fingerprint = fingerprint.clone();
        t.cached = cached;
        t.attempts = i64::from(!cached);
        t.set_state(RuntimeState::Succeeded, None, 2_500);
        t.outputs.artifacts.insert("data".into(), outputs);
        t
    };
    let a = finished_run(store, &e.id, "a", RuntimeState::Succeeded, 3_000).await;
    let ta = make(&a, false, vec![base + 1]);
    let a1 = artifact(base + 1, &a, &ta);
    let b = finished_run(store, &e.id, "b", RuntimeState::Succeeded, 3_100).await;
    let tb = make(&b, true, vec![base + 1]);
    let c = finished_run(store, &e.id, "c", RuntimeState::Succeeded, 3_200).await;
    let mut tc = make(&c, false, vec![base + 3]);
    tc.fingerprint = uid("g");
    let c1 = artifact(base + 3, &c, &tc);
    for (r, t, artifacts) in [(&a, &ta, vec![a1.clone()]), (&b, &tb, vec![]), (&c, &tc, vec![c1.clone()])] {
        let progress = Progress { new_tasks: vec![t.clone()], new_artifacts: artifacts, ..Default::default() };
        store.save_progress(&r.id, &progress).await.unwrap();
    }

    let first = store.remove_run(&a.id, &removal(&a, false)).await.unwrap();
    assert_eq!((first.kind.as_str(), first.target_id.as_str(), first.done_at), ("run", a.id.as_str(), 0));
    assert_eq!(first.detail["artifacts_kept_for_cache"], 1, "{}", first.detail);
    assert_eq!(first.detail["artifacts_deleted"], 0, "{}", first.detail);
    assert!(matches!(store.get_run(&a.id).await, Err(StoreError::NotFound(_))));
    assert!(store.list_tasks(&a.id).await.unwrap().is_empty());
    assert_eq!(store.get_artifacts(&[a1.id]).await.unwrap(), vec![a1.clone()], "the cache hit's outputs stay");
    assert_eq!(store.find_cached("p", &fingerprint).await.unwrap(), None, "the cache entry went with its run");
    let uris = store.referenced_uris(&[a1.uri.clone(), "s3://b/other".into()]).await.unwrap();
    assert_eq!(uris.into_iter().collect::<Vec<_>>(), vec![a1.uri.clone()]);
    assert!(matches!(store.remove_run(&a.id, &removal(&a, false)).await, Err(StoreError::NotFound(_))));

    // A cache hit on the removed task is refused, and writes nothing.
    let d = finished_run(store, &e.id, "d", RuntimeState::Running, 3_300).await;
    let td = make(&d, true, vec![base + 1]);
    let hit = Progress { new_tasks: vec![td.clone()], cache_sources: vec![ta.id.clone()], ..Default::default() };
    assert!(matches!(store.save_progress(&d.id, &hit).await, Err(StoreError::Aborted(_))));
    assert!(store.list_tasks(&d.id).await.unwrap().is_empty());
    // A hit on a source still there goes through.
    let tc_hit = Progress {
        new_tasks: vec![make(&d, true, vec![base + 3])],
        cache_sources: vec![tc.id.clone()],
        ..Default::default()
    };
    store.save_progress(&d.id, &tc_hit).await.unwrap();

    // The last user's removal frees the artifact, journaled by its URI.
    let second = store.remove_run(&b.id, &removal(&b, false)).await.unwrap();
    assert_eq!(second.detail["artifacts_deleted"], 1, "{}", second.detail);
    assert!(store.get_artifacts(&[a1.id]).await.unwrap().is_empty());
    let pending = store.pending_deletions(1_000).await.unwrap();
    let of = |record: &GcRecord| -> Vec<String> {
        pending.iter().filter(|p| p.history_id == record.id).map(|p| p.prefix.clone()).collect()
    };
    assert_eq!(of(&first), vec![format!("logs/{}/", a.id), format!("artifacts/p/{}/", a.id)]);
    assert!(of(&second).contains(&format!("uri:{}", a1.uri)), "{:?}", of(&second));

    // Kept on purpose: the artifact rows stay (owned by no run) and no later removal frees them.
    let third = store.remove_run(&c.id, &removal(&c, true)).await.unwrap();
    assert_eq!(third.detail["keep_artifacts"], true);
    let kept = store.get_artifacts(&[c1.id]).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert!(kept[0].run_id.starts_with("kept:"), "{:?}", kept[0]);
    store.remove_run(&d.id, &removal(&d, false)).await.unwrap();
    assert_eq!(store.get_artifacts(&[c1.id]).await.unwrap().len(), 1, "kept artifacts are not freed by a user");

    // Finishing the journal entries completes the records.
    for entry in store.pending_deletions(1_000).await.unwrap().iter().filter(|p| p.history_id == first.id) {
        store.finish_deletions(&[(entry.clone(), 2, 10)], 9_500).await.unwrap();
        // Finishing an entry twice (two collectors) counts it once.
        store.finish_deletions(&[(entry.clone(), 2, 10)], 9_500).await.unwrap();
    }
    let history = store.gc_history(1_000, None).await.unwrap();
    let done = history.iter().find(|r| r.id == first.id).unwrap();
    assert_eq!((done.objects, done.bytes, done.done_at), (4, 20, 9_500));
    assert_eq!(history.iter().find(|r| r.id == second.id).unwrap().done_at, 0);
    // Pages of the history follow (at, id) downwards.
    let page = store.gc_history(1, None).await.unwrap();
    let next = store.gc_history(1, Some((page[0].at, page[0].id.clone()))).await.unwrap();
    assert_eq!(next.len(), 1);
    assert!((next[0].at, &next[0].id) < (page[0].at, &page[0].id));
}

/// Policies pick finished runs by state, age, count and archiving time, within a scope.
pub(super) async fn retention_chooses_runs(store: &dyn MetadataStore) {
    let e = experiment(&uid("retention"), 1_000);
    store.create_experiment(&e).await.unwrap();
    let mut succeeded = Vec::new();
    for i in 1..=5 {
        succeeded.push(finished_run(store, &e.id, &format!("s{i}"), RuntimeState::Succeeded, i * 10).await);
    }
    let failed = finished_run(store, &e.id, "f", RuntimeState::Failed, 60).await;
    let running = run(&e.id, "running", 70);
    store.create_run(&running).await.unwrap();
    let ids = |runs: Vec<RunCandidate>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let query = |states: Vec<RuntimeState>| RetentionQuery {
        experiment_id: Some(e.id.clone()),
        states,
        limit: 100,
        ..Default::default()
    };

    let keep_two = RetentionQuery { keep_last: Some(2), ..query(vec![RuntimeState::Succeeded]) };
    let expected: Vec<String> = succeeded[..3].iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids(store.retention_candidates(&keep_two).await.unwrap()), expected, "oldest first");
    let small = RetentionQuery { limit: 1, ..keep_two.clone() };
    assert_eq!(ids(store.retention_candidates(&small).await.unwrap()), expected[..1]);
    let keep_all = RetentionQuery { keep_last: Some(9), ..keep_two.clone() };
    assert!(store.retention_candidates(&keep_all).await.unwrap().is_empty());
    let old = RetentionQuery { finished_before: Some(61), ..query(vec![RuntimeState::Failed]) };
    assert_eq!(ids(store.retention_candidates(&old).await.unwrap()), vec![failed.id.clone()]);
    let young = RetentionQuery { finished_before: Some(60), ..old.clone() };
    assert!(store.retention_candidates(&young).await.unwrap().is_empty());
    let every = RetentionQuery {
        finished_before: Some(i64::MAX),
        ..query(vec![RuntimeState::Succeeded, RuntimeState::Failed, RuntimeState::Canceled, RuntimeState::Skipped])
    };
    let all = ids(store.retention_candidates(&every).await.unwrap());
    assert_eq!(all.len(), 6);
    assert!(!all.contains(&running.id), "a running run is never chosen");
    let refused = RetentionQuery { ..query(vec![RuntimeState::Running]) };
    assert!(matches!(store.retention_candidates(&refused).await, Err(StoreError::InvalidArgument(_))));

    // Archived runs count from their archiving; archiving again keeps the first time.
    store.set_run_storage_state(&succeeded[0].id, StorageState::Archived, 1_000).await.unwrap();
    store.set_run_storage_state(&succeeded[0].id, StorageState::Archived, 5_000).await.unwrap();
    let archived = RetentionQuery { archived_before: Some(1_001), ..every.clone() };
    assert_eq!(ids(store.retention_candidates(&archived).await.unwrap()), vec![succeeded[0].id.clone()]);
    let too_soon = RetentionQuery { archived_before: Some(1_000), ..every.clone() };
    assert!(store.retention_candidates(&too_soon).await.unwrap().is_empty());
    let available = RetentionQuery { available_only: true, ..every.clone() };
    assert!(!ids(store.retention_candidates(&available).await.unwrap()).contains(&succeeded[0].id));
    // Unarchiving forgets the time; an archived experiment's runs are stamped with it.
    store.set_run_storage_state(&succeeded[0].id, StorageState::Available, 6_000).await.unwrap();
    assert!(store.retention_candidates(&archived).await.unwrap().is_empty());
    store.archive_experiment(&e.id, 7_000).await.unwrap();
    let later = RetentionQuery { archived_before: Some(7_001), ..every.clone() };
    assert_eq!(store.retention_candidates(&later).await.unwrap().len(), 6);
    assert_eq!(store.stamp_archived(8_000).await.unwrap(), 0, "every archived run has its time");

    // An experiment's own policies, and what a cascade removes.
    let policy = RetentionPolicy {
        name: "keep-1".into(),
        states: vec![],
        older_than: None,
        keep_last: Some(1),
        archived_for: None,
        action: RetentionAction::Delete,
        keep_artifacts: false,
    };
    assert_eq!(store.get_experiment_policies(&e.id).await.unwrap(), None);
    store.set_experiment_policies(&e.id, Some(std::slice::from_ref(&policy)), 1).await.unwrap();
    assert_eq!(store.get_experiment_policies(&e.id).await.unwrap(), Some(vec![policy.clone()]));
    assert!(store.experiment_policies().await.unwrap().contains(&(e.id.clone(), vec![policy])));
    assert!(matches!(store.set_experiment_policies("missing", None, 1).await, Err(StoreError::NotFound(_))));
    store.set_experiment_policies(&e.id, None, 2).await.unwrap();
    assert_eq!(store.get_experiment_policies(&e.id).await.unwrap(), None);
    let (runs, recurring) = store.experiment_members(&e.id, 100).await.unwrap();
    assert_eq!((runs.len(), recurring.len()), (7, 0));
    assert_eq!(store.experiment_members(&e.id, 3).await.unwrap().0.len(), 3);
}
