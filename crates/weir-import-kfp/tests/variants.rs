//! Every table shape KFP has had (docs/import-kfp.md, "Variants": 2.0-2.3, 2.4, 2.5, 2.14,
//! 2.15-2.16, 2.17 on MariaDB; the GORM v2 shapes on PostgreSQL too), with ML Metadata at schema
//! 7 (KFP 2.0.0-2.0.1) or 10: each is recognised, planned and imported, a re-run writes
//! nothing, and an import stopped part way (`max_rows`) continues to the same end as one run.

mod common;

use std::collections::BTreeMap;

use common::{bucket, options, seed, seed_mlmd, Db, Fixture, Shape, Weir};
use weir_import_kfp::{plan, Report};
use weir_store::{RunStore, StoreAdmin, TaskStore};
use weir_store_sql::{Dialect, SqlStore};

fn inserted(report: &Report) -> BTreeMap<String, u64> {
    report.applied.as_ref().unwrap().kinds.iter().map(|(k, v)| (k.clone(), v.inserted)).collect()
}

#[tokio::test]
async fn every_kfp_shape_is_recognised_and_imported() {
    let objects = bucket().await;
    let mut run_checksums = Vec::new();
    let cases: Vec<(Db, Shape)> = Shape::ALL
        .iter()
        .map(|s| (Db::Maria, *s))
        .chain([(Db::Postgres, Shape::V2_15), (Db::Postgres, Shape::V2_17)])
        .collect();
    for (db, shape) in cases {
        let fixture = Fixture::create(db, shape).await;
        seed(&fixture, shape).await;
        let metadb = Fixture::empty(db).await;
        let mlmd_schema = if shape == Shape::V2_0 { 7 } else { 10 };
        seed_mlmd(&metadb, &objects, mlmd_schema).await;
        let options = options(&fixture, &metadb, &objects);
        let planned = plan(&options).await.unwrap();
        let case = format!("{shape:?} on {}", if db == Db::Maria { "MariaDB" } else { "PostgreSQL" });
        assert_eq!(planned.source.variant, shape.variant(), "{case}");
        let mlmd = planned.source.mlmd.as_deref().unwrap_or_default();
        assert!(mlmd.contains(&format!("schema {mlmd_schema}")), "{case}: {mlmd}");
        assert_eq!(planned.counts["runs"].total, 6, "{case}");
        run_checksums.push((case.clone(), planned.checksums["runs"].clone(), planned.checksums["experiments"].clone()));

        let weir = Weir::new(Dialect::Sqlite).await;
        let report = weir.import(&options, None, false).await;
        let expected_versions = 4;
        assert_eq!(
            inserted(&report),
            BTreeMap::from([
                ("artifact".to_string(), 2),
                ("experiment".to_string(), 2),
                ("pipeline".to_string(), 2),
                ("pipeline_version".to_string(), expected_versions),
                ("recurring_run".to_string(), 2),
                ("run".to_string(), 6),
                ("task".to_string(), 5),
            ]),
            "{case}"
        );
        assert_eq!(weir.store.list_tasks("r1").await.unwrap().len(), 3, "{case}");
        let again = weir.import(&options, None, false).await;
        assert!(inserted(&again).values().all(|n| *n == 0), "{case}: {:?}", again.applied);
        weir.drop().await;
        fixture.drop().await;
        metadb.drop().await;
    }
    // The mapped runs and experiments do not depend on the shape or the database.
    for (case, runs, experiments) in &run_checksums[1..] {
        assert_eq!((runs, experiments), (&run_checksums[0].1, &run_checksums[0].2), "{case}");
    }
}

/// An import stopped after a few rows at a time (as if interrupted: each page is written with
/// its ledger rows in one transaction) continues where it stopped, and ends where one
/// uninterrupted import ends.
#[tokio::test]
async fn an_import_in_parts_ends_as_one_import() {
    let objects = bucket().await;
    let fixture = Fixture::create(Db::Maria, Shape::V2_17).await;
    seed(&fixture, Shape::V2_17).await;
    let metadb = Fixture::empty(Db::Maria).await;
    seed_mlmd(&metadb, &objects, 10).await;
    let options = options(&fixture, &metadb, &objects);
    let whole = Weir::new(Dialect::Sqlite).await;
    whole.import(&options, None, false).await;

    let parts = Weir::new(Dialect::Sqlite).await;
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 20, "the import does not finish");
        let report = parts.import(&options, Some(3), false).await;
        let applied = report.applied.as_ref().unwrap();
        let written: u64 = applied
            .kinds
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "task" | "artifact"))
            .map(|(_, v)| v.inserted + v.updated)
            .sum();
        assert!(written <= 3, "{applied:?}");
        assert!(applied.conflicts.is_empty(), "{applied:?}");
        if applied.deferred == 0 {
            assert_eq!(report.exit_code(), 1, "warnings only (the plan's)");
            break;
        }
        assert_eq!(report.exit_code(), 1, "an unfinished import says so");
    }
    assert!(rounds > 3, "14 source rows, 3 at a time");
    let counts = |store: &SqlStore| {
        let store = store.clone();
        async move {
            let mut counts = store.table_counts().await.unwrap();
            counts.retain(|(table, _)| table != "server_leases");
            counts
        }
    };
    assert_eq!(counts(&parts.store).await, counts(&whole.store).await);
    for id in ["r1", "r2", "r3", "r4", "r5", "r6"] {
        let (a, b) = (parts.store.get_run(id).await.unwrap(), whole.store.get_run(id).await.unwrap());
        assert_eq!((a.state, a.experiment_id, a.finished_at), (b.state, b.experiment_id, b.finished_at), "{id}");
        assert_eq!(parts.store.list_tasks(id).await.unwrap().len(), whole.store.list_tasks(id).await.unwrap().len());
    }
    whole.drop().await;
    parts.drop().await;
    fixture.drop().await;
    metadb.drop().await;
}
