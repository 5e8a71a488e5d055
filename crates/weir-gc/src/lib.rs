//! Retention and garbage collection.
//!
//! A removal deletes rows first, in one transaction that also writes a journal entry for each
//! folder or object to delete ([`weir_store::GcStore::remove_run`]); [`Collector::drain`] then
//! deletes the objects the journal names, skipping any an artifact row still refers to, and
//! ends each entry. Nothing refers to a deleted object at any moment, and a collector stopped
//! half way (kill -9) resumes from the journal at the next start.
//!
//! [`retention`] chooses runs by policy; [`orphans`] finds objects no row refers to.

pub mod orphans;
pub mod references;
pub mod retention;
pub mod worker;

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use weir_artifacts::{layout, ArtifactError, ArtifactStore, ObjectInfo};
use weir_store::{
    Clock, GcRecord, MetadataStore, PendingDeletion, Removal, StoreError, StoreResult, CASCADE_EXPERIMENT,
};

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Artifacts(#[from] ArtifactError),
    #[error("{0} deletions failed; the next pass retries them")]
    Stuck(usize),
}

pub type GcResult<T> = Result<T, GcError>;

/// Journal entries read per round.
const JOURNAL_BATCH: i64 = 100;
/// Objects checked against the metadata per query, and deleted at once.
const OBJECT_BATCH: usize = 200;
const DELETES_IN_FLIGHT: usize = 16;
/// Objects deleted, their bytes, and objects kept because a row refers to them.
type Counts = (u64, u64, u64);

/// Journal entries whose objects are deleted at once.
const ENTRIES_IN_FLIGHT: usize = 8;

/// What a drain deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    pub entries: u64,
    pub objects: u64,
    pub bytes: u64,
    /// Objects under a journaled folder kept because an artifact row refers to them.
    pub kept: u64,
}

/// Removes runs and experiments and deletes what the journal names.
#[derive(Clone)]
pub struct Collector {
    store: Arc<dyn MetadataStore>,
    artifacts: ArtifactStore,
    clock: Arc<dyn Clock>,
    /// The deployment's `retention.keep_artifacts`, for the runs a cascade removes.
    keep_artifacts: bool,
}

impl Collector {
    pub fn new(store: Arc<dyn MetadataStore>, artifacts: ArtifactStore, clock: Arc<dyn Clock>) -> Self {
        Self { store, artifacts, clock, keep_artifacts: false }
    }

    /// Keeps the artifacts of the runs an experiment's cascade removes.
    pub fn keeping_artifacts(mut self, keep: bool) -> Self {
        self.keep_artifacts = keep;
        self
    }

    pub(crate) fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    pub fn artifacts(&self) -> &ArtifactStore {
        &self.artifacts
    }

    /// The journal folders of a run: its logs, and (unless its artifacts are kept) everything
    /// its steps wrote under its pipeline root.
    pub async fn run_prefixes(&self, run_id: &str, keep_artifacts: bool) -> StoreResult<Vec<String>> {
        let run = self.store.get_run(run_id).await?;
        let mut prefixes = vec![layout::run_logs_prefix(run_id)];
        if !keep_artifacts {
            let spec = &run.pipeline_spec;
            let root = layout::root_key(
                &run.pipeline_root,
                spec.get("defaultPipelineRoot").and_then(|v| v.as_str()),
                self.artifacts.url(),
            );
            let pipeline = spec.pointer("/pipelineInfo/name").and_then(|v| v.as_str()).unwrap_or_default();
            prefixes.push(layout::run_outputs_prefix(&root, pipeline, run_id));
        }
        Ok(prefixes)
    }

    /// Removes a run's rows (journaling its objects) and records it; the objects go with the
    /// next [`Collector::drain`].
    pub async fn remove_run(
        &self,
        run_id: &str,
        policy: &str,
        keep_artifacts: bool,
        now: i64,
    ) -> StoreResult<GcRecord> {
        let prefixes = self.run_prefixes(run_id, keep_artifacts).await?;
        let removal = Removal {
            history_id: uuid::Uuid::new_v4().to_string(),
            policy: policy.into(),
            keep_artifacts,
            prefixes,
            now,
        };
        self.store.remove_run(run_id, &removal).await
    }

    /// Starts removing an experiment with its runs and recurring runs: records it and journals
    /// the cascade, which the next [`Collector::drain`] carries out (and a restart resumes).
    pub async fn remove_experiment(&self, experiment_id: &str, policy: &str, now: i64) -> StoreResult<GcRecord> {
        let experiment = self.store.get_experiment(experiment_id).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let record = GcRecord {
            id: id.clone(),
            at: now,
            kind: "experiment".into(),
            target_id: experiment_id.into(),
            display_name: experiment.display_name,
            policy: policy.into(),
            detail: serde_json::json!({"action": "delete", "cascade": true}),
            objects: 0,
            bytes: 0,
            done_at: 0,
        };
        let entry = PendingDeletion {
            id: format!("{id}-0"),
            history_id: id,
            prefix: format!("{CASCADE_EXPERIMENT}{experiment_id}"),
            created_at: now,
        };
        self.store.record_removal(&record, &[entry]).await?;
        Ok(record)
    }

