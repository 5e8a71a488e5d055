//! Recurring runs: validation of triggers, creation, reads, enabling. Firing belongs to the
//! scheduler.

use std::sync::Arc;

use weir_api_model::{self as wire, ListParams};
use weir_store::{Entity, Page, RecurringRun, Trigger};

use crate::error::{Code, ServiceError, ServiceResult};
use crate::runs::{
    check_experiment, check_parameters, check_pipeline_root, check_platform, resolve_source, target_experiment,
};
use crate::{list_query, new_id, require, Context};

/// KFP bounds `max_concurrency` to 1..=10.
const MAX_CONCURRENCY: i64 = 10;

/// Checks a cron expression: six fields with seconds first (KFP's robfig/cron), or the
/// five-field form without seconds.
pub fn validate_cron(expression: &str) -> ServiceResult<()> {
    parse_cron(expression).map(|_| ())
}

/// Parses a cron expression as KFP reads it: six fields, seconds first; a five-field
/// expression is read as standard cron (minute first) at second 0; `@daily`-style descriptors
/// and `@every <duration>` are accepted too (`@every` gives no pattern: the scheduler fires it
/// as a periodic schedule).
pub fn parse_cron(expression: &str) -> ServiceResult<Option<croner::Cron>> {
    let fields = expression.split_whitespace().count();
    if expression.trim().starts_with('@') {
        let known = ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"];
        let equivalent = match expression.trim() {
            "@yearly" | "@annually" => "0 0 0 1 1 *",
            "@monthly" => "0 0 0 1 * *",
            "@weekly" => "0 0 0 * * 0",
            "@daily" | "@midnight" => "0 0 0 * * *",
            "@hourly" => "0 0 * * * *",
            _ => "",
        };
        if known.contains(&expression.trim()) {
            return parse_cron(equivalent);
        }
        if let Some(duration) = expression.trim().strip_prefix("@every ") {
            every_ms(duration).ok_or_else(|| {
                ServiceError::invalid(format!("invalid cron expression {expression:?}: bad duration"))
            })?;
            return Ok(None);
        }
        return Err(ServiceError::invalid(format!("invalid cron expression {expression:?}: unknown descriptor")));
    }
    if !(5..=6).contains(&fields) {
        return Err(ServiceError::invalid(format!(
            "invalid cron expression {expression:?}: expected 6 fields (second minute hour day-of-month month day-of-week) or 5 without seconds, got {fields}"
        )));
    }
    let pattern = if fields == 6 { expression.to_string() } else { format!("0 {expression}") };
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(&pattern)
        .map(Some)
        .map_err(|e| ServiceError::invalid(format!("invalid cron expression {expression:?}: {e}")))
}

/// The longest interval a schedule may have (100 years), so slot arithmetic in milliseconds
/// never overflows.
pub const MAX_INTERVAL_MS: i64 = 100 * 366 * 24 * 3_600_000;

/// `@every 1h30m` → milliseconds (Go duration units h, m, s).
pub fn every_ms(duration: &str) -> Option<i64> {
    let mut total = 0i64;
    let mut number = String::new();
    for c in duration.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3_600_000,
            'm' => 60_000,
            's' => 1_000,
            _ => return None,
        };
        // Checked: an absurd duration is refused, not wrapped into a wrong one.
        total = total.checked_add(number.parse::<i64>().ok()?.checked_mul(unit)?)?;
        number.clear();
    }
    (number.is_empty() && total > 0 && total <= MAX_INTERVAL_MS).then_some(total)
}

fn ms(t: &Option<chrono::DateTime<chrono::Utc>>) -> Option<i64> {
    t.map(|t| t.timestamp_millis())
}

fn trigger_from(request: &Option<wire::Trigger>) -> ServiceResult<Trigger> {
    let request = request.clone().unwrap_or_default();
    let check_window = |start: Option<i64>, end: Option<i64>| match (start, end) {
        (Some(s), Some(e)) if e <= s => {
            Err(ServiceError::invalid("the trigger's end_time must be after its start_time"))
        }
        _ => Ok(()),
    };
    match (request.cron_schedule, request.periodic_schedule) {
        (Some(_), Some(_)) => {
            Err(ServiceError::invalid("a trigger is either cron_schedule or periodic_schedule, not both"))
        }
        (None, None) => Err(ServiceError::invalid("a trigger is required: cron_schedule or periodic_schedule")),
        (Some(cron), None) => {
            validate_cron(&cron.cron)?;
            let (start_time, end_time) = (ms(&cron.start_time), ms(&cron.end_time));
            check_window(start_time, end_time)?;
            Ok(Trigger::Cron { cron: cron.cron.trim().to_string(), start_time, end_time })
        }
        (None, Some(periodic)) => {
            let interval_second = periodic.interval_second.unwrap_or(0);
            if !(1..=MAX_INTERVAL_MS / 1000).contains(&interval_second) {
                return Err(ServiceError::invalid(format!(
                    "periodic_schedule.interval_second must be between 1 and {} (100 years), got {interval_second}",
                    MAX_INTERVAL_MS / 1000
                )));
            }
            let (start_time, end_time) = (ms(&periodic.start_time), ms(&periodic.end_time));
            check_window(start_time, end_time)?;
            Ok(Trigger::Periodic { interval_second, start_time, end_time })
        }
    }
}

