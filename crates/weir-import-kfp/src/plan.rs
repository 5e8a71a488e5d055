//! The dry run: every row read once, in id order, mapped, counted and checksummed.

use std::collections::{BTreeMap, BTreeSet};

use weir_artifacts::ArtifactStore;

use crate::apply::Applier;
use crate::map::{self, text};
use crate::report::{Report, SourceInfo, Tally, Warnings};
use crate::source::Source;
use crate::ImportError;

pub struct PlanOptions {
    /// KFP's `mlpipeline` database.
    pub database_url: String,
    /// KFP's bucket (its root: `s3://mlpipeline`), read for specs kept only as objects.
    pub objects: ArtifactStore,
    /// Import runs KFP may still be running (as canceled) instead of refusing.
    pub allow_inflight: bool,
    /// KFP's ML Metadata database (`metadb`), for the runs' steps, artifacts and logs.
    pub mlmd_url: Option<String>,
    /// KFP's cache database (`cachedb`): it serves v1 pipelines only, so it is counted, not
    /// imported.
    pub cache_url: Option<String>,
}

const PIPELINE_COLUMNS: &[&str] =
    &["UUID", "CreatedAtInSec", "Name", "DisplayName", "Description", "Status", "Namespace"];
const VERSION_COLUMNS: &[&str] = &[
    "UUID",
    "CreatedAtInSec",
    "Name",
    "DisplayName",
    "PipelineId",
    "Status",
    "CodeSourceUrl",
    "Description",
    "PipelineSpec",
    "PipelineSpecURI",
];
const EXPERIMENT_COLUMNS: &[&str] = &["UUID", "Name", "Description", "CreatedAtInSec", "Namespace", "StorageState"];
const RUN_COLUMNS: &[&str] = &[
    "UUID",
    "DisplayName",
    "Name",
    "Description",
    "Namespace",
    "ExperimentUUID",
    "JobUUID",
    "StorageState",
    "ServiceAccount",
    "PipelineId",
    "PipelineVersionId",
    "PipelineSpecManifest",
    "WorkflowSpecManifest",
    "Parameters",
    "RuntimeParameters",
    "PipelineRoot",
    "CreatedAtInSec",
    "ScheduledAtInSec",
    "FinishedAtInSec",
    "Conditions",
    "State",
    "StateHistory",
];
const JOB_COLUMNS: &[&str] = &[
    "UUID",
    "DisplayName",
    "Name",
    "Namespace",
    "ServiceAccount",
    "Description",
    "MaxConcurrency",
    "NoCatchup",
    "CreatedAtInSec",
    "UpdatedAtInSec",
    "Enabled",
    "ExperimentUUID",
    "CronScheduleStartTimeInSec",
    "CronScheduleEndTimeInSec",
    "Schedule",
    "PeriodicScheduleStartTimeInSec",
    "PeriodicScheduleEndTimeInSec",
    "IntervalSecond",
    "PipelineId",
    "PipelineVersionId",
    "PipelineSpecManifest",
    "WorkflowSpecManifest",
    "Parameters",
    "RuntimeParameters",
    "PipelineRoot",
];

/// Which of KFP's schema shapes the tables have, from marker tables and columns (KFP records
/// no version): newest first.
fn variant(source: &Source) -> Result<String, ImportError> {
    if !source.has_table("run_details") || !source.has_table("pipelines") {
        return Err(ImportError::Invalid(
            "the database has no KFP tables (pipelines, run_details): name KFP's mlpipeline database".into(),
        ));
    }
    let shape = if source.has_table("artifacts") || source.has_column("tasks", "TypeAttrs") {
        "mlmd-removal (KFP without ML Metadata)"
    } else if source.has_column("run_details", "ArchivedAtInSec") {
        "after 2.17 (run archiving times)"
    } else if source.has_table("pipeline_tags") {
        "2.17"
    } else if source.column("pipelines", "UUID").and_then(|c| c.max_length) == Some(64) {
        "2.15-2.16"
    } else if source.has_column("pipelines", "DisplayName") {
        "2.14"
    } else if source.column("run_details", "WorkflowSpecManifest").is_some_and(|c| c.nullable) {
        "2.5"
    } else if source.has_column("experiments", "LastRunCreatedAtInSec") {
        "2.4"
    } else if source.has_column("run_details", "State") {
        "2.0-2.3"
    } else {
        "1.x"
    };
    Ok(shape.to_string())
}

