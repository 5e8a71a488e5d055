//! Several weirs on one database: which runs this replica drives, and taking the runs of
//! replicas that died.

use std::collections::HashSet;
use std::sync::Arc;

use weir_store::RuntimeState;

use super::Engine;
use crate::error::EngineError;
use crate::replica::Replica;

impl Engine {
    /// The active runs this replica drives (oldest first), and the ids of active runs it must
    /// leave alone (another replica drives them, or may take them). Runs no live replica
    /// drives (new ones, and those of a replica whose lease ran out) are taken here, a fair
    /// share per pass (their number over the live replicas, rounded up), so a flood of new
    /// runs spreads over the replicas, and each taken run is recovered before it is driven.
    pub(super) async fn replica_runs(
        self: &Arc<Self>,
        replica: &Replica,
    ) -> Result<(Vec<(String, RuntimeState)>, HashSet<String>), EngineError> {
        let now = self.clock.now_ms();
        let runs = self.store.active_runs_with_owners().await?;
        let mut mine = Vec::new();
        let mut others = HashSet::new();
        let mut free = Vec::new();
        for (order, run) in runs.into_iter().enumerate() {
            match run.owner.as_deref() {
                Some(owner) if owner == replica.id() => mine.push((order, run)),
                Some(_) if !replica.is_dead(run.owner_heartbeat_at, now) => {
                    others.insert(run.id);
                }
                _ => free.push((order, run)),
            }
        }
        let stopping = self.stopping.load(std::sync::atomic::Ordering::SeqCst);
        if !free.is_empty() && replica.holds() && !stopping {
            let live = self
                .store
                .leases()
                .await?
                .iter()
                .filter(|l| l.id != replica.id() && !replica.is_dead(Some(l.heartbeat_at), now))
                .count()
                + 1;
            let share = free.len().div_ceil(live);
            let mut taken = 0;
            for (order, run) in free {
                if taken == share {
                    others.insert(run.id);
                    continue;
                }
                if !self.store.take_run(&run.id, replica.id(), run.owner.as_deref(), now).await? {
                    others.insert(run.id);
                    continue;
                }
                taken += 1;
                if let Some(previous) = &run.owner {
                    tracing::warn!(run.id = %run.id, replica.previous = %previous, "took over a run whose weir stopped renewing its lease");
                }
                // A new run has nothing to recover. Attempt folders are only here to look at
                // if the weir before ran here.
                if run.owner.is_some() || run.state != RuntimeState::Pending {
                    let same_host = run.owner_host.as_deref().is_none_or(|host| host == replica.host());
                    self.unrecovered.lock().expect("unrecovered").insert(run.id.clone(), same_host);
                }
                mine.push((order, run));
            }
        } else {
            others.extend(free.into_iter().map(|(_, run)| run.id));
        }
        mine.sort_by_key(|(order, _)| *order);
        let mut driven = Vec::with_capacity(mine.len());
        for (_, run) in mine {
            // A run taken over is recovered before anything else happens to it; until that
            // succeeds it waits (its steps are neither started nor settled twice).
            let pending = self.unrecovered.lock().expect("unrecovered").get(&run.id).copied();
            if let Some(same_host) = pending {
                if let Err(e) = self.recover_run(&run.id, same_host).await {
                    tracing::warn!(run.id = %run.id, error = %e, "could not recover a run taken over; trying again at the next pass");
                    continue;
                }
                self.unrecovered.lock().expect("unrecovered").remove(&run.id);
            }
            driven.push((run.id, run.state));
        }
        Ok((driven, others))
    }
}
