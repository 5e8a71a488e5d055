//! Who serves a storage. SQLite+folder: one weir, taken atomically: of weirs started at the
//! same moment on the same storage (new or already initialised), exactly one serves and the
//! others exit with the message that names the one serving. PostgreSQL+S3 and MariaDB+S3:
//! every weir started together serves (replicas), each under its own lease, released on a
//! clean stop.

mod common;

use std::time::{Duration, Instant};

use common::{Storage, Weir};
use weir_store_sql::Dialect;

/// Starts `n` weir servers on `storage` at once (all spawned before any is waited for).
fn start_together(storage: &Storage, n: usize) -> Vec<Weir> {
    (0..n).map(|_| Weir::spawn(storage, &[], &[])).collect()
}

/// Waits until every server has either exited or answers its health check; returns how many
/// serve. A server that neither serves nor exits in a minute fails the test.
async fn settle(started: &mut [Weir]) -> Vec<usize> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let client = reqwest::Client::new();
    let mut serving = Vec::new();
    let mut exited = Vec::new();
    while serving.len() + exited.len() < started.len() {
        assert!(Instant::now() < deadline, "servers neither served nor exited in time");
        for (i, server) in started.iter_mut().enumerate() {
            if serving.contains(&i) || exited.contains(&i) {
                continue;
            }
            if server.child().try_wait().unwrap().is_some() {
                exited.push(i);
            } else if let Ok(response) = client.get(format!("{}/apis/v2beta1/healthz", server.base)).send().await {
                if response.status().is_success() {
                    serving.push(i);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    serving
}

async fn exactly_one_serves(dialect: Dialect, n: usize, initialised: bool) {
    let storage = Storage::new(dialect);
    if initialised {
        Weir::start(&storage).stop();
    }
    let mut started = start_together(&storage, n);
    let serving = settle(&mut started).await;
    let logs: Vec<String> = started.iter().map(Weir::log_text).collect();
    assert_eq!(serving.len(), 1, "exactly one serves:\n{}", logs.join("\n----\n"));
    for (i, server) in started.iter_mut().enumerate() {
        if i == serving[0] {
            continue;
        }
        let status = server.child().wait().unwrap();
        assert_eq!(status.code(), Some(2), "{}", logs[i]);
        assert!(logs[i].contains("another weir serves this storage"), "{}", logs[i]);
        assert!(!logs[i].contains("weir serving the KFP v2beta1 API"), "a loser never serves: {}", logs[i]);
    }
    // The one serving holds the lease, and only its lease is recorded.
    let status = storage.weir(&["storage", "status", "--output", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(report["servers"].as_array().unwrap().len(), 1, "{report}");
    let winner = started.swap_remove(serving[0]);
    assert_eq!(report["servers"][0]["pid"], winner.pid(), "{report}");
    assert!(winner.stop_status().success());
    // A clean stop frees the storage for the next weir.
    Weir::start(&storage).stop();
    storage.db.drop_database().await;
}

#[tokio::test]
async fn sqlite_two_starts_one_serves() {
    exactly_one_serves(Dialect::Sqlite, 2, true).await;
}

#[tokio::test]
async fn sqlite_five_starts_on_new_storage_one_serves() {
    exactly_one_serves(Dialect::Sqlite, 5, false).await;
}

#[tokio::test]
async fn sqlite_five_starts_on_initialised_storage_one_serves() {
    exactly_one_serves(Dialect::Sqlite, 5, true).await;
}

async fn all_serve(dialect: Dialect, n: usize, initialised: bool) {
    let storage = Storage::new(dialect);
    if initialised {
        Weir::start(&storage).stop();
    }
    let mut started = start_together(&storage, n);
    let serving = settle(&mut started).await;
    let logs: Vec<String> = started.iter().map(Weir::log_text).collect();
    assert_eq!(serving.len(), n, "every replica serves:\n{}", logs.join("\n----\n"));
    let status = storage.weir(&["storage", "status", "--output", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let mut pids: Vec<i64> = report["servers"].as_array().unwrap().iter().map(|s| s["pid"].as_i64().unwrap()).collect();
    pids.sort_unstable();
    let mut expected: Vec<i64> = started.iter().map(|w| i64::from(w.pid())).collect();
    expected.sort_unstable();
    assert_eq!(pids, expected, "{report}");
    for weir in started {
        assert!(weir.stop_status().success());
    }
    let status = storage.weir(&["storage", "status", "--output", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(report["servers"].as_array().unwrap().len(), 0, "clean stops release: {report}");
    storage.db.drop_database().await;
}

#[tokio::test]
async fn postgres_three_replicas_on_new_storage_all_serve() {
    all_serve(Dialect::Postgres, 3, false).await;
}

#[tokio::test]
async fn postgres_two_replicas_on_initialised_storage_serve() {
    all_serve(Dialect::Postgres, 2, true).await;
}

#[tokio::test]
async fn mariadb_three_replicas_on_new_storage_all_serve() {
    all_serve(Dialect::MySql, 3, false).await;
}

#[tokio::test]
async fn mariadb_two_replicas_on_initialised_storage_serve() {
    all_serve(Dialect::MySql, 2, true).await;
}

/// A rolling update: a newer weir upgraded the schema while this one serves. At its next
/// heartbeat it notices the migration it does not know, stops, and exits 2 (and a new start
/// of the same binary is refused).
#[tokio::test]
async fn a_replica_stops_when_the_schema_moves_past_it() {
    let storage = Storage::new(Dialect::Sqlite);
    let mut weir = Weir::start_with(&storage, &["--replica-lease-seconds", "3"]);
    weir_store_sql::testing::execute_raw(
        &storage.db.url,
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (999, 'from a newer weir', 1, X'00', 0)",
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = weir.child().try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "weir kept serving a schema it does not know");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = weir.log_text();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(log.contains("schema migrations [999] this weir does not know"), "{log}");
    let again = storage.weir(&["server", "--listen", "127.0.0.1:0"]);
    assert!(!again.status.success(), "a new start refuses the schema too");
}
