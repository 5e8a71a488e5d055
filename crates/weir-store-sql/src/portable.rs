//! Backend-neutral export and import of every weir table (backups, moves between backends),
//! migrations up to a version, and purge.

use serde_json::Value;
use sqlx::Row;
use weir_store::*;

use crate::schema::{values_sql, Col, Table, TABLES};
use crate::text::Text;
use crate::{bind_all, map_err, on_pool, Bind, Dialect, SqlStore};

/// The tables a backup of schema version `version` carries, in the order it carries them
/// (parents before children): the definition's data tables that exist at that version.
fn catalogue(version: i64) -> impl Iterator<Item = &'static Table> {
    TABLES.iter().filter(move |t| t.in_backup() && t.since <= version)
}

fn to_bind(value: &Value, col: Col, table: &str, column: &str) -> StoreResult<Bind> {
    let bad = || StoreError::InvalidArgument(format!("backup value {value} does not fit {table}.{column}"));
    Ok(match (col, value) {
        (Col::Text, Value::String(s)) => Bind::Text(s.clone()),
        (Col::OptText, Value::String(s)) => Bind::OptText(Some(s.clone())),
        (Col::OptText, Value::Null) => Bind::OptText(None),
        (Col::Int, Value::Number(n)) => Bind::Int(n.as_i64().ok_or_else(bad)?),
        (Col::OptInt, Value::Number(n)) => Bind::OptInt(Some(n.as_i64().ok_or_else(bad)?)),
        (Col::OptInt, Value::Null) => Bind::OptInt(None),
        (Col::Bool, Value::Bool(b)) => Bind::Bool(*b),
        (Col::Bool, Value::Number(n)) => Bind::Bool(n.as_i64().unwrap_or(0) != 0),
        _ => return Err(bad()),
    })
}

/// Reads a column of any dialect's row as a neutral JSON value.
macro_rules! cell {
    ($row:expr, $i:expr, $col:expr) => {{
        let row = &$row;
        match $col {
            Col::Text => row.try_get::<Text, _>($i).map(|t| Value::String(t.0)),
            Col::OptText => {
                row.try_get::<Option<Text>, _>($i).map(|t| t.map(|t| Value::String(t.0)).unwrap_or(Value::Null))
            }
            Col::Int => row.try_get::<i64, _>($i).map(Value::from),
            Col::OptInt => row.try_get::<Option<i64>, _>($i).map(|v| v.map(Value::from).unwrap_or(Value::Null)),
            Col::Bool => row.try_get::<bool, _>($i).map(Value::Bool),
        }
        .map_err(map_err)
    }};
}

impl SqlStore {
    pub(crate) async fn schema_version(&self) -> StoreResult<i64> {
        Ok(match self.schema_state().await? {
            SchemaState::Empty => 0,
            SchemaState::Weir { applied, .. } => applied.into_iter().max().unwrap_or(0),
        })
    }
}

pub(crate) async fn migrate_to(store: &SqlStore, version: i64) -> StoreResult<Vec<i64>> {
    let full = crate::admin::migrator(store.dialect);
    let known: Vec<i64> = full.iter().map(|m| m.version).collect();
    if !known.contains(&version) {
        return Err(StoreError::InvalidArgument(format!(
            "this weir has no schema version {version} (it knows {known:?})"
        )));
    }
    // One upgrade at a time, from reading the version to the last migration, so each
    // migration is applied (and reported) by exactly one upgrade. sqlx locks each run of its
    // migrator only, and its MySQL lock is `GET_LOCK(name, -1)`, which MariaDB answers at once
    // with NULL (no lock taken). So weir holds a lock of its own for the whole upgrade: a lock
    // file beside a SQLite database, a named lock (MySQL/MariaDB) or an advisory lock
    // (PostgreSQL, another key than sqlx's) on a connection kept until it is done.
    let _sqlite_lock = match &store.sqlite_path {
        Some(path) => Some(lock_file(path).await?),
        None => None,
    };
    let _server_lock = ServerMigrationLock::take(store).await?;
    let mut applied = Vec::new();
    let current = store.schema_version().await?;
    // One version at a time, each under the migration lock. Another upgrade may have gone
    // further between our reading the version and taking the lock, so versions applied
    // beyond the prefix are not an error here (a schema from a newer weir is refused before
    // any migration starts).
    for target in known.iter().copied().filter(|v| *v > current && *v <= version) {
        let partial = sqlx::migrate::Migrator {
            migrations: std::borrow::Cow::Owned(full.iter().filter(|m| m.version <= target).cloned().collect()),
            ignore_missing: true,
            locking: true,
            no_tx: false,
        };
        let before = store.schema_version().await?;
        on_pool!(store, |pool| partial.run(pool).await).map_err(crate::admin::migrate_error)?;
        if before < target {
            applied.push(target);
        }
    }
    Ok(applied)
}

