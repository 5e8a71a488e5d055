//! Weir's metadata store on SQLite, MySQL/MariaDB and PostgreSQL, through sqlx.
//!
//! One [`SqlStore`] holds a pool of the dialect its URL names. Queries are written once with
//! `?` placeholders and run on the concrete pool by [`on_pool!`], so each dialect uses its own
//! native driver (no `Any` type mapping) while the SQL and row mapping stay shared.

mod admin;
mod binds;
mod experiments;
mod gc;
mod import;
mod leases;
mod list;
mod pipelines;
mod portable;
mod reads;
mod recurring_runs;
mod rows;
mod run_leases;
mod runs;
mod schema;
mod step_config;
mod tasks;
pub mod testing;
mod text;

use std::str::FromStr;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::ConnectOptions;
use weir_store::{StoreError, StoreResult};

pub use admin::{migration_versions, MIGRATORS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    MySql,
    Postgres,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::MySql => "mysql",
            Dialect::Postgres => "postgres",
        }
    }

    pub fn from_url(url: &str) -> StoreResult<Self> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Dialect::Sqlite),
            "mysql" | "mariadb" => Ok(Dialect::MySql),
            "postgres" | "postgresql" => Ok(Dialect::Postgres),
            _ => Err(StoreError::InvalidArgument(format!(
                "metadata URL must start with sqlite://, mysql:// or postgres://, got {}",
                redact_url(url)
            ))),
        }
    }
}

