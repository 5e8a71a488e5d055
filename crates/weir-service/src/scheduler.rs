//! Recurring runs fire here: each enabled recurring run's due slots become runs, exactly once
//! per slot. The database enforces "once": a slot row keyed by (recurring run, slot time) and
//! the cursor are written in the run's own transaction (see `RecurringRunStore::fire_slot`), so
//! restarts, crashes, reinstalls and several weirs on one database neither skip nor repeat a
//! slot. Time comes from the injected clock; `tick` is what tests call.
//!
//! Slots follow KFP's ScheduledWorkflow controller: a periodic schedule's first slot is
//! `start_time + interval` (or creation + interval), each next one `interval` later; a cron
//! schedule fires at the matches strictly after the last slot (or after creation, or
//! `start_time`), evaluated in the deployment's timezone (UTC by default); nothing fires after
//! `end_time`. With catch-up (the default) every missed slot runs, in order; with `no_catchup`
//! only the latest. `max_concurrency` delays a slot while that many runs are unfinished.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use weir_store::{RecurringRun, Run, RuntimeState, StateChange, StorageState, StoreError, Trigger};

use crate::error::ServiceError;
use crate::recurring_runs::{every_ms, parse_cron};
use crate::Context;

/// Slots one recurring run may fire in one tick (the rest follow on the next).
const SLOTS_PER_TICK: usize = 100;

/// The first slot strictly after `after` (0: none fired yet), or `None` when the schedule has
/// ended or cannot fire.
pub fn next_slot(recurring: &RecurringRun, after: i64, tz: Tz) -> Option<i64> {
    let (start, end) = match &recurring.trigger {
        Trigger::Cron { start_time, end_time, .. } | Trigger::Periodic { start_time, end_time, .. } => {
            (*start_time, *end_time)
        }
    };
    let next = match &recurring.trigger {
        Trigger::Periodic { interval_second, .. } => {
            // Stored rows predate the API's bound; clamp rather than overflow.
            periodic(after, start, recurring.created_at, interval_second.clamp(&1, &(i64::MAX / 1000)) * 1000)
        }
        Trigger::Cron { cron, .. } => match parse_cron(cron).ok()? {
            Some(pattern) => {
                let base = if after > 0 { after } else { recurring.created_at }.max(start.unwrap_or(0));
                let base = tz.timestamp_millis_opt(base).single()?;
                pattern.find_next_occurrence(&base, false).ok()?.with_timezone(&Utc).timestamp_millis()
            }
            // `@every <duration>`: a periodic schedule from creation (robfig's ConstantDelay).
            None => periodic(after, start, recurring.created_at, every_ms(cron.trim().strip_prefix("@every ")?)?),
        },
    };
    match end {
        Some(end) if next > end => None,
        _ => Some(next),
    }
}

fn periodic(after: i64, start: Option<i64>, created_at: i64, interval_ms: i64) -> i64 {
    let base = if after > 0 { after } else { start.unwrap_or(created_at) };
    match start {
        Some(start) if start > base => start,
        _ => base.saturating_add(interval_ms),
    }
}

/// The slots due at `now`, oldest first: all of them with catch-up, the latest without.
pub fn due_slots(recurring: &RecurringRun, now: i64, tz: Tz) -> Vec<i64> {
    let mut due = Vec::new();
    let mut after = recurring.last_slot_at;
    let mut latest = None;
    // Without catch-up only the latest slot matters, but finding it walks the missed ones;
    // a periodic schedule jumps straight there.
    if recurring.no_catchup {
        if let Trigger::Periodic { interval_second, end_time, .. } = &recurring.trigger {
            let Some(first) = next_slot(recurring, after, tz).filter(|s| *s <= now) else { return Vec::new() };
            let step = interval_second.clamp(&1, &(i64::MAX / 1000)) * 1000;
            let until = end_time.map_or(now, |end| end.min(now));
            return vec![first + (until - first).max(0) / step * step];
        }
    }
    for _ in 0..100_000 {
        match next_slot(recurring, after, tz) {
            Some(slot) if slot <= now => {
                if recurring.no_catchup {
                    latest = Some(slot);
                } else {
                    due.push(slot);
                    if due.len() >= SLOTS_PER_TICK {
                        break;
                    }
                }
                after = slot;
            }
            _ => break,
        }
    }
    if recurring.no_catchup {
        return latest.into_iter().collect();
    }
    due
}

