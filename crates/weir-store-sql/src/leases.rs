//! Server leases: who serves this storage (one row per server, renewed by heartbeats), and
//! the engine lease, held by the one server whose engine runs steps.

use weir_store::{Lease, StoreError, StoreResult};

use crate::binds::{engine_lease_binds, id_last, lease_binds};
use crate::schema::{ENGINE_LEASE, SERVER_LEASES};
use crate::text::Text;
use crate::{Bind, SqlStore, Stmt};

/// Renews a server's lease (it was recorded when taken, or is recorded now by a server that
/// does not run the engine). Each lease id belongs to one server process, so check-then-write
/// does not race.
pub(crate) async fn heartbeat(store: &SqlStore, lease: &Lease) -> StoreResult<()> {
    let exists =
        store.count("SELECT COUNT(*) FROM server_leases WHERE id = ?", &[Bind::Text(lease.id.clone())]).await? > 0;
    let statement = if exists {
        Stmt::new(SERVER_LEASES.update_by_id_sql(), id_last(lease_binds(lease)))
    } else {
        insert_lease(lease)
    };
    store.transaction(vec![statement]).await
}

/// Removes a server's lease, and the engine lease if it holds it (on a clean stop).
pub(crate) async fn release(store: &SqlStore, id: &str) -> StoreResult<()> {
    let mut statements = vec![Stmt::new("DELETE FROM server_leases WHERE id = ?", vec![Bind::Text(id.into())])];
    if store.table_exists("engine_lease").await? {
        statements.push(Stmt::new("DELETE FROM engine_lease WHERE lease_id = ?", vec![Bind::Text(id.into())]));
    }
    store.transaction(statements).await
}

pub(crate) async fn leases(store: &SqlStore) -> StoreResult<Vec<Lease>> {
    if !store.table_exists("server_leases").await? {
        return Ok(Vec::new());
    }
    #[derive(sqlx::FromRow)]
    struct LeaseRow {
        id: Text,
        deployment: Text,
        host: Text,
        pid: i64,
        version: Text,
        schema_version: i64,
        started_at: i64,
        heartbeat_at: i64,
    }
    let rows = store
        .fetch_all::<LeaseRow>(
            &format!("SELECT {} FROM server_leases ORDER BY heartbeat_at DESC, id", SERVER_LEASES.column_list),
            &[],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| Lease {
            id: r.id.0,
            deployment: r.deployment.0,
            host: r.host.0,
            pid: r.pid,
            version: r.version.0,
            schema_version: r.schema_version,
            started_at: r.started_at,
            heartbeat_at: r.heartbeat_at,
        })
        .collect())
}

/// The lease id holding the engine lease, if any.
pub(crate) async fn engine_holder(store: &SqlStore) -> StoreResult<Option<String>> {
    #[derive(sqlx::FromRow)]
    struct HolderRow {
        lease_id: Text,
    }
    let row = store.fetch_optional::<HolderRow>("SELECT lease_id FROM engine_lease WHERE id = 1", &[]).await?;
    Ok(row.map(|r| r.lease_id.0))
}

/// Takes the engine lease for `lease` and records the lease, in one transaction. The taking is
/// one statement that fails for every server but one: inserting the lease's single row (a
/// second insert is a unique violation), or replacing the holder `replacing` (a
/// compare-and-set that matches no row once another server replaced it first). A loser gets
/// `Aborted` and nothing is written.
pub(crate) async fn take_engine(store: &SqlStore, lease: &Lease, replacing: Option<&str>) -> StoreResult<()> {
    let lost = || StoreError::Aborted("another weir took the engine lease first".into());
    let take = match replacing {
        None => Stmt::new(ENGINE_LEASE.insert_sql(1), engine_lease_binds(&lease.id, lease.started_at)),
        Some(holder) => Stmt::new(
            "UPDATE engine_lease SET lease_id = ?, taken_at = ? WHERE id = 1 AND lease_id = ?",
            vec![Bind::Text(lease.id.clone()), Bind::Int(lease.started_at), Bind::Text(holder.to_string())],
        )
        .or_fail(lost()),
    };
    let mut statements = vec![take];
    if let Some(holder) = replacing {
        // The dead holder's row goes with its lease.
        statements.push(Stmt::new("DELETE FROM server_leases WHERE id = ?", vec![Bind::Text(holder.to_string())]));
    }
    statements.push(insert_lease(lease));
    match store.transaction(statements).await {
        Err(StoreError::AlreadyExists(_)) => Err(lost()),
        other => other,
    }
}

fn insert_lease(lease: &Lease) -> Stmt {
    Stmt::new(SERVER_LEASES.insert_sql(1), lease_binds(lease))
}
