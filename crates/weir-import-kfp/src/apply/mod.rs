//! `--apply`: the plan's mapped rows written into weir's stores, page by page, each page in
//! one transaction with its ledger rows.
//!
//! The ledger (weir's `import_ledger` table) records, per source row, the digest of what it
//! mapped to and the digest of what weir wrote. A re-run skips rows whose digest is unchanged,
//! replaces weir's copy of a changed row when weir's copy is still what the import wrote, and
//! reports a conflict when it is not (changed or deleted in weir since): the user's change
//! wins. A run stopped part-way resumes, since a page is in weir and in the ledger together
//! or not at all.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use serde::Serialize;
use serde_json::{json, Map, Value};
use weir_artifacts::ArtifactStore;
use weir_store::{
    ErrorInfo, Experiment, ImportBatch, LedgerEntry, MetadataStore, Pipeline, PipelineVersion, RecurringRun, Run,
    RuntimeState, StateChange, StorageState, StoreError, Trigger,
};

use crate::map;
use crate::mlmd::Mlmd;
use crate::plan::{scan, PlanOptions};
use crate::report::{Report, Warnings};
use crate::ImportError;

mod entity;
mod steps;

use entity::{Entity, Pending, RunWithSteps, Write};

/// Weir's stores, which an apply writes.
pub struct Target<'a> {
    pub store: &'a dyn MetadataStore,
    pub artifacts: &'a ArtifactStore,
    /// Import recurring runs enabled where KFP had them enabled (otherwise all disabled).
    pub enable_schedules: bool,
    pub now_ms: i64,
    /// Called after each page with the kind and the rows done so far (a progress bar).
    pub progress: &'a (dyn Fn(&str, u64) + Send + Sync),
    /// Copy the objects of imported artifacts into weir's store (otherwise they are referenced
    /// where KFP wrote them).
    pub copy_artifacts: bool,
    /// Write at most this many source rows, then stop: a run again continues (an import in
    /// parts, or within a maintenance window).
    pub max_rows: Option<u64>,
}

/// What an apply did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Applied {
    /// Which installation the ledger knows the source as: a digest of its database's and its
    /// bucket's addresses, without credentials.
    pub source_id: String,
    /// Kind → rows written anew, replaced, already imported and unchanged.
    pub kinds: BTreeMap<String, KindApplied>,
    /// Rows not written, by code, with sample ids.
    pub conflicts: BTreeMap<String, crate::Warning>,
    /// Kind → rows imported by an earlier run that KFP no longer has (weir keeps them).
    pub gone_from_source: BTreeMap<String, u64>,
    /// What was imported with less than KFP had (a step's log not found), by code.
    pub notes: BTreeMap<String, crate::Warning>,
    /// Rows left for a next run (after `max_rows`): run the import again to continue.
    pub deferred: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct KindApplied {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
}

impl Applied {
    pub fn text(&self) -> String {
        let mut out = format!("applied (source {}):\n", &self.source_id[..12.min(self.source_id.len())]);
        for (kind, k) in &self.kinds {
            out.push_str(&format!("  {kind}: {} new, {} updated, {} unchanged\n", k.inserted, k.updated, k.unchanged));
        }
        for (code, w) in &self.conflicts {
            out.push_str(&format!("  conflict {code}: {} ({}), e.g. {}\n", w.count, w.meaning, w.samples.join(", ")));
        }
        for (code, w) in &self.notes {
            out.push_str(&format!("  {code}: {} ({}), e.g. {}\n", w.count, w.meaning, w.samples.join(", ")));
        }
        if self.deferred > 0 {
            out.push_str(&format!(
                "  {} rows left for a next run (--max-rows): run the import again to continue\n",
                self.deferred
            ));
        }
        for (kind, n) in &self.gone_from_source {
            out.push_str(&format!("  {n} {kind} imported earlier are gone from KFP (kept in weir)\n"));
        }
        out
    }
}