/// A database-level lock held on its own connection for a whole upgrade; released when
/// dropped (or when its connection closes).
enum ServerMigrationLock {
    None,
    MySql(Option<sqlx::pool::PoolConnection<sqlx::MySql>>),
    Postgres(Option<sqlx::pool::PoolConnection<sqlx::Postgres>>),
}

/// Long enough for a migration of a large store; a waiting weir waits for it rather than fail.
const MIGRATION_LOCK_WAIT_S: i64 = 600;

impl ServerMigrationLock {
    async fn take(store: &SqlStore) -> StoreResult<Self> {
        match &store.pools {
            crate::Pools::MySql(pool) => {
                let mut conn = pool.acquire().await.map_err(map_err)?;
                let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(CONCAT('weir-migrate-', DATABASE()), ?)")
                    .bind(MIGRATION_LOCK_WAIT_S)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(map_err)?;
                if got != Some(1) {
                    return Err(StoreError::Unavailable(
                        "another weir has been migrating this database for ten minutes; try again when it is done"
                            .into(),
                    ));
                }
                Ok(Self::MySql(Some(conn)))
            }
            crate::Pools::Postgres(pool) => {
                let mut conn = pool.acquire().await.map_err(map_err)?;
                sqlx::query(&format!("SET lock_timeout = '{MIGRATION_LOCK_WAIT_S}s'"))
                    .execute(&mut *conn)
                    .await
                    .map_err(map_err)?;
                sqlx::query("SELECT pg_advisory_lock(hashtext('weir-migrate-' || current_database()))")
                    .execute(&mut *conn)
                    .await
                    .map_err(map_err)?;
                sqlx::query("SET lock_timeout = 0").execute(&mut *conn).await.map_err(map_err)?;
                Ok(Self::Postgres(Some(conn)))
            }
            crate::Pools::Sqlite(_) => Ok(Self::None),
        }
    }
}

impl Drop for ServerMigrationLock {
    fn drop(&mut self) {
        match self {
            Self::None => {}
            Self::MySql(conn) => {
                if let Some(mut conn) = conn.take() {
                    tokio::spawn(async move {
                        let sql = "SELECT RELEASE_LOCK(CONCAT('weir-migrate-', DATABASE()))";
                        if sqlx::query(sql).execute(&mut *conn).await.is_err() {
                            // A closed connection releases its locks.
                            drop(conn.detach());
                        }
                    });
                }
            }
            Self::Postgres(conn) => {
                if let Some(mut conn) = conn.take() {
                    tokio::spawn(async move {
                        let sql = "SELECT pg_advisory_unlock(hashtext('weir-migrate-' || current_database()))";
                        if sqlx::query(sql).execute(&mut *conn).await.is_err() {
                            drop(conn.detach());
                        }
                    });
                }
            }
        }
    }
}

async fn lock_file(db: &std::path::Path) -> StoreResult<nix::fcntl::Flock<std::fs::File>> {
    let path = db.with_extension("migrate-lock");
    tokio::task::spawn_blocking(move || {
        let file =
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| {
                StoreError::Unavailable(format!("cannot open the migration lock {}: {e}", path.display()))
            })?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| {
            StoreError::Unavailable(format!("cannot take the migration lock {}: {e}", path.display()))
        })
    })
    .await
    .map_err(|e| StoreError::Internal(e.to_string()))?
}

