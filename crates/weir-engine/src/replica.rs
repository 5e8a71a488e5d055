//! This weir as one of several replicas on one database. Each run is driven by one replica,
//! whose server lease (renewed by the server's heartbeat) is the lease of every run it took
//! (`run_leases`). A replica that stops renewing loses its runs to the others once the lease
//! has run out; its writes for them are then refused by the store (fencing). What the store
//! cannot refuse is starting a process, so a replica starts steps only while it knows its lease
//! is fresh: renewed within half its lifetime, by its own monotonic clock.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Replica {
    id: String,
    host: String,
    ttl: Duration,
    renewed: Mutex<Option<Instant>>,
}

impl Replica {
    /// `id` is the server's lease id; `ttl` how long a lease lives without renewal.
    pub fn new(id: impl Into<String>, host: impl Into<String>, ttl: Duration) -> Self {
        Self { id: id.into(), host: host.into(), ttl, renewed: Mutex::new(None) }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The lease was written; `sent` is when the write was sent (not when it returned: a slow
    /// answer must not make the lease look fresher than the store has it).
    pub fn renewed(&self, sent: Instant) {
        let mut renewed = self.renewed.lock().expect("replica lease");
        if renewed.is_none_or(|at| at < sent) {
            *renewed = Some(sent);
        }
    }

    /// Whether this replica may start steps now: its lease was renewed within half its
    /// lifetime, so no other replica can have found it dead (their clocks may differ from the
    /// store's by up to the other half).
    pub fn holds(&self) -> bool {
        self.renewed.lock().expect("replica lease").is_some_and(|at| at.elapsed() < self.ttl / 2)
    }

    /// Whether a lease last renewed at `heartbeat_at` (ms, by its replica's clock) is dead at
    /// `now`.
    pub fn is_dead(&self, heartbeat_at: Option<i64>, now: i64) -> bool {
        heartbeat_at.is_none_or(|at| now - at >= self.ttl.as_millis() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_holds_its_lease_only_while_fresh() {
        let replica = Replica::new("r", "h", Duration::from_millis(200));
        assert!(!replica.holds(), "never renewed");
        replica.renewed(Instant::now());
        assert!(replica.holds());
        // An older renewal reported late does not move the lease back.
        replica.renewed(Instant::now() - Duration::from_secs(5));
        assert!(replica.holds());
        std::thread::sleep(Duration::from_millis(120));
        assert!(!replica.holds(), "past half its lifetime");
        assert!(replica.is_dead(None, 0));
        assert!(replica.is_dead(Some(1_000), 1_200));
        assert!(!replica.is_dead(Some(1_000), 1_199));
    }
}