/// The display name KFP gives a recurring run's runs: the schedule's sanitised name, the run's
/// index, and an FNV-1a hash of both.
pub fn run_name(recurring: &RecurringRun, index: i64) -> String {
    let mut base: String = recurring
        .display_name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(25)
        .collect();
    if base.is_empty() {
        base = "job".into();
    }
    let suffix: String = recurring.id.chars().filter(|c| c.is_ascii_alphanumeric()).take(5).collect();
    let name = format!("{base}-{suffix}-{index}");
    let mut hash: u32 = 0x811c_9dc5;
    for byte in name.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{name}-{hash}")
}

/// Fires recurring runs' slots over the services' context.
#[derive(Clone)]
pub struct Scheduler {
    ctx: Arc<Context>,
}

impl Scheduler {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }

    /// Builds the run of one slot: the pinned version or spec, or the pipeline's newest version
    /// when the recurring run names only the pipeline.
    async fn slot_run(&self, recurring: &RecurringRun, slot_at: i64, now: i64) -> Result<Run, ServiceError> {
        let (pipeline_version_id, pipeline_spec, platform_spec) = if !recurring.pipeline_id.is_empty()
            && recurring.pipeline_version_id.is_empty()
        {
            let latest = self.ctx.store.latest_pipeline_version(&recurring.pipeline_id).await?;
            (latest.id, latest.pipeline_spec, latest.platform_spec)
        } else {
            (recurring.pipeline_version_id.clone(), recurring.pipeline_spec.clone(), recurring.platform_spec.clone())
        };
        Ok(Run {
            id: uuid::Uuid::new_v4().to_string(),
            experiment_id: recurring.experiment_id.clone(),
            display_name: run_name(recurring, recurring.last_index + 1),
            description: recurring.description.clone(),
            namespace: recurring.namespace.clone(),
            storage_state: StorageState::Available,
            pipeline_id: if pipeline_version_id.is_empty() { String::new() } else { recurring.pipeline_id.clone() },
            pipeline_version_id,
            pipeline_spec,
            platform_spec,
            parameters: recurring.parameters.clone(),
            pipeline_root: recurring.pipeline_root.clone(),
            service_account: recurring.service_account.clone(),
            created_at: now,
            scheduled_at: slot_at,
            finished_at: 0,
            state: RuntimeState::Pending,
            error: None,
            recurring_run_id: recurring.id.clone(),
            state_history: vec![StateChange { update_time: now, state: RuntimeState::Pending, error: None }],
        })
    }

    /// Fires every due slot of every enabled recurring run once; returns the runs created.
    pub async fn tick(&self, tz: Tz) -> Result<Vec<Run>, StoreError> {
        let now = self.ctx.now();
        let mut created = Vec::new();
        for recurring in self.ctx.store.enabled_recurring_runs().await? {
            let mut cursor = recurring.clone();
            for slot in due_slots(&recurring, now, tz) {
                if self.ctx.store.active_runs_of(&recurring.id).await? >= recurring.max_concurrency.max(1) {
                    break;
                }
                let run = match self.slot_run(&cursor, slot, now).await {
                    Ok(run) => run,
                    Err(e) => {
                        tracing::warn!(recurring_run.id = %recurring.id, error = %e.message, "cannot create a scheduled run");
                        break;
                    }
                };
                match self.ctx.store.fire_slot(&cursor, slot, &run).await {
                    Ok(()) => {
                        tracing::info!(recurring_run.id = %recurring.id, run.id = %run.id, slot = slot, "scheduled run created");
                        cursor.last_slot_at = slot;
                        cursor.last_index += 1;
                        created.push(run);
                    }
                    // Another scheduler fired it, or the recurring run changed: look again
                    // next tick.
                    Err(StoreError::AlreadyExists(_) | StoreError::Aborted(_)) => break,
                    Err(e) => {
                        tracing::warn!(recurring_run.id = %recurring.id, error = %e, "cannot fire a slot");
                        break;
                    }
                }
            }
        }
        if !created.is_empty() {
            self.ctx.wake_engine();
        }
        Ok(created)
    }

    /// Runs the scheduler until `shutdown` resolves: a tick every second, or sooner when a
    /// recurring run is created or enabled.
    pub async fn run(self, tz: Tz, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.tick(tz).await {
                tracing::warn!(error = %e, "scheduler tick failed");
            }
            tokio::select! {
                _ = self.ctx.scheduler.notified() => {}
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                _ = &mut shutdown => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HOUR: i64 = 3_600_000;

    fn recurring(trigger: Trigger, created_at: i64) -> RecurringRun {
        RecurringRun {
            id: "abcdef12-0000".into(),
            display_name: "Nightly Train!".into(),
            description: String::new(),
            experiment_id: "e".into(),
            namespace: String::new(),
            pipeline_id: String::new(),
            pipeline_version_id: String::new(),
            pipeline_spec: json!({}),
            platform_spec: None,
            parameters: Default::default(),
            pipeline_root: String::new(),
            service_account: String::new(),
            max_concurrency: 1,
            trigger,
            enabled: true,
            no_catchup: false,
            created_at,
            updated_at: created_at,
            last_slot_at: 0,
            last_index: 0,
        }
    }

    #[test]
    fn periodic_slots_follow_kfp() {
        let r = recurring(Trigger::Periodic { interval_second: 60, start_time: None, end_time: None }, 1_000);
        assert_eq!(next_slot(&r, 0, Tz::UTC), Some(61_000), "creation + interval");
        assert_eq!(next_slot(&r, 61_000, Tz::UTC), Some(121_000));
        let r = recurring(
            Trigger::Periodic { interval_second: 60, start_time: Some(HOUR), end_time: Some(HOUR + 120_000) },
            1_000,
        );
        assert_eq!(next_slot(&r, 0, Tz::UTC), Some(HOUR + 60_000), "start + interval");
        assert_eq!(next_slot(&r, HOUR + 60_000, Tz::UTC), Some(HOUR + 120_000), "a slot at the end time still fires");
        assert_eq!(next_slot(&r, HOUR + 120_000, Tz::UTC), None);
    }

    #[test]
    fn cron_slots_in_the_deployment_timezone() {
        let r = recurring(Trigger::Cron { cron: "0 0 2 * * *".into(), start_time: None, end_time: None }, 0);
        assert_eq!(next_slot(&r, 0, Tz::UTC), Some(2 * HOUR));
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        // 02:00 in Tokyo is 17:00 UTC the day before.
        assert_eq!(next_slot(&r, 0, tokyo), Some(17 * HOUR));
        let five = recurring(Trigger::Cron { cron: "30 * * * *".into(), start_time: Some(HOUR), end_time: None }, 0);
        assert_eq!(next_slot(&five, 0, Tz::UTC), Some(HOUR + 30 * 60_000), "five fields: minute first, after start");
        let every = recurring(Trigger::Cron { cron: "@every 90s".into(), start_time: None, end_time: None }, 0);
        assert_eq!(next_slot(&every, 0, Tz::UTC), Some(90_000));
    }

    #[test]
    fn catch_up_and_no_catch_up() {
        let mut r = recurring(Trigger::Cron { cron: "0 * * * * *".into(), start_time: None, end_time: None }, 0);
        assert_eq!(due_slots(&r, 210_000, Tz::UTC), vec![60_000, 120_000, 180_000]);
        r.no_catchup = true;
        assert_eq!(due_slots(&r, 210_000, Tz::UTC), vec![180_000]);
        let mut p = recurring(Trigger::Periodic { interval_second: 10, start_time: None, end_time: None }, 0);
        p.no_catchup = true;
        assert_eq!(due_slots(&p, 95_000, Tz::UTC), vec![90_000]);
        p.no_catchup = false;
        assert_eq!(due_slots(&p, 35_000, Tz::UTC), vec![10_000, 20_000, 30_000]);
        assert!(due_slots(&p, 9_999, Tz::UTC).is_empty());
    }

    #[test]
    fn run_names_as_kfp() {
        let r = recurring(Trigger::Periodic { interval_second: 60, start_time: None, end_time: None }, 0);
        let name = run_name(&r, 3);
        assert!(name.starts_with("nightlytrain-abcde-3-"), "{name}");
        assert_eq!(name, run_name(&r, 3), "deterministic");
        assert_ne!(name, run_name(&r, 4));
    }
}
