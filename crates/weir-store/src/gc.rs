//! Retention and garbage collection: what a removal writes, the journal of object deletions it
//! leaves, and the policies that choose runs to remove.
//!
//! A removal deletes rows first and objects after, so nothing ever refers to a deleted object.
//! The rows go in one transaction together with journal entries naming the objects; a
//! collector deletes the objects the journal names (skipping any an artifact row still refers
//! to) and then the entries, so a deletion cut short resumes from the journal.

use std::collections::BTreeSet;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::StoreResult;
use crate::model::RuntimeState;

/// One entry of the removal history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GcRecord {
    pub id: String,
    pub at: i64,
    /// `run`, `experiment`, `pipeline_version`, `orphans`.
    pub kind: String,
    pub target_id: String,
    pub display_name: String,
    /// The policy that chose it, or who asked (`api`, `cli`).
    pub policy: String,
    /// What went, by kind (rows, their state, the action): JSON.
    pub detail: serde_json::Value,
    /// Objects and bytes deleted, once the journal's entries are done.
    pub objects: i64,
    pub bytes: i64,
    /// When the last of its objects went (0: not yet).
    pub done_at: i64,
}

/// An object deletion still to do: a key, or every key under a folder (a prefix ending `/`),
/// or a cascade still to finish (`cascade:experiment/<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDeletion {
    pub id: String,
    pub history_id: String,
    pub prefix: String,
    pub created_at: i64,
}

/// The prefix of a journal entry that finishes deleting an experiment's runs, then the
/// experiment.
pub const CASCADE_EXPERIMENT: &str = "cascade:experiment/";

/// How to remove a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Removal {
    /// The history record's id (the caller's).
    pub history_id: String,
    pub policy: String,
    /// Keep the run's artifacts (rows and objects) for users who share them outside weir; its
    /// other rows and its logs go.
    pub keep_artifacts: bool,
    /// The run's folders in the artifact store (its logs, its outputs), for the journal;
    /// with `keep_artifacts` its outputs' folder is left out.
    pub prefixes: Vec<String>,
    pub now: i64,
}

/// A run a policy chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCandidate {
    pub id: String,
    pub display_name: String,
    pub experiment_id: String,
    pub state: RuntimeState,
    pub finished_at: i64,
}

/// Which runs a policy matches, as a store can select them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RetentionQuery {
    /// Only this experiment's runs; None: every experiment without its own policies.
    pub experiment_id: Option<String>,
    /// Terminal states matched (never empty: a running run is never chosen).
    pub states: Vec<RuntimeState>,
    /// Only runs finished before this time.
    pub finished_before: Option<i64>,
    /// Only archived runs, archived before this time.
    pub archived_before: Option<i64>,
    /// Keeps the newest this many matching runs (by finish time).
    pub keep_last: Option<i64>,
    /// Only runs not archived (what an archiving policy picks).
    pub available_only: bool,
    pub limit: i64,
}

/// A retention policy, as `weir.yaml` and the API give it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    pub name: String,
    /// Run states it applies to (`SUCCEEDED`, `FAILED`, `CANCELED`, `SKIPPED`); empty: all of
    /// them.
    #[serde(default)]
    pub states: Vec<String>,
    /// Runs that finished longer ago than this (`30d`, `12h`, `90m`, `45s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub older_than: Option<String>,
    /// Keeps the newest this many matching runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<i64>,
    /// Only archived runs, archived longer ago than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_for: Option<String>,
    /// `delete` (the default) or `archive` (a run archived first, for a later policy to delete).
    #[serde(default)]
    pub action: RetentionAction,
    /// Keep the artifacts of the runs this policy deletes.
    #[serde(default)]
    pub keep_artifacts: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetentionAction {
    #[default]
    Delete,
    Archive,
}

impl RetentionPolicy {
    /// Checks the policy; the error says what is wrong in words a user can act on.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("a retention policy needs a name".into());
        }
        let named = |what: &str| format!("retention policy {:?}: {what}", self.name);
        self.states()?;
        for (field, value) in [("older_than", &self.older_than), ("archived_for", &self.archived_for)] {
            if let Some(text) = value {
                parse_duration_ms(text).map_err(|e| named(&format!("{field}: {e}")))?;
            }
        }
        if let Some(n) = self.keep_last {
            if n < 0 {
                return Err(named("keep_last must be 0 or more"));
            }
        }
        if self.older_than.is_none() && self.keep_last.is_none() && self.archived_for.is_none() {
            return Err(named(
                "give older_than, keep_last or archived_for: a policy without one would remove every finished run",
            ));
        }
        if self.action == RetentionAction::Archive && self.archived_for.is_some() {
            return Err(named("archived_for picks runs already archived; it cannot archive them"));
        }
        Ok(())
    }

    /// The states matched: the terminal ones named, or all of them.
    pub fn states(&self) -> Result<Vec<RuntimeState>, String> {
        if self.states.is_empty() {
            return Ok(TERMINAL.to_vec());
        }
        self.states
            .iter()
            .map(|s| {
                let state = RuntimeState::parse(&s.to_ascii_uppercase())
                    .ok_or_else(|| format!("retention policy {:?}: unknown run state {s:?}", self.name))?;
                if !state.is_terminal() {
                    return Err(format!(
                        "retention policy {:?}: {s} is not a final state; only finished runs are removed",
                        self.name
                    ));
                }
                Ok(state)
            })
            .collect()
    }

    /// The store query for this policy at `now`.
    pub fn query(&self, experiment_id: Option<String>, now: i64, limit: i64) -> Result<RetentionQuery, String> {
        self.validate()?;
        let before =
            |d: &Option<String>| d.as_deref().map(parse_duration_ms).transpose().map(|ms| ms.map(|ms| now - ms));
        Ok(RetentionQuery {
            experiment_id,
            states: self.states()?,
            finished_before: before(&self.older_than)?,
            archived_before: before(&self.archived_for)?,
            keep_last: self.keep_last,
            available_only: self.action == RetentionAction::Archive,
            limit,
        })
    }
}

