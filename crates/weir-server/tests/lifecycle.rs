//! Start-up on existing storage (docs/lifecycle.md), on every metadata backend: initialise
//! empty storage, adopt our own, refuse anything else, and change neither store when refusing.

use std::sync::Arc;

use weir_artifacts::{ArtifactStore, S3Settings};
use weir_server::lifecycle::{open_storage, LifecycleError, Opened, UpgradePolicy};
use weir_store::{MetadataStore, SchemaState, StorageIdentity};
use weir_store_sql::testing::{execute_raw, with_cleanup, TestDatabase};
use weir_store_sql::{ConnectSettings, Dialect, SqlStore};

async fn connect(db: &TestDatabase) -> Arc<SqlStore> {
    Arc::new(SqlStore::connect(&db.url, &ConnectSettings::default()).await.unwrap())
}

fn folder_store(dir: &tempfile::TempDir, name: &str) -> ArtifactStore {
    ArtifactStore::open(&format!("file://{}/{name}", dir.path().display()), &S3Settings::default()).unwrap()
}

/// What both stores hold, to show a refusal changed nothing.
async fn snapshot(store: &dyn MetadataStore, artifacts: &ArtifactStore) -> (SchemaState, Vec<String>, Option<String>) {
    let objects = artifacts.list("").await.unwrap();
    let marker = artifacts.read_identity().await.unwrap().map(|m| m.id);
    (store.schema_state().await.unwrap(), objects, marker)
}

async fn refused(store: &dyn MetadataStore, artifacts: &ArtifactStore, policy: UpgradePolicy, expect: &[&str]) {
    let before = snapshot(store, artifacts).await;
    match open_storage(store, artifacts, policy, "test", 42).await {
        Err(LifecycleError::Refused(message)) => {
            for word in expect {
                assert!(message.contains(word), "{message:?} does not mention {word:?}");
            }
        }
        other => panic!("expected a refusal mentioning {expect:?}, got {other:?}"),
    }
    assert_eq!(snapshot(store, artifacts).await, before, "a refusal must change neither store");
}

async fn scenario(dialect: Dialect) {
    let dir = tempfile::tempdir().unwrap();
    let db_a = TestDatabase::new(dialect);
    let db_b = TestDatabase::new(dialect);
    let (url_a, url_b) = (db_a.url.clone(), db_b.url.clone());
    with_cleanup(&[&db_a, &db_b], async move {
        {
            let store_a = Arc::new(SqlStore::connect(&url_a, &ConnectSettings::default()).await.unwrap());
            let store_b = Arc::new(SqlStore::connect(&url_b, &ConnectSettings::default()).await.unwrap());
            let art_a = folder_store(&dir, "a");
            let art_b = folder_store(&dir, "b");

            // Both empty: initialise; again: adopt the same identity.
            let first = open_storage(store_a.as_ref(), &art_a, UpgradePolicy::Manual, "test", 1).await.unwrap();
            let identity = match &first {
                Opened::Initialised(identity) => identity.clone(),
                other => panic!("expected initialisation, got {other:?}"),
            };
            assert_eq!(art_a.read_identity().await.unwrap().unwrap().id, identity.id);
            let again = open_storage(store_a.as_ref(), &art_a, UpgradePolicy::Manual, "test", 2).await.unwrap();
            assert_eq!(again, Opened::Adopted { identity: identity.clone(), migrated: vec![] });

            // Half-empty pairs, both ways, name what each store holds.
            refused(store_b.as_ref(), &art_a, UpgradePolicy::Manual, &["empty", &identity.id]).await;
            refused(store_a.as_ref(), &art_b, UpgradePolicy::Manual, &[&identity.id, "no weir identity"]).await;

            // A second deployment's artifact store: mismatch.
            let other = open_storage(store_b.as_ref(), &art_b, UpgradePolicy::Manual, "test", 3).await.unwrap();
            refused(store_a.as_ref(), &art_b, UpgradePolicy::Manual, &["mismatch", &identity.id, &other.identity().id])
                .await;

            // A schema written by a newer weir is refused, even with upgrade: auto.
            let checksum = if dialect == Dialect::Postgres { "decode('00', 'hex')" } else { "X'00'" };
            execute_raw(
                &url_a,
                &format!(
                    "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                     VALUES (99990101000000, 'from the future', TRUE, {checksum}, 0)"
                ),
            )
            .await;
            refused(store_a.as_ref(), &art_a, UpgradePolicy::Auto, &["newer weir", "99990101000000"]).await;
            execute_raw(&url_a, "DELETE FROM _sqlx_migrations WHERE version = 99990101000000").await;

            // An older schema is refused with the command that upgrades it.
            let head = weir_store_sql::migration_versions(dialect).into_iter().max().unwrap();
            let backup = format!("CREATE TABLE mig_backup AS SELECT * FROM _sqlx_migrations WHERE version = {head}");
            execute_raw(&url_a, &backup).await;
            execute_raw(&url_a, &format!("DELETE FROM _sqlx_migrations WHERE version = {head}")).await;
            refused(store_a.as_ref(), &art_a, UpgradePolicy::Manual, &["weir storage upgrade", "upgrade: auto"]).await;
            execute_raw(&url_a, "INSERT INTO _sqlx_migrations SELECT * FROM mig_backup").await;
            execute_raw(&url_a, "DROP TABLE mig_backup").await;
            assert!(matches!(
                open_storage(store_a.as_ref(), &art_a, UpgradePolicy::Manual, "test", 4).await,
                Ok(Opened::Adopted { .. })
            ));

            store_a.close().await;
            store_b.close().await;
        }
    })
    .await;
}

/// A first start that stopped after recording the identity in the database but before writing
/// it to the artifact store is completed by the next start, not refused.
async fn interrupted_first_start(dialect: Dialect) {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::new(dialect);
    let store = connect(&db).await;
    let artifacts = folder_store(&dir, "a");
    use weir_store::StoreAdmin;
    store.migrate().await.unwrap();
    let identity = StorageIdentity { id: "half-done".into(), created_at: 9, deployment: "test".into() };
    store.begin_identity(&identity).await.unwrap();
    let opened = open_storage(store.as_ref(), &artifacts, UpgradePolicy::Manual, "test", 10).await;
    store.close().await;
    db.drop_database().await;
    assert_eq!(opened.unwrap(), Opened::Initialised(identity));
    assert_eq!(artifacts.read_identity().await.unwrap().unwrap().id, "half-done");
}

#[tokio::test]
async fn sqlite_lifecycle() {
    scenario(Dialect::Sqlite).await;
    interrupted_first_start(Dialect::Sqlite).await;
}

#[tokio::test]
async fn mysql_lifecycle() {
    scenario(Dialect::MySql).await;
    interrupted_first_start(Dialect::MySql).await;
}

#[tokio::test]
async fn postgres_lifecycle() {
    scenario(Dialect::Postgres).await;
    interrupted_first_start(Dialect::Postgres).await;
}
