//! Schema migrations, storage identity and health.

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use weir_store::*;

use crate::binds::identity_binds;
use crate::schema::STORAGE_IDENTITY;
use crate::text::Text;
use crate::{map_err, on_pool, Bind, Dialect, SqlStore, Stmt};

static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
static MYSQL: Migrator = sqlx::migrate!("./migrations/mysql");
static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");

/// The migration history of each dialect, for the drift check.
pub static MIGRATORS: [(Dialect, &Migrator); 3] =
    [(Dialect::Sqlite, &SQLITE), (Dialect::MySql, &MYSQL), (Dialect::Postgres, &POSTGRES)];

/// Versions this binary ships for a dialect.
pub fn migration_versions(dialect: Dialect) -> Vec<i64> {
    migrator(dialect).iter().map(|m| m.version).collect()
}

pub(crate) fn migrator(dialect: Dialect) -> &'static Migrator {
    match dialect {
        Dialect::Sqlite => &SQLITE,
        Dialect::MySql => &MYSQL,
        Dialect::Postgres => &POSTGRES,
    }
}

pub(crate) fn migrate_error(e: sqlx::migrate::MigrateError) -> StoreError {
    match e {
        sqlx::migrate::MigrateError::Execute(inner) => map_err(inner),
        sqlx::migrate::MigrateError::VersionMismatch(v) => StoreError::FailedPrecondition(format!(
            "applied migration {v} differs from the one this weir ships; the database was migrated by another build"
        )),
        sqlx::migrate::MigrateError::VersionMissing(v) => StoreError::FailedPrecondition(format!(
            "the database has migration {v}, which this weir does not know: it was written by a newer weir"
        )),
        other => StoreError::Internal(format!("migration failed: {other}")),
    }
}

#[derive(sqlx::FromRow)]
struct IdentityRow {
    id: Text,
    created_at: i64,
    initialising: bool,
    deployment: Text,
}

impl SqlStore {
    pub(crate) async fn table_exists(&self, table: &str) -> StoreResult<bool> {
        let sql = match self.dialect {
            Dialect::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
            Dialect::MySql => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?"
            }
            Dialect::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?"
            }
        };
        Ok(self.count(sql, &[Bind::Text(table.into())]).await? > 0)
    }

    async fn applied_versions(&self) -> StoreResult<Vec<i64>> {
        if !self.table_exists("_sqlx_migrations").await? {
            return Ok(Vec::new());
        }
        let sql = self.sql("SELECT version FROM _sqlx_migrations WHERE success = ? ORDER BY version");
        on_pool!(self, |pool| sqlx::query_scalar::<_, i64>(&sql).bind(true).fetch_all(pool).await.map_err(map_err))
    }
}

#[async_trait]
impl StoreAdmin for SqlStore {
    fn dialect(&self) -> &'static str {
        self.dialect.name()
    }

    async fn schema_state(&self) -> StoreResult<SchemaState> {
        let has_migrations = self.table_exists("_sqlx_migrations").await?;
        let has_identity_table = self.table_exists("storage_identity").await?;
        if !has_migrations && !has_identity_table {
            return Ok(SchemaState::Empty);
        }
        let applied = self.applied_versions().await?;
        let identity_row = if has_identity_table {
            // The deployment's name is kept from schema version 6 on; an older schema is read
            // as it is (before an upgrade).
            let deployment = if applied.contains(&6) { "deployment" } else { "'' AS deployment" };
            self.fetch_optional::<IdentityRow>(
                &format!("SELECT id, created_at, initialising, {deployment} FROM storage_identity"),
                &[],
            )
            .await?
        } else {
            None
        };
        let initialising = identity_row.as_ref().is_some_and(|r| r.initialising);
        let identity =
            identity_row.map(|r| StorageIdentity { id: r.id.0, created_at: r.created_at, deployment: r.deployment.0 });
        Ok(SchemaState::Weir { identity, initialising, applied, known: migration_versions(self.dialect) })
    }

    async fn migrate(&self) -> StoreResult<Vec<i64>> {
        match migration_versions(self.dialect).into_iter().max() {
            Some(head) => crate::portable::migrate_to(self, head).await,
            None => Ok(Vec::new()),
        }
    }

    async fn begin_identity(&self, identity: &StorageIdentity) -> StoreResult<()> {
        self.transaction(vec![Stmt::new(STORAGE_IDENTITY.insert_sql(1), identity_binds(identity, true))]).await
    }

    async fn finish_identity(&self) -> StoreResult<()> {
        self.transaction(vec![Stmt::new("UPDATE storage_identity SET initialising = ?", vec![Bind::Bool(false)])
            .or_fail(StoreError::FailedPrecondition("the metadata store has no storage identity".into()))])
            .await
    }

    async fn migrate_to(&self, version: i64) -> StoreResult<Vec<i64>> {
        crate::portable::migrate_to(self, version).await
    }

    async fn table_counts(&self) -> StoreResult<Vec<(String, i64)>> {
        crate::portable::table_counts(self).await
    }

    async fn export_tables(&self, out: tokio::sync::mpsc::Sender<TableDump>) -> StoreResult<i64> {
        crate::portable::export_tables(self, out).await
    }

    async fn import_tables(
        &self,
        schema_version: i64,
        rows: u64,
        input: tokio::sync::mpsc::Receiver<TableDump>,
    ) -> StoreResult<()> {
        crate::portable::import_tables(self, schema_version, rows, input).await
    }

    fn check_chunk(&self, schema_version: i64, chunk: &TableDump) -> StoreResult<()> {
        crate::portable::check_chunk(schema_version, chunk)
    }

    async fn purge(&self) -> StoreResult<()> {
        crate::portable::purge(self).await
    }

    async fn heartbeat(&self, lease: &Lease) -> StoreResult<()> {
        crate::leases::heartbeat(self, lease).await
    }

    async fn release(&self, lease_id: &str) -> StoreResult<()> {
        crate::leases::release(self, lease_id).await
    }

    async fn leases(&self) -> StoreResult<Vec<Lease>> {
        crate::leases::leases(self).await
    }

    async fn engine_holder(&self) -> StoreResult<Option<String>> {
        crate::leases::engine_holder(self).await
    }

    async fn take_engine(&self, lease: &Lease, replacing: Option<&str>) -> StoreResult<()> {
        crate::leases::take_engine(self, lease, replacing).await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.count("SELECT COUNT(*) FROM storage_identity", &[]).await.map(|_| ())
    }

    fn pool_usage(&self) -> (u32, u32) {
        on_pool!(self, |pool| {
            let idle = pool.num_idle() as u32;
            (pool.size().saturating_sub(idle), idle)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every dialect ships the same migration versions with the same descriptions, so a
    /// schema version means the same thing on every backend.
    #[test]
    fn migration_histories_do_not_drift() {
        let reference: Vec<(i64, String)> = SQLITE.iter().map(|m| (m.version, m.description.to_string())).collect();
        assert!(!reference.is_empty());
        for (dialect, migrator) in MIGRATORS.iter() {
            let versions: Vec<(i64, String)> =
                migrator.iter().map(|m| (m.version, m.description.to_string())).collect();
            assert_eq!(versions, reference, "{} migrations drift from sqlite's", dialect.name());
        }
    }
}