/// A spec's object key from `PipelineSpecURI`: a key, or a URL naming KFP's bucket.
fn uri_key(uri: &str) -> Option<String> {
    let uri = uri.trim();
    if uri.is_empty() {
        return None;
    }
    match uri.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map(|(_, key)| key.to_string()),
        None => Some(uri.trim_start_matches('/').to_string()),
    }
}

/// A run's or recurring run's experiment: its column, or on KFP 1.x rows its
/// `resource_references` row.
fn experiment_of(row: &crate::source::TextRow, id: &str, referenced: &BTreeMap<String, String>) -> String {
    Some(text(row, "ExperimentUUID"))
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .or_else(|| referenced.get(id).cloned())
        .unwrap_or_default()
}

/// A spec that is neither KFP's IR nor an Argo Workflow (or not YAML at all).
const UNREADABLE: (&str, &str) =
    ("SPEC_UNREADABLE", "its spec is neither KFP's IR nor an Argo Workflow: kept as text, not runnable");

/// Source rows read per page (and written per transaction by an apply).
pub(crate) const PAGE: usize = 500;

/// The dry run: reads KFP's storage and reports, writing nothing anywhere.
pub async fn plan(options: &PlanOptions) -> Result<Report, ImportError> {
    scan(options, None).await
}

/// Reads KFP's storage in one snapshot and, with a sink, hands each page of mapped rows to it.
pub(crate) async fn scan(options: &PlanOptions, sink: Option<&mut Applier<'_>>) -> Result<Report, ImportError> {
    let mut source = Source::open(&options.database_url).await?;
    let result = read(&mut source, options, sink).await;
    source.close().await;
    result
}

/// Reads one kind page by page in key order; `$each` maps a row (`continue` skips it).
macro_rules! pages {
    ($source:expr, $table:expr, $columns:expr, |$row:ident| $each:block) => {{
        let mut after: Option<String> = None;
        loop {
            let rows = $source.page($table, $columns, "UUID", after.as_deref(), PAGE).await?;
            let Some(last) = rows.last() else { break };
            after = Some(text(last, "UUID").to_string());
            let full = rows.len() == PAGE;
            let mut page = Vec::new();
            for $row in rows {
                page.push($each);
            }
            yield_page!(page);
            if !full {
                break;
            }
        }
    }};
}

