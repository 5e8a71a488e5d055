//! Backend-neutral snapshots (what backups and moves between backends carry), partial
//! migrations, leases and purge, across SQLite, MariaDB and PostgreSQL.

use serde_json::json;
use weir_store::testsuite::{experiment, pipeline, recurring_run, run, task, version};
use weir_store::*;
use weir_store_sql::testing::{with_cleanup, TestDatabase};
use weir_store_sql::{ConnectSettings, Dialect, SqlStore};

async fn fresh(dialect: Dialect) -> (TestDatabase, SqlStore) {
    let db = TestDatabase::new(dialect);
    let store = SqlStore::connect(&db.url, &ConnectSettings::default()).await.unwrap();
    (db, store)
}

async fn populate(store: &SqlStore) {
    store
        .begin_identity(&StorageIdentity { id: "identity-1".into(), created_at: 1, deployment: "portable".into() })
        .await
        .unwrap();
    store.finish_identity().await.unwrap();
    let p = pipeline("portable", 10);
    let v = version(&p.id, "v1", 11);
    store.create_pipeline(&p, Some(&v)).await.unwrap();
    let e = experiment("portable-exp", 12);
    store.create_experiment(&e).await.unwrap();
    let mut r = run(&e.id, "a run with ünïcode", 13);
    r.error = Some(ErrorInfo { code: 2, message: "boom".into() });
    store.create_run(&r).await.unwrap();
    store.create_recurring_run(&recurring_run(&e.id, "nightly", 14)).await.unwrap();
    let mut t = task(&r.id, "step", TaskKind::Container, 15);
    t.iteration_index = Some(3);
    t.cached = true;
    let artifact = Artifact {
        id: 9_007_199_254_740_000,
        run_id: r.id.clone(),
        task_id: t.id.clone(),
        name: "model".into(),
        uri: "s3://b/k".into(),
        schema_title: "system.Model".into(),
        schema_version: "0.0.1".into(),
        metadata: json!({"accuracy": 0.5}),
        created_at: 16,
        object_count: 1,
    };
    store
        .save_progress(&r.id, &Progress { new_tasks: vec![t], new_artifacts: vec![artifact], ..Default::default() })
        .await
        .unwrap();
    store
        .heartbeat(&Lease {
            id: "lease-1".into(),
            deployment: "d".into(),
            host: "h".into(),
            pid: 7,
            version: "0.1.0".into(),
            schema_version: 3,
            started_at: 1,
            heartbeat_at: 2,
        })
        .await
        .unwrap();
}

async fn round_trip(from: Dialect, to: Dialect) {
    let (db_a, a) = fresh(from).await;
    let (db_b, b) = fresh(to).await;
    with_cleanup(&[&db_a, &db_b], async move {
        a.migrate().await.unwrap();
        populate(&a).await;
        let snapshot = a.export_snapshot().await.unwrap();
        assert_eq!(snapshot.tables.iter().find(|t| t.name == "runs").unwrap().rows.len(), 1);

        b.migrate_to(snapshot.schema_version).await.unwrap();
        b.import_snapshot(&snapshot).await.unwrap();
        let mut again = b.export_snapshot().await.unwrap();
        // A restored identity waits for the artifact store before it counts as initialised.
        let identity = again.tables.iter_mut().find(|t| t.name == "storage_identity").unwrap();
        assert_eq!(identity.rows[0][2], json!(true));
        identity.rows[0][2] = json!(false);
        assert_eq!(again, snapshot);
        // Importing twice is refused: the store is no longer empty.
        assert!(matches!(b.import_snapshot(&snapshot).await, Err(StoreError::FailedPrecondition(_))));
        a.close().await;
        b.close().await;
    })
    .await;
}

#[tokio::test]
async fn sqlite_to_postgres_and_back() {
    round_trip(Dialect::Sqlite, Dialect::Postgres).await;
    round_trip(Dialect::Postgres, Dialect::Sqlite).await;
}

#[tokio::test]
async fn sqlite_to_mysql_and_back() {
    round_trip(Dialect::Sqlite, Dialect::MySql).await;
    round_trip(Dialect::MySql, Dialect::Sqlite).await;
}