#[derive(Clone)]
pub struct RecurringRunService {
    ctx: Arc<Context>,
}

impl RecurringRunService {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }

    pub async fn create(&self, body: &wire::RecurringRun) -> ServiceResult<RecurringRun> {
        require(&body.display_name, "display_name")?;
        let max_concurrency = body.max_concurrency.unwrap_or(0);
        if !(1..=MAX_CONCURRENCY).contains(&max_concurrency) {
            return Err(ServiceError::invalid(format!(
                "max_concurrency must be between 1 and {MAX_CONCURRENCY}, got {max_concurrency}"
            )));
        }
        let trigger = trigger_from(&body.trigger)?;
        // A reference naming only the pipeline is not pinned: each run takes the newest version
        // when it fires (as in KFP). An unknown pipeline or version is bad input here.
        let unpinned = body
            .pipeline_version_reference
            .as_ref()
            .is_some_and(|r| !r.pipeline_id.is_empty() && r.pipeline_version_id.is_empty());
        let mut source =
            resolve_source(&self.ctx, &body.pipeline_spec, &body.pipeline_version_reference, &body.pipeline_version_id)
                .await
                .map_err(|e| if e.code == Code::NotFound { ServiceError::invalid(e.message) } else { e })?;
        if unpinned {
            source.pipeline_version_id = String::new();
        }
        let config = body.runtime_config.clone().unwrap_or_default();
        check_parameters(&source.pipeline_spec, &config.parameters)?;
        check_platform(&self.ctx, &source.platform_spec)?;
        check_pipeline_root(&self.ctx, &config.pipeline_root)?;
        let experiment_id = target_experiment(&self.ctx, &body.experiment_id).await?;
        let now = self.ctx.now();
        let recurring_run = RecurringRun {
            id: new_id(),
            display_name: body.display_name.clone(),
            description: body.description.clone(),
            experiment_id,
            namespace: String::new(),
            pipeline_id: source.pipeline_id,
            pipeline_version_id: source.pipeline_version_id,
            pipeline_spec: source.pipeline_spec,
            platform_spec: source.platform_spec,
            parameters: config.parameters,
            pipeline_root: config.pipeline_root,
            service_account: body.service_account.clone(),
            max_concurrency,
            trigger,
            // KFP: an unset mode is a disabled recurring run.
            enabled: body.mode == "ENABLE",
            no_catchup: body.no_catchup,
            created_at: now,
            updated_at: now,
            last_slot_at: 0,
            last_index: 0,
        };
        self.ctx.store.create_recurring_run(&recurring_run).await?;
        self.ctx.wake_scheduler();
        Ok(recurring_run)
    }

    pub async fn get(&self, id: &str) -> ServiceResult<RecurringRun> {
        Ok(self.ctx.store.get_recurring_run(id).await?)
    }

    /// Recurring runs, within the experiment `params.experiment_id` (which must exist) when
    /// given.
    pub async fn list(&self, params: &ListParams) -> ServiceResult<Page<RecurringRun>> {
        check_experiment(&self.ctx, &params.experiment_id).await?;
        let query = list_query(Entity::RecurringRun, params, &[("experiment_id", &params.experiment_id)])?;
        Ok(self.ctx.store.list_recurring_runs(&query).await?)
    }

    pub async fn delete(&self, id: &str) -> ServiceResult<()> {
        Ok(self.ctx.store.delete_recurring_run(id).await?)
    }

    /// Enables a recurring run and wakes the scheduler, so slots due meanwhile fire now.
    pub async fn enable(&self, id: &str) -> ServiceResult<()> {
        self.ctx.store.set_recurring_run_enabled(id, true, self.ctx.now()).await?;
        self.ctx.wake_scheduler();
        Ok(())
    }

    pub async fn disable(&self, id: &str) -> ServiceResult<()> {
        Ok(self.ctx.store.set_recurring_run_enabled(id, false, self.ctx.now()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_forms() {
        for ok in ["0 0 2 * * *", "*/5 * * * *", "0 30 9 * * MON-FRI", "@daily", "@every 1h"] {
            validate_cron(ok).unwrap_or_else(|e| panic!("{ok}: {}", e.message));
        }
        // Durations too long to count in milliseconds are refused, not wrapped.
        assert_eq!(every_ms("1h30m"), Some(5_400_000));
        assert_eq!(every_ms("3000000000000h"), None);
        assert_eq!(every_ms("9223372036854775807s"), None);
        for bad in ["", "* * *", "61 * * * * *", "0 0 25 * * *", "@sometimes", "a b c d e f", "@every 3000000000000h"] {
            assert!(validate_cron(bad).is_err(), "accepted {bad:?}");
        }
    }
}
