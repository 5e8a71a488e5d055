//! Each table's row as bound to its statements: one function per table, giving the values of
//! the table's written columns in the order `schema.rs` defines them. The tests below check
//! each function against its definition, value by value.

use weir_store::{
    Artifact, ErrorInfo, Experiment, GcRecord, Lease, LedgerEntry, PendingDeletion, Pipeline, PipelineVersion,
    RecurringRun, RetentionPolicy, Run, RuntimeState, StepConfig, StorageIdentity, Task,
};

use crate::rows::{error_text, history_text, tags_text};
use crate::{json_text, Bind};

/// A row's binds for `Table::update_by_id_sql`: the columns after the id, then the id.
pub(crate) fn id_last(mut binds: Vec<Bind>) -> Vec<Bind> {
    binds.rotate_left(1);
    binds
}

pub(crate) fn identity_binds(identity: &StorageIdentity, initialising: bool) -> Vec<Bind> {
    vec![
        Bind::Text(identity.id.clone()),
        Bind::Int(identity.created_at),
        Bind::Bool(initialising),
        Bind::Text(identity.deployment.clone()),
    ]
}

pub(crate) fn pipeline_binds(p: &Pipeline) -> Vec<Bind> {
    vec![
        Bind::Text(p.id.clone()),
        Bind::Text(p.name.clone()),
        Bind::Text(p.display_name.clone()),
        Bind::Text(p.description.clone()),
        Bind::Text(p.namespace.clone()),
        Bind::Int(p.created_at),
        Bind::Text(tags_text(&p.tags)),
    ]
}

pub(crate) fn version_binds(v: &PipelineVersion) -> Vec<Bind> {
    vec![
        Bind::Text(v.id.clone()),
        Bind::Text(v.pipeline_id.clone()),
        Bind::Text(v.name.clone()),
        Bind::Text(v.display_name.clone()),
        Bind::Text(v.description.clone()),
        Bind::Int(v.created_at),
        Bind::Text(json_text(&v.pipeline_spec)),
        Bind::OptText(v.platform_spec.as_ref().map(json_text)),
        Bind::Text(v.package_key.clone()),
        Bind::Text(v.package_url.clone()),
        Bind::Text(v.code_source_url.clone()),
        Bind::Text(tags_text(&v.tags)),
    ]
}

pub(crate) fn experiment_binds(e: &Experiment) -> Vec<Bind> {
    vec![
        Bind::Text(e.id.clone()),
        Bind::Text(e.display_name.clone()),
        Bind::Text(e.description.clone()),
        Bind::Text(e.namespace.clone()),
        Bind::Int(e.created_at),
        Bind::Text(e.storage_state.as_str().into()),
        Bind::Int(e.last_run_created_at),
    ]
}

pub(crate) fn run_binds(run: &Run) -> Vec<Bind> {
    vec![
        Bind::Text(run.id.clone()),
        Bind::Text(run.experiment_id.clone()),
        Bind::Text(run.display_name.clone()),
        Bind::Text(run.description.clone()),
        Bind::Text(run.namespace.clone()),
        Bind::Text(run.storage_state.as_str().into()),
        Bind::Text(run.pipeline_id.clone()),
        Bind::Text(run.pipeline_version_id.clone()),
        Bind::Text(json_text(&run.pipeline_spec)),
        Bind::OptText(run.platform_spec.as_ref().map(json_text)),
        Bind::Text(serde_json::to_string(&run.parameters).unwrap_or_else(|_| "{}".into())),
        Bind::Text(run.pipeline_root.clone()),
        Bind::Text(run.service_account.clone()),
        Bind::Int(run.created_at),
        Bind::Int(run.scheduled_at),
        Bind::Int(run.finished_at),
        Bind::Text(run.state.as_str().into()),
        Bind::OptText(error_text(&run.error)),
        Bind::Text(run.recurring_run_id.clone()),
    ]
}