    /// Carries out every journal entry, oldest first. `progress` is told of each batch of
    /// objects deleted.
    pub async fn drain(&self, progress: &(dyn Fn(Drained) + Sync)) -> GcResult<Drained> {
        let mut total = Drained::default();
        // Entries that failed in this drain are not retried in it: the next drain does.
        let mut failed: BTreeSet<String> = BTreeSet::new();
        loop {
            let entries = self.store.pending_deletions(JOURNAL_BATCH + failed.len() as i64).await?;
            let todo: Vec<PendingDeletion> = entries.into_iter().filter(|e| !failed.contains(&e.id)).collect();
            if todo.is_empty() {
                return Ok(total);
            }
            let (cascades, plain): (Vec<_>, Vec<_>) =
                todo.into_iter().partition(|e| e.prefix.starts_with(CASCADE_EXPERIMENT));
            self.delete_entries(plain, progress, &mut total, &mut failed).await?;
            for entry in cascades {
                let experiment_id = entry.prefix.trim_start_matches(CASCADE_EXPERIMENT).to_string();
                let outcome = self.cascade_experiment(&experiment_id, progress, &mut total).await;
                match outcome {
                    Ok(()) => {
                        self.store.finish_deletions(&[(entry, 0, 0)], self.now()).await?;
                        total.entries += 1;
                    }
                    Err(e) => {
                        tracing::warn!(experiment.id = %experiment_id, error = %e, "could not finish removing an experiment; the next pass retries it");
                        failed.insert(entry.id.clone());
                    }
                }
            }
            if failed.len() > JOURNAL_BATCH as usize {
                return Err(GcError::Stuck(failed.len()));
            }
        }
    }