#[derive(Debug, Clone)]
enum Pools {
    Sqlite(SqlitePool),
    MySql(MySqlPool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool, once per dialect.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pools {
            $crate::Pools::Sqlite($pool) => $body,
            $crate::Pools::MySql($pool) => $body,
            $crate::Pools::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Runs `$body` with `$tx` bound to a transaction on the pool that writes (SQLite's one writer,
/// or the dialect's pool), once per dialect like [`on_pool!`], so a write and the reads that
/// decide it share one transaction. `$body` gives a `StoreResult`: the transaction commits
/// when it is `Ok`; otherwise it is dropped, which rolls it back.
///
/// A transaction the database aborted for a reason of the moment (a deadlock, a serialisation
/// failure, a lock wait timeout: [`StoreError::Transient`]) is run again from the start, a few
/// times, as MySQL's and PostgreSQL's manuals ask of their clients. InnoDB picks a deadlock's
/// victim among ordinary writers (a run's delete against the engine saving its tasks), and the
/// caller should not see that. `$body` therefore runs once per attempt and must not leave
/// anything behind outside the transaction.
///
/// [`StoreError::Transient`]: weir_store::StoreError::Transient
macro_rules! write_tx {
    (@in $pool:expr, |$tx:ident| $body:expr) => {{
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let outcome: ::weir_store::StoreResult<_> = async {
                let mut $tx = $pool.begin().await.map_err($crate::map_err)?;
                let value = $body?;
                $tx.commit().await.map_err($crate::map_err)?;
                Ok(value)
            }
            .await;
            match outcome {
                Err(::weir_store::StoreError::Transient(_)) if attempt < $crate::WRITE_ATTEMPTS => {
                    ::tokio::time::sleep($crate::retry_pause(attempt)).await;
                }
                other => break other,
            }
        }
    }};
    ($store:expr, |$tx:ident| $body:expr) => {{
        match (&$store.sqlite_writer, &$store.pools) {
            (Some(writer), _) => $crate::write_tx!(@in writer, |$tx| $body),
            (None, $crate::Pools::Sqlite(pool)) => $crate::write_tx!(@in pool, |$tx| $body),
            (None, $crate::Pools::MySql(pool)) => $crate::write_tx!(@in pool, |$tx| $body),
            (None, $crate::Pools::Postgres(pool)) => $crate::write_tx!(@in pool, |$tx| $body),
        }
    }};
}
/// How many times [`write_tx!`] runs a transaction the database aborted for the moment.
pub(crate) const WRITE_ATTEMPTS: u32 = 5;

/// The pause before attempt `attempt + 1`: doubling from 5 ms, with jitter so two writers
/// that deadlocked each other do not collide again in step.
pub(crate) fn retry_pause(attempt: u32) -> Duration {
    let base = 5u64 << attempt.min(6);
    let jitter = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    Duration::from_millis(base + u64::from(jitter) % base)
}
pub(crate) use write_tx;

/// A value bound to a `?` placeholder.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bind {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Bool(bool),
}

/// Binds a list of [`Bind`]s onto a query in order.
macro_rules! bind_all {
    ($query:expr, $binds:expr) => {{
        let mut query = $query;
        for bind in $binds {
            query = match bind {
                $crate::Bind::Text(v) => query.bind(v.clone()),
                $crate::Bind::OptText(v) => query.bind(v.clone()),
                $crate::Bind::Int(v) => query.bind(*v),
                $crate::Bind::OptInt(v) => query.bind(*v),
                $crate::Bind::Bool(v) => query.bind(*v),
            };
        }
        query
    }};
}
pub(crate) use bind_all;

#[derive(Debug, Clone)]
pub struct SqlStore {
    pools: Pools,
    /// SQLite allows one writer at a time; writers from a shared pool collide and wait in
    /// SQLite's busy handler, which sleeps 1, 2, 5, 10… ms between tries. All of weir's writes
    /// go through this one-connection pool instead, queueing without sleeps.
    sqlite_writer: Option<SqlitePool>,
    dialect: Dialect,
    /// The database file, for SQLite.
    sqlite_path: Option<std::path::PathBuf>,
}

/// Connection settings beyond the URL.
#[derive(Debug, Clone)]
pub struct ConnectSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// Create the database named in a MySQL/PostgreSQL URL if it does not exist (as KFP does).
    pub create_database: bool,
}

impl Default for ConnectSettings {
    fn default() -> Self {
        Self { max_connections: 10, acquire_timeout: Duration::from_secs(5), create_database: true }
    }
}

/// Rows a SQLite connection's thread may send ahead of the task reading them. At sqlx's 50, a
/// page of 500 tasks stopped that thread ten times to wait for the reader to be scheduled, and
/// on busy cores each wait cost milliseconds; 1024 covers a page or a poll's changes.
const SQLITE_ROW_CHANNEL: usize = 1024;

/// How long a SQLite writer waits for another to finish before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

impl SqlStore {
    /// Connects to the database a URL names: `sqlite://PATH`, `mysql://…`, `postgres://…`.
    pub async fn connect(url: &str, settings: &ConnectSettings) -> StoreResult<Self> {
        let dialect = Dialect::from_url(url)?;
        let mut sqlite_path = None;
        let mut sqlite_writer = None;
        let bad_url =
            |e: sqlx::Error| StoreError::InvalidArgument(format!("invalid metadata URL {}: {e}", redact_url(url)));
        let pools = match dialect {
            Dialect::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(bad_url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // With WAL, NORMAL keeps every committed transaction through a crash of weir
                    // (kill -9); only an OS crash or power loss can lose the last commits. FULL
                    // would fsync on every commit, which dominates step latency.
                    .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .row_buffer_size(SQLITE_ROW_CHANNEL)
                    .log_statements(tracing::log::LevelFilter::Trace);
                if let Some(parent) = options.get_filename().parent() {
                    if !parent.as_os_str().is_empty() {
                        std::fs::create_dir_all(parent).map_err(|e| {
                            StoreError::Unavailable(format!(
                                "cannot create the folder {} for the SQLite database: {e}",
                                parent.display()
                            ))
                        })?;
                    }
                }
                sqlite_path = Some(options.get_filename().to_path_buf());
                // A connection to a local file does not go stale, so neither pool pings it
                // before handing it out: that ping was a round trip to SQLite's worker thread
                // per transaction, on every step's path.
                sqlite_writer = Some(connect_sqlite(url, &options, 1, settings).await?);
                let pool = connect_sqlite(url, &options, settings.max_connections, settings).await?;
                Pools::Sqlite(pool)
            }
            Dialect::MySql => {
                let url = url.replacen("mariadb://", "mysql://", 1);
                let options = MySqlConnectOptions::from_str(&url)
                    .map_err(bad_url)?
                    .charset("utf8mb4")
                    .log_statements(tracing::log::LevelFilter::Trace);
                if settings.create_database {
                    create_mysql_database(&url, &options).await?;
                }
                let pool = MySqlPoolOptions::new()
                    .max_connections(settings.max_connections)
                    .acquire_timeout(settings.acquire_timeout)
                    .connect_with(options)
                    .await
                    .map_err(|e| unavailable(&url, e))?;
                Pools::MySql(pool)
            }
            Dialect::Postgres => {
                let options =
                    PgConnectOptions::from_str(url).map_err(bad_url)?.log_statements(tracing::log::LevelFilter::Trace);
                if settings.create_database {
                    create_postgres_database(url, &options).await?;
                }
                let pool = PgPoolOptions::new()
                    .max_connections(settings.max_connections)
                    .acquire_timeout(settings.acquire_timeout)
                    .connect_with(options)
                    .await
                    .map_err(|e| unavailable(url, e))?;
                Pools::Postgres(pool)
            }
        };
        Ok(Self { pools, sqlite_writer, dialect, sqlite_path })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Rewrites `?` placeholders for PostgreSQL (`$1`, `$2`, …). Weir's SQL never contains a
    /// literal `?`.
    pub(crate) fn sql(&self, text: &str) -> String {
        if self.dialect != Dialect::Postgres {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len() + 8);
        let mut n = 0;
        for c in text.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        out
    }

    pub async fn close(&self) {
        if let Some(writer) = &self.sqlite_writer {
            writer.close().await;
        }
        on_pool!(self, |pool| pool.close().await)
    }
}

fn database_name_is_plain(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

async fn create_mysql_database(url: &str, options: &MySqlConnectOptions) -> StoreResult<()> {
    let Some(database) = options.get_database().map(str::to_string) else {
        return Err(StoreError::InvalidArgument(format!("the MySQL URL {} names no database", redact_url(url))));
    };
    if !database_name_is_plain(&database) {
        return Ok(());
    }
    let server = options.clone().database("");
    let mut conn = server.connect().await.map_err(|e| unavailable(url, e))?;
    let statement = format!("CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin");
    sqlx::query(&statement).execute(&mut conn).await.map_err(map_err)?;
    Ok(())
}

async fn create_postgres_database(url: &str, options: &PgConnectOptions) -> StoreResult<()> {
    let Some(database) = options.get_database().map(str::to_string) else {
        return Ok(());
    };
    if !database_name_is_plain(&database) {
        return Ok(());
    }
    let server = options.clone().database("postgres");
    let mut conn = server.connect().await.map_err(|e| unavailable(url, e))?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&database)
        .fetch_optional(&mut conn)
        .await
        .map_err(map_err)?;
    if exists.is_none() {
        let statement = format!("CREATE DATABASE \"{database}\"");
        if let Err(e) = sqlx::query(&statement).execute(&mut conn).await {
            // Another process may have created it in between.
            let mapped = map_err(e);
            if !matches!(mapped, StoreError::AlreadyExists(_)) {
                return Err(mapped);
            }
        }
    }
    Ok(())
}

/// Opens a pool on a SQLite file. Several weirs opening a new file at the same moment race to
/// switch it to WAL; the loser of that race is told SQLITE_BUSY at once, without SQLite's busy
/// handler (waiting could deadlock inside the switch), so the open is retried for as long as
/// the busy timeout would have waited.
async fn connect_sqlite(
    url: &str,
    options: &SqliteConnectOptions,
    max_connections: u32,
    settings: &ConnectSettings,
) -> StoreResult<SqlitePool> {
    let deadline = std::time::Instant::now() + SQLITE_BUSY_TIMEOUT;
    loop {
        let attempt = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .test_before_acquire(false)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options.clone())
            .await;
        match attempt {
            Ok(pool) => return Ok(pool),
            Err(e) if is_sqlite_busy(&e) && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(unavailable(url, e)),
        }
    }
}

/// SQLite's primary result code is the low byte of the extended one: 5 is SQLITE_BUSY (with
/// its variants 261 recovery, 517 snapshot), 6 SQLITE_LOCKED.
fn is_sqlite_busy(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else { return false };
    db.code().and_then(|code| code.parse::<i64>().ok()).is_some_and(|code| matches!(code & 0xff, 5 | 6))
}

fn unavailable(url: &str, e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(format!("cannot connect to the metadata store {}: {e}", redact_url(url)))
}

/// Converts a driver error into a domain error; driver types never leave this crate.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                StoreError::AlreadyExists(db.message().to_string())
            } else if db.is_foreign_key_violation() {
                StoreError::FailedPrecondition(db.message().to_string())
            } else if db.code().as_deref() == Some("42P04") {
                StoreError::AlreadyExists(db.message().to_string())
            } else if is_transient(db.as_ref()) {
                StoreError::Transient(format!(
                    "the database aborted the call, which can be made again: {}",
                    db.message()
                ))
            } else {
                StoreError::Internal(format!("database error: {}", db.message()))
            }
        }
        sqlx::Error::RowNotFound => StoreError::NotFound("row not found".into()),
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(format!("metadata store unavailable: {e}")),
        _ => StoreError::Internal(format!("database error: {e}")),
    }
}

