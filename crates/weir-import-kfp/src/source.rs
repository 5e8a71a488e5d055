//! The KFP database, read only: one read-only snapshot transaction, every value read as text.
//!
//! KFP keeps no schema version (its server runs GORM's AutoMigrate, and users alter tables by
//! hand), so nothing here trusts a version: the tables and columns present are looked up first
//! and only those are read. Every value is cast to text in the query, which makes one decoder
//! serve MySQL, MariaDB and PostgreSQL and every column type GORM ever chose.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use sqlx::{Connection, Row};

use crate::ImportError;

/// The two databases KFP runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    Mysql,
    Postgres,
}

enum Conn {
    Mysql(sqlx::MySqlConnection),
    Postgres(sqlx::PgConnection),
}

/// An open snapshot of KFP's `mlpipeline` database.
pub struct Source {
    conn: Conn,
    pub dialect: Dialect,
    /// Table name → its columns, as the database holds them.
    pub tables: BTreeMap<String, BTreeMap<String, Column>>,
    pub server_version: String,
    /// What makes the read consistent (said in the report).
    pub snapshot: &'static str,
}

/// A column as declared: its maximum length (text columns) and whether it takes NULL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub max_length: Option<i64>,
    pub nullable: bool,
}

/// One row: column name → its value as text (`None` for NULL).
pub type TextRow = BTreeMap<String, Option<String>>;

impl Source {
    pub async fn open(url: &str) -> Result<Self, ImportError> {
        let cannot = |e: sqlx::Error| ImportError::Source(format!("cannot read {}: {e}", redact(url)));
        if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            let url = url.replacen("mariadb://", "mysql://", 1);
            let mut conn = sqlx::MySqlConnection::connect(&url).await.map_err(cannot)?;
            // An InnoDB consistent snapshot covers every schema on the server at one instant,
            // and READ ONLY makes the server refuse any write this connection might attempt.
            sqlx::raw_sql("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut conn)
                .await
                .map_err(cannot)?;
            sqlx::raw_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                .execute(&mut conn)
                .await
                .map_err(cannot)?;
            let version: String = sqlx::query_scalar("SELECT VERSION()").fetch_one(&mut conn).await.map_err(cannot)?;
            let mut source = Self {
                conn: Conn::Mysql(conn),
                dialect: Dialect::Mysql,
                tables: BTreeMap::new(),
                server_version: version,
                snapshot: "one consistent InnoDB snapshot (START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY)",
            };
            source.tables = source
                .columns(
                    "SELECT CAST(TABLE_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR), CAST(CHARACTER_MAXIMUM_LENGTH AS CHAR), \
                     CAST(IS_NULLABLE AS CHAR) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()",
                )
                .await?;
            Ok(source)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let mut conn = sqlx::PgConnection::connect(url).await.map_err(cannot)?;
            sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .execute(&mut conn)
                .await
                .map_err(cannot)?;
            let version: String =
                sqlx::query_scalar("SHOW server_version").fetch_one(&mut conn).await.map_err(cannot)?;
            let mut source = Self {
                conn: Conn::Postgres(conn),
                dialect: Dialect::Postgres,
                tables: BTreeMap::new(),
                server_version: version,
                snapshot: "one REPEATABLE READ, READ ONLY transaction (consistent within this database)",
            };
            source.tables = source
                .columns(
                    "SELECT table_name::text, column_name::text, character_maximum_length::text, is_nullable::text \
                     FROM information_schema.columns WHERE table_schema = current_schema()",
                )
                .await?;
            Ok(source)
        } else {
            Err(ImportError::Invalid(format!(
                "{} is not a MySQL or PostgreSQL URL (mysql://USER:PASSWORD@HOST:3306/mlpipeline, postgres://...)",
                redact(url)
            )))
        }
    }

    async fn columns(&mut self, sql: &str) -> Result<BTreeMap<String, BTreeMap<String, Column>>, ImportError> {
        type Described = (String, String, Option<String>, String);
        let mut tables: BTreeMap<String, BTreeMap<String, Column>> = BTreeMap::new();
        let rows = match &mut self.conn {
            Conn::Mysql(c) => sqlx::query_as::<_, Described>(sql).fetch_all(c).await,
            Conn::Postgres(c) => sqlx::query_as::<_, Described>(sql).fetch_all(c).await,
        }
        .map_err(|e| ImportError::Source(format!("cannot list KFP's tables: {e}")))?;
        for (table, column, length, nullable) in rows {
            let column_info = Column {
                max_length: length.and_then(|l| l.parse().ok()),
                nullable: nullable.eq_ignore_ascii_case("YES"),
            };
            tables.entry(table).or_default().insert(column, column_info);
        }
        Ok(tables)
    }

    pub fn column(&self, table: &str, column: &str) -> Option<&Column> {
        self.tables.get(table).and_then(|c| c.get(column))
    }

    pub fn has_table(&self, table: &str) -> bool {
        self.tables.contains_key(table)
    }

    pub fn has_column(&self, table: &str, column: &str) -> bool {
        self.tables.get(table).is_some_and(|c| c.contains_key(column))
    }

