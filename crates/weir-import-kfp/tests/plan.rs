//! The dry run against the KFP-shaped databases of `common`.

mod common;

use std::collections::BTreeMap;

use common::{bucket, seed, Db, Fixture, Shape};
use weir_artifacts::ArtifactStore;
use weir_import_kfp::{plan, PlanOptions, Report};

fn codes(report: &Report) -> BTreeMap<String, Vec<String>> {
    report.warnings.iter().map(|(code, w)| (code.clone(), w.samples.clone())).collect()
}

async fn planned(fixture: &Fixture, objects: &ArtifactStore, allow_inflight: bool) -> Report {
    plan(&PlanOptions {
        database_url: fixture.url.clone(),
        objects: objects.clone(),
        allow_inflight,
        mlmd_url: None,
        cache_url: None,
    })
    .await
    .unwrap()
}

fn check_report(report: &Report) {
    let totals: BTreeMap<&str, u64> = report.counts.iter().map(|(k, c)| (k.as_str(), c.total)).collect();
    assert_eq!(
        totals,
        BTreeMap::from([
            ("experiments", 2),
            ("pipeline versions", 4),
            ("pipelines", 2),
            ("recurring runs", 2),
            ("runs", 6)
        ]),
        "{report:#?}"
    );
    assert_eq!(
        report.counts["runs"].by_state,
        BTreeMap::from([("FAILED".to_string(), 2), ("RUNNING".to_string(), 1), ("SUCCEEDED".to_string(), 3)])
    );
    assert_eq!(
        report.counts["pipeline versions"].by_state,
        BTreeMap::from([("column".to_string(), 2), ("missing".to_string(), 1), ("version-key".to_string(), 1)])
    );
    assert_eq!(report.counts["experiments"].by_state["ARCHIVED"], 1, "STORAGESTATE_ARCHIVED is archived");
    let expected: BTreeMap<String, Vec<String>> = [
        ("DANGLING_VERSION_REF", vec!["r4"]),
        ("INFLIGHT_RUN", vec!["r3"]),
        ("ORPHAN_ROW", vec!["v4", "r5"]),
        ("SCHEDULE_WOULD_FIRE", vec!["j1"]),
        ("SPEC_FROM_OBJECT_STORE", vec!["v2"]),
        ("SPEC_MISSING", vec!["v3"]),
        ("STATUS_NOT_READY", vec!["p3"]),
        ("UNPINNED_SCHEDULE", vec!["j2"]),
        ("V1_NOT_RUNNABLE", vec!["v5", "r6"]),
    ]
    .into_iter()
    .map(|(c, s)| (c.to_string(), s.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(codes(report), expected, "{report:#?}");
    assert_eq!(report.skipped["pipelines"]["STATUS_NOT_READY"], 1);
    assert_eq!(report.skipped["pipeline versions"]["ORPHAN_ROW"], 1);
    assert_eq!(report.source.default_experiment.as_deref(), Some("e1"));
}

/// The same installation on MariaDB and on PostgreSQL: the same report, the same checksums
/// (canonical JSON of the mapped fields, in id order); a run in flight refuses the import
/// unless allowed; the plan writes nothing; a changed row changes only its kind's checksum.
#[tokio::test]
async fn kfp_2_17_on_mariadb_and_postgresql() {
    let objects = bucket().await;
    let maria = Fixture::create(Db::Maria, Shape::V2_17).await;
    let postgres = Fixture::create(Db::Postgres, Shape::V2_17).await;
    seed(&maria, Shape::V2_17).await;
    seed(&postgres, Shape::V2_17).await;

    let before = maria.dump().await;
    let report = planned(&maria, &objects, false).await;
    check_report(&report);
    assert_eq!(report.source.variant, "2.17");
    assert_eq!(report.exit_code(), 2, "a run in flight refuses: {:?}", report.refused);
    assert!(report.refused[0].contains("--allow-inflight"), "{:?}", report.refused);
    assert_eq!(maria.dump().await, before, "a plan writes nothing");

    let allowed = planned(&maria, &objects, true).await;
    assert_eq!(allowed.exit_code(), 1, "warnings, nothing refused");
    assert_eq!(allowed.checksums, report.checksums, "the same source, the same checksums");

    let on_postgres = planned(&postgres, &objects, true).await;
    check_report(&on_postgres);
    assert_eq!(on_postgres.source.variant, "2.17");
    assert_eq!(on_postgres.checksums, report.checksums, "MariaDB and PostgreSQL agree");

    maria.execute("UPDATE \"run_details\" SET \"Description\" = 'changed' WHERE \"UUID\" = 'r1'").await;
    let changed = planned(&maria, &objects, true).await;
    for (kind, sum) in &changed.checksums {
        assert_eq!(sum != &report.checksums[kind], kind == "runs", "{kind}");
    }
    maria.execute("UPDATE \"run_details\" SET \"PipelineSpecManifest\" = 'not: [yaml' WHERE \"UUID\" = 'r1'").await;
    let unreadable = planned(&maria, &objects, true).await;
    assert_eq!(unreadable.warnings["SPEC_UNREADABLE"].samples, ["r1"], "{:?}", unreadable.warnings);
    maria.drop().await;
    postgres.drop().await;
}

/// A database last written by KFP 2.0 (GORM v1 types, no DisplayName columns) holding KFP 1.x
/// rows: the shape is recognised, names stand in for display names, and the report is the same.
#[tokio::test]
async fn kfp_2_0_with_1x_rows_on_mariadb() {
    let objects = bucket().await;
    let maria = Fixture::create(Db::Maria, Shape::V2_0).await;
    seed(&maria, Shape::V2_0).await;
    let report = planned(&maria, &objects, true).await;
    check_report(&report);
    assert_eq!(report.source.variant, "2.0-2.3");
    let text = report.text();
    assert!(text.contains("SPEC_MISSING: 1") && text.contains("dry run: nothing was written"), "{text}");
    maria.drop().await;

    let wrong = plan(&PlanOptions {
        database_url: "mysql://root@127.0.0.1:3306/mysql".into(),
        objects: objects.clone(),
        allow_inflight: false,
        mlmd_url: None,
        cache_url: None,
    })
    .await;
    assert!(wrong.is_err_and(|e| e.to_string().contains("no KFP tables")), "not a KFP database");
}