/// Whether a database error passes: the statement was rolled back for a reason of the moment,
/// not of the request, so the same transaction can be run again.
fn is_transient(db: &dyn sqlx::error::DatabaseError) -> bool {
    let code = db.code();
    let code = code.as_deref().unwrap_or_default();
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes (BUSY_SNAPSHOT 517…)
        // in the low byte.
        return code.parse::<i64>().map(|c| matches!(c & 0xff, 5 | 6)).unwrap_or(false);
    }
    if let Some(mysql) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        // ER_LOCK_DEADLOCK (1213), ER_LOCK_WAIT_TIMEOUT (1205), and a serialisation failure
        // by SQLSTATE (what a trigger's SIGNAL or Galera's certification failure reports).
        return matches!(mysql.number(), 1205 | 1213) || code == "40001";
    }
    // PostgreSQL: serialization_failure, deadlock_detected, lock_not_available.
    matches!(code, "40001" | "40P01" | "55P03")
}

/// A URL with its password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else { return url.to_string() };
    let mut changed = false;
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
        changed = true;
    }
    // sqlx and libpq also take the password as a query parameter (`?password=…`).
    let secret = |key: &str| matches!(key.to_ascii_lowercase().as_str(), "password" | "pass" | "pwd" | "sslpassword");
    if parsed.query_pairs().any(|(key, _)| secret(&key)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(key, value)| {
                let value = if secret(&key) { "***".to_string() } else { value.into_owned() };
                (key.into_owned(), value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
        changed = true;
    }
    if changed {
        parsed.to_string()
    } else {
        url.to_string()
    }
}

/// A JSON value as stored in a text column.
pub(crate) fn json_text(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

pub(crate) fn parse_json(text: &str, what: &str) -> StoreResult<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Internal(format!("stored {what} is not valid JSON: {e}")))
}

