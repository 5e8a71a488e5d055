//! `--apply` against the KFP-shaped databases of `common`: what weir holds after an import,
//! a re-run that changes nothing, and a re-run after KFP's rows (and weir's copies) changed.

mod common;

use std::collections::BTreeMap;

use common::{bucket, options, seed, seed_mlmd, Db, Fixture, Shape, Weir, IR, NOW};
use weir_artifacts::ArtifactStore;
use weir_import_kfp::{KindApplied, Report};
use weir_store::{
    ExperimentStore, PipelineStore, PipelineVersionStore, RecurringRunStore, RunStore, RuntimeState, StorageState,
    TaskKind, TaskStore, Trigger,
};
use weir_store_sql::{Dialect, SqlStore};

fn kinds(report: &Report) -> BTreeMap<String, (u64, u64, u64)> {
    let applied = report.applied.as_ref().expect("an apply reports what it wrote");
    applied
        .kinds
        .iter()
        .map(|(k, KindApplied { inserted, updated, unchanged })| (k.clone(), (*inserted, *updated, *unchanged)))
        .collect()
}

fn conflicts(report: &Report) -> BTreeMap<String, Vec<String>> {
    let applied = report.applied.as_ref().unwrap();
    applied.conflicts.iter().map(|(code, w)| (code.clone(), w.samples.clone())).collect()
}

