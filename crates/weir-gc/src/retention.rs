//! Retention policies: which runs go, and removing them in small batches.
//!
//! The deployment's policies (`weir.yaml`) apply to every experiment without policies of its
//! own; an experiment's own policies replace them for its runs. A run matched by any policy of
//! its scope goes. Only finished runs are ever chosen.

use weir_store::{
    GcRecord, MetadataStore, RetentionAction, RetentionPolicy, RunCandidate, StorageState, StoreError, StoreResult,
};

use crate::{Collector, Drained, GcResult};

/// A set of policies and the runs it covers: one experiment's, or (None) the deployment's.
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    pub experiment_id: Option<String>,
    pub policies: Vec<RetentionPolicy>,
}

/// The deployment's scope and each experiment's own.
pub async fn scopes(store: &dyn MetadataStore, global: &[RetentionPolicy]) -> StoreResult<Vec<Scope>> {
    let mut scopes = vec![Scope { experiment_id: None, policies: global.to_vec() }];
    for (experiment_id, policies) in store.experiment_policies().await? {
        scopes.push(Scope { experiment_id: Some(experiment_id), policies });
    }
    Ok(scopes)
}

/// The name a removal by this policy is recorded under.
pub fn policy_label(experiment_id: Option<&str>, policy: &RetentionPolicy) -> String {
    match experiment_id {
        Some(id) => format!("experiment {id}: {}", policy.name),
        None => policy.name.clone(),
    }
}

/// What one policy would do now.
#[derive(Debug, Clone, PartialEq)]
pub struct Chosen {
    pub experiment_id: Option<String>,
    pub policy: RetentionPolicy,
    pub runs: Vec<RunCandidate>,
}

/// Every run each policy would act on now (a dry run: nothing is written).
pub async fn choose(store: &dyn MetadataStore, global: &[RetentionPolicy], now: i64) -> GcResult<Vec<Chosen>> {
    let mut chosen = Vec::new();
    for scope in scopes(store, global).await? {
        for policy in &scope.policies {
            let query =
                policy.query(scope.experiment_id.clone(), now, i64::MAX / 2).map_err(StoreError::InvalidArgument)?;
            let runs = store.retention_candidates(&query).await?;
            chosen.push(Chosen { experiment_id: scope.experiment_id.clone(), policy: policy.clone(), runs });
        }
    }
    Ok(chosen)
}

/// What applying the policies did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    pub deleted: u64,
    pub archived: u64,
    pub drained: Drained,
}

/// Applies every policy, `batch` runs at a time: each run's rows go in a transaction of its
/// own, and the batch's objects are deleted before the next batch is chosen. `on_run` is told
/// of each run removed or archived. Times come from the collector's clock.
pub async fn apply(
    collector: &Collector,
    global: &[RetentionPolicy],
    keep_artifacts: bool,
    batch: i64,
    on_run: &(dyn Fn(GcRecord) + Sync),
    progress: &(dyn Fn(Drained) + Sync),
) -> GcResult<Applied> {
    let store = collector.store().as_ref();
    let scopes = scopes(store, global).await?;
    // Runs archived before weir recorded when count from now (only asked when a policy
    // counts from archiving).
    if scopes.iter().flat_map(|s| &s.policies).any(|p| p.archived_for.is_some()) {
        store.stamp_archived(collector.now()).await?;
    }
    let mut applied = Applied::default();
    for scope in scopes {
        for policy in &scope.policies {
            let label = policy_label(scope.experiment_id.as_deref(), policy);
            loop {
                let query = policy
                    .query(scope.experiment_id.clone(), collector.now(), batch)
                    .map_err(StoreError::InvalidArgument)?;
                let runs = store.retention_candidates(&query).await?;
                for run in &runs {
                    let record = match policy.action {
                        RetentionAction::Delete => {
                            match collector
                                .remove_run(&run.id, &label, keep_artifacts || policy.keep_artifacts, collector.now())
                                .await
                            {
                                Ok(record) => record,
                                // Removed meanwhile (another replica, the API).
                                Err(StoreError::NotFound(_)) => continue,
                                Err(e) => return Err(e.into()),
                            }
                        }
                        RetentionAction::Archive => match archive(store, run, &label, collector.now()).await {
                            Ok(record) => record,
                            Err(StoreError::NotFound(_)) => continue,
                            Err(e) => return Err(e.into()),
                        },
                    };
                    match policy.action {
                        RetentionAction::Delete => applied.deleted += 1,
                        RetentionAction::Archive => applied.archived += 1,
                    }
                    on_run(record);
                }
                let drained = collector.drain(progress).await?;
                applied.drained.entries += drained.entries;
                applied.drained.objects += drained.objects;
                applied.drained.bytes += drained.bytes;
                applied.drained.kept += drained.kept;
                if (runs.len() as i64) < batch {
                    break;
                }
                // Requests waiting for the database go first between batches.
                tokio::task::yield_now().await;
            }
        }
    }
    Ok(applied)
}

async fn archive(store: &dyn MetadataStore, run: &RunCandidate, label: &str, now: i64) -> StoreResult<GcRecord> {
    store.set_run_storage_state(&run.id, StorageState::Archived, now).await?;
    let record = GcRecord {
        id: uuid::Uuid::new_v4().to_string(),
        at: now,
        kind: "run".into(),
        target_id: run.id.clone(),
        display_name: run.display_name.clone(),
        policy: label.into(),
        detail: serde_json::json!({"action": "archive", "experiment_id": run.experiment_id, "state": run.state}),
        objects: 0,
        bytes: 0,
        done_at: now,
    };
    store.record_removal(&record, &[]).await?;
    Ok(record)
}