/// One statement of a transaction. `on_too_few` aborts the transaction with that error when
/// the statement matches fewer rows than `min_rows` (a missing parent, a failed
/// compare-and-set, a row of a several-row update missing).
pub(crate) struct Stmt {
    pub sql: String,
    pub binds: Vec<Bind>,
    pub min_rows: u64,
    pub on_too_few: Option<StoreError>,
}

impl Stmt {
    pub(crate) fn new(sql: impl Into<String>, binds: Vec<Bind>) -> Self {
        Self { sql: sql.into(), binds, min_rows: 1, on_too_few: None }
    }

    /// Fails the transaction with `error` when the statement matches no row.
    pub(crate) fn or_fail(mut self, error: StoreError) -> Self {
        self.on_too_few = Some(error);
        self
    }

    /// Fails the transaction with `error` when the statement matches fewer than `rows` rows.
    pub(crate) fn or_fail_below(mut self, rows: u64, error: StoreError) -> Self {
        self.min_rows = rows;
        self.on_too_few = Some(error);
        self
    }

    /// The error the statement's count of matched rows calls for, if any.
    pub(crate) fn failure(&self, rows: u64) -> Option<&StoreError> {
        self.on_too_few.as_ref().filter(|_| rows < self.min_rows)
    }
}

/// Row types readable from every dialect.
pub(crate) trait AnyRow:
    Send
    + Unpin
    + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
    + for<'r> sqlx::FromRow<'r, sqlx::mysql::MySqlRow>
    + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
{
}