/// Imports: reads KFP's storage again in one snapshot (the caller has shown the plan) and
/// writes it. Runs KFP may still be running are left out unless `allow_inflight`.
pub async fn apply(options: &PlanOptions, target: &Target<'_>) -> Result<Report, ImportError> {
    let mlmd = match &options.mlmd_url {
        Some(url) => Some(Mlmd::open(url).await?),
        None => None,
    };
    let source = source_id(&options.database_url, options.objects.url());
    let mut applier = Applier::new(target, source, options.objects.clone(), mlmd);
    applier.allow_inflight = options.allow_inflight;
    let report = scan(options, Some(&mut applier)).await;
    if let Some(mlmd) = applier.mlmd.take() {
        mlmd.close().await;
    }
    report
}

/// The source's ledger key: its database's address (no user or password) and its bucket.
pub fn source_id(database_url: &str, objects_url: &str) -> String {
    let address = database_url.split_once("://").map(|(_, rest)| rest).unwrap_or(database_url);
    let address = address.rsplit_once('@').map(|(_, host)| host).unwrap_or(address);
    let address = address.split('?').next().unwrap_or(address);
    map::sha256(&format!("{address}\n{objects_url}"))
}

fn ms(seconds: Option<i64>) -> i64 {
    seconds.map(|s| s * 1000).unwrap_or(0)
}

fn store_err(e: StoreError) -> ImportError {
    ImportError::Target(e.to_string())
}

/// A spec's text as weir keeps it: the IR (and platform spec) of a package, else whatever
/// the text parses to (an Argo Workflow), else the text.
fn spec_value(spec: Option<&str>) -> (Value, Option<Value>) {
    let Some(text) = spec.filter(|t| !t.trim().is_empty()) else {
        return (json!({}), None);
    };
    if let Ok(package) = weir_spec::read_package("pipeline.yaml", text.as_bytes()) {
        return (package.pipeline_spec, package.platform_spec);
    }
    let first = serde_norway::Deserializer::from_str(text)
        .next()
        .and_then(|doc| <Value as serde::Deserialize>::deserialize(doc).ok());
    (first.unwrap_or_else(|| Value::String(text.to_string())), None)
}

fn parameters(value: &Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    }
}

/// A run's state history from KFP's `StateHistory` (`[{UpdateTimeInSec, State, Error}]`).
fn history(value: &Value) -> Vec<StateChange> {
    let Some(items) = value.as_array() else { return Vec::new() };
    items
        .iter()
        .filter_map(|item| {
            let word = item.get("State").or_else(|| item.get("state"))?.as_str()?;
            let state = RuntimeState::parse(map::state_word(word))?;
            let seconds = item.get("UpdateTimeInSec").or_else(|| item.get("update_time_in_sec"))?;
            let seconds = seconds.as_i64().or_else(|| seconds.as_str()?.parse().ok())?;
            let error = item.get("Error").filter(|e| !e.is_null()).map(|e| ErrorInfo {
                code: e.get("Code").or_else(|| e.get("code")).and_then(Value::as_i64).unwrap_or(2) as i32,
                message: e
                    .get("Message")
                    .or_else(|| e.get("message"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| e.to_string()),
            });
            Some(StateChange { update_time: seconds * 1000, state, error })
        })
        .collect()
}

/// One mapped source row on its way to weir.
struct Item<T> {
    source_id: String,
    source_sha256: String,
    entity: T,
    /// Filed under weir's `Default` experiment, resolved only once the row is to be written
    /// (making `Default` early would put it before KFP's own, which the import adopts).
    to_default: bool,
}

/// Distinct specs kept parsed: enough for the versions a page of runs uses.
const SPEC_CACHE: usize = 64;

/// The ledger's kind for artifacts; its `weir_id` is `<owning run>:<weir artifact id>`.
const ARTIFACT: &str = "artifact";

pub(crate) struct Applier<'a> {
    target: &'a Target<'a>,
    source: String,
    applied: Applied,
    conflicts: Warnings,
    /// Source rows of this scan that have a ledger row, per kind (to count the gone ones).
    ledgered: HashMap<&'static str, u64>,
    done: HashMap<&'static str, u64>,
    /// Experiments merged into weir's own of the same name: source id → weir id.
    experiment_ids: HashMap<String, String>,
    /// Experiments weir does not have (deleted there, or refused): their runs go to Default.
    missing_experiments: HashSet<String>,
    /// Pipelines not imported: their versions are not either.
    missing_pipelines: HashSet<String>,
    default_experiment: Option<String>,
    allow_inflight: bool,
    /// Source rows written (toward `max_rows`).
    written: u64,
    /// A folder objects pass through when copied (made on first use, removed with the applier).
    scratch: Option<tempfile::TempDir>,
    /// Parsed specs by their text's SHA-256 (at most `SPEC_CACHE`).
    specs: HashMap<String, (Value, Option<Value>)>,
    /// KFP's ML Metadata, when it can be read: the runs' steps.
    mlmd: Option<Mlmd>,
    /// KFP's bucket: the steps' logs.
    objects: ArtifactStore,
    notes: Warnings,
}