    /// The next page of `table` by its unique text key `key`: at most `limit` rows whose key
    /// sorts after `after`, in key order. Pages of one snapshot see the same rows, and no
    /// result set stays open while the caller writes a page elsewhere.
    pub async fn page(
        &mut self,
        table: &str,
        columns: &[&str],
        key: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TextRow>, ImportError> {
        let mut rows = Vec::new();
        if !self.has_column(table, key) {
            return Ok(rows);
        }
        let filter = match (after, self.dialect) {
            (None, _) => String::new(),
            (Some(_), Dialect::Mysql) => format!("WHERE `{key}` > ?"),
            (Some(_), Dialect::Postgres) => format!("WHERE \"{key}\" > $1"),
        };
        let sql = self.select_sql(table, columns, key, &filter, Some(limit));
        let present = self.present(table, columns);
        let failed = |e: sqlx::Error| ImportError::Source(format!("cannot read KFP's {table}: {e}"));
        macro_rules! read {
            ($conn:expr) => {{
                let mut query = sqlx::query(&sql);
                if let Some(after) = after {
                    query = query.bind(after);
                }
                for row in query.fetch_all($conn).await.map_err(failed)? {
                    let values: Vec<Option<String>> = (0..present.len())
                        .map(|i| row.try_get::<Option<String>, _>(i))
                        .collect::<Result<_, _>>()
                        .map_err(failed)?;
                    rows.push(row_of(columns, &present, values));
                }
            }};
        }
        match &mut self.conn {
            Conn::Mysql(c) => read!(&mut *c),
            Conn::Postgres(c) => read!(&mut *c),
        }
        Ok(rows)
    }

    /// Runs a query whose `width` columns are all text, binding `binds` to its `?`s (numbered
    /// for PostgreSQL).
    pub async fn query(
        &mut self,
        sql: &str,
        binds: &[String],
        width: usize,
    ) -> Result<Vec<Vec<Option<String>>>, ImportError> {
        let sql = match self.dialect {
            Dialect::Mysql => sql.to_string(),
            Dialect::Postgres => {
                let mut numbered = String::with_capacity(sql.len());
                let mut n = 0;
                for c in sql.chars() {
                    if c == '?' {
                        n += 1;
                        numbered.push_str(&format!("${n}"));
                    } else {
                        numbered.push(c);
                    }
                }
                numbered
            }
        };
        let failed = |e: sqlx::Error| ImportError::Source(format!("cannot read ML Metadata: {e}"));
        let mut out = Vec::new();
        macro_rules! read {
            ($conn:expr) => {{
                let mut query = sqlx::query(&sql);
                for bind in binds {
                    query = query.bind(bind);
                }
                for row in query.fetch_all($conn).await.map_err(failed)? {
                    let values: Vec<Option<String>> = (0..width)
                        .map(|i| row.try_get::<Option<String>, _>(i))
                        .collect::<Result<_, _>>()
                        .map_err(failed)?;
                    out.push(values);
                }
            }};
        }
        match &mut self.conn {
            Conn::Mysql(c) => read!(&mut *c),
            Conn::Postgres(c) => read!(&mut *c),
        }
        Ok(out)
    }

    fn present<'c>(&self, table: &str, columns: &[&'c str]) -> Vec<&'c str> {
        columns.iter().copied().filter(|c| self.has_column(table, c)).collect()
    }

    /// `SELECT` of the present `columns` cast to text, with `filter`, ordered by `order`.
    fn select_sql(&self, table: &str, columns: &[&str], order: &str, filter: &str, limit: Option<usize>) -> String {
        let (quote, cast) = match self.dialect {
            Dialect::Mysql => ("`", "CAST(`{}` AS CHAR)"),
            Dialect::Postgres => ("\"", "\"{}\"::text"),
        };
        let quote = |name: &str| format!("{quote}{name}{quote}");
        let select: Vec<String> = self.present(table, columns).iter().map(|c| cast.replace("{}", c)).collect();
        let limit = limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
        format!("SELECT {} FROM {} {filter} ORDER BY {}{limit}", select.join(", "), quote(table), quote(order))
    }

    /// Streams the rows of `table`, with those of `columns` the table has (missing ones read
    /// as NULL), ordered by `order` (a column), to `each`.
    pub async fn for_each_row(
        &mut self,
        table: &str,
        columns: &[&str],
        order: &str,
        mut each: impl FnMut(TextRow) -> Result<(), ImportError>,
    ) -> Result<(), ImportError> {
        let present = self.present(table, columns);
        if present.is_empty() {
            return Ok(());
        }
        let sql = self.select_sql(table, columns, order, "", None);
        let failed = |e: sqlx::Error| ImportError::Source(format!("cannot read KFP's {table}: {e}"));
        match &mut self.conn {
            Conn::Mysql(c) => {
                let mut rows = sqlx::query(&sql).fetch(c);
                while let Some(row) = rows.try_next().await.map_err(failed)? {
                    let values =
                        (0..present.len()).map(|i| row.try_get::<Option<String>, _>(i)).collect::<Result<_, _>>();
                    each(row_of(columns, &present, values.map_err(failed)?))?;
                }
            }
            Conn::Postgres(c) => {
                let mut rows = sqlx::query(&sql).fetch(c);
                while let Some(row) = rows.try_next().await.map_err(failed)? {
                    let values =
                        (0..present.len()).map(|i| row.try_get::<Option<String>, _>(i)).collect::<Result<_, _>>();
                    each(row_of(columns, &present, values.map_err(failed)?))?;
                }
            }
        }
        Ok(())
    }

    /// Ends the snapshot. It never wrote anything; rolling back says so to the server too.
    pub async fn close(self) {
        match self.conn {
            Conn::Mysql(mut c) => {
                let _ = sqlx::raw_sql("ROLLBACK").execute(&mut c).await;
                let _ = c.close().await;
            }
            Conn::Postgres(mut c) => {
                let _ = sqlx::raw_sql("ROLLBACK").execute(&mut c).await;
                let _ = c.close().await;
            }
        }
    }
}

/// A row with every asked-for column, those the table lacks as NULL.
fn row_of(columns: &[&str], present: &[&str], values: Vec<Option<String>>) -> TextRow {
    let mut row: TextRow = columns.iter().map(|c| (c.to_string(), None)).collect();
    for (column, value) in present.iter().zip(values) {
        row.insert(column.to_string(), value);
    }
    row
}

/// A URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