/// A run's state change, numbered `seq` in its history.
pub(crate) fn history_binds(
    run_id: &str,
    seq: i64,
    update_time: i64,
    state: RuntimeState,
    error: &Option<ErrorInfo>,
) -> Vec<Bind> {
    vec![
        Bind::Text(run_id.into()),
        Bind::Int(seq),
        Bind::Int(update_time),
        Bind::Text(state.as_str().into()),
        Bind::OptText(error_text(error)),
    ]
}

pub(crate) fn recurring_binds(r: &RecurringRun) -> Vec<Bind> {
    vec![
        Bind::Text(r.id.clone()),
        Bind::Text(r.display_name.clone()),
        Bind::Text(r.description.clone()),
        Bind::Text(r.experiment_id.clone()),
        Bind::Text(r.namespace.clone()),
        Bind::Text(r.pipeline_id.clone()),
        Bind::Text(r.pipeline_version_id.clone()),
        Bind::Text(json_text(&r.pipeline_spec)),
        Bind::OptText(r.platform_spec.as_ref().map(json_text)),
        Bind::Text(serde_json::to_string(&r.parameters).unwrap_or_else(|_| "{}".into())),
        Bind::Text(r.pipeline_root.clone()),
        Bind::Text(r.service_account.clone()),
        Bind::Int(r.max_concurrency),
        Bind::Text(serde_json::to_string(&r.trigger).unwrap_or_default()),
        Bind::Bool(r.enabled),
        Bind::Bool(r.no_catchup),
        Bind::Int(r.created_at),
        Bind::Int(r.updated_at),
        Bind::Int(r.last_slot_at),
        Bind::Int(r.last_index),
    ]
}

/// The slot `slot_at` of a recurring run, fired as `run`.
pub(crate) fn slot_binds(recurring_run_id: &str, slot_at: i64, run: &Run) -> Vec<Bind> {
    vec![Bind::Text(recurring_run_id.into()), Bind::Int(slot_at), Bind::Text(run.id.clone()), Bind::Int(run.created_at)]
}

pub(crate) fn task_binds(t: &Task) -> Vec<Bind> {
    vec![
        Bind::Text(t.id.clone()),
        Bind::Text(t.run_id.clone()),
        Bind::Text(t.parent_id.clone()),
        Bind::Text(t.name.clone()),
        Bind::Text(t.display_name.clone()),
        Bind::Text(t.kind.as_str().into()),
        Bind::OptInt(t.iteration_index),
        Bind::Text(t.state.as_str().into()),
        Bind::Int(t.attempts),
        Bind::Text(json_text(&t.inputs)),
        Bind::Text(json_text(&t.outputs)),
        Bind::Text(t.fingerprint.clone()),
        Bind::Text(t.pipeline_name.clone()),
        Bind::Bool(t.cached),
        Bind::Text(t.image.clone()),
        Bind::OptText(error_text(&t.error)),
        Bind::Int(t.created_at),
        Bind::Int(t.started_at),
        Bind::Int(t.finished_at),
        Bind::Int(t.retry_at),
        Bind::Int(t.pid),
        Bind::Text(history_text(&t.state_history)),
    ]
}

pub(crate) fn step_config_binds(c: &StepConfig) -> Vec<Bind> {
    vec![
        Bind::Text(c.kind.as_str().into()),
        Bind::Text(c.name.clone()),
        Bind::Text(serde_json::to_string(&c.data).unwrap_or_else(|_| "{}".into())),
        Bind::Int(c.created_at),
    ]
}

pub(crate) fn artifact_binds(a: &Artifact) -> Vec<Bind> {
    vec![
        Bind::Int(a.id),
        Bind::Text(a.run_id.clone()),
        Bind::Text(a.task_id.clone()),
        Bind::Text(a.name.clone()),
        Bind::Text(a.uri.clone()),
        Bind::Text(a.schema_title.clone()),
        Bind::Text(a.schema_version.clone()),
        Bind::Text(json_text(&a.metadata)),
        Bind::Int(a.created_at),
        Bind::Int(a.object_count),
    ]
}