    /// Deletes the objects of several entries at once, then ends them in one transaction.
    async fn delete_entries(
        &self,
        entries: Vec<PendingDeletion>,
        progress: &(dyn Fn(Drained) + Sync),
        total: &mut Drained,
        failed: &mut BTreeSet<String>,
    ) -> GcResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        // Owned futures (a clone of the collector each): see `delete_objects`.
        let results: Vec<(PendingDeletion, GcResult<Counts>)> =
            futures::stream::iter(entries.into_iter().map(|entry| {
                let this = self.clone();
                async move {
                    let outcome = match this.objects_of(&entry.prefix).await {
                        Ok(objects) => this.delete_objects(&objects).await,
                        Err(e) => Err(e),
                    };
                    (entry, outcome)
                }
            }))
            .buffer_unordered(ENTRIES_IN_FLIGHT)
            .collect()
            .await;
        let mut ended = Vec::new();
        for (entry, outcome) in results {
            match outcome {
                Ok((deleted, bytes, kept)) => {
                    total.objects += deleted;
                    total.bytes += bytes;
                    total.kept += kept;
                    ended.push((entry, deleted as i64, bytes as i64));
                }
                Err(e) => {
                    tracing::warn!(gc.entry = %entry.prefix, error = %e, "could not finish a deletion; the next pass retries it");
                    failed.insert(entry.id.clone());
                }
            }
        }
        self.store.finish_deletions(&ended, self.now()).await?;
        total.entries += ended.len() as u64;
        progress(*total);
        Ok(())
    }

    async fn cascade_experiment(
        &self,
        experiment_id: &str,
        progress: &(dyn Fn(Drained) + Sync),
        total: &mut Drained,
    ) -> GcResult<()> {
        let policy = format!("cascade of experiment {experiment_id}");
        loop {
            let (runs, recurring) = self.store.experiment_members(experiment_id, 100).await?;
            if runs.is_empty() && recurring.is_empty() {
                break;
            }
            // Recurring runs first, so they start no more runs.
            for id in recurring {
                match self.store.delete_recurring_run(&id).await {
                    Ok(()) | Err(StoreError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            for id in runs {
                match self.remove_run(&id, &policy, self.keep_artifacts, self.now()).await {
                    Ok(_) | Err(StoreError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            // The runs' objects go before the next batch of rows: the journal stays short.
            let mut failed = BTreeSet::new();
            loop {
                let entries = self.store.pending_deletions(JOURNAL_BATCH + failed.len() as i64).await?;
                let plain: Vec<PendingDeletion> = entries
                    .into_iter()
                    .filter(|e| !e.prefix.starts_with(CASCADE_EXPERIMENT) && !failed.contains(&e.id))
                    .collect();
                if plain.is_empty() {
                    break;
                }
                Box::pin(self.delete_entries(plain, progress, total, &mut failed)).await?;
            }
        }
        match self.store.delete_experiment(experiment_id).await {
            Ok(()) | Err(StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The objects a journal entry names: a folder's, or a key's (with anything under it, as
    /// an artifact's URI names a file or a folder).
    async fn objects_of(&self, prefix: &str) -> GcResult<Vec<ObjectInfo>> {
        let key = match prefix.strip_prefix("uri:") {
            Some(uri) => match layout::key_for_uri(self.artifacts.url(), uri) {
                Some(key) => key,
                // Outside weir's store: not weir's to delete.
                None => return Ok(Vec::new()),
            },
            None => prefix.to_string(),
        };
        if key.is_empty() || key.starts_with(weir_artifacts::RESERVED_PREFIX) {
            return Ok(Vec::new());
        }
        if key.ends_with('/') {
            return Ok(self.artifacts.list_meta(&key).await?);
        }
        let mut objects = self.artifacts.list_meta(&format!("{key}/")).await?;
        match self.artifacts.get_head(&key, 0).await {
            Ok((_, size)) => objects.push(ObjectInfo { key, size, modified_ms: 0 }),
            Err(ArtifactError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(objects)
    }

    /// Deletes the objects no artifact row refers to (by the object's URI or a folder above
    /// it), telling `progress` after each batch. Returns (deleted, bytes, kept).
    pub async fn delete_unreferenced(
        &self,
        objects: &[ObjectInfo],
        progress: &(dyn Fn(Drained) + Sync),
        total: &mut Drained,
    ) -> GcResult<(u64, u64, u64)> {
        let (mut deleted, mut bytes, mut kept) = (0u64, 0u64, 0u64);
        for chunk in objects.chunks(OBJECT_BATCH) {
            let (d, b, k) = self.delete_objects(chunk).await?;
            (deleted, bytes, kept) = (deleted + d, bytes + b, kept + k);
            total.objects += d;
            total.bytes += b;
            total.kept += k;
            progress(*total);
        }
        Ok((deleted, bytes, kept))
    }

    /// [`Collector::delete_unreferenced`] without the progress. Returns (deleted, bytes, kept).
    async fn delete_objects(&self, objects: &[ObjectInfo]) -> GcResult<Counts> {
        let (mut deleted, mut bytes, mut kept) = (0u64, 0u64, 0u64);
        for chunk in objects.chunks(OBJECT_BATCH) {
            let referenced = self.referenced(chunk.iter().map(|o| o.key.as_str())).await?;
            let doomed: Vec<&ObjectInfo> = chunk.iter().filter(|o| !referenced.contains(&o.key)).collect();
            kept += (chunk.len() - doomed.len()) as u64;
            // Owned futures: a future borrowing `self` per object would not be `Send` for
            // every lifetime, which a spawned collector needs.
            let deletes: Vec<_> = doomed
                .iter()
                .map(|o| {
                    let (artifacts, key) = (self.artifacts.clone(), o.key.clone());
                    async move { artifacts.delete(&key).await }
                })
                .collect();
            futures::stream::iter(deletes).buffer_unordered(DELETES_IN_FLIGHT).try_collect::<Vec<()>>().await?;
            deleted += doomed.len() as u64;
            bytes += doomed.iter().map(|o| o.size).sum::<u64>();
        }
        Ok((deleted, bytes, kept))
    }

    /// Which of these keys an artifact row refers to, by the key's URI or an ancestor's.
    pub async fn referenced<'a>(&self, keys: impl Iterator<Item = &'a str>) -> StoreResult<BTreeSet<String>> {
        let url = self.artifacts.url();
        let keys: Vec<&str> = keys.collect();
        let mut uris: Vec<String> = Vec::new();
        for key in &keys {
            uris.extend(ancestors(key).map(|k| layout::uri_for_key(url, k)));
        }
        let found = self.store.referenced_uris(&uris).await?;
        Ok(keys
            .into_iter()
            .filter(|key| ancestors(key).any(|k| found.contains(&layout::uri_for_key(url, k))))
            .map(str::to_string)
            .collect())
    }
}

/// A key and the folders above it: `a/b/c` gives `a/b/c`, `a/b`, `a`.
fn ancestors(key: &str) -> impl Iterator<Item = &str> {
    let cuts = key.char_indices().filter(|(_, c)| *c == '/').map(|(i, _)| i).collect::<Vec<_>>();
    std::iter::once(key).chain(cuts.into_iter().rev().map(move |i| &key[..i]))
}

#[cfg(test)]
mod tests {
    use super::ancestors;

    #[test]
    fn ancestors_of_a_key() {
        assert_eq!(ancestors("a/b/c").collect::<Vec<_>>(), ["a/b/c", "a/b", "a"]);
        assert_eq!(ancestors("a").collect::<Vec<_>>(), ["a"]);
    }
}
