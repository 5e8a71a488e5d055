//! Fresh databases for tests: one per test, on the real servers, dropped afterwards.
//!
//! Server URLs come from `WEIR_TEST_MYSQL_URL` and `WEIR_TEST_POSTGRES_URL` (defaults: the
//! local MariaDB and PostgreSQL of the CI machine). A server that does not answer fails the
//! test: a backend is only supported where its tests ran. Also the schema as defined and as a
//! database holds it, for checking one against the other.

use std::str::FromStr;

use sqlx::{ConnectOptions, Connection};

use crate::Dialect;

pub const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306";
pub const DEFAULT_POSTGRES_URL: &str = "postgres://root@127.0.0.1:5432";

/// A database created for one test. Call [`TestDatabase::drop_database`] when done.
pub struct TestDatabase {
    pub dialect: Dialect,
    /// URL of the database itself, for `SqlStore::connect` or `weir --metadata`.
    pub url: String,
    name: String,
    server_url: String,
    _dir: Option<std::path::PathBuf>,
}

fn server_url(dialect: Dialect) -> String {
    let (var, default) = match dialect {
        Dialect::MySql => ("WEIR_TEST_MYSQL_URL", DEFAULT_MYSQL_URL),
        Dialect::Postgres => ("WEIR_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        Dialect::Sqlite => return String::new(),
    };
    std::env::var(var).unwrap_or_else(|_| default.to_string()).trim_end_matches('/').to_string()
}

impl TestDatabase {
    /// Names a new database; MySQL and PostgreSQL databases are created by `SqlStore::connect`
    /// (as weir does on first start), SQLite files in a new temporary folder.
    pub fn new(dialect: Dialect) -> Self {
        let name = format!("weir_test_{}", uuid::Uuid::new_v4().simple());
        match dialect {
            Dialect::Sqlite => {
                let dir = std::env::temp_dir().join(&name);
                std::fs::create_dir_all(&dir).expect("temporary folder");
                let url = format!("sqlite://{}/weir.db", dir.display());
                Self { dialect, url, name, server_url: String::new(), _dir: Some(dir) }
            }
            _ => {
                let server_url = server_url(dialect);
                let url = format!("{server_url}/{name}");
                Self { dialect, url, name, server_url, _dir: None }
            }
        }
    }

    pub async fn drop_database(&self) {
        match self.dialect {
            Dialect::Sqlite => {
                if let Some(dir) = &self._dir {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
            Dialect::MySql => {
                let options = sqlx::mysql::MySqlConnectOptions::from_str(&self.server_url).expect("MySQL URL");
                let mut conn = options.connect().await.expect("connect to MySQL to drop the test database");
                sqlx::query(&format!("DROP DATABASE IF EXISTS `{}`", self.name))
                    .execute(&mut conn)
                    .await
                    .expect("drop MySQL test database");
                let _ = conn.close().await;
            }
            Dialect::Postgres => {
                let options = sqlx::postgres::PgConnectOptions::from_str(&self.server_url)
                    .expect("PostgreSQL URL")
                    .database("postgres");
                let mut conn = options.connect().await.expect("connect to PostgreSQL to drop the test database");
                sqlx::query(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name))
                    .execute(&mut conn)
                    .await
                    .expect("drop PostgreSQL test database");
                let _ = conn.close().await;
            }
        }
    }
}

/// Runs one SQL statement on a database, for tests that set up states the API cannot make
/// (a schema from a newer weir, an interrupted migration, an injected fault).
pub async fn execute_raw(url: &str, statement: &str) {
    let dialect = Dialect::from_url(url).expect("dialect");
    let outcome = match dialect {
        Dialect::Sqlite => {
            let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(url).unwrap().connect().await.unwrap();
            sqlx::query(statement).execute(&mut conn).await.map(|_| ())
        }
        Dialect::MySql => {
            let mut conn = sqlx::mysql::MySqlConnectOptions::from_str(url).unwrap().connect().await.unwrap();
            sqlx::query(statement).execute(&mut conn).await.map(|_| ())
        }
        Dialect::Postgres => {
            let mut conn = sqlx::postgres::PgConnectOptions::from_str(url).unwrap().connect().await.unwrap();
            sqlx::query(statement).execute(&mut conn).await.map(|_| ())
        }
    };
    outcome.unwrap_or_else(|e| panic!("{statement}: {e}"));
}

/// Runs a query whose first column is an integer and returns that column, for tests that
/// check what the API does not show (the task version a row was written at).
pub async fn query_ints(url: &str, statement: &str) -> Vec<i64> {
    use sqlx::Row;
    let dialect = Dialect::from_url(url).expect("dialect");
    let rows = match dialect {
        Dialect::Sqlite => {
            let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(url).unwrap().connect().await.unwrap();
            sqlx::query(statement).fetch_all(&mut conn).await.map(|rows| rows.iter().map(|r| r.get(0)).collect())
        }
        Dialect::MySql => {
            let mut conn = sqlx::mysql::MySqlConnectOptions::from_str(url).unwrap().connect().await.unwrap();
            sqlx::query(statement).fetch_all(&mut conn).await.map(|rows| rows.iter().map(|r| r.get(0)).collect())
        }
        Dialect::Postgres => {
            let mut conn = sqlx::postgres::PgConnectOptions::from_str(url).unwrap().connect().await.unwrap();
            sqlx::query(statement).fetch_all(&mut conn).await.map(|rows| rows.iter().map(|r| r.get(0)).collect())
        }
    };
    rows.unwrap_or_else(|e| panic!("{statement}: {e}"))
}

/// An open transaction that keeps every write of one run's tasks waiting until
/// [`HeldWrites::release`]: the run's row locked (`SELECT … FOR UPDATE`), or on SQLite the
/// file's write lock (`BEGIN IMMEDIATE`; weir's writers wait up to their busy timeout).
/// For tests that need a write to be slow.
pub enum HeldWrites {
    Sqlite(sqlx::SqliteConnection),
    MySql(sqlx::MySqlConnection),
    Postgres(sqlx::PgConnection),
}

impl HeldWrites {
    pub async fn hold(url: &str, run_id: &str) -> Self {
        let lock_row = format!("SELECT id FROM runs WHERE id = '{run_id}' FOR UPDATE");
        match Dialect::from_url(url).expect("dialect") {
            Dialect::Sqlite => {
                let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(url).unwrap().connect().await.unwrap();
                sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut conn).await.expect("BEGIN IMMEDIATE");
                Self::Sqlite(conn)
            }
            Dialect::MySql => {
                let mut conn = sqlx::mysql::MySqlConnectOptions::from_str(url).unwrap().connect().await.unwrap();
                sqlx::raw_sql("BEGIN").execute(&mut conn).await.expect("BEGIN");
                sqlx::raw_sql(&lock_row).execute(&mut conn).await.expect("lock the run's row");
                Self::MySql(conn)
            }
            Dialect::Postgres => {
                let mut conn = sqlx::postgres::PgConnectOptions::from_str(url).unwrap().connect().await.unwrap();
                sqlx::raw_sql("BEGIN").execute(&mut conn).await.expect("BEGIN");
                sqlx::raw_sql(&lock_row).execute(&mut conn).await.expect("lock the run's row");
                Self::Postgres(conn)
            }
        }
    }

    /// Ends the transaction (it changed nothing), letting the waiting writes through.
    pub async fn release(self) {
        let outcome = match self {
            Self::Sqlite(mut conn) => sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.map(|_| ()),
            Self::MySql(mut conn) => sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.map(|_| ()),
            Self::Postgres(mut conn) => sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.map(|_| ()),
        };
        outcome.expect("ROLLBACK");
    }
}

/// Runs a test body in its own task so that a failed assertion still drops the test
/// databases, then re-raises the failure.
pub async fn with_cleanup<F>(databases: &[&TestDatabase], body: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let outcome = tokio::spawn(body).await;
    for db in databases {
        db.drop_database().await;
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Tables a migrated database holds that the schema definition does not: sqlx's record of the
/// applied migrations. (Weir's migration lock is no table: a file beside a SQLite database, a
/// named lock on MySQL/MariaDB, an advisory lock on PostgreSQL.)
pub const UNDEFINED_TABLES: &[&str] = &["_sqlx_migrations"];

/// The tables of schema version `version` as `src/schema.rs` defines them, each with all its
/// columns in order, sorted by table name.
pub fn defined_tables(version: i64) -> Vec<(String, Vec<String>)> {
    let mut tables: Vec<(String, Vec<String>)> = crate::schema::TABLES
        .iter()
        .filter(|t| t.since <= version)
        .map(|t| {
            let columns: Vec<String> =
                t.columns.iter().filter(|c| c.since <= version).map(|c| c.name.to_string()).collect();
            (t.name.to_string(), columns)
        })
        .collect();
    tables.sort();
    tables
}

/// The tables a store's database holds, each with its columns in the database's order, sorted
/// by table name, as its catalogue reports them: SQLite's `table_info` pragma (tables named
/// `sqlite_…` are SQLite's own), `information_schema` of the current database (MySQL/MariaDB)
/// or schema (PostgreSQL).
pub async fn live_tables(store: &crate::SqlStore) -> Vec<(String, Vec<String>)> {
    #[derive(sqlx::FromRow)]
    struct NameRow {
        name: crate::text::Text,
    }
    let (tables_sql, columns_sql) = match store.dialect() {
        Dialect::Sqlite => (
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
            "SELECT name FROM pragma_table_info(?) ORDER BY cid",
        ),
        Dialect::MySql => (
            "SELECT table_name AS name FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'",
            "SELECT column_name AS name FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position",
        ),
        Dialect::Postgres => (
            "SELECT table_name::text AS name FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
            "SELECT column_name::text AS name FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
        ),
    };
    let names = |rows: Vec<NameRow>| rows.into_iter().map(|r| r.name.0).collect::<Vec<String>>();
    let tables = store.fetch_all::<NameRow>(tables_sql, &[]).await.expect("list the database's tables");
    let mut out = Vec::new();
    for table in names(tables) {
        let columns = store
            .fetch_all::<NameRow>(columns_sql, &[crate::Bind::Text(table.clone())])
            .await
            .unwrap_or_else(|e| panic!("list the columns of {table}: {e}"));
        out.push((table, names(columns)));
    }
    out.sort();
    out
}

/// Takes a store at the head schema back to the version before it, as that version's weir
/// left it, by undoing the newest migration (update this when a migration is added).
pub async fn undo_head_migration(url: &str) {
    let dialect = Dialect::from_url(url).unwrap();
    let head = crate::migration_versions(dialect).into_iter().max().unwrap();
    assert_eq!(head, 12, "undo_head_migration knows how to undo migration 12 only");
    let on = |table: &str| if dialect == Dialect::MySql { format!(" ON {table}") } else { String::new() };
    let statements = [
        "CREATE INDEX tasks_run ON tasks (run_id, created_at)".to_string(),
        format!("DROP INDEX tasks_run_order{}", on("tasks")),
        "DELETE FROM _sqlx_migrations WHERE version = 12".to_string(),
    ];
    for statement in &statements {
        execute_raw(url, statement).await;
    }
}
