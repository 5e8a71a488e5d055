//! Several reads on one pooled connection.
//!
//! On PostgreSQL and MySQL, sqlx pings a connection when the pool hands it out
//! (`test_before_acquire`) and again when it goes back (its test on release), so a read straight
//! from the pool is three round trips to the database. On a busy machine each round trip waits
//! for the database's process to get a core: a `GET` of a run, which reads the run's row, its
//! history and its changed tasks, made six such waits on its way. Reads made together take one
//! connection instead: one ping, then the reads.

use sqlx::pool::PoolConnection;
use sqlx::{MySql, Postgres, Sqlite};
use weir_store::StoreResult;

use crate::{bind_all, check_text, list, map_err, AnyRow, Bind, Pools, SqlStore};

enum Conn {
    Sqlite(PoolConnection<Sqlite>),
    MySql(PoolConnection<MySql>),
    Postgres(PoolConnection<Postgres>),
}

/// Runs `$body` with `$conn` bound to the concrete connection, once per dialect.
macro_rules! on_conn {
    ($reads:expr, |$conn:ident| $body:expr) => {
        match &mut $reads.conn {
            Conn::Sqlite($conn) => $body,
            Conn::MySql($conn) => $body,
            Conn::Postgres($conn) => $body,
        }
    };
}

/// One connection of the store's read pool, held until dropped. The reads are not one
/// snapshot: each sees what was committed when it ran, as reads from the pool do.
pub(crate) struct Reads<'a> {
    store: &'a SqlStore,
    conn: Conn,
}

impl SqlStore {
    pub(crate) async fn reads(&self) -> StoreResult<Reads<'_>> {
        let conn = match &self.pools {
            Pools::Sqlite(pool) => Conn::Sqlite(pool.acquire().await.map_err(map_err)?),
            Pools::MySql(pool) => Conn::MySql(pool.acquire().await.map_err(map_err)?),
            Pools::Postgres(pool) => Conn::Postgres(pool.acquire().await.map_err(map_err)?),
        };
        Ok(Reads { store: self, conn })
    }
}

impl Reads<'_> {
    pub(crate) async fn fetch_all<R: AnyRow>(&mut self, sql: &str, binds: &[Bind]) -> StoreResult<Vec<R>> {
        check_text(binds)?;
        let sql = self.store.sql(sql);
        on_conn!(self, |conn| bind_all!(sqlx::query_as::<_, R>(&sql), binds)
            .fetch_all(&mut **conn)
            .await
            .map_err(map_err))
    }

    pub(crate) async fn fetch_optional<R: AnyRow>(&mut self, sql: &str, binds: &[Bind]) -> StoreResult<Option<R>> {
        check_text(binds)?;
        let sql = self.store.sql(sql);
        on_conn!(self, |conn| bind_all!(sqlx::query_as::<_, R>(&sql), binds)
            .fetch_optional(&mut **conn)
            .await
            .map_err(map_err))
    }

    pub(crate) async fn count(&mut self, sql: &str, binds: &[Bind]) -> StoreResult<i64> {
        check_text(binds)?;
        let sql = self.store.sql(sql);
        on_conn!(self, |conn| bind_all!(sqlx::query_scalar::<_, i64>(&sql), binds)
            .fetch_one(&mut **conn)
            .await
            .map_err(map_err))
    }

    /// A page of `table`'s rows as the built list query asks (built before a connection is
    /// taken, so a bad filter or page token is refused without one), and how many rows match
    /// it in all.
    pub(crate) async fn list_rows<R: AnyRow>(
        &mut self,
        table: &str,
        columns: &str,
        built: &list::ListSql,
    ) -> StoreResult<(Vec<R>, i64)> {
        let rows = self
            .fetch_all::<R>(&format!("SELECT {columns} FROM {table}{}", built.page_tail), &built.page_binds)
            .await?;
        let count_sql = match &built.counter_sql {
            Some(sql) => sql.clone(),
            None => format!("SELECT COUNT(*) FROM {table}{}", built.count_where),
        };
        let total = self.count(&count_sql, &built.count_binds).await?;
        Ok((rows, total))
    }
}
