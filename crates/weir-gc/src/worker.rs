//! The server's collector: finishes the journal at start and whenever a removal wakes it, and
//! applies the retention policies on a schedule.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use weir_store::RetentionPolicy;

use crate::{retention, Collector, Drained};

/// The `retention` section of `weir.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSettings {
    /// The deployment's policies; an experiment's own replace them for its runs.
    pub policies: Vec<RetentionPolicy>,
    /// How often the server applies them (0: never; `weir storage gc --apply` still does).
    pub interval_seconds: u64,
    /// Runs removed per batch, each in a transaction of its own.
    pub batch_size: i64,
    /// Keep the artifacts of every run removed (by a policy or a delete), for users who
    /// share them outside weir.
    pub keep_artifacts: bool,
    /// Orphan objects younger than this are left (a step or a removal may still be writing
    /// or deleting them).
    pub orphan_grace_seconds: u64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            policies: Vec::new(),
            interval_seconds: 3600,
            batch_size: 100,
            keep_artifacts: false,
            orphan_grace_seconds: 86_400,
        }
    }
}

impl RetentionSettings {
    pub fn validate(&self) -> Result<(), String> {
        let mut names = std::collections::BTreeSet::new();
        for policy in &self.policies {
            policy.validate()?;
            if !names.insert(policy.name.as_str()) {
                return Err(format!("two retention policies are named {:?}", policy.name));
            }
        }
        if self.batch_size < 1 {
            return Err("retention.batch_size must be at least 1".into());
        }
        Ok(())
    }
}

/// Runs until `stop` is notified: drains the journal at start and on `wake`, and applies the
/// policies every `interval_seconds`.
pub async fn run(collector: Collector, settings: RetentionSettings, wake: Arc<Notify>, stop: Arc<Notify>) {
    let quiet = |_: Drained| {};
    let interval = (settings.interval_seconds > 0).then(|| Duration::from_secs(settings.interval_seconds));
    // The first policy pass waits a little (at most 30 s): a start is busy enough.
    let mut next_pass = interval.map(|every| tokio::time::Instant::now() + every.min(Duration::from_secs(30)));
    loop {
        match collector.drain(&quiet).await {
            Ok(d) if d.entries > 0 => {
                tracing::info!(
                    entries = d.entries,
                    objects = d.objects,
                    bytes = d.bytes,
                    kept = d.kept,
                    "deleted objects of removals"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not finish the deletion journal; retrying later"),
        }
        if let (Some(at), Some(every)) = (next_pass, interval) {
            if tokio::time::Instant::now() >= at {
                let on_run = |record: weir_store::GcRecord| tracing::info!(run.id = %record.target_id, policy = %record.policy, action = %record.detail["action"], "retention");
                match retention::apply(
                    &collector,
                    &settings.policies,
                    settings.keep_artifacts,
                    settings.batch_size,
                    &on_run,
                    &quiet,
                )
                .await
                {
                    Ok(a) if a.deleted + a.archived > 0 => {
                        tracing::info!(
                            deleted = a.deleted,
                            archived = a.archived,
                            objects = a.drained.objects,
                            bytes = a.drained.bytes,
                            "applied retention policies"
                        )
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "could not apply the retention policies; retrying at the next pass")
                    }
                }
                next_pass = Some(tokio::time::Instant::now() + every);
            }
        }
        // A failed drain is retried within a minute even without a wake-up.
        let sleep = next_pass
            .map(|at| at.saturating_duration_since(tokio::time::Instant::now()))
            .unwrap_or(Duration::from_secs(60))
            .min(Duration::from_secs(60));
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(sleep) => {}
            () = stop.notified() => return,
        }
    }
}