impl<T> AnyRow for T where
    T: Send
        + Unpin
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::mysql::MySqlRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
{
}

/// PostgreSQL text cannot hold NUL; the other backends can. Refusing it everywhere keeps the
/// backends interchangeable (a backup restores anywhere) and makes it a 400, not a 500.
fn check_text(binds: &[Bind]) -> StoreResult<()> {
    let has_nul = |t: &str| t.contains('\0');
    let bad = binds.iter().any(|b| match b {
        Bind::Text(t) => has_nul(t),
        Bind::OptText(Some(t)) => has_nul(t),
        _ => false,
    });
    if bad {
        return Err(StoreError::InvalidArgument("text may not contain the NUL character (\\u0000)".into()));
    }
    Ok(())
}

impl SqlStore {
    // One read from the pool: the connection is taken for it and goes back after. Text the
    // database cannot hold is refused before a connection is asked for.
    pub(crate) async fn fetch_all<R: AnyRow>(&self, sql: &str, binds: &[Bind]) -> StoreResult<Vec<R>> {
        check_text(binds)?;
        self.reads().await?.fetch_all(sql, binds).await
    }

    pub(crate) async fn fetch_optional<R: AnyRow>(&self, sql: &str, binds: &[Bind]) -> StoreResult<Option<R>> {
        check_text(binds)?;
        self.reads().await?.fetch_optional(sql, binds).await
    }

    pub(crate) async fn count(&self, sql: &str, binds: &[Bind]) -> StoreResult<i64> {
        check_text(binds)?;
        self.reads().await?.count(sql, binds).await
    }

    /// Runs statements in one transaction; any error rolls all of them back.
    pub(crate) async fn transaction(&self, statements: Vec<Stmt>) -> StoreResult<()> {
        for stmt in &statements {
            check_text(&stmt.binds)?;
        }
        if self.dialect == Dialect::Sqlite && statements.len() > 1 {
            return self.sqlite_batch(&statements).await;
        }
        write_tx!(self, |tx| {
            for stmt in &statements {
                let sql = self.sql(&stmt.sql);
                let result = bind_all!(sqlx::query(&sql), &stmt.binds).execute(&mut *tx).await.map_err(map_err)?;
                if let Some(error) = stmt.failure(result.rows_affected()) {
                    // Dropping the transaction rolls it back.
                    return Err(error.clone());
                }
            }
            Ok(())
        })
    }