async fn versions_leases_purge(dialect: Dialect) {
    let (db, store) = fresh(dialect).await;
    with_cleanup(&[&db], async move {
        let versions = weir_store_sql::migration_versions(dialect);
        assert_eq!(store.migrate_to(versions[0]).await.unwrap(), vec![versions[0]]);
        match store.schema_state().await.unwrap() {
            SchemaState::Weir { applied, .. } => assert_eq!(applied, vec![versions[0]]),
            other => panic!("{other:?}"),
        }
        assert!(store.leases().await.unwrap().is_empty(), "no lease table before version 3");
        assert_eq!(store.migrate().await.unwrap(), versions[1..].to_vec());
        let mut lease = Lease {
            id: "l".into(),
            deployment: "d".into(),
            host: "h".into(),
            pid: 1,
            version: "v".into(),
            schema_version: 3,
            started_at: 5,
            heartbeat_at: 5,
        };
        store.heartbeat(&lease).await.unwrap();
        lease.heartbeat_at = 9;
        store.heartbeat(&lease).await.unwrap();
        assert_eq!(store.leases().await.unwrap(), vec![lease.clone()]);
        store.release("l").await.unwrap();
        assert!(store.leases().await.unwrap().is_empty());
        store.purge().await.unwrap();
        assert_eq!(store.schema_state().await.unwrap(), SchemaState::Empty);
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn sqlite_versions_leases_purge() {
    versions_leases_purge(Dialect::Sqlite).await;
}

#[tokio::test]
async fn mysql_versions_leases_purge() {
    versions_leases_purge(Dialect::MySql).await;
}

#[tokio::test]
async fn postgres_versions_leases_purge() {
    versions_leases_purge(Dialect::Postgres).await;
}

/// Exports stream in bounded chunks; an import lands whole or not at all.
async fn streams_in_chunks_all_or_nothing(dialect: Dialect) {
    let (db_a, a) = fresh(dialect).await;
    let (db_b, b) = fresh(dialect).await;
    with_cleanup(&[&db_a, &db_b], async move {
        a.migrate().await.unwrap();
        populate(&a).await;
        let e = experiment("bulk", 20);
        a.create_experiment(&e).await.unwrap();
        let runs: Vec<Run> = (0..1_234).map(|i| run(&e.id, &format!("bulk-{i}"), 100 + i)).collect();
        a.bulk_load(&runs, &[]).await.unwrap();

        let (tx, mut rx) = tokio::sync::mpsc::channel::<TableDump>(1);
        let collect = async {
            let mut chunks = Vec::new();
            while let Some(chunk) = rx.recv().await {
                chunks.push(chunk);
            }
            chunks
        };
        let (version, chunks) = tokio::join!(a.export_tables(tx), collect);
        let version = version.unwrap();
        assert!(chunks.iter().all(|c| c.rows.len() <= EXPORT_CHUNK_ROWS));
        let run_chunks: Vec<usize> = chunks.iter().filter(|c| c.name == "runs").map(|c| c.rows.len()).collect();
        assert_eq!(run_chunks, vec![500, 500, 235], "1,235 runs in chunks of 500");
        let slots = chunks.iter().filter(|c| c.name == "recurring_run_slots").count();
        assert_eq!(slots, 1, "an empty table still sends one (empty) chunk");
        let total: u64 = chunks.iter().map(|c| c.rows.len() as u64).sum();

        b.migrate_to(version).await.unwrap();
        let empty = b.table_counts().await.unwrap();
        let feed = |chunks: Vec<TableDump>| {
            let (tx, rx) = tokio::sync::mpsc::channel::<TableDump>(2);
            tokio::spawn(async move {
                for chunk in chunks {
                    if tx.send(chunk).await.is_err() {
                        break;
                    }
                }
            });
            rx
        };
        // An input cut short (its reader failed) is not taken for the end: nothing lands.
        let cut: Vec<TableDump> = chunks.iter().take(chunks.len() - 3).cloned().collect();
        let err = b.import_tables(version, total, feed(cut)).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidArgument(ref m) if m.contains("ended after")), "{err:?}");
        assert_eq!(b.table_counts().await.unwrap(), empty);
        // Tables out of the export's order are refused, and nothing lands.
        let mut swapped = chunks.clone();
        let experiments_at = swapped.iter().position(|c| c.name == "experiments").unwrap();
        let experiments = swapped.remove(experiments_at);
        swapped.push(experiments);
        let err = b.import_tables(version, total, feed(swapped)).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidArgument(ref m) if m.contains("out of order")), "{err:?}");
        assert_eq!(b.table_counts().await.unwrap(), empty);
        // A value of the wrong type is refused by the check a restore runs before writing.
        let mut bad = chunks.iter().find(|c| c.name == "runs").unwrap().clone();
        bad.rows[7][13] = json!("yesterday");
        assert!(matches!(b.check_chunk(version, &bad), Err(StoreError::InvalidArgument(_))));
        assert!(chunks.iter().all(|c| b.check_chunk(version, c).is_ok()));
        // The whole input loads.
        b.import_tables(version, total, feed(chunks)).await.unwrap();
        let counts = b.table_counts().await.unwrap();
        assert_eq!(counts, a.table_counts().await.unwrap());
        let query = ListQuery::resolve(Entity::Run, "", "", Some("1"), "", &[]).unwrap();
        let listed = b.list_runs(&query).await.unwrap();
        assert_eq!(listed.total_size, 1_235, "run totals follow an import");
        a.close().await;
        b.close().await;
    })
    .await;
}

