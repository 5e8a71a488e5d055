//! Run leases: which replica drives which run, when several weirs share one database. The
//! owner's server lease (renewed by its heartbeat) is the lease of all its runs, so renewing
//! costs one statement per replica, not one per run.

use async_trait::async_trait;
use weir_store::{ActiveRun, RunLeaseStore, RuntimeState, StoreError, StoreResult};

use crate::binds::run_lease_binds;
use crate::schema::RUN_LEASES;
use crate::text::Text;
use crate::{Bind, SqlStore, Stmt};

/// The states of runs the engine drives.
const ACTIVE: [RuntimeState; 3] = [RuntimeState::Pending, RuntimeState::Running, RuntimeState::Canceling];

#[async_trait]
impl RunLeaseStore for SqlStore {
    async fn active_runs_with_owners(&self) -> StoreResult<Vec<ActiveRun>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            id: Text,
            state: Text,
            owner: Option<Text>,
            heartbeat_at: Option<i64>,
            host: Option<Text>,
        }
        let rows = self
            .fetch_all::<Row>(
                "SELECT r.id, r.state, l.owner, s.heartbeat_at, s.host FROM runs r \
                 LEFT JOIN run_leases l ON l.run_id = r.id \
                 LEFT JOIN server_leases s ON s.id = l.owner \
                 WHERE r.state IN (?, ?, ?) ORDER BY r.created_at, r.id",
                &ACTIVE.map(|s| Bind::Text(s.as_str().into())),
            )
            .await?;
        rows.into_iter()
            .map(|r| {
                let state = RuntimeState::parse(&r.state.0).ok_or_else(|| {
                    StoreError::Internal(format!("run {} has an unknown state {:?}", r.id.0, r.state.0))
                })?;
                Ok(ActiveRun {
                    id: r.id.0,
                    state,
                    owner: r.owner.map(|t| t.0),
                    owner_heartbeat_at: r.heartbeat_at,
                    owner_host: r.host.map(|t| t.0),
                })
            })
            .collect()
    }

    async fn take_run(&self, run_id: &str, owner: &str, previous: Option<&str>, now: i64) -> StoreResult<bool> {
        let lost = || StoreError::Aborted(format!("another weir took run {run_id} first"));
        // One statement each way that only one replica can win: a second insert of the run's
        // row is a unique violation, and a compare-and-set of the dead owner matches no row
        // once another replica replaced it.
        let take = match previous {
            None => Stmt::new(RUN_LEASES.insert_sql(1), run_lease_binds(run_id, owner, now)),
            Some(previous) => Stmt::new(
                "UPDATE run_leases SET owner = ?, taken_at = ?, takeovers = takeovers + 1 \
                 WHERE run_id = ? AND owner = ?",
                vec![Bind::Text(owner.into()), Bind::Int(now), Bind::Text(run_id.into()), Bind::Text(previous.into())],
            )
            .or_fail(lost()),
        };
        match self.transaction(vec![take]).await {
            Ok(()) => Ok(true),
            Err(StoreError::AlreadyExists(_) | StoreError::Aborted(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn release_runs(&self, owner: &str) -> StoreResult<()> {
        self.transaction(vec![Stmt::new("DELETE FROM run_leases WHERE owner = ?", vec![Bind::Text(owner.into())])])
            .await
    }
}

/// The first statement of a fenced engine write: it matches the run's row only while `owner`
/// drives the run, and holds the row until the transaction ends, so a takeover waits for the
/// write in flight and every write after it is refused.
pub(crate) fn fence(run_id: &str, owner: &str) -> Stmt {
    Stmt::new(
        "UPDATE run_leases SET owner = ? WHERE run_id = ? AND owner = ?",
        vec![Bind::Text(owner.into()), Bind::Text(run_id.into()), Bind::Text(owner.into())],
    )
    .or_fail(StoreError::Fenced(format!("run {run_id} is driven by another weir now")))
}

/// Frees a run that ended, in the transaction that ends it: a retried run is taken afresh.
pub(crate) fn release_ended(run_id: &str) -> Stmt {
    Stmt::new("DELETE FROM run_leases WHERE run_id = ?", vec![Bind::Text(run_id.into())])
}