    /// [`Self::transaction`] on SQLite: the statements go to SQLite's connection thread as one
    /// command, which runs them one after the other and streams back each one's count, instead
    /// of a command and a reply per statement. Each reply wakes a thread on either side, and on
    /// a busy machine every wake waits for a core: an engine's write of a step's progress is
    /// three to six statements. SQLite binds `?` in order across the statements of one text.
    /// (sqlx 0.8 marks several statements in one prepared query as SQLite-only and to be
    /// replaced, launchbadge/sqlx#3108; without it, this is [`Self::transaction`]'s loop.)
    async fn sqlite_batch(&self, statements: &[Stmt]) -> StoreResult<()> {
        use futures::TryStreamExt;
        use sqlx::Executor;
        let sql = statements.iter().map(|stmt| stmt.sql.as_str()).collect::<Vec<_>>().join(";\n");
        let binds: Vec<Bind> = statements.iter().flat_map(|stmt| stmt.binds.iter().cloned()).collect();
        write_tx!(self, |tx| {
            let counts: Vec<u64> = (&mut *tx)
                .execute_many(bind_all!(sqlx::query(&sql), &binds))
                .map_ok(|done| done.rows_affected())
                .try_collect()
                .await
                .map_err(map_err)?;
            if counts.len() != statements.len() {
                return Err(StoreError::Internal(format!(
                    "{} statements sent, {} ran",
                    statements.len(),
                    counts.len()
                )));
            }
            for (stmt, count) in statements.iter().zip(counts) {
                if let Some(error) = stmt.failure(count) {
                    // Dropping the transaction rolls it back.
                    return Err(error.clone());
                }
            }
            Ok(())
        })
    }

    /// Lists rows of `table` for a resolved query: one page (plus one row to detect the next
    /// page) and the total count under the filter.
    pub(crate) async fn list_rows<R: AnyRow>(
        &self,
        table: &str,
        columns: &str,
        query: &weir_store::ListQuery,
    ) -> StoreResult<(Vec<R>, i64)> {
        let built = list::build(self.dialect, query)?;
        self.reads().await?.list_rows(table, columns, &built).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("mysql://u:secret@h:3306/db"), "mysql://u:***@h:3306/db");
        assert_eq!(redact_url("sqlite:///x.db"), "sqlite:///x.db");
        assert_eq!(
            redact_url("postgres://u@h/db?sslmode=require&password=hunter2"),
            "postgres://u@h/db?sslmode=require&password=***"
        );
        assert_eq!(redact_url("mysql://u:a@h/db?PASSWORD=b"), "mysql://u:***@h/db?PASSWORD=***");
        assert!(!redact_url("postgres://h/db?user=u&password=p%40ss").contains("p%40ss"));
    }

    #[test]
    fn dialect_from_url() {
        assert_eq!(Dialect::from_url("postgresql://x").unwrap(), Dialect::Postgres);
        assert!(Dialect::from_url("oracle://x").is_err());
    }
}

/// Errors that pass are told apart from those that do not, from real errors of each backend.
#[cfg(test)]
mod transient_tests {
    use std::str::FromStr;

    use sqlx::{ConnectOptions, Connection};

    use super::*;
    use crate::testing::TestDatabase;

    fn classify(result: Result<impl Sized, sqlx::Error>) -> StoreError {
        match result {
            Ok(_) => panic!("the statement was expected to fail"),
            Err(e) => map_err(e),
        }
    }

