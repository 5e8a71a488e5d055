//! The schema definition (`src/schema.rs`) against each dialect's migrations: at every schema
//! version, a database migrated to it holds exactly the defined tables (besides sqlx's own),
//! each with exactly the defined columns in the defined order. A column added by a migration
//! but not to the definition (or the other way round) fails here, not in a backup.

use weir_store::StoreAdmin;
use weir_store_sql::testing::{defined_tables, live_tables, with_cleanup, TestDatabase, UNDEFINED_TABLES};
use weir_store_sql::{ConnectSettings, Dialect, SqlStore};

async fn migrations_match_the_definition(dialect: Dialect) {
    let db = TestDatabase::new(dialect);
    let url = db.url.clone();
    with_cleanup(&[&db], async move {
        let store = SqlStore::connect(&url, &ConnectSettings::default()).await.expect("connect");
        for version in weir_store_sql::migration_versions(dialect) {
            assert_eq!(store.migrate_to(version).await.expect("migrate"), vec![version]);
            let mut live = live_tables(&store).await;
            live.retain(|(name, _)| !UNDEFINED_TABLES.contains(&name.as_str()));
            let defined = defined_tables(version);
            for (table, columns) in &defined {
                let found = live.iter().find(|(name, _)| name == table).map(|(_, columns)| columns);
                assert_eq!(
                    found,
                    Some(columns),
                    "{} at schema version {version}: table {table} (None: missing from the database)",
                    dialect.name()
                );
            }
            let undefined: Vec<&String> =
                live.iter().map(|(name, _)| name).filter(|name| !defined.iter().any(|(t, _)| t == *name)).collect();
            assert!(
                undefined.is_empty(),
                "{} at schema version {version}: tables without a definition: {undefined:?}",
                dialect.name()
            );
        }
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn sqlite_migrations_match_the_definition() {
    migrations_match_the_definition(Dialect::Sqlite).await;
}

#[tokio::test]
async fn mysql_migrations_match_the_definition() {
    migrations_match_the_definition(Dialect::MySql).await;
}

#[tokio::test]
async fn postgres_migrations_match_the_definition() {
    migrations_match_the_definition(Dialect::Postgres).await;
}