pub(crate) async fn table_counts(store: &SqlStore) -> StoreResult<Vec<(String, i64)>> {
    let version = store.schema_version().await?;
    let mut out = Vec::new();
    for table in catalogue(version) {
        out.push((table.name.to_string(), store.count(&format!("SELECT COUNT(*) FROM {}", table.name), &[]).await?));
    }
    Ok(out)
}

pub(crate) async fn export_tables(store: &SqlStore, out: tokio::sync::mpsc::Sender<TableDump>) -> StoreResult<i64> {
    use futures::TryStreamExt;
    let version = store.schema_version().await?;
    let dialect = store.dialect;
    let gone = || StoreError::Internal("the export's reader stopped before the end".into());
    on_pool!(store, |pool| {
        let mut tx = pool.begin().await.map_err(map_err)?;
        if dialect == Dialect::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(&mut *tx).await.map_err(map_err)?;
        }
        for table in catalogue(version) {
            let columns = table.backup_columns(version);
            let names: Vec<String> = columns.iter().map(|(n, _)| n.to_string()).collect();
            let header = TableDump { name: table.name.to_string(), columns: names.clone(), rows: Vec::new() };
            let sql = format!("SELECT {} FROM {} ORDER BY {}", names.join(", "), table.name, table.order_by);
            // Rows are streamed from the cursor, so memory holds one chunk whatever the table's size.
            let mut rows = sqlx::query(&sql).fetch(&mut *tx);
            let mut chunk = header.clone_header();
            let mut sent_any = false;
            while let Some(row) = rows.try_next().await.map_err(map_err)? {
                let mut values = Vec::with_capacity(columns.len());
                for (i, (_, col)) in columns.iter().enumerate() {
                    values.push(cell!(row, i, *col)?);
                }
                chunk.rows.push(values);
                if chunk.rows.len() == EXPORT_CHUNK_ROWS {
                    let full = std::mem::replace(&mut chunk, header.clone_header());
                    out.send(full).await.map_err(|_| gone())?;
                    sent_any = true;
                }
            }
            if !chunk.rows.is_empty() || !sent_any {
                out.send(chunk).await.map_err(|_| gone())?;
            }
        }
        tx.commit().await.map_err(map_err)?;
        Ok(version)
    })
}

/// The binds of a chunk's rows, after checking the chunk against the schema version's table.
fn chunk_binds(version: i64, chunk: &TableDump) -> StoreResult<(&'static Table, Vec<Bind>)> {
    let def = catalogue(version).find(|t| t.name == chunk.name).ok_or_else(|| {
        StoreError::InvalidArgument(format!("schema version {version} has no table {:?}", chunk.name))
    })?;
    let columns = def.backup_columns(version);
    let expected: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
    if expected != chunk.columns {
        return Err(StoreError::InvalidArgument(format!(
            "the backup's {} columns {:?} differ from schema version {version}'s {expected:?}",
            chunk.name, chunk.columns
        )));
    }
    let mut binds = Vec::with_capacity(chunk.rows.len() * columns.len());
    for row in &chunk.rows {
        if row.len() != columns.len() {
            return Err(StoreError::InvalidArgument(format!(
                "a {} row has {} values, not {}",
                chunk.name,
                row.len(),
                columns.len()
            )));
        }
        for (value, (column, col)) in row.iter().zip(&columns) {
            // Ids name folders and object keys (a step's working folder is under its run's and
            // task's ids): an archive's ids must be ids, never paths.
            if *col == Col::Text && (*column == "id" || column.ends_with("_id")) {
                let id = value.as_str().unwrap_or_default();
                if !id.is_empty() && !weir_store::is_safe_id(id) {
                    return Err(StoreError::InvalidArgument(format!(
                        "the backup's {}.{column} {id:?} is not an id (letters, digits, '-', '_' and '.' only)",
                        def.name
                    )));
                }
            }
            // A restored identity is completed by the next start (see lifecycle).
            let bind = if def.name == "storage_identity" && *column == "initialising" {
                Bind::Bool(true)
            } else {
                to_bind(value, *col, def.name, column)?
            };
            binds.push(bind);
        }
    }
    crate::check_text(&binds)?;
    Ok((def, binds))
}