    #[tokio::test]
    async fn sqlite_busy_is_transient() {
        let db = TestDatabase::new(Dialect::Sqlite);
        let options = SqliteConnectOptions::from_str(&db.url).unwrap().create_if_missing(true);
        let mut holder = options.clone().connect().await.unwrap();
        sqlx::raw_sql("CREATE TABLE t (x INTEGER); BEGIN IMMEDIATE; INSERT INTO t VALUES (1)")
            .execute(&mut holder)
            .await
            .unwrap();
        let mut other = options.busy_timeout(Duration::ZERO).connect().await.unwrap();
        let busy = classify(sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut other).await);
        assert!(matches!(busy, StoreError::Transient(_)) && busy.is_retryable(), "{busy:?}");
        let bad = classify(sqlx::raw_sql("SELECT * FROM no_such_table").execute(&mut other).await);
        assert!(matches!(bad, StoreError::Internal(_)) && !bad.is_retryable(), "{bad:?}");
        db.drop_database().await;
    }

    #[tokio::test]
    async fn postgres_lock_timeouts_and_serialisation_failures_are_transient() {
        let db = TestDatabase::new(Dialect::Postgres);
        let store = SqlStore::connect(&db.url, &ConnectSettings::default()).await.unwrap();
        store.close().await;
        let options = PgConnectOptions::from_str(&db.url).unwrap();
        let mut holder = options.connect().await.unwrap();
        for statement in
            ["CREATE TABLE t (x INTEGER PRIMARY KEY)", "INSERT INTO t VALUES (1)", "BEGIN", "UPDATE t SET x = 1"]
        {
            sqlx::raw_sql(statement).execute(&mut holder).await.unwrap();
        }
        let mut other = options.connect().await.unwrap();
        let locked = classify(sqlx::raw_sql("SET lock_timeout = '20ms'; UPDATE t SET x = 1").execute(&mut other).await);
        assert!(matches!(locked, StoreError::Transient(_)), "{locked:?}");
        let serialisation = classify(
            sqlx::raw_sql("DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '40001'; END $$").execute(&mut other).await,
        );
        assert!(matches!(serialisation, StoreError::Transient(_)), "{serialisation:?}");
        let bad = classify(sqlx::raw_sql("SELECT * FROM no_such_table").execute(&mut other).await);
        assert!(matches!(bad, StoreError::Internal(_)), "{bad:?}");
        let _ = holder.close().await;
        let _ = other.close().await;
        db.drop_database().await;
    }

    #[tokio::test]
    async fn mariadb_lock_waits_and_deadlocks_are_transient() {
        let db = TestDatabase::new(Dialect::MySql);
        let store = SqlStore::connect(&db.url, &ConnectSettings::default()).await.unwrap();
        store.close().await;
        let options = MySqlConnectOptions::from_str(&db.url).unwrap();
        let mut holder = options.connect().await.unwrap();
        for statement in ["CREATE TABLE t (x INTEGER PRIMARY KEY) ENGINE=InnoDB", "INSERT INTO t VALUES (1)", "BEGIN"] {
            sqlx::raw_sql(statement).execute(&mut holder).await.unwrap();
        }
        sqlx::raw_sql("UPDATE t SET x = 1").execute(&mut holder).await.unwrap();
        let mut other = options.connect().await.unwrap();
        sqlx::raw_sql("SET SESSION innodb_lock_wait_timeout = 1").execute(&mut other).await.unwrap();
        let waited = classify(sqlx::raw_sql("UPDATE t SET x = 1").execute(&mut other).await);
        assert!(matches!(waited, StoreError::Transient(_)), "{waited:?}");
        let deadlock = classify(
            sqlx::raw_sql("BEGIN NOT ATOMIC SIGNAL SQLSTATE '40001' SET MESSAGE_TEXT = 'x'; END")
                .execute(&mut other)
                .await,
        );
        assert!(matches!(deadlock, StoreError::Transient(_)), "{deadlock:?}");
        let bad = classify(sqlx::raw_sql("SELECT * FROM no_such_table").execute(&mut other).await);
        assert!(matches!(bad, StoreError::Internal(_)), "{bad:?}");
        let _ = holder.close().await;
        let _ = other.close().await;
        db.drop_database().await;
    }

    /// A transaction of several statements, on SQLite sent as one batch and elsewhere one by
    /// one: either every statement lands, or (a statement that must change a row changed none)
    /// none does and the statement's own error is returned.
    #[tokio::test]
    async fn a_transaction_lands_whole_or_not_at_all() {
        for dialect in [Dialect::Sqlite, Dialect::MySql, Dialect::Postgres] {
            let db = TestDatabase::new(dialect);
            let store = SqlStore::connect(&db.url, &ConnectSettings::default()).await.unwrap();
            store.transaction(vec![Stmt::new("CREATE TABLE t (k BIGINT PRIMARY KEY, v TEXT)", vec![])]).await.unwrap();
            let insert = |k: i64, v: &str| {
                Stmt::new("INSERT INTO t (k, v) VALUES (?, ?)", vec![Bind::Int(k), Bind::Text(v.into())])
            };
            store
                .transaction(vec![
                    insert(1, "a"),
                    insert(2, "b"),
                    Stmt::new("UPDATE t SET v = ? WHERE k = ?", vec![Bind::Text("c".into()), Bind::Int(2)])
                        .or_fail(StoreError::not_found("row", "2")),
                ])
                .await
                .unwrap();
            let refused = store
                .transaction(vec![
                    insert(3, "d"),
                    Stmt::new("UPDATE t SET v = ? WHERE k = ?", vec![Bind::Text("e".into()), Bind::Int(9)])
                        .or_fail(StoreError::not_found("row", "9")),
                    insert(4, "f"),
                ])
                .await;
            assert_eq!(refused, Err(StoreError::not_found("row", "9")), "{dialect:?}");
            let rows: Vec<(i64, crate::text::Text)> =
                on_pool!(store, |pool| sqlx::query_as("SELECT k, v FROM t ORDER BY k").fetch_all(pool).await.unwrap());
            let rows: Vec<(i64, String)> = rows.into_iter().map(|(k, v)| (k, v.0)).collect();
            assert_eq!(rows, vec![(1, "a".to_string()), (2, "c".to_string())], "{dialect:?}");
            store.close().await;
            db.drop_database().await;
        }
    }

    /// Two writers that take the same rows in opposite orders deadlock; InnoDB rolls one back,
    /// and `write_tx!` runs that one again, so both writes land and neither caller sees an error.
    #[tokio::test]
    async fn a_deadlocked_write_is_run_again() {
        use std::sync::atomic::{AtomicU32, Ordering};
        use std::sync::Arc;

        let db = TestDatabase::new(Dialect::MySql);
        let store = SqlStore::connect(&db.url, &ConnectSettings::default()).await.unwrap();
        sqlx::raw_sql(
            "CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER) ENGINE=InnoDB; INSERT INTO t VALUES (1, 0), (2, 0)",
        )
        .execute(&mut MySqlConnectOptions::from_str(&db.url).unwrap().connect().await.unwrap())
        .await
        .unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let attempts = Arc::new(AtomicU32::new(0));
        let writer = |first: i64, second: i64| {
            let (store, barrier, attempts) = (store.clone(), barrier.clone(), attempts.clone());
            tokio::spawn(async move {
                let mut mine = 0;
                write_tx!(store, |tx| {
                    mine += 1;
                    attempts.fetch_add(1, Ordering::SeqCst);
                    let bump = "UPDATE t SET v = v + 1 WHERE k = ?";
                    sqlx::query(bump).bind(first).execute(&mut *tx).await.map_err(map_err)?;
                    // Only the first attempts meet here, each holding the row the other wants next.
                    if mine == 1 {
                        barrier.wait().await;
                    }
                    sqlx::query(bump).bind(second).execute(&mut *tx).await.map_err(map_err)?;
                    Ok(())
                })
            })
        };
        let (a, b) = (writer(1, 2), writer(2, 1));
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
        assert!(attempts.load(Ordering::SeqCst) >= 3, "one of the writers deadlocked and ran again");
        let values: Vec<(i32, i32)> =
            on_pool!(store, |pool| sqlx::query_as("SELECT k, v FROM t ORDER BY k").fetch_all(pool).await.unwrap());
        assert_eq!(values, vec![(1, 2), (2, 2)], "each writer's two updates landed once");
        store.close().await;
        db.drop_database().await;
    }
}
