//! A run's steps: read from ML Metadata for the runs about to be written, their logs copied
//! from KFP's bucket into weir's store.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use weir_store::LedgerEntry;

use super::entity::{Pending, RunWithSteps};
use super::{store_err, Applier, ARTIFACT};
use crate::mlmd::OUTPUT;
use crate::steps::{self, LogSource};
use crate::ImportError;

/// An object URI (`minio://bucket/key`, `s3://…`) as a key of KFP's bucket, when it is in it.
fn key_in_bucket(objects_url: &str, uri: &str) -> Option<String> {
    let (_, rest) = uri.split_once("://")?;
    let (bucket, key) = rest.split_once('/')?;
    let (_, root) = objects_url.split_once("://")?;
    let (root_bucket, prefix) = root.split_once('/').unwrap_or((root, ""));
    if bucket != root_bucket {
        return None;
    }
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        return Some(key.to_string());
    }
    key.strip_prefix(prefix)?.strip_prefix('/').map(str::to_string)
}

impl Applier<'_> {
    /// Reads the steps of the runs about to be written from ML Metadata, copies their logs
    /// into weir's store, and attaches tasks, artifacts and ledger rows to the runs.
    pub(super) async fn steps(&mut self, writes: &mut [Pending<RunWithSteps>]) -> Result<(), ImportError> {
        let Some(mlmd) = self.mlmd.as_mut() else { return Ok(()) };
        let ids: Vec<String> = writes.iter().map(|w| w.0.entity.run.id.clone()).collect();
        let records = mlmd.runs(&ids).await?;
        let produced: Vec<String> = records
            .values()
            .flat_map(|r| r.events.iter().filter(|e| e.kind == OUTPUT).map(|e| e.artifact_id.to_string()))
            .collect();
        let owners: HashMap<i64, String> = self
            .target
            .store
            .ledger_entries(&self.source, ARTIFACT, &produced)
            .await
            .map_err(store_err)?
            .into_iter()
            .filter_map(|e| {
                let owner = e.weir_id.split_once(':')?.0.to_string();
                Some((e.source_id.parse().ok()?, owner))
            })
            .collect();
        let empty = crate::mlmd::RunRecord::default();
        for (item, _) in writes.iter_mut() {
            let run_id = item.entity.run.id.clone();
            let record = records.get(&run_id).unwrap_or(&empty);
            let elsewhere: HashSet<i64> =
                owners.iter().filter(|(_, owner)| **owner != run_id).map(|(id, _)| *id).collect();
            let mut built = steps::build(&self.source, &item.entity.run, record, &elsewhere);
            if self.target.copy_artifacts {
                self.copy_artifacts(&mut built).await?;
            }
            let mut archived_logs: Option<Vec<String>> = None;
            for (task_id, log) in &built.logs {
                let text = match self.read_log(log, &item.entity, &mut archived_logs).await? {
                    Some(text) => text,
                    None => {
                        self.notes.add(
                            "LOG_NOT_FOUND",
                            "a step's log was not in KFP's bucket (not archived, or expired): an empty log stands in",
                            &format!("{run_id}/{task_id}"),
                        );
                        String::from("(weir import kfp: no log of this step was found in KFP's bucket)\n")
                    }
                };
                let key = weir_artifacts::layout::log_key(&run_id, task_id, 1);
                self.target
                    .artifacts
                    .put(&key, Bytes::from(text))
                    .await
                    .map_err(|e| ImportError::Target(format!("cannot write {key} to weir's artifact store: {e}")))?;
            }
            self.kind("task").inserted += built.tasks.len() as u64;
            let cache_entries = built.tasks.iter().filter(|t| !t.fingerprint.is_empty()).count() as u64;
            if cache_entries > 0 {
                self.kind("cache entry").inserted += cache_entries;
            }
            self.kind(ARTIFACT).inserted += built.artifacts.len() as u64;
            let ledger = built
                .owned
                .iter()
                .map(|(mlmd_id, weir_id)| LedgerEntry {
                    source: self.source.clone(),
                    kind: ARTIFACT.into(),
                    source_id: mlmd_id.to_string(),
                    source_sha256: String::new(),
                    weir_id: format!("{run_id}:{weir_id}"),
                    weir_sha256: String::new(),
                    imported_at: self.target.now_ms,
                })
                .collect();
            item.entity.tasks = built.tasks;
            item.entity.artifacts = built.artifacts;
            item.entity.ledger = ledger;
        }
        Ok(())
    }

    /// Copies the objects of a run's artifacts from KFP's bucket into weir's store, under
    /// weir's own layout, and points the artifacts at them (KFP's URI is kept in the
    /// artifact's metadata as `kfp_uri`). Metrics artifacts hold their values in ML Metadata
    /// and have no object to copy.
    async fn copy_artifacts(&mut self, built: &mut steps::Steps) -> Result<(), ImportError> {
        let names: HashMap<String, String> = built.tasks.iter().map(|t| (t.id.clone(), t.name.clone())).collect();
        let pipeline = built.tasks.first().map(|t| t.pipeline_name.clone()).unwrap_or_default();
        for artifact in &mut built.artifacts {
            if artifact.schema_title.ends_with("Metrics") {
                continue;
            }
            let Some(from) = key_in_bucket(self.objects.url(), &artifact.uri) else {
                self.notes.add(
                    "ARTIFACT_NOT_COPIED",
                    "its object is outside KFP's bucket: referenced where it is",
                    &artifact.id.to_string(),
                );
                continue;
            };
            let task_name = names.get(&artifact.task_id).cloned().unwrap_or_default();
            let to = weir_artifacts::layout::output_key(
                weir_artifacts::layout::DEFAULT_ROOT,
                &pipeline,
                &artifact.run_id,
                &task_name,
                &artifact.task_id,
                &artifact.name,
            );
            // One object, or a folder of them (an artifact written as a directory).
            let objects: Vec<(String, String)> = match self.objects.exists(&from).await {
                Ok(true) => vec![(from.clone(), to.clone())],
                _ => self
                    .objects
                    .list(&from)
                    .await
                    .map_err(|e| ImportError::Objects(format!("cannot list KFP's bucket ({from}): {e}")))?
                    .into_iter()
                    .map(|key| {
                        let rest = key[from.len()..].trim_start_matches('/').to_string();
                        (key, format!("{to}/{rest}"))
                    })
                    .collect(),
            };
            if objects.is_empty() {
                self.notes.add(
                    "ARTIFACT_NOT_FOUND",
                    "no object behind its URI in KFP's bucket (expired, or never written): referenced as it was",
                    &artifact.id.to_string(),
                );
                continue;
            }
            for (from, to) in &objects {
                let scratch = self.scratch()?.join("object");
                self.objects
                    .get_to_file(from, &scratch)
                    .await
                    .map_err(|e| ImportError::Objects(format!("cannot read KFP's bucket ({from}): {e}")))?;
                self.target
                    .artifacts
                    .put_file(to, &scratch)
                    .await
                    .map_err(|e| ImportError::Target(format!("cannot write {to} to weir's artifact store: {e}")))?;
                let _ = std::fs::remove_file(&scratch);
            }
            if let serde_json::Value::Object(metadata) = &mut artifact.metadata {
                metadata.insert("kfp_uri".into(), serde_json::Value::String(artifact.uri.clone()));
            }
            artifact.uri = weir_artifacts::layout::uri_for_key(self.target.artifacts.url(), &to);
            artifact.object_count = objects.len() as i64;
            self.kind("copied object").inserted += objects.len() as u64;
        }
        Ok(())
    }

    /// A step's log from KFP's bucket, as text.
    async fn read_log(
        &self,
        log: &LogSource,
        run: &RunWithSteps,
        archived: &mut Option<Vec<String>>,
    ) -> Result<Option<String>, ImportError> {
        let key =
            match log {
                LogSource::None => return Ok(None),
                LogSource::ExecutorLogs(uri) => match key_in_bucket(self.objects.url(), uri) {
                    Some(key) => key,
                    None => return Ok(None),
                },
                LogSource::Pod(pod) => {
                    if archived.is_none() {
                        // Argo's archive: artifacts/<workflow>/<date>/<pod>/main.log (2.0-2.14), or
                        // under private-artifacts/<namespace>/ (2.15+).
                        let mut keys = Vec::new();
                        let mut prefixes = vec![format!("artifacts/{}", run.argo_name)];
                        if !run.run.namespace.is_empty() {
                            prefixes.push(format!("private-artifacts/{}/{}", run.run.namespace, run.argo_name));
                        }
                        for prefix in prefixes.into_iter().filter(|_| !run.argo_name.is_empty()) {
                            keys.extend(self.objects.list(&prefix).await.map_err(|e| {
                                ImportError::Objects(format!("cannot list KFP's bucket ({prefix}): {e}"))
                            })?);
                        }
                        *archived = Some(keys);
                    }
                    let wanted = format!("/{pod}/");
                    match archived
                        .as_ref()
                        .and_then(|keys| keys.iter().find(|k| k.contains(&wanted) && k.ends_with("main.log")).cloned())
                    {
                        Some(key) => key,
                        None => return Ok(None),
                    }
                }
            };
        match self.objects.get(&key).await {
            Ok(bytes) => Ok(Some(steps::decode_log(&bytes))),
            Err(weir_artifacts::ArtifactError::NotFound(_) | weir_artifacts::ArtifactError::InvalidKey { .. }) => {
                Ok(None)
            }
            Err(e) => Err(ImportError::Objects(format!("cannot read KFP's bucket ({key}): {e}"))),
        }
    }
}