fn expect<const N: usize>(entries: [(&str, (u64, u64, u64)); N]) -> BTreeMap<String, (u64, u64, u64)> {
    entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Imports the seeded installation into a new weir, then again, then again after changes on
/// both sides. `weir_has` says what weir held before: with its own `Default` experiment and a
/// pipeline named as one of KFP's (PostgreSQL case), or empty (MariaDB case).
async fn round_trip(db: Db, weir_dialect: Dialect, weir_has_own: bool) {
    // Artifacts copied into weir's store in one case, referenced in KFP's bucket in the other.
    let copy = !weir_has_own;
    let objects = bucket().await;
    let fixture = Fixture::create(db, Shape::V2_17).await;
    seed(&fixture, Shape::V2_17).await;
    let metadb = Fixture::empty(db).await;
    seed_mlmd(&metadb, &objects, 10).await;
    let weir = Weir::new(weir_dialect).await;
    let (store, artifacts) = (&weir.store, &weir.artifacts);
    let options = options(&fixture, &metadb, &objects);
    if weir_has_own {
        let mut default = weir_store::testsuite::experiment("Default", 5);
        default.id = "weir-default".into();
        store.create_experiment(&default).await.unwrap();
        let mut taken = weir_store::testsuite::pipeline("score", 5);
        taken.id = "weirs-own-score".into();
        store.create_pipeline(&taken, None).await.unwrap();
    }

    // First import.
    let report = weir.import(&options, None, copy).await;
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    let default = if weir_has_own { "weir-default" } else { "e1" };
    if weir_has_own {
        assert_eq!(
            kinds(&report),
            expect([
                // e1 (KFP's Default) merged into weir's: recorded, not written.
                ("experiment", (2, 0, 0)),
                ("pipeline", (1, 0, 0)),
                ("pipeline_version", (2, 0, 0)),
                ("recurring_run", (2, 0, 0)),
                ("run", (6, 0, 0)),
                ("task", (5, 0, 0)),
                ("artifact", (2, 0, 0)),
            ])
        );
        assert_eq!(
            conflicts(&report),
            BTreeMap::from([
                ("PARENT_NOT_IMPORTED".to_string(), vec!["v3".to_string(), "v5".to_string()]),
                ("TAKEN_IN_WEIR".to_string(), vec!["p2".to_string()]),
            ])
        );
        assert!(store.get_pipeline("p2").await.is_err(), "weir's own pipeline of that name is kept");
        assert!(store.get_experiment("e1").await.is_err(), "KFP's Default is weir's Default");
    } else {
        assert_eq!(
            kinds(&report),
            expect([
                ("experiment", (2, 0, 0)),
                ("pipeline", (2, 0, 0)),
                ("pipeline_version", (4, 0, 0)),
                ("recurring_run", (2, 0, 0)),
                ("run", (6, 0, 0)),
                ("task", (5, 0, 0)),
                ("artifact", (2, 0, 0)),
                ("copied object", (1, 0, 0)),
            ])
        );
        assert_eq!(conflicts(&report), BTreeMap::new());
        let argo = store.get_pipeline_version("p2", "v5").await.unwrap();
        assert_eq!(argo.pipeline_spec["kind"], "Workflow", "a v1 spec is kept as history");
    }

    // What weir holds, field by field.
    let r1 = store.get_run("r1").await.unwrap();
    assert_eq!(
        (r1.state, r1.experiment_id.as_str(), r1.created_at, r1.finished_at, r1.scheduled_at),
        (RuntimeState::Succeeded, default, 1_700_000_200_000, 1_700_000_300_000, 1_700_000_200_000)
    );
    assert_eq!(r1.parameters["text"], "hi");
    assert_eq!(r1.pipeline_spec["pipelineInfo"]["name"], "train");
    assert_eq!(r1.service_account, "pipeline-runner");
    assert_eq!(r1.state_history.len(), 1);
    assert_eq!(r1.state_history[0].update_time, 1_700_000_300_000);
    let r2 = store.get_run("r2").await.unwrap();
    assert_eq!((r2.state, r2.experiment_id.as_str()), (RuntimeState::Failed, "e2"), "1.x: state and experiment");
    let r3 = store.get_run("r3").await.unwrap();
    assert_eq!(r3.state, RuntimeState::Canceled, "in flight in KFP: canceled in weir");
    assert!(r3.error.as_ref().is_some_and(|e| e.message.contains("still running")), "{:?}", r3.error);
    assert_eq!(store.get_run("r5").await.unwrap().experiment_id, default, "an orphan goes to Default");
    assert_eq!(store.get_run("r6").await.unwrap().parameters["a"], "1", "v1 parameters");
    let e2 = store.get_experiment("e2").await.unwrap();
    assert_eq!((e2.storage_state, e2.description.as_str()), (StorageState::Archived, "it's old"));
    assert_eq!(store.get_experiment(default).await.unwrap().last_run_created_at, 1_700_000_200_000);
    let v2 = store.get_pipeline_version("p1", "v2").await.unwrap();
    assert_eq!(v2.pipeline_spec["pipelineInfo"]["name"], "train", "the spec KFP kept only in its bucket");
    assert_eq!(artifacts.get(&v2.package_key).await.unwrap(), IR.as_bytes(), "the package object is written");
    let j1 = store.get_recurring_run("j1").await.unwrap();
    assert!(!j1.enabled, "schedules come over disabled");
    assert_eq!(j1.trigger, Trigger::Cron { cron: "0 0 * * * *".into(), start_time: None, end_time: None });
    assert_eq!(j1.last_slot_at, NOW, "slots before the import were KFP's");
    let j2 = store.get_recurring_run("j2").await.unwrap();
    assert_eq!(j2.trigger, Trigger::Periodic { interval_second: 3600, start_time: None, end_time: None });
    assert_eq!(j2.pipeline_spec["pipelineInfo"]["name"], "train", "unpinned: the version's spec");

    check_steps(store, artifacts, copy).await;

    // Again, nothing changed: nothing written.
    let again = weir.import(&options, None, copy).await;
    for (kind, (inserted, updated, unchanged)) in kinds(&again) {
        assert_eq!((inserted, updated), (0, 0), "{kind}: nothing new on a re-run");
        assert!(unchanged > 0, "{kind}");
    }
    assert_eq!(again.checksums, report.checksums);

    // Changes: in KFP only (r1), in both (e2 unarchived in weir; r6 deleted in weir), a new
    // run in KFP (r7) and one gone from it (r4).
    fixture.execute("UPDATE \"run_details\" SET \"Description\" = 'changed' WHERE \"UUID\" = 'r1'").await;
    fixture.execute("UPDATE \"experiments\" SET \"Description\" = 'older' WHERE \"UUID\" = 'e2'").await;
    fixture.execute("UPDATE \"run_details\" SET \"DisplayName\" = 'renamed' WHERE \"UUID\" = 'r6'").await;
    fixture
        .execute(
            "INSERT INTO \"run_details\" (\"UUID\", \"DisplayName\", \"Name\", \"Description\", \"Namespace\", \"ExperimentUUID\", \
             \"StorageState\", \"ServiceAccount\", \"PipelineId\", \"PipelineName\", \"PipelineSpecManifest\", \"CreatedAtInSec\", \
             \"Conditions\", \"State\", \"PipelineRuntimeManifest\", \"WorkflowRuntimeManifest\") VALUES ('r7', 'run r7', 'wf-r7', '', '', \
             'e2', 'AVAILABLE', '', 'p1', 'train', '', 1700000500, 'Succeeded', 'SUCCEEDED', '', '')",
        )
        .await;
    fixture.execute("DELETE FROM \"run_details\" WHERE \"UUID\" = 'r4'").await;
    store.unarchive_experiment("e2").await.unwrap();
    store.delete_run("r6").await.unwrap();

    let changed = weir.import(&options, None, copy).await;
    let by_kind = kinds(&changed);
    assert_eq!(by_kind["run"], (1, 1, 3), "r7 new, r1 updated, r2 r3 r5 unchanged");
    assert_eq!(by_kind["experiment"], (0, 0, 1));
    let found = conflicts(&changed);
    assert_eq!(found["CHANGED_IN_WEIR"], ["e2"]);
    assert_eq!(found["DELETED_IN_WEIR"], ["r6"]);
    assert_eq!(changed.applied.as_ref().unwrap().gone_from_source, BTreeMap::from([("run".to_string(), 1)]));
    assert_eq!(changed.exit_code(), 1, "conflicts are reported");
    assert_eq!(store.get_run("r1").await.unwrap().description, "changed");
    assert_eq!(store.get_run("r7").await.unwrap().experiment_id, "e2");
    assert_eq!(store.get_experiment("e2").await.unwrap().storage_state, StorageState::Available, "weir's change wins");
    assert!(store.get_run("r6").await.is_err(), "a run deleted in weir stays deleted");
    assert!(store.get_run("r4").await.is_ok(), "weir keeps what KFP no longer has");
    assert_eq!(by_kind["task"], (3, 0, 0), "r1's steps are replaced with it");
    check_steps(store, artifacts, copy).await;

    assert!(changed.applied.as_ref().unwrap().notes.is_empty(), "{:?}", changed.applied);

    weir.drop().await;
    fixture.drop().await;
    metadb.drop().await;
}

/// r1's and r2's steps as ML Metadata recorded them (common::seed_mlmd).
async fn check_steps(store: &SqlStore, artifacts: &ArtifactStore, copied: bool) {
    let tasks = store.list_tasks("r1").await.unwrap();
    let by_name: BTreeMap<&str, &weir_store::Task> = tasks.iter().map(|t| (t.name.as_str(), t)).collect();
    assert_eq!(by_name.keys().copied().collect::<Vec<_>>(), ["log-step", "root", "train-step"]);
    let (root, train, log) = (by_name["root"], by_name["train-step"], by_name["log-step"]);
    assert_eq!((root.kind, root.parent_id.as_str()), (TaskKind::Dag, ""));
    assert_eq!((train.parent_id.as_str(), log.parent_id.as_str()), (root.id.as_str(), root.id.as_str()));
    assert_eq!((train.state, log.state), (RuntimeState::Succeeded, RuntimeState::Failed));
    assert_eq!(train.inputs.parameters, serde_json::json!({"message": "hi", "n": 3}).as_object().unwrap().clone());
    assert_eq!(train.outputs.parameters["Output"], "done");
    // KFP's fingerprint is not weir's, and this run's spec has no such task to compute weir's.
    assert_eq!((train.fingerprint.as_str(), train.image.as_str()), ("", "python:3.11"));
    assert_eq!((train.created_at, train.finished_at), (1_700_000_210_000, 1_700_000_250_000));
    let produced = store.list_artifacts("r1").await.unwrap();
    assert_eq!(produced.len(), 2, "model and metrics; the log is not an artifact: {produced:?}");
    let model = produced.iter().find(|a| a.name == "model").unwrap();
    let metrics = produced.iter().find(|a| a.name == "metrics").unwrap();
    assert_eq!(train.outputs.artifacts["model"], [model.id]);
    assert_eq!(log.inputs.artifacts["model"], [model.id]);
    let kfp_uri = model.uri.clone();
    if copied {
        let key = weir_artifacts::layout::key_for_uri(artifacts.url(), &model.uri).expect("in weir's store");
        assert_eq!(artifacts.get(&key).await.unwrap(), &b"model weights"[..], "copied");
        assert_eq!(model.object_count, 1);
        assert!(model.metadata["kfp_uri"].as_str().unwrap().starts_with("minio://"), "{}", model.metadata);
        assert!(metrics.uri.starts_with("minio://"), "metrics have no object to copy");
    } else {
        assert!(kfp_uri.starts_with("minio://") && kfp_uri.ends_with("/model"), "{kfp_uri}");
        assert_eq!(model.metadata, serde_json::json!({"display_name": "model", "labels": ["a", "b"]}));
        assert_eq!(model.object_count, 0, "referenced where KFP wrote it");
    }
    assert_eq!(
        (metrics.schema_title.as_str(), &metrics.metadata["accuracy"]),
        ("system.Metrics", &serde_json::json!(0.9))
    );
    let read = |task: &weir_store::Task| {
        let key = weir_artifacts::layout::log_key("r1", &task.id, 1);
        async move { String::from_utf8(artifacts.get(&key).await.unwrap().to_vec()).unwrap() }
    };
    assert_eq!(read(train).await, "training...\naccuracy 0.9\n", "executor-logs, gunzipped");
    assert!(read(log).await.contains("it failed"), "Argo's archived main.log, from its tgz");

    let cached: Vec<weir_store::Task> = store.list_tasks("r2").await.unwrap();
    let hit = cached.iter().find(|t| t.name == "train-step").unwrap();
    assert!(hit.cached && hit.state == RuntimeState::Succeeded && hit.attempts == 0, "{hit:?}");
    assert_eq!(hit.fingerprint, "", "a fingerprint is kept for COMPLETE executions only");
    assert_eq!(hit.outputs.artifacts["model"], [model.id], "a cache hit names the first run's artifact");
    assert!(store.list_artifacts("r2").await.unwrap().is_empty());
}

#[tokio::test]
async fn mariadb_kfp_into_a_new_sqlite_weir() {
    round_trip(Db::Maria, Dialect::Sqlite, false).await;
}

#[tokio::test]
async fn postgresql_kfp_into_a_postgresql_weir_with_its_own_rows() {
    round_trip(Db::Postgres, Dialect::Postgres, true).await;
}