pub(crate) fn lease_binds(lease: &Lease) -> Vec<Bind> {
    vec![
        Bind::Text(lease.id.clone()),
        Bind::Text(lease.deployment.clone()),
        Bind::Text(lease.host.clone()),
        Bind::Int(lease.pid),
        Bind::Text(lease.version.clone()),
        Bind::Int(lease.schema_version),
        Bind::Int(lease.started_at),
        Bind::Int(lease.heartbeat_at),
    ]
}

pub(crate) fn ledger_binds(e: &LedgerEntry) -> Vec<Bind> {
    vec![
        Bind::Text(e.source.clone()),
        Bind::Text(e.kind.clone()),
        Bind::Text(e.source_id.clone()),
        Bind::Text(e.source_sha256.clone()),
        Bind::Text(e.weir_id.clone()),
        Bind::Text(e.weir_sha256.clone()),
        Bind::Int(e.imported_at),
    ]
}

/// The engine lease's single row (id 1), held by `lease_id` since `taken_at`.
pub(crate) fn engine_lease_binds(lease_id: &str, taken_at: i64) -> Vec<Bind> {
    vec![Bind::Int(1), Bind::Text(lease_id.into()), Bind::Int(taken_at)]
}

/// A run newly taken by `owner`.
pub(crate) fn run_lease_binds(run_id: &str, owner: &str, taken_at: i64) -> Vec<Bind> {
    vec![Bind::Text(run_id.into()), Bind::Text(owner.into()), Bind::Int(taken_at), Bind::Int(0)]
}

/// A removal's history record.
pub(crate) fn gc_record_binds(r: &GcRecord) -> Vec<Bind> {
    vec![
        Bind::Text(r.id.clone()),
        Bind::Int(r.at),
        Bind::Text(r.kind.clone()),
        Bind::Text(r.target_id.clone()),
        Bind::Text(r.display_name.clone()),
        Bind::Text(r.policy.clone()),
        Bind::Text(json_text(&r.detail)),
        Bind::Int(r.objects),
        Bind::Int(r.bytes),
        Bind::Int(r.done_at),
    ]
}

/// A journal entry of object deletions still to do.
pub(crate) fn pending_binds(p: &PendingDeletion) -> Vec<Bind> {
    vec![
        Bind::Text(p.id.clone()),
        Bind::Text(p.history_id.clone()),
        Bind::Text(p.prefix.clone()),
        Bind::Int(p.created_at),
    ]
}

/// An experiment's own retention policies.
pub(crate) fn retention_binds(experiment_id: &str, policies: &[RetentionPolicy], updated_at: i64) -> Vec<Bind> {
    vec![Bind::Text(experiment_id.into()), Bind::Text(json_text(&policies)), Bind::Int(updated_at)]
}

/// When a run was archived. (Weir writes these rows with `INSERT … SELECT`; restores bind them.)
#[cfg(test)]
pub(crate) fn archived_binds(run_id: &str, archived_at: i64) -> Vec<Bind> {
    vec![Bind::Text(run_id.into()), Bind::Int(archived_at)]
}

#[cfg(test)]
mod tests {
    use weir_store::testsuite::{experiment, pipeline, recurring_run, run, task, version};
    use weir_store::{StepConfigKind, TaskKind};

    use super::*;
    use crate::schema::{self, Col, Table};

    /// The binds fill the table's written columns one for one, each with its column's kind.
    fn fits(table: &Table, binds: &[Bind]) {
        let columns: Vec<_> = table.data_columns().collect();
        assert_eq!(binds.len(), columns.len(), "{}: {} values for {} columns", table.name, binds.len(), columns.len());
        for (bind, column) in binds.iter().zip(columns) {
            let same_kind = matches!(
                (column.col, bind),
                (Col::Text, Bind::Text(_))
                    | (Col::OptText, Bind::OptText(_))
                    | (Col::Int, Bind::Int(_))
                    | (Col::OptInt, Bind::OptInt(_))
                    | (Col::Bool, Bind::Bool(_))
            );
            assert!(same_kind, "{}.{} is {:?} but is bound as {bind:?}", table.name, column.name, column.col);
        }
    }

