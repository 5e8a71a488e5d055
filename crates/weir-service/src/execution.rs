//! What execution leaves behind, for people, tests and tools (docs/api.md): a run's tasks with
//! their artifacts, artifact contents, and step logs.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use weir_artifacts::ArtifactError;
use weir_store::{Artifact, Task, TaskKind};

use crate::error::{ServiceError, ServiceResult};
use crate::Context;

/// The most tasks a page of a run's tasks holds.
pub const MAX_TASK_PAGE: i64 = 1000;

#[derive(Clone)]
pub struct ExecutionService {
    ctx: Arc<Context>,
}

impl ExecutionService {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }

    /// A run's tasks, and every artifact they name by id: the run's own and those it read
    /// from other runs.
    pub async fn tasks(&self, run_id: &str) -> ServiceResult<(Vec<Task>, HashMap<i64, Artifact>)> {
        let (tasks, artifacts, _) = self.tasks_page(run_id, None, "").await?;
        Ok((tasks, artifacts))
    }

    /// A page of a run's tasks in creation order (all of them without `page_size`), the
    /// artifacts they name by id, and the next page's token (`created_at:id` of the page's
    /// last task; empty on the last page).
    pub async fn tasks_page(
        &self,
        run_id: &str,
        page_size: Option<i64>,
        page_token: &str,
    ) -> ServiceResult<(Vec<Task>, HashMap<i64, Artifact>, String)> {
        if let Some(size) = page_size {
            if !(1..=MAX_TASK_PAGE).contains(&size) {
                return Err(ServiceError::invalid(format!(
                    "page_size must be between 1 and {MAX_TASK_PAGE}, got {size}"
                )));
            }
        }
        let after = if page_token.is_empty() {
            None
        } else {
            let parsed = page_token
                .split_once(':')
                .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_string())))
                .ok_or_else(|| ServiceError::invalid(format!("invalid page_token {page_token:?}")))?;
            Some(parsed)
        };
        self.ctx.store.get_run(run_id).await?;
        let (tasks, next) = match page_size {
            None if after.is_none() => (self.ctx.store.list_tasks(run_id).await?, String::new()),
            size => {
                let size = size.unwrap_or(MAX_TASK_PAGE);
                let mut tasks = self.ctx.store.list_tasks_page(run_id, after, size + 1).await?;
                let next = if tasks.len() as i64 > size {
                    tasks.truncate(size as usize);
                    tasks.last().map(|t| format!("{}:{}", t.created_at, t.id)).unwrap_or_default()
                } else {
                    String::new()
                };
                (tasks, next)
            }
        };
        // Only the artifacts the page names: a big run's page reads a page of them.
        let mut ids: Vec<i64> =
            tasks.iter().flat_map(|t| t.inputs.artifact_ids().chain(t.outputs.artifact_ids())).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut artifacts = HashMap::new();
        for chunk in ids.chunks(1000) {
            artifacts.extend(self.ctx.store.get_artifacts(chunk).await?.into_iter().map(|a| (a.id, a)));
        }
        Ok((tasks, artifacts, next))
    }

    /// The artifacts a run's own steps made (the UI's metric columns and comparisons).
    pub async fn run_artifacts(&self, run_id: &str) -> ServiceResult<Vec<Artifact>> {
        Ok(self.ctx.store.list_artifacts(run_id).await?)
    }

    /// Artifacts by id (those a task names as inputs or outputs), in no particular order.
    pub async fn artifacts(&self, ids: &[i64]) -> ServiceResult<Vec<Artifact>> {
        Ok(self.ctx.store.get_artifacts(ids).await?)
    }

    /// One artifact by its id (a number, given as text).
    pub async fn artifact(&self, id: &str) -> ServiceResult<Artifact> {
        let id: i64 = id.parse().map_err(|_| ServiceError::invalid(format!("artifact id {id:?} is not a number")))?;
        self.ctx
            .store
            .get_artifacts(&[id])
            .await?
            .pop()
            .ok_or_else(|| ServiceError::not_found(format!("artifact {id} not found")))
    }

    /// The bytes of a file artifact kept in weir's artifact store.
    pub async fn artifact_content(&self, id: &str) -> ServiceResult<Bytes> {
        let (artifact, key) = self.artifact_key(id).await?;
        self.ctx.artifacts.get(&key).await.map_err(|e| not_a_file(&artifact, e))
    }

    /// The first `max` bytes of a file artifact, and its whole size (the UI's previews).
    pub async fn artifact_head(&self, id: &str, max: usize) -> ServiceResult<(Bytes, u64)> {
        let (artifact, key) = self.artifact_key(id).await?;
        self.ctx.artifacts.get_head(&key, max).await.map_err(|e| not_a_file(&artifact, e))
    }

    /// An artifact and its key in weir's artifact store.
    async fn artifact_key(&self, id: &str) -> ServiceResult<(Artifact, String)> {
        let artifact = self.artifact(id).await?;
        let key = weir_artifacts::layout::key_for_uri(self.ctx.artifacts.url(), &artifact.uri).ok_or_else(|| {
            ServiceError::invalid(format!(
                "artifact {} lives at {}, outside weir's artifact store",
                artifact.id, artifact.uri
            ))
        })?;
        Ok((artifact, key))
    }

    /// The output of every attempt of the run's steps, oldest first; of one step when `task`
    /// (a task id or name) is given.
    pub async fn logs(&self, run_id: &str, task: &str) -> ServiceResult<String> {
        self.ctx.store.get_run(run_id).await?;
        let tasks = self.ctx.store.list_tasks(run_id).await?;
        let selected: Vec<&Task> = tasks
            .iter()
            .filter(|t| t.kind == TaskKind::Container)
            .filter(|t| task.is_empty() || t.id == task || t.name == task || t.display_name == task)
            .collect();
        if !task.is_empty() && selected.is_empty() {
            return Err(ServiceError::not_found(format!("run {run_id} has no step {task:?}")));
        }
        let mut text = String::new();
        for task in selected {
            for attempt in 1..=task.attempts {
                let body = match self.stored_log(run_id, &task.id, attempt).await? {
                    Some(text) => text,
                    None => match self.live_log(run_id, &task.id, attempt).await {
                        Some(text) => text,
                        // Moved into the store between the two reads, as a step ends.
                        None => self.stored_log(run_id, &task.id, attempt).await?.unwrap_or_default(),
                    },
                };
                text.push_str(&format!("==> {} (task {}, attempt {attempt}) <==\n", task.display_name, task.id));
                text.push_str(&body);
                if !body.ends_with('\n') {
                    text.push('\n');
                }
            }
        }
        Ok(text)
    }

    /// An attempt's log from the store, where weir keeps it now or kept it before; `None` when
    /// it is in neither place.
    async fn stored_log(&self, run_id: &str, task_id: &str, attempt: i64) -> ServiceResult<Option<String>> {
        use weir_artifacts::layout::{earlier_log_key, log_key};
        for key in [log_key(run_id, task_id, attempt), earlier_log_key(run_id, task_id, attempt)] {
            match self.ctx.artifacts.get(&key).await {
                Ok(bytes) => return Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
                Err(ArtifactError::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// The log of a step still running on this host; `None` when there is no such file.
    async fn live_log(&self, run_id: &str, task_id: &str, attempt: i64) -> Option<String> {
        let Some(work_dir) = &self.ctx.work_dir else { return Some(String::new()) };
        let path = weir_artifacts::layout::attempt_dir(work_dir, run_id, task_id, attempt)
            .join(weir_artifacts::layout::LIVE_LOG);
        tokio::fs::read(path).await.ok().map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// A missing object behind an artifact: a folder, or metadata only.
fn not_a_file(artifact: &Artifact, e: ArtifactError) -> ServiceError {
    match e {
        ArtifactError::NotFound(_) => ServiceError::not_found(format!(
            "artifact {} has no single file (it may be a folder, or metadata only)",
            artifact.id
        )),
        other => other.into(),
    }
}