pub(crate) fn check_chunk(version: i64, chunk: &TableDump) -> StoreResult<()> {
    chunk_binds(version, chunk).map(|_| ())
}

/// Rows per INSERT statement on import (well under every backend's bind-parameter limit).
const IMPORT_ROWS_PER_INSERT: usize = 100;

pub(crate) async fn import_tables(
    store: &SqlStore,
    schema_version: i64,
    rows: u64,
    mut input: tokio::sync::mpsc::Receiver<TableDump>,
) -> StoreResult<()> {
    let version = store.schema_version().await?;
    if version != schema_version {
        return Err(StoreError::FailedPrecondition(format!(
            "the store is at schema version {version}, the backup at {schema_version}"
        )));
    }
    let position = |name: &str| TABLES.iter().position(|t| t.name == name).unwrap_or(usize::MAX);
    macro_rules! load_in {
        ($pool:expr) => {{
            let mut tx = $pool.begin().await.map_err(map_err)?;
            // Checked inside the transaction that loads, so nothing can slip in between.
            for table in catalogue(version) {
                let sql = format!("SELECT COUNT(*) FROM {}", table.name);
                let rows: i64 = sqlx::query_scalar(&sql).fetch_one(&mut *tx).await.map_err(map_err)?;
                if rows > 0 {
                    return Err(StoreError::FailedPrecondition(format!(
                        "the metadata store is not empty: {} has {rows} rows",
                        table.name
                    )));
                }
            }
            let (mut last, mut loaded) = (0, 0u64);
            while let Some(chunk) = input.recv().await {
                loaded += chunk.rows.len() as u64;
                let (def, binds) = chunk_binds(version, &chunk)?;
                // Parents before children, as exported: foreign keys are checked row by row.
                let here = position(def.name);
                if here < last {
                    return Err(StoreError::InvalidArgument(format!(
                        "the backup's table {} is out of order (tables load parents first)",
                        def.name
                    )));
                }
                last = here;
                let width = chunk.columns.len();
                for binds in binds.chunks(width * IMPORT_ROWS_PER_INSERT) {
                    let sql = store.sql(&format!(
                        "INSERT INTO {} ({}) VALUES {}",
                        def.name,
                        chunk.columns.join(", "),
                        values_sql(width, binds.len() / width)
                    ));
                    bind_all!(sqlx::query(&sql), binds).execute(&mut *tx).await.map_err(map_err)?;
                }
            }
            if loaded != rows {
                // Dropping the transaction rolls it back.
                return Err(StoreError::InvalidArgument(format!(
                    "the backup's metadata ended after {loaded} of its {rows} rows"
                )));
            }
            tx.commit().await.map_err(map_err)
        }};
    }
    if let Some(writer) = &store.sqlite_writer {
        return load_in!(writer);
    }
    on_pool!(store, |pool| load_in!(pool))
}

pub(crate) async fn purge(store: &SqlStore) -> StoreResult<()> {
    // Children before parents, then the tables backups do not carry (derived, or naming a
    // process), then sqlx's record of migrations.
    let mut names: Vec<&str> = TABLES.iter().filter(|t| t.in_backup()).map(|t| t.name).collect();
    names.reverse();
    names.extend(TABLES.iter().filter(|t| !t.in_backup()).map(|t| t.name));
    names.push("_sqlx_migrations");
    for name in names {
        let sql = format!("DROP TABLE IF EXISTS {name}");
        on_pool!(store, |pool| sqlx::query(&sql).execute(pool).await.map(|_| ())).map_err(map_err)?;
    }
    // Dropping `runs` dropped its triggers; PostgreSQL keeps their function.
    if store.dialect == Dialect::Postgres {
        let sql = "DROP FUNCTION IF EXISTS weir_run_counts()";
        on_pool!(store, |pool| sqlx::query(sql).execute(pool).await.map(|_| ())).map_err(map_err)?;
    }
    Ok(())
}