async fn read(
    source: &mut Source,
    options: &PlanOptions,
    mut sink: Option<&mut Applier<'_>>,
) -> Result<Report, ImportError> {
    let variant = variant(source)?;
    let mut warnings = Warnings::default();
    let mut formats = map::Formats::default();
    let mut skipped: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut skip =
        |kind: &str, reason: &str| *skipped.entry(kind.into()).or_default().entry(reason.into()).or_default() += 1;
    let mut refused = Vec::new();
    let mut counts = BTreeMap::new();
    let mut checksums = BTreeMap::new();

    let mut default_experiment = None;
    source
        .for_each_row("default_experiments", &["DefaultExperimentId"], "DefaultExperimentId", |row| {
            default_experiment = Some(text(&row, "DefaultExperimentId").to_string()).filter(|id| !id.is_empty());
            Ok(())
        })
        .await?;

    // Parents named only in resource_references (rows from KFP 1.x): resource → experiment.
    let mut referenced_experiment: BTreeMap<String, String> = BTreeMap::new();
    source
        .for_each_row(
            "resource_references",
            &["ResourceUUID", "ResourceType", "ReferenceUUID", "ReferenceType"],
            "ResourceUUID",
            |row| {
                if text(&row, "ReferenceType") == "Experiment" {
                    referenced_experiment
                        .insert(text(&row, "ResourceUUID").to_string(), text(&row, "ReferenceUUID").to_string());
                }
                Ok(())
            },
        )
        .await?;

    // Pipelines: what KFP's API lists (READY) comes over.
    let mut tally = Tally::default();
    let mut pipelines = BTreeSet::new();
    let mut not_ready = Vec::new();
    macro_rules! yield_page {
        ($page:expr) => {
            if let Some(sink) = sink.as_deref_mut() {
                sink.pipelines($page.into_iter().flatten().collect()).await?;
            }
        };
    }
    pages!(source, "pipelines", PIPELINE_COLUMNS, |row| {
        let id = text(&row, "UUID").to_string();
        if !text(&row, "Status").eq_ignore_ascii_case("READY") && !text(&row, "Status").is_empty() {
            not_ready.push(("pipelines", id));
            continue;
        }
        let name = text(&row, "Name").to_string();
        let display_name = Some(text(&row, "DisplayName")).filter(|d| !d.is_empty()).unwrap_or(&name).to_string();
        let mapped = map::Pipeline {
            id: id.clone(),
            name,
            display_name,
            description: text(&row, "Description").to_string(),
            namespace: map::namespace(&row),
            created_at: map::seconds(&row, "CreatedAtInSec"),
        };
        let digest = tally.add(&id, &mapped.namespace, "READY", &mapped);
        pipelines.insert(id);
        Some((mapped, digest))
    });
    checksums.insert("pipelines".into(), tally.checksum());
    counts.insert("pipelines".into(), tally.counts);

    // Versions; their spec follows KFP's own chain (resource_manager.go,
    // fetchTemplateFromPipelineVersion): the column, the object at PipelineSpecURI, then the
    // objects pipelines/<version id> and pipelines/<pipeline id>.
    let mut tally = Tally::default();
    let mut versions = BTreeSet::new();
    macro_rules! yield_page {
        ($page:expr) => {
            if let Some(sink) = sink.as_deref_mut() {
                sink.versions($page.into_iter().flatten().collect()).await?;
            }
        };
    }
    pages!(source, "pipeline_versions", VERSION_COLUMNS, |row| {
        let id = text(&row, "UUID").to_string();
        let pipeline_id = text(&row, "PipelineId").to_string();
        if !text(&row, "Status").eq_ignore_ascii_case("READY") && !text(&row, "Status").is_empty() {
            not_ready.push(("pipeline versions", id));
            continue;
        }
        if !pipelines.contains(&pipeline_id) {
            warnings.add("ORPHAN_ROW", "its parent is gone (KFP keeps no foreign keys after a failed upgrade)", &id);
            skip("pipeline versions", "ORPHAN_ROW");
            continue;
        }
        let column = text(&row, "PipelineSpec");
        let (spec_source, spec) = if !column.trim().is_empty() {
            ("column", Some(column.to_string()))
        } else {
            let candidates = [
                ("uri", uri_key(text(&row, "PipelineSpecURI"))),
                ("version-key", Some(format!("pipelines/{id}"))),
                ("pipeline-key", Some(format!("pipelines/{pipeline_id}"))),
            ];
            let mut found = ("missing", None);
            for (label, key) in candidates {
                let Some(key) = key else { continue };
                match options.objects.get(&key).await {
                    Ok(bytes) => {
                        found = (label, Some(String::from_utf8_lossy(&bytes).into_owned()));
                        break;
                    }
                    Err(
                        weir_artifacts::ArtifactError::NotFound(_) | weir_artifacts::ArtifactError::InvalidKey { .. },
                    ) => {}
                    Err(e) => return Err(ImportError::Objects(format!("cannot read KFP's bucket ({key}): {e}"))),
                }
            }
            found
        };
        match spec_source {
            "column" => {}
            "missing" => warnings.add(
                "SPEC_MISSING",
                "no spec in the row or the bucket: imported without one (its runs keep their own)",
                &id,
            ),
            _ => warnings.add("SPEC_FROM_OBJECT_STORE", "the spec is only in the bucket (rows from KFP 1.x)", &id),
        }
        let format = spec.as_deref().map(map::spec_format).unwrap_or("none");
        if format == "argo" {
            warnings.add("V1_NOT_RUNNABLE", "a KFP v1 (Argo) pipeline: kept as history, weir runs IR only", &id);
        }
        if format == "unknown" {
            warnings.add(UNREADABLE.0, UNREADABLE.1, &id);
        }
        let name = text(&row, "Name").to_string();
        let display_name = Some(text(&row, "DisplayName")).filter(|d| !d.is_empty()).unwrap_or(&name).to_string();
        let mapped = map::Version {
            id: id.clone(),
            pipeline_id,
            name,
            display_name,
            description: text(&row, "Description").to_string(),
            code_source_url: text(&row, "CodeSourceUrl").to_string(),
            created_at: map::seconds(&row, "CreatedAtInSec"),
            spec_source,
            spec_sha256: spec.as_deref().map(map::sha256),
            format,
        };
        let digest = tally.add(&id, "", spec_source, &mapped);
        versions.insert(id);
        Some((mapped, spec, digest))
    });
    checksums.insert("pipeline versions".into(), tally.checksum());
    counts.insert("pipeline versions".into(), tally.counts);

    let mut tally = Tally::default();
    let mut experiments = BTreeSet::new();
    macro_rules! yield_page {
        ($page:expr) => {
            if let Some(sink) = sink.as_deref_mut() {
                sink.experiments($page).await?;
            }
        };
    }
    pages!(source, "experiments", EXPERIMENT_COLUMNS, |row| {
        let id = text(&row, "UUID").to_string();
        let mapped = map::Experiment {
            id: id.clone(),
            name: text(&row, "Name").to_string(),
            description: text(&row, "Description").to_string(),
            namespace: map::namespace(&row),
            created_at: map::seconds(&row, "CreatedAtInSec"),
            archived: map::archived(&row),
        };
        let state = if mapped.archived { "ARCHIVED" } else { "AVAILABLE" };
        let digest = tally.add(&id, &mapped.namespace, state, &mapped);
        experiments.insert(id);
        (mapped, digest)
    });
    checksums.insert("experiments".into(), tally.checksum());
    counts.insert("experiments".into(), tally.counts);

    let mut tally = Tally::default();
    let mut inflight = 0;
    macro_rules! yield_page {
        ($page:expr) => {
            if let Some(sink) = sink.as_deref_mut() {
                sink.runs($page).await?;
            }
        };
    }
    pages!(source, "run_details", RUN_COLUMNS, |row| {
        let id = text(&row, "UUID").to_string();
        let experiment_id = experiment_of(&row, &id, &referenced_experiment);
        if !experiment_id.is_empty() && !experiments.contains(&experiment_id) {
            warnings.add(
                "ORPHAN_ROW",
                "its parent is gone (KFP keeps no foreign keys after a failed upgrade): filed under Default",
                &id,
            );
        }
        let version = text(&row, "PipelineVersionId");
        if !version.is_empty() && !versions.contains(version) {
            warnings.add("DANGLING_VERSION_REF", "names a pipeline version that is gone; its own spec is kept", &id);
        }
        let spec = map::own_spec(&row);
        let (spec_sha256, format) = formats.of(spec);
        if format == "argo" {
            warnings.add("V1_NOT_RUNNABLE", "a KFP v1 (Argo) pipeline: kept as history, weir runs IR only", &id);
        }
        if format == "unknown" {
            warnings.add(UNREADABLE.0, UNREADABLE.1, &id);
        }
        let state = map::run_state(&row);
        if map::in_flight(state) {
            inflight += 1;
            warnings.add(
                "INFLIGHT_RUN",
                "KFP may still be running it (its Argo workflow): weir cannot adopt it (imported as canceled)",
                &id,
            );
        }
        let history = text(&row, "StateHistory");
        let mapped = map::Run {
            id: id.clone(),
            display_name: text(&row, "DisplayName").to_string(),
            description: text(&row, "Description").to_string(),
            namespace: map::namespace(&row),
            experiment_id: experiment_id.clone(),
            pipeline_id: text(&row, "PipelineId").to_string(),
            pipeline_version_id: version.to_string(),
            recurring_run_id: text(&row, "JobUUID").to_string(),
            spec_sha256,
            format,
            parameters: map::parameters(&row),
            pipeline_root: text(&row, "PipelineRoot").to_string(),
            service_account: text(&row, "ServiceAccount").to_string(),
            state,
            state_history: serde_json::from_str(history).unwrap_or(serde_json::Value::Null),
            created_at: map::seconds(&row, "CreatedAtInSec"),
            scheduled_at: map::seconds(&row, "ScheduledAtInSec"),
            finished_at: map::seconds(&row, "FinishedAtInSec"),
            archived: map::archived(&row),
            argo_name: text(&row, "Name").to_string(),
        };
        let digest = tally.add(&id, &mapped.namespace, state, &mapped);
        let experiment_known = experiments.contains(&experiment_id);
        let spec = spec.map(str::to_string);
        (mapped, spec, experiment_known, digest)
    });
    if inflight > 0 && !options.allow_inflight {
        refused.push(format!(
            "{inflight} run(s) may still be running under KFP (INFLIGHT_RUN): let them end or stop KFP's workflows, \
             or pass --allow-inflight to import them as canceled"
        ));
    }
    checksums.insert("runs".into(), tally.checksum());
    counts.insert("runs".into(), tally.counts);

    let mut tally = Tally::default();
    macro_rules! yield_page {
        ($page:expr) => {
            if let Some(sink) = sink.as_deref_mut() {
                sink.recurring_runs($page).await?;
            }
        };
    }
    pages!(source, "jobs", JOB_COLUMNS, |row| {
        let id = text(&row, "UUID").to_string();
        let spec = map::own_spec(&row);
        let (spec_sha256, format) = formats.of(spec);
        if spec.is_none() {
            warnings.add(
                "UNPINNED_SCHEDULE",
                "no spec of its own: each trigger runs the pipeline's latest version",
                &id,
            );
        }
        if format == "argo" {
            warnings.add("V1_NOT_RUNNABLE", "a KFP v1 (Argo) pipeline: kept as history, weir runs IR only", &id);
        }
        if format == "unknown" {
            warnings.add(UNREADABLE.0, UNREADABLE.1, &id);
        }
        let enabled = map::boolean(&row, "Enabled");
        if enabled {
            warnings.add(
                "SCHEDULE_WOULD_FIRE",
                "enabled in KFP: imported disabled unless --enable-schedules (both would trigger it)",
                &id,
            );
        }
        let cron = Some(text(&row, "Schedule").trim().to_string()).filter(|c| !c.is_empty());
        let interval = map::seconds(&row, "IntervalSecond");
        let (start, end) = if cron.is_some() {
            (map::seconds(&row, "CronScheduleStartTimeInSec"), map::seconds(&row, "CronScheduleEndTimeInSec"))
        } else {
            (map::seconds(&row, "PeriodicScheduleStartTimeInSec"), map::seconds(&row, "PeriodicScheduleEndTimeInSec"))
        };
        let experiment_id = experiment_of(&row, &id, &referenced_experiment);
        let mapped = map::RecurringRun {
            id: id.clone(),
            display_name: text(&row, "DisplayName").to_string(),
            description: text(&row, "Description").to_string(),
            namespace: map::namespace(&row),
            experiment_known: experiments.contains(&experiment_id),
            experiment_id,
            pipeline_id: text(&row, "PipelineId").to_string(),
            pipeline_version_id: text(&row, "PipelineVersionId").to_string(),
            spec_sha256,
            format,
            cron_dialect: cron.as_ref().map(|_| "robfig-v1"),
            cron,
            interval_seconds: interval,
            start,
            end,
            max_concurrency: text(&row, "MaxConcurrency").trim().parse().unwrap_or(1),
            no_catchup: map::boolean(&row, "NoCatchup"),
            enabled_in_kfp: enabled,
            parameters: map::parameters(&row),
            pipeline_root: text(&row, "PipelineRoot").to_string(),
            service_account: text(&row, "ServiceAccount").to_string(),
            created_at: map::seconds(&row, "CreatedAtInSec"),
            updated_at: map::seconds(&row, "UpdatedAtInSec"),
        };
        let digest = tally.add(&id, &mapped.namespace, if enabled { "ENABLED" } else { "DISABLED" }, &mapped);
        let spec = spec.map(str::to_string);
        (mapped, spec, digest)
    });
    checksums.insert("recurring runs".into(), tally.checksum());
    counts.insert("recurring runs".into(), tally.counts);

    for (kind, id) in not_ready {
        warnings.add("STATUS_NOT_READY", "being created or deleted in KFP (its API hides it): not imported", &id);
        skip(kind, "STATUS_NOT_READY");
    }
    if let Some(url) = &options.cache_url {
        let mut cache = Source::open(url).await?;
        let table = cache.tables.keys().find(|t| t.eq_ignore_ascii_case("execution_caches")).cloned();
        let count = match table {
            Some(table) => {
                let sql = match cache.dialect {
                    crate::source::Dialect::Mysql => format!("SELECT CAST(COUNT(*) AS CHAR) FROM `{table}`"),
                    crate::source::Dialect::Postgres => format!("SELECT COUNT(*)::text FROM \"{table}\""),
                };
                cache.query(&sql, &[], 1).await
            }
            None => Ok(Vec::new()),
        };
        cache.close().await;
        let count: u64 = count?.first().and_then(|r| r[0].as_deref()).and_then(|v| v.parse().ok()).unwrap_or(0);
        if count > 0 {
            warnings.0.insert(
                "V1_CACHE_NOT_IMPORTED".into(),
                crate::Warning {
                    count,
                    meaning: "cachedb's entries cache KFP v1 (Argo) steps, which weir does not run: not imported"
                        .into(),
                    samples: Vec::new(),
                },
            );
        }
    }
    let mut mlmd = None;
    if let Some(url) = &options.mlmd_url {
        let mut metadata = crate::mlmd::Mlmd::open(url).await?;
        let totals = metadata.totals().await;
        let schema = metadata.schema_version;
        metadata.close().await;
        let (executions, artifacts) = totals?;
        for (kind, total) in [("ml metadata executions", executions), ("ml metadata artifacts", artifacts)] {
            counts.insert(kind.into(), crate::report::Counts { total, ..Default::default() });
        }
        mlmd = Some(format!(
            "{} (ML Metadata schema {})",
            crate::source::redact(url),
            schema.map(|v| v.to_string()).unwrap_or_else(|| "unknown".into())
        ));
    }
    if variant.starts_with("mlmd-removal") {
        refused.push(format!("KFP's {variant} tables are not read yet"));
    }
    let applied = match sink {
        Some(sink) => Some(sink.finish().await?),
        None => None,
    };
    Ok(Report {
        source: SourceInfo {
            dialect: source.dialect,
            server_version: source.server_version.clone(),
            variant,
            snapshot: source.snapshot.to_string(),
            objects: options.objects.url().to_string(),
            default_experiment,
            mlmd,
        },
        counts,
        skipped,
        warnings: warnings.0,
        checksums,
        refused,
        applied,
    })
}