    #[test]
    fn every_written_table_binds_in_its_definitions_order() {
        let identity = StorageIdentity { id: "s".into(), created_at: 1, deployment: "d".into() };
        let p = pipeline("p", 1);
        let e = experiment("e", 1);
        let r = run(&e.id, "r", 1);
        let lease = Lease {
            id: "l".into(),
            deployment: "d".into(),
            host: "h".into(),
            pid: 1,
            version: "v".into(),
            schema_version: 6,
            started_at: 1,
            heartbeat_at: 1,
        };
        let artifact = Artifact {
            id: 1,
            run_id: r.id.clone(),
            task_id: "t".into(),
            name: "a".into(),
            uri: "s3://b/k".into(),
            schema_title: "system.Artifact".into(),
            schema_version: "0.0.1".into(),
            metadata: serde_json::json!({}),
            created_at: 1,
            object_count: 1,
        };
        let written = [
            (&schema::STORAGE_IDENTITY, identity_binds(&identity, true)),
            (&schema::PIPELINES, pipeline_binds(&p)),
            (&schema::PIPELINE_VERSIONS, version_binds(&version(&p.id, "v", 1))),
            (&schema::EXPERIMENTS, experiment_binds(&e)),
            (&schema::RUNS, run_binds(&r)),
            (&schema::RUN_STATE_HISTORY, history_binds(&r.id, 1, 1, RuntimeState::Pending, &None)),
            (&schema::RECURRING_RUNS, recurring_binds(&recurring_run(&e.id, "rr", 1))),
            (&schema::RECURRING_RUN_SLOTS, slot_binds("rr", 1, &r)),
            (&schema::TASKS, task_binds(&task(&r.id, "t", TaskKind::Container, 1))),
            (&schema::ARTIFACTS, artifact_binds(&artifact)),
            (
                &schema::STEP_CONFIG,
                step_config_binds(&StepConfig {
                    kind: StepConfigKind::Secret,
                    name: "s".into(),
                    data: [("k".to_string(), "v".to_string())].into(),
                    created_at: 1,
                }),
            ),
            (
                &schema::IMPORT_LEDGER,
                ledger_binds(&LedgerEntry {
                    source: "s".into(),
                    kind: "run".into(),
                    source_id: "r".into(),
                    source_sha256: "a".into(),
                    weir_id: "r".into(),
                    weir_sha256: "b".into(),
                    imported_at: 1,
                }),
            ),
            (&schema::RUN_ARCHIVED, archived_binds("r", 1)),
            (&schema::RETENTION, retention_binds("e", &[], 1)),
            (
                &schema::GC_HISTORY,
                gc_record_binds(&GcRecord {
                    id: "h".into(),
                    at: 1,
                    kind: "run".into(),
                    target_id: "r".into(),
                    display_name: "r".into(),
                    policy: "api".into(),
                    detail: serde_json::json!({}),
                    objects: 0,
                    bytes: 0,
                    done_at: 0,
                }),
            ),
            (
                &schema::GC_PENDING,
                pending_binds(&PendingDeletion {
                    id: "p".into(),
                    history_id: "h".into(),
                    prefix: "logs/r/".into(),
                    created_at: 1,
                }),
            ),
            (&schema::SERVER_LEASES, lease_binds(&lease)),
            (&schema::ENGINE_LEASE, engine_lease_binds("l", 1)),
            (&schema::RUN_LEASES, run_lease_binds("r", "l", 1)),
        ];
        for (table, binds) in &written {
            fits(table, binds);
        }
        // `run_counts` is written by the migrations' triggers only.
        for table in schema::TABLES {
            let bound = written.iter().any(|(t, _)| t.name == table.name);
            assert_eq!(bound, table.name != "run_counts", "{} needs a binds function here", table.name);
        }
    }

    #[test]
    fn updates_bind_the_id_last() {
        let binds = id_last(engine_lease_binds("l", 2));
        assert_eq!(binds, [Bind::Text("l".into()), Bind::Int(2), Bind::Int(1)]);
    }
}