impl<'a> Applier<'a> {
    pub(crate) fn new(target: &'a Target<'a>, source: String, objects: ArtifactStore, mlmd: Option<Mlmd>) -> Self {
        Self {
            target,
            applied: Applied { source_id: source.clone(), ..Default::default() },
            source,
            conflicts: Warnings::default(),
            ledgered: HashMap::new(),
            done: HashMap::new(),
            experiment_ids: HashMap::new(),
            missing_experiments: HashSet::new(),
            missing_pipelines: HashSet::new(),
            default_experiment: None,
            allow_inflight: false,
            written: 0,
            specs: HashMap::new(),
            scratch: None,
            mlmd,
            objects,
            notes: Warnings::default(),
        }
    }

    fn conflict(&mut self, code: &str, meaning: &str, id: &str) {
        self.conflicts.add(code, meaning, id);
    }

    fn kind(&mut self, kind: &str) -> &mut KindApplied {
        self.applied.kinds.entry(kind.to_string()).or_default()
    }

    fn ledger_entry(&self, kind: &str, item: &Item<impl Entity>, weir_id: &str) -> LedgerEntry {
        LedgerEntry {
            source: self.source.clone(),
            kind: kind.to_string(),
            source_id: item.source_id.clone(),
            source_sha256: item.source_sha256.clone(),
            weir_id: weir_id.to_string(),
            weir_sha256: item.entity.weir_digest(),
            imported_at: self.target.now_ms,
        }
    }

    async fn ledger(
        &self,
        kind: &str,
        items: &[Item<impl Entity>],
    ) -> Result<HashMap<String, LedgerEntry>, ImportError> {
        let ids: Vec<String> = items.iter().map(|i| i.source_id.clone()).collect();
        let entries = self.target.store.ledger_entries(&self.source, kind, &ids).await.map_err(store_err)?;
        Ok(entries.into_iter().map(|e| (e.source_id.clone(), e)).collect())
    }

    /// Writes one page: new rows inserted, changed rows replaced where weir's copy is as
    /// imported. Returns the source ids weir does not have afterwards.
    async fn write<T: Entity>(&mut self, items: Vec<Item<T>>) -> Result<HashSet<String>, ImportError> {
        let kind = T::KIND;
        let ledger = self.ledger(kind, &items).await?;
        let mut pending: Vec<Pending<T>> = Vec::new();
        let mut absent = HashSet::new();
        let count = items.len() as u64;
        for mut item in items {
            let Some(entry) = ledger.get(&item.source_id) else {
                pending.push((item, false));
                continue;
            };
            *self.ledgered.entry(kind).or_default() += 1;
            if entry.source_sha256 == item.source_sha256 || entry.weir_id != item.source_id {
                // Unchanged, or merged into an entity weir had (which the import never rewrites).
                self.kind(kind).unchanged += 1;
                continue;
            }
            match T::current(self.target.store, &item.entity).await {
                Err(StoreError::NotFound(_)) => {
                    self.conflict(
                        "DELETED_IN_WEIR",
                        "changed in KFP since imported, but deleted in weir since: not imported again",
                        &item.source_id,
                    );
                    absent.insert(item.source_id);
                }
                Err(e) => return Err(store_err(e)),
                Ok(current) if current.weir_digest() != entry.weir_sha256 => self.conflict(
                    "CHANGED_IN_WEIR",
                    "changed in KFP and in weir since imported: weir's copy kept",
                    &item.source_id,
                ),
                Ok(current) => {
                    item.entity.keep_weir_fields(&current);
                    pending.push((item, true));
                }
            }
        }
        if let Some(max) = self.target.max_rows {
            let room = max.saturating_sub(self.written) as usize;
            if pending.len() > room {
                self.applied.deferred += (pending.len() - room) as u64;
                pending.truncate(room);
            }
            self.written += pending.len() as u64;
        }
        for (item, _) in pending.iter_mut().filter(|(item, _)| item.to_default) {
            let default = self.default_experiment().await?;
            item.entity.set_experiment(&default);
        }
        T::enrich(self, &mut pending).await?;
        // The ledger records weir's copy as written: after everything above filled it in.
        let writes: Vec<Write<T>> = pending
            .into_iter()
            .map(|(item, replace)| {
                let entry = self.ledger_entry(kind, &item, item.entity.id());
                (item, replace, entry)
            })
            .collect();
        for source_id in self.commit(writes).await? {
            absent.insert(source_id);
        }
        let done = self.done.entry(kind).or_default();
        *done += count;
        (self.target.progress)(kind, *done);
        Ok(absent)
    }

