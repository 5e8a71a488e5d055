//! The store conformance suite, run for real on SQLite, MariaDB/MySQL and PostgreSQL.

use weir_store::{SchemaState, StoreAdmin};
use weir_store_sql::testing::{with_cleanup, TestDatabase};
use weir_store_sql::{ConnectSettings, Dialect, SqlStore};

async fn conformance(dialect: Dialect) {
    let db = TestDatabase::new(dialect);
    let url = db.url.clone();
    with_cleanup(&[&db], async move {
        let store = SqlStore::connect(&url, &ConnectSettings::default()).await.expect("connect");
        assert_eq!(store.schema_state().await.unwrap(), SchemaState::Empty, "a new database is empty");
        let applied = store.migrate().await.expect("migrate");
        assert_eq!(applied, weir_store_sql::migration_versions(dialect));
        weir_store::testsuite::run_all(&store).await;
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn sqlite_conforms() {
    conformance(Dialect::Sqlite).await;
}

#[tokio::test]
async fn mysql_conforms() {
    conformance(Dialect::MySql).await;
}

#[tokio::test]
async fn postgres_conforms() {
    conformance(Dialect::Postgres).await;
}