#[tokio::test]
async fn sqlite_streams_in_chunks_all_or_nothing() {
    streams_in_chunks_all_or_nothing(Dialect::Sqlite).await;
}

#[tokio::test]
async fn mysql_streams_in_chunks_all_or_nothing() {
    streams_in_chunks_all_or_nothing(Dialect::MySql).await;
}

#[tokio::test]
async fn postgres_streams_in_chunks_all_or_nothing() {
    streams_in_chunks_all_or_nothing(Dialect::Postgres).await;
}

/// A crafted archive whose ids are paths (a run id `../../x` would become a folder of the
/// step's work dir, and object keys) is refused before anything is written.
async fn ids_that_are_paths_are_refused(dialect: Dialect) {
    let (db_a, a) = fresh(Dialect::Sqlite).await;
    let (db_b, b) = fresh(dialect).await;
    with_cleanup(&[&db_a, &db_b], async move {
        a.migrate().await.unwrap();
        populate(&a).await;
        let snapshot = a.export_snapshot().await.unwrap();
        b.migrate_to(snapshot.schema_version).await.unwrap();
        for (table, column, hostile) in [
            ("runs", "id", "../../../tmp/weir-escape"),
            ("tasks", "run_id", "/etc"),
            ("tasks", "id", ".."),
            ("artifacts", "task_id", "a/b"),
            ("experiments", "id", ".hidden"),
        ] {
            let mut evil = snapshot.clone();
            let dump = evil.tables.iter_mut().find(|t| t.name == table).unwrap();
            let at = dump.columns.iter().position(|c| c == column).unwrap();
            dump.rows[0][at] = json!(hostile);
            let refused = b.import_snapshot(&evil).await;
            assert!(
                matches!(&refused, Err(StoreError::InvalidArgument(m)) if m.contains("is not an id")),
                "{table}.{column} = {hostile:?}: {refused:?}"
            );
            let chunk = evil.tables.iter().find(|t| t.name == table).unwrap();
            assert!(b.check_chunk(evil.schema_version, chunk).is_err(), "checked before a restore writes");
            assert!(b.table_counts().await.unwrap().iter().all(|(_, n)| *n == 0), "nothing written");
        }
        b.import_snapshot(&snapshot).await.unwrap();
        a.close().await;
        b.close().await;
    })
    .await;
}

#[tokio::test]
async fn sqlite_refuses_ids_that_are_paths() {
    ids_that_are_paths_are_refused(Dialect::Sqlite).await;
}

#[tokio::test]
async fn mysql_refuses_ids_that_are_paths() {
    ids_that_are_paths_are_refused(Dialect::MySql).await;
}

#[tokio::test]
async fn postgres_refuses_ids_that_are_paths() {
    ids_that_are_paths_are_refused(Dialect::Postgres).await;
}