    /// Writes rows in one transaction; when weir refuses it (a name or id taken), row by row,
    /// reporting those it refuses. Returns the source ids refused.
    async fn commit<T: Entity>(
        &mut self,
        writes: Vec<(Item<T>, bool, LedgerEntry)>,
    ) -> Result<Vec<String>, ImportError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let batch = |writes: &[(Item<T>, bool, LedgerEntry)]| {
            let mut batch = ImportBatch::default();
            for (item, replace, entry) in writes {
                item.entity.clone().push(*replace, &mut batch);
                batch.ledger.push(entry.clone());
            }
            batch
        };
        let kind = T::KIND;
        let refusable = |e: &StoreError| matches!(e, StoreError::AlreadyExists(_) | StoreError::InvalidArgument(_));
        match self.target.store.apply_import(&batch(&writes)).await {
            Ok(()) => {
                for (_, replace, _) in &writes {
                    self.count_write(kind, *replace);
                }
                return Ok(Vec::new());
            }
            Err(e) if refusable(&e) => {}
            Err(e) => return Err(store_err(e)),
        }
        let mut refused = Vec::new();
        for write in writes {
            match self.target.store.apply_import(&batch(std::slice::from_ref(&write))).await {
                Ok(()) => self.count_write(kind, write.1),
                Err(e) if refusable(&e) => {
                    tracing::info!(kind, id = %write.0.source_id, error = %e, "weir refused an imported row");
                    self.conflict(
                        "TAKEN_IN_WEIR",
                        "weir already has one of that name (or id): not imported",
                        &write.0.source_id,
                    );
                    refused.push(write.0.source_id);
                }
                Err(e) => return Err(store_err(e)),
            }
        }
        Ok(refused)
    }

    fn count_write(&mut self, kind: &str, replace: bool) {
        if replace {
            self.kind(kind).updated += 1;
        } else {
            self.kind(kind).inserted += 1;
        }
    }

    pub(crate) async fn pipelines(&mut self, page: Vec<(map::Pipeline, String)>) -> Result<(), ImportError> {
        let items = page
            .into_iter()
            .map(|(p, digest)| Item {
                source_id: p.id.clone(),
                source_sha256: digest,
                to_default: false,
                entity: Pipeline {
                    id: p.id,
                    name: p.name,
                    display_name: p.display_name,
                    description: p.description,
                    namespace: p.namespace,
                    created_at: ms(p.created_at),
                    tags: BTreeMap::new(),
                },
            })
            .collect();
        let absent = self.write(items).await?;
        self.missing_pipelines.extend(absent);
        Ok(())
    }

    pub(crate) async fn versions(
        &mut self,
        page: Vec<(map::Version, Option<String>, String)>,
    ) -> Result<(), ImportError> {
        let mut items = Vec::new();
        for (v, spec, digest) in page {
            if self.missing_pipelines.contains(&v.pipeline_id) {
                self.conflict("PARENT_NOT_IMPORTED", "its pipeline was not imported", &v.id);
                continue;
            }
            // The package object first: a page that then fails leaves an object no row names
            // (rewritten by the next run), never a row without its object.
            let package_key = weir_artifacts::package_key(&v.pipeline_id, &v.id, "pipeline.yaml");
            let text = spec.clone().unwrap_or_else(|| {
                "# KFP held no spec for this pipeline version (imported by weir import kfp)\n".to_string()
            });
            self.target.artifacts.put(&package_key, Bytes::from(text)).await.map_err(|e| {
                ImportError::Target(format!("cannot write {package_key} to weir's artifact store: {e}"))
            })?;
            let (pipeline_spec, platform_spec) = spec_value(spec.as_deref());
            items.push(Item {
                source_id: v.id.clone(),
                source_sha256: digest,
                to_default: false,
                entity: PipelineVersion {
                    id: v.id,
                    pipeline_id: v.pipeline_id,
                    name: v.name,
                    display_name: v.display_name,
                    description: v.description,
                    created_at: ms(v.created_at),
                    pipeline_spec,
                    platform_spec,
                    package_key,
                    package_url: String::new(),
                    code_source_url: v.code_source_url,
                    tags: BTreeMap::new(),
                },
            });
        }
        self.write(items).await?;
        Ok(())
    }

    pub(crate) async fn experiments(&mut self, page: Vec<(map::Experiment, String)>) -> Result<(), ImportError> {
        let mut items = Vec::new();
        for (e, digest) in page {
            items.push(Item {
                source_id: e.id.clone(),
                source_sha256: digest,
                to_default: false,
                entity: Experiment {
                    id: e.id,
                    display_name: e.name,
                    description: e.description,
                    namespace: e.namespace,
                    created_at: ms(e.created_at),
                    storage_state: if e.archived { StorageState::Archived } else { StorageState::Available },
                    last_run_created_at: 0,
                },
            });
        }
        // An experiment named as one weir has (its own Default, above all) is merged into it:
        // the ledger maps the source id to weir's, and its runs are filed there.
        let ledger = self.ledger(Experiment::KIND, &items).await?;
        let mut fresh = Vec::new();
        let mut merged = Vec::new();
        for item in items {
            if let Some(entry) = ledger.get(&item.source_id) {
                if entry.weir_id != item.source_id {
                    self.experiment_ids.insert(item.source_id.clone(), entry.weir_id.clone());
                }
                fresh.push(item);
                continue;
            }
            match self.target.store.get_experiment_by_name(&item.entity.namespace, &item.entity.display_name).await {
                Ok(existing) if existing.id != item.source_id => {
                    self.experiment_ids.insert(item.source_id.clone(), existing.id.clone());
                    merged.push(self.ledger_entry(Experiment::KIND, &item, &existing.id));
                }
                Ok(_) | Err(StoreError::NotFound(_)) => fresh.push(item),
                Err(e) => return Err(store_err(e)),
            }
        }
        if !merged.is_empty() {
            let n = merged.len() as u64;
            let batch = ImportBatch { ledger: merged, ..Default::default() };
            self.target.store.apply_import(&batch).await.map_err(store_err)?;
            self.kind(Experiment::KIND).inserted += n;
        }
        let absent = self.write(fresh).await?;
        self.missing_experiments.extend(absent);
        Ok(())
    }

    /// Where runs without an experiment (or whose experiment is gone) are filed: weir's
    /// `Default` experiment, made as weir's API makes it when there is none.
    async fn default_experiment(&mut self) -> Result<String, ImportError> {
        if let Some(id) = &self.default_experiment {
            return Ok(id.clone());
        }
        let store = self.target.store;
        let id = match store.get_experiment_by_name("", "Default").await {
            Ok(e) => e.id,
            Err(StoreError::NotFound(_)) => {
                let experiment = Experiment {
                    id: uuid::Uuid::new_v4().to_string(),
                    display_name: "Default".into(),
                    description: "All runs created without specifying an experiment are grouped here.".into(),
                    namespace: String::new(),
                    created_at: self.target.now_ms,
                    storage_state: StorageState::Available,
                    last_run_created_at: 0,
                };
                match store.create_experiment(&experiment).await {
                    Ok(()) => experiment.id,
                    Err(StoreError::AlreadyExists(_)) => {
                        store.get_experiment_by_name("", "Default").await.map_err(store_err)?.id
                    }
                    Err(e) => return Err(store_err(e)),
                }
            }
            Err(e) => return Err(store_err(e)),
        };
        self.default_experiment = Some(id.clone());
        Ok(id)
    }

    /// The folder objects pass through when copied.
    fn scratch(&mut self) -> Result<std::path::PathBuf, ImportError> {
        if self.scratch.is_none() {
            let dir = tempfile::tempdir()
                .map_err(|e| ImportError::Target(format!("cannot make a scratch folder for copies: {e}")))?;
            self.scratch = Some(dir);
        }
        Ok(self.scratch.as_ref().map(|d| d.path().to_path_buf()).unwrap_or_default())
    }

    /// A run's spec, parsed once per distinct spec: the runs of one pipeline version share
    /// their spec text, and parsing it is most of an import's work.
    fn parsed_spec(&mut self, sha256: Option<&str>, spec: Option<&str>) -> (Value, Option<Value>) {
        let Some(sha256) = sha256 else { return spec_value(spec) };
        if let Some(parsed) = self.specs.get(sha256) {
            return parsed.clone();
        }
        if self.specs.len() >= SPEC_CACHE {
            self.specs.clear();
        }
        let parsed = spec_value(spec);
        self.specs.insert(sha256.to_string(), parsed.clone());
        parsed
    }

    /// The weir experiment a source row's experiment became; None for weir's `Default`.
    fn experiment_for(&self, source_id: &str, known: bool) -> Option<String> {
        if source_id.is_empty() || !known || self.missing_experiments.contains(source_id) {
            return None;
        }
        Some(self.experiment_ids.get(source_id).cloned().unwrap_or_else(|| source_id.to_string()))
    }

    pub(crate) async fn runs(
        &mut self,
        page: Vec<(map::Run, Option<String>, bool, String)>,
    ) -> Result<(), ImportError> {
        let mut items = Vec::new();
        for (r, spec, experiment_known, digest) in page {
            if map::in_flight(r.state) && !self.allow_inflight {
                // Started since the plan was shown: the plan's refusal stands for it.
                self.conflict("INFLIGHT_RUN", "running in KFP: not imported (see --allow-inflight)", &r.id);
                continue;
            }
            let experiment_id = self.experiment_for(&r.experiment_id, experiment_known);
            let (pipeline_spec, platform_spec) = self.parsed_spec(r.spec_sha256.as_deref(), spec.as_deref());
            let mut state_history = history(&r.state_history);
            let created_at = ms(r.created_at);
            let mut finished_at = ms(r.finished_at);
            let (state, error) = match RuntimeState::parse(r.state) {
                Some(state) if !map::in_flight(r.state) => (state, None),
                Some(_) => (
                    RuntimeState::Canceled,
                    Some(ErrorInfo {
                        code: ErrorInfo::CANCELLED,
                        message: "imported from KFP while it was still running there (--allow-inflight)".into(),
                    }),
                ),
                None => (
                    RuntimeState::Failed,
                    Some(ErrorInfo { code: 2, message: "KFP recorded no state for this run".into() }),
                ),
            };
            let last_time = state_history.last().map(|c| c.update_time).unwrap_or(created_at);
            if finished_at == 0 {
                finished_at = last_time.max(created_at);
            }
            if state_history.last().map(|c| c.state) != Some(state) {
                state_history.push(StateChange { update_time: finished_at, state, error: error.clone() });
            }
            items.push(Item {
                source_id: r.id.clone(),
                source_sha256: digest,
                to_default: experiment_id.is_none(),
                entity: RunWithSteps {
                    argo_name: r.argo_name.clone(),
                    tasks: Vec::new(),
                    artifacts: Vec::new(),
                    ledger: Vec::new(),
                    run: Run {
                        id: r.id,
                        experiment_id: experiment_id.unwrap_or_default(),
                        display_name: r.display_name,
                        description: r.description,
                        namespace: r.namespace,
                        storage_state: if r.archived { StorageState::Archived } else { StorageState::Available },
                        pipeline_id: r.pipeline_id,
                        pipeline_version_id: r.pipeline_version_id,
                        pipeline_spec,
                        platform_spec,
                        parameters: parameters(&r.parameters),
                        pipeline_root: r.pipeline_root,
                        service_account: r.service_account,
                        created_at,
                        scheduled_at: ms(r.scheduled_at),
                        finished_at,
                        state,
                        error,
                        recurring_run_id: r.recurring_run_id,
                        state_history,
                    },
                },
            });
        }
        self.write(items).await?;
        Ok(())
    }

    pub(crate) async fn recurring_runs(
        &mut self,
        page: Vec<(map::RecurringRun, Option<String>, String)>,
    ) -> Result<(), ImportError> {
        let mut items = Vec::new();
        for (j, spec, digest) in page {
            let trigger = match (&j.cron, j.interval_seconds) {
                (Some(cron), _) => Trigger::Cron {
                    cron: cron.clone(),
                    start_time: j.start.map(|s| s * 1000),
                    end_time: j.end.map(|s| s * 1000),
                },
                (None, Some(interval)) => Trigger::Periodic {
                    interval_second: interval,
                    start_time: j.start.map(|s| s * 1000),
                    end_time: j.end.map(|s| s * 1000),
                },
                (None, None) => {
                    self.conflict("NO_TRIGGER", "neither a cron schedule nor an interval: not imported", &j.id);
                    continue;
                }
            };
            let experiment_id = self.experiment_for(&j.experiment_id, j.experiment_known);
            let (mut pipeline_spec, mut platform_spec) = spec_value(spec.as_deref());
            let mut version_id = j.pipeline_version_id.clone();
            if spec.is_none() {
                // Unpinned (or pinned to a version only): the version's spec, as weir's API
                // stores it for a schedule made from a version reference.
                let store = self.target.store;
                let version = match store.get_pipeline_version(&j.pipeline_id, &j.pipeline_version_id).await {
                    Ok(v) => Some(v),
                    Err(StoreError::NotFound(_)) => store.latest_pipeline_version(&j.pipeline_id).await.ok(),
                    Err(e) => return Err(store_err(e)),
                };
                if let Some(v) = version {
                    (pipeline_spec, platform_spec, version_id) = (v.pipeline_spec, v.platform_spec, v.id);
                }
            }
            items.push(Item {
                source_id: j.id.clone(),
                source_sha256: digest,
                to_default: experiment_id.is_none(),
                entity: RecurringRun {
                    id: j.id,
                    display_name: j.display_name,
                    description: j.description,
                    experiment_id: experiment_id.unwrap_or_default(),
                    namespace: j.namespace,
                    pipeline_id: j.pipeline_id,
                    pipeline_version_id: version_id,
                    pipeline_spec,
                    platform_spec,
                    parameters: parameters(&j.parameters),
                    pipeline_root: j.pipeline_root,
                    service_account: j.service_account,
                    max_concurrency: j.max_concurrency.max(1),
                    trigger,
                    enabled: self.target.enable_schedules && j.enabled_in_kfp,
                    no_catchup: j.no_catchup,
                    created_at: ms(j.created_at),
                    updated_at: ms(j.updated_at.or(j.created_at)),
                    // Slots before the import were KFP's to fire: weir starts from now.
                    last_slot_at: self.target.now_ms,
                    last_index: 0,
                },
            });
        }
        self.write(items).await?;
        Ok(())
    }

    pub(crate) async fn finish(&mut self) -> Result<Applied, ImportError> {
        let counts = self.target.store.ledger_counts(&self.source).await.map_err(store_err)?;
        for (kind, n) in counts.into_iter().filter(|(kind, _)| kind != ARTIFACT) {
            let seen = self.ledgered.get(kind.as_str()).copied().unwrap_or(0)
                + self.applied.kinds.get(&kind).map(|k| k.inserted).unwrap_or(0);
            let gone = (n as u64).saturating_sub(seen);
            if gone > 0 {
                self.applied.gone_from_source.insert(kind, gone);
            }
        }
        self.applied.conflicts = std::mem::take(&mut self.conflicts.0);
        self.applied.notes = std::mem::take(&mut self.notes.0);
        Ok(std::mem::take(&mut self.applied))
    }
}