const TERMINAL: [RuntimeState; 4] =
    [RuntimeState::Succeeded, RuntimeState::Failed, RuntimeState::Canceled, RuntimeState::Skipped];

/// Milliseconds of a duration written `30d`, `12h`, `90m`, `45s` or `1w`.
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 30d, 12h, 90m or 45s"))?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return Err(format!("{text:?} is not a duration like 30d, 12h, 90m or 45s")),
    };
    n.checked_mul(unit_ms).ok_or_else(|| format!("{text:?} is too long"))
}

/// What the collector needs from a metadata store.
#[async_trait]
pub trait GcStore: Send + Sync {
    /// Removes a run in one transaction: its rows, its state history, its tasks (so its cache
    /// entries), the artifact rows no other run's tasks use (all of them are kept with
    /// `keep_artifacts`), with journal entries for its logs and its folder of outputs and the
    /// history record. Returns the record.
    async fn remove_run(&self, run_id: &str, removal: &Removal) -> StoreResult<GcRecord>;
    /// Records a removal done elsewhere (a pipeline version's package, orphan objects, an
    /// experiment), with its journal entries, in one transaction.
    async fn record_removal(&self, record: &GcRecord, pending: &[PendingDeletion]) -> StoreResult<()>;
    /// Journal entries, oldest first.
    async fn pending_deletions(&self, limit: i64) -> StoreResult<Vec<PendingDeletion>>;
    /// Ends journal entries in one transaction, adding what each deleted (objects, bytes) to
    /// its history record (done when it was the record's last entry). An entry already ended
    /// (by another collector) counts nothing.
    async fn finish_deletions(&self, done: &[(PendingDeletion, i64, i64)], now: i64) -> StoreResult<()>;
    /// Which of these URIs an artifact row refers to.
    async fn referenced_uris(&self, uris: &[String]) -> StoreResult<BTreeSet<String>>;
    /// Up to `limit` runs and recurring runs of an experiment (what a cascade removes).
    async fn experiment_members(&self, experiment_id: &str, limit: i64) -> StoreResult<(Vec<String>, Vec<String>)>;
    /// Runs a policy matches, oldest first, at most `query.limit`.
    async fn retention_candidates(&self, query: &RetentionQuery) -> StoreResult<Vec<RunCandidate>>;
    /// Records the archiving time of archived runs that have none (archived before weir kept
    /// it, or restored), as `now`: their time counts from the first look.
    async fn stamp_archived(&self, now: i64) -> StoreResult<u64>;
    /// Experiments with their own policies.
    async fn experiment_policies(&self) -> StoreResult<Vec<(String, Vec<RetentionPolicy>)>>;
    async fn get_experiment_policies(&self, experiment_id: &str) -> StoreResult<Option<Vec<RetentionPolicy>>>;
    /// Sets (Some) or clears (None) an experiment's own policies; fails if it does not exist.
    async fn set_experiment_policies(
        &self,
        experiment_id: &str,
        policies: Option<&[RetentionPolicy]>,
        now: i64,
    ) -> StoreResult<()>;
    /// The history, newest first: `limit` records from after `before` (`(at, id)` of the last
    /// record of the previous page).
    async fn gc_history(&self, limit: i64, before: Option<(i64, String)>) -> StoreResult<Vec<GcRecord>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: &str) -> RetentionPolicy {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("30d"), Ok(30 * 86_400_000));
        assert_eq!(parse_duration_ms("90m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("2w"), Ok(14 * 86_400_000));
        assert!(parse_duration_ms("30").unwrap_err().contains("not a duration"));
        assert!(parse_duration_ms("d").is_err());
        assert!(parse_duration_ms("9999999999999999d").unwrap_err().contains("too long"));
    }

    #[test]
    fn policies_are_checked() {
        let ok = policy(r#"{"name": "failed", "states": ["failed"], "older_than": "30d"}"#);
        let q = ok.query(None, 100 * 86_400_000, 10).unwrap();
        assert_eq!(q.states, vec![RuntimeState::Failed]);
        assert_eq!(q.finished_before, Some(70 * 86_400_000));
        let everything = policy(r#"{"name": "all"}"#);
        assert!(everything.validate().unwrap_err().contains("every finished run"));
        let running = policy(r#"{"name": "r", "states": ["RUNNING"], "keep_last": 1}"#);
        assert!(running.validate().unwrap_err().contains("not a final state"));
        let unknown = policy(r#"{"name": "r", "states": ["DONE"], "keep_last": 1}"#);
        assert!(unknown.validate().unwrap_err().contains("unknown run state"));
        let bad = policy(r#"{"name": "r", "older_than": "soon"}"#);
        assert!(bad.validate().unwrap_err().contains("older_than"));
        assert!(serde_json::from_str::<RetentionPolicy>(r#"{"name": "r", "keep": 1}"#).is_err());
        let archive = policy(r#"{"name": "a", "archived_for": "7d", "action": "archive"}"#);
        assert!(archive.validate().is_err());
        assert_eq!(policy(r#"{"name": "all", "keep_last": 5}"#).states().unwrap().len(), 4);
    }
}
