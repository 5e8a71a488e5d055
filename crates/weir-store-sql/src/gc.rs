//! Removals, the journal of object deletions and retention queries (migration 10).

use std::collections::BTreeSet;

use async_trait::async_trait;
use weir_store::*;

use crate::rows::{TaskRow, TASK_COLUMNS};
use crate::text::Text;
use crate::{bind_all, check_text, map_err, write_tx, Bind, Dialect, SqlStore, Stmt};

/// Rows bound per `IN (…)` list: well under every backend's limit on placeholders.
const CHUNK: usize = 500;

/// The `run_id` a run's artifacts get when it is removed with `keep_artifacts`: kept on
/// purpose, so no later removal frees them as left over.
pub(crate) fn kept_owner(run_id: &str) -> String {
    format!("kept:{run_id}")
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

pub(crate) fn record_insert(record: &GcRecord) -> Stmt {
    Stmt::new(crate::schema::GC_HISTORY.insert_sql(1), crate::binds::gc_record_binds(record))
}

/// Records the archiving of the runs `filter` (a condition on `r`) selects that have no record
/// yet: archiving an archived run again keeps its first time.
pub(crate) fn stamp_archived_where(filter: &str, mut binds: Vec<Bind>, now: i64) -> Stmt {
    binds.insert(0, Bind::Int(now));
    Stmt::new(
        format!(
            "INSERT INTO run_archived (run_id, archived_at) SELECT r.id, ? FROM runs r \
             LEFT JOIN run_archived a ON a.run_id = r.id WHERE {filter} AND a.run_id IS NULL"
        ),
        binds,
    )
}

pub(crate) fn pending_insert(entry: &PendingDeletion) -> Stmt {
    Stmt::new(crate::schema::GC_PENDING.insert_sql(1), crate::binds::pending_binds(entry))
}

impl SqlStore {
    /// A read that, inside a transaction, sees the latest committed rows and holds them until
    /// the transaction ends (MariaDB's repeatable-read snapshot would otherwise hide a cache
    /// hit written after it began).
    fn locking(&self, sql: &str) -> String {
        match self.dialect {
            Dialect::MySql => format!("{sql} LOCK IN SHARE MODE"),
            Dialect::Postgres => format!("{sql} FOR SHARE"),
            Dialect::Sqlite => sql.to_string(),
        }
    }
}

#[async_trait]
impl GcStore for SqlStore {
    async fn remove_run(&self, run_id: &str, removal: &Removal) -> StoreResult<GcRecord> {
        let key = [Bind::Text(run_id.into())];
        check_text(&key)?;
        let (display_name, experiment_id, state, storage_state): (Text, Text, Text, Text) = self
            .fetch_optional::<(Text, Text, Text, Text)>(
                "SELECT display_name, experiment_id, state, storage_state FROM runs WHERE id = ?",
                &key,
            )
            .await?
            .ok_or_else(|| StoreError::not_found("run", run_id))?;
        // The run's tasks are read before the transaction: a finished run's do not change, and
        // the transaction deletes them first, which waits for any cache hit holding one.
        let tasks: Vec<Task> = self
            .fetch_all::<TaskRow>(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE run_id = ?"), &key)
            .await?
            .into_iter()
            .map(TaskRow::into_domain)
            .collect::<StoreResult<_>>()?;
        let pipeline_name = tasks.iter().map(|t| t.pipeline_name.clone()).find(|n| !n.is_empty());
        let fingerprints: Vec<String> = tasks
            .iter()
            .filter(|t| !t.fingerprint.is_empty())
            .map(|t| t.fingerprint.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        // Artifacts a cache hit of this run borrowed from a run removed before it.
        let borrowed: BTreeSet<i64> =
            tasks.iter().filter(|t| t.cached).flat_map(|t| t.outputs.artifact_ids()).collect();

        let own_sql = self.sql("SELECT id, run_id, uri FROM artifacts WHERE run_id = ?");
        let users_sql = |n: usize| {
            self.sql(&self.locking(&format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE cached = ? AND run_id <> ? AND pipeline_name = ? \
                 AND fingerprint IN ({})",
                placeholders(n)
            )))
        };
        let borrowed_sql = |n: usize| {
            self.sql(&format!(
                "SELECT a.id, a.run_id, a.uri FROM artifacts a LEFT JOIN runs r ON r.id = a.run_id \
                 WHERE a.id IN ({}) AND r.id IS NULL",
                placeholders(n)
            ))
        };
        let delete_tasks = self.sql("DELETE FROM tasks WHERE run_id = ?");
        let record_id = removal.history_id.clone();
        let keep = removal.keep_artifacts;
        let prefixes = removal.prefixes.clone();
        let now = removal.now;
        let record = write_tx!(self, |tx| {
            // Built afresh on each attempt: a transaction the database aborted runs again.
            let mut statements: Vec<Stmt> = Vec::new();
            let deleted_tasks =
                bind_all!(sqlx::query(&delete_tasks), &key).execute(&mut *tx).await.map_err(map_err)?.rows_affected();
            // Artifact ids other runs' cache hits use: they share this run's fingerprints.
            let mut used: BTreeSet<i64> = BTreeSet::new();
            if let Some(pipeline) = &pipeline_name {
                for chunk in fingerprints.chunks(CHUNK) {
                    let mut binds = vec![Bind::Bool(true), Bind::Text(run_id.into()), Bind::Text(pipeline.clone())];
                    binds.extend(chunk.iter().map(|f| Bind::Text(f.clone())));
                    let sql = users_sql(chunk.len());
                    let rows = bind_all!(sqlx::query_as::<_, TaskRow>(&sql), &binds)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    for row in rows {
                        used.extend(row.into_domain()?.outputs.artifact_ids());
                    }
                }
            }
            let mut candidates: Vec<(i64, String, String)> =
                bind_all!(sqlx::query_as::<_, (i64, Text, Text)>(&own_sql), &key)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?
                    .into_iter()
                    .map(|(id, run, uri)| (id, run.0, uri.0))
                    .collect();
            let borrowed: Vec<i64> = borrowed.iter().copied().collect();
            for chunk in borrowed.chunks(CHUNK) {
                let binds: Vec<Bind> = chunk.iter().map(|id| Bind::Int(*id)).collect();
                let sql = borrowed_sql(chunk.len());
                let rows = bind_all!(sqlx::query_as::<_, (i64, Text, Text)>(&sql), &binds)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(map_err)?;
                // Artifacts kept on purpose (`kept:`) stay.
                candidates.extend(
                    rows.into_iter().filter(|(_, run, _)| !run.0.starts_with("kept:")).map(|(id, r, u)| (id, r.0, u.0)),
                );
            }
            let mut freed: Vec<(i64, String)> = Vec::new();
            let mut kept_in_use = 0i64;
            for (id, owner, uri) in candidates {
                if used.contains(&id) {
                    kept_in_use += 1;
                } else if keep && owner == run_id {
                    // Kept with the run's other artifacts below.
                } else {
                    freed.push((id, uri));
                }
            }
            for chunk in freed.chunks(CHUNK) {
                let binds: Vec<Bind> = chunk.iter().map(|(id, _)| Bind::Int(*id)).collect();
                statements.push(Stmt::new(
                    format!("DELETE FROM artifacts WHERE id IN ({})", placeholders(chunk.len())),
                    binds,
                ));
            }
            if keep {
                statements.push(Stmt::new(
                    "UPDATE artifacts SET run_id = ? WHERE run_id = ?",
                    vec![Bind::Text(kept_owner(run_id)), Bind::Text(run_id.into())],
                ));
            }
            for sql in [
                "DELETE FROM run_state_history WHERE run_id = ?",
                "DELETE FROM run_leases WHERE run_id = ?",
                "DELETE FROM run_archived WHERE run_id = ?",
            ] {
                statements.push(Stmt::new(sql, vec![Bind::Text(run_id.into())]));
            }
            statements.push(
                Stmt::new("DELETE FROM runs WHERE id = ?", vec![Bind::Text(run_id.into())])
                    .or_fail(StoreError::not_found("run", run_id)),
            );
            // Objects go after the rows: the journal names the run's folders, and the freed
            // artifacts that live elsewhere (outputs a cache hit borrowed from a run removed
            // earlier).
            let mut entries: Vec<String> = prefixes.clone();
            for (_, uri) in &freed {
                entries.push(format!("uri:{uri}"));
            }
            let record = GcRecord {
                id: record_id.clone(),
                at: now,
                kind: "run".into(),
                target_id: run_id.into(),
                display_name: display_name.0.clone(),
                policy: removal.policy.clone(),
                detail: serde_json::json!({
                    "action": "delete",
                    "experiment_id": experiment_id.0,
                    "state": state.0,
                    "storage_state": storage_state.0,
                    "tasks": deleted_tasks,
                    "artifacts_deleted": freed.len(),
                    "artifacts_kept_for_cache": kept_in_use,
                    "keep_artifacts": keep,
                }),
                objects: 0,
                bytes: 0,
                done_at: if entries.is_empty() { now } else { 0 },
            };
            statements.push(record_insert(&record));
            for (n, prefix) in entries.into_iter().enumerate() {
                statements.push(pending_insert(&PendingDeletion {
                    id: format!("{record_id}-{n}"),
                    history_id: record_id.clone(),
                    prefix,
                    created_at: now,
                }));
            }
            for stmt in statements {
                check_text(&stmt.binds)?;
                let sql = self.sql(&stmt.sql);
                let result = bind_all!(sqlx::query(&sql), &stmt.binds).execute(&mut *tx).await.map_err(map_err)?;
                if let Some(error) = stmt.failure(result.rows_affected()) {
                    return Err(error.clone());
                }
            }
            Ok(record)
        })?;
        Ok(record)
    }

    async fn record_removal(&self, record: &GcRecord, pending: &[PendingDeletion]) -> StoreResult<()> {
        let mut statements = vec![record_insert(record)];
        statements.extend(pending.iter().map(pending_insert));
        self.transaction(statements).await
    }

    async fn pending_deletions(&self, limit: i64) -> StoreResult<Vec<PendingDeletion>> {
        let rows = self
            .fetch_all::<(Text, Text, Text, i64)>(
                "SELECT id, history_id, prefix, created_at FROM gc_pending ORDER BY created_at, id LIMIT ?",
                &[Bind::Int(limit)],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, history_id, prefix, created_at)| PendingDeletion {
                id: id.0,
                history_id: history_id.0,
                prefix: prefix.0,
                created_at,
            })
            .collect())
    }

    async fn finish_deletions(&self, done: &[(PendingDeletion, i64, i64)], now: i64) -> StoreResult<()> {
        if done.is_empty() {
            return Ok(());
        }
        for (entry, _, _) in done {
            check_text(&[Bind::Text(entry.id.clone()), Bind::Text(entry.history_id.clone())])?;
        }
        let delete_sql = self.sql("DELETE FROM gc_pending WHERE id = ?");
        let add_sql = self.sql("UPDATE gc_history SET objects = objects + ?, bytes = bytes + ? WHERE id = ?");
        let left_sql = self.sql("SELECT COUNT(*) FROM gc_pending WHERE history_id = ?");
        let done_sql = self.sql("UPDATE gc_history SET done_at = ? WHERE id = ? AND done_at = 0");
        write_tx!(self, |tx| {
            let mut records: BTreeSet<&str> = BTreeSet::new();
            for (entry, objects, bytes) in done {
                let id = [Bind::Text(entry.id.clone())];
                let gone = bind_all!(sqlx::query(&delete_sql), &id).execute(&mut *tx).await.map_err(map_err)?;
                // Another collector ended it first: its counts are in already.
                if gone.rows_affected() == 0 {
                    continue;
                }
                let add = [Bind::Int(*objects), Bind::Int(*bytes), Bind::Text(entry.history_id.clone())];
                bind_all!(sqlx::query(&add_sql), &add).execute(&mut *tx).await.map_err(map_err)?;
                records.insert(&entry.history_id);
            }
            for record in records {
                let key = [Bind::Text(record.to_string())];
                let left = bind_all!(sqlx::query_scalar::<_, i64>(&left_sql), &key)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if left == 0 {
                    let stamp = [Bind::Int(now), Bind::Text(record.to_string())];
                    bind_all!(sqlx::query(&done_sql), &stamp).execute(&mut *tx).await.map_err(map_err)?;
                }
            }
            Ok(())
        })
    }

    async fn referenced_uris(&self, uris: &[String]) -> StoreResult<BTreeSet<String>> {
        let mut found = BTreeSet::new();
        let unique: Vec<&String> = uris.iter().collect::<BTreeSet<_>>().into_iter().collect();
        for chunk in unique.chunks(CHUNK) {
            let binds: Vec<Bind> = chunk.iter().map(|u| Bind::Text((*u).clone())).collect();
            let rows = self
                .fetch_all::<(Text,)>(
                    &format!("SELECT DISTINCT uri FROM artifacts WHERE uri IN ({})", placeholders(chunk.len())),
                    &binds,
                )
                .await?;
            found.extend(rows.into_iter().map(|(u,)| u.0));
        }
        Ok(found)
    }

    async fn experiment_members(&self, experiment_id: &str, limit: i64) -> StoreResult<(Vec<String>, Vec<String>)> {
        let binds = [Bind::Text(experiment_id.into()), Bind::Int(limit)];
        let runs = self
            .fetch_all::<(Text,)>("SELECT id FROM runs WHERE experiment_id = ? ORDER BY id LIMIT ?", &binds)
            .await?;
        let recurring = self
            .fetch_all::<(Text,)>("SELECT id FROM recurring_runs WHERE experiment_id = ? ORDER BY id LIMIT ?", &binds)
            .await?;
        Ok((runs.into_iter().map(|(t,)| t.0).collect(), recurring.into_iter().map(|(t,)| t.0).collect()))
    }

    async fn retention_candidates(&self, query: &RetentionQuery) -> StoreResult<Vec<RunCandidate>> {
        if query.states.is_empty() || query.states.iter().any(|s| !s.is_terminal()) {
            return Err(StoreError::InvalidArgument("retention picks finished runs only".into()));
        }
        let mut filter = format!(" WHERE r.state IN ({}) AND r.finished_at > 0", placeholders(query.states.len()));
        let mut binds: Vec<Bind> = query.states.iter().map(|s| Bind::Text(s.as_str().into())).collect();
        match &query.experiment_id {
            Some(experiment) => {
                filter.push_str(" AND r.experiment_id = ?");
                binds.push(Bind::Text(experiment.clone()));
            }
            None => filter.push_str(" AND r.experiment_id NOT IN (SELECT experiment_id FROM retention)"),
        }
        let from = "FROM runs r LEFT JOIN run_archived a ON a.run_id = r.id";
        // The newest `keep_last` runs the policy matches are kept: the boundary is the last
        // of them, and candidates are strictly older.
        let mut boundary: Option<(i64, String)> = None;
        if let Some(keep) = query.keep_last {
            if keep > 0 {
                let sql = format!(
                    "SELECT r.finished_at, r.id {from}{filter} ORDER BY r.finished_at DESC, r.id DESC LIMIT 1 OFFSET ?"
                );
                let mut b = binds.clone();
                b.push(Bind::Int(keep - 1));
                match self.fetch_optional::<(i64, Text)>(&sql, &b).await? {
                    Some((at, id)) => boundary = Some((at, id.0)),
                    // Fewer runs than kept: none goes.
                    None => return Ok(Vec::new()),
                }
            }
        }
        if let Some((at, id)) = boundary {
            filter.push_str(" AND (r.finished_at < ? OR (r.finished_at = ? AND r.id < ?))");
            binds.extend([Bind::Int(at), Bind::Int(at), Bind::Text(id)]);
        }
        if let Some(before) = query.finished_before {
            filter.push_str(" AND r.finished_at < ?");
            binds.push(Bind::Int(before));
        }
        if query.available_only {
            filter.push_str(" AND r.storage_state = ?");
            binds.push(Bind::Text(StorageState::Available.as_str().into()));
        }
        if let Some(before) = query.archived_before {
            filter.push_str(" AND r.storage_state = ? AND a.archived_at > 0 AND a.archived_at < ?");
            binds.extend([Bind::Text(StorageState::Archived.as_str().into()), Bind::Int(before)]);
        }
        binds.push(Bind::Int(query.limit));
        let sql = format!(
            "SELECT r.id, r.display_name, r.experiment_id, r.state, r.finished_at {from}{filter} \
             ORDER BY r.finished_at, r.id LIMIT ?"
        );
        self.fetch_all::<(Text, Text, Text, Text, i64)>(&sql, &binds)
            .await?
            .into_iter()
            .map(|(id, display_name, experiment_id, state, finished_at)| {
                Ok(RunCandidate {
                    id: id.0,
                    display_name: display_name.0,
                    experiment_id: experiment_id.0,
                    state: RuntimeState::parse(&state.0)
                        .ok_or_else(|| StoreError::Internal(format!("unknown run state {:?}", state.0)))?,
                    finished_at,
                })
            })
            .collect()
    }

    async fn stamp_archived(&self, now: i64) -> StoreResult<u64> {
        // Found by a plain read, then stamped one run at a time: an `INSERT … SELECT` over
        // every archived run would hold a shared lock on each of them (MariaDB), stalling the
        // engine's writes for as long as it runs.
        let missing = self
            .fetch_all::<(Text,)>(
                "SELECT r.id FROM runs r LEFT JOIN run_archived a ON a.run_id = r.id \
                 WHERE r.storage_state = ? AND a.run_id IS NULL",
                &[Bind::Text(StorageState::Archived.as_str().into())],
            )
            .await?;
        let mut stamped = 0u64;
        for chunk in missing.chunks(CHUNK) {
            let statements: Vec<Stmt> = chunk
                .iter()
                .map(|(id,)| stamp_archived_where("r.id = ?", vec![Bind::Text(id.0.clone())], now))
                .collect();
            stamped += statements.len() as u64;
            self.transaction(statements).await?;
        }
        Ok(stamped)
    }

    async fn experiment_policies(&self) -> StoreResult<Vec<(String, Vec<RetentionPolicy>)>> {
        self.fetch_all::<(Text, Text)>("SELECT experiment_id, policies FROM retention ORDER BY experiment_id", &[])
            .await?
            .into_iter()
            .map(|(id, policies)| Ok((id.0, parse_policies(&policies.0)?)))
            .collect()
    }

    async fn get_experiment_policies(&self, experiment_id: &str) -> StoreResult<Option<Vec<RetentionPolicy>>> {
        self.fetch_optional::<(Text,)>(
            "SELECT policies FROM retention WHERE experiment_id = ?",
            &[Bind::Text(experiment_id.into())],
        )
        .await?
        .map(|(p,)| parse_policies(&p.0))
        .transpose()
    }

    async fn set_experiment_policies(
        &self,
        experiment_id: &str,
        policies: Option<&[RetentionPolicy]>,
        now: i64,
    ) -> StoreResult<()> {
        let id = Bind::Text(experiment_id.into());
        let mut statements = vec![
            // Touching the experiment fails the call when it does not exist, and holds it
            // against a concurrent delete.
            Stmt::new("UPDATE experiments SET id = id WHERE id = ?", vec![id.clone()])
                .or_fail(StoreError::not_found("experiment", experiment_id)),
            Stmt::new("DELETE FROM retention WHERE experiment_id = ?", vec![id.clone()]),
        ];
        if let Some(policies) = policies {
            statements.push(Stmt::new(
                crate::schema::RETENTION.insert_sql(1),
                crate::binds::retention_binds(experiment_id, policies, now),
            ));
        }
        self.transaction(statements).await
    }

    async fn gc_history(&self, limit: i64, before: Option<(i64, String)>) -> StoreResult<Vec<GcRecord>> {
        let columns = crate::schema::GC_HISTORY.column_list;
        let (filter, mut binds) = match before {
            Some((at, id)) => {
                (" WHERE at < ? OR (at = ? AND id < ?)".to_string(), vec![Bind::Int(at), Bind::Int(at), Bind::Text(id)])
            }
            None => (String::new(), Vec::new()),
        };
        binds.push(Bind::Int(limit));
        self.fetch_all::<GcRow>(
            &format!("SELECT {columns} FROM gc_history{filter} ORDER BY at DESC, id DESC LIMIT ?"),
            &binds,
        )
        .await?
        .into_iter()
        .map(GcRow::into_domain)
        .collect()
    }
}

fn parse_policies(text: &str) -> StoreResult<Vec<RetentionPolicy>> {
    serde_json::from_str(text).map_err(|e| StoreError::Internal(format!("stored retention policies do not parse: {e}")))
}

#[derive(sqlx::FromRow)]
struct GcRow {
    id: Text,
    at: i64,
    kind: Text,
    target_id: Text,
    display_name: Text,
    policy: Text,
    detail: Text,
    objects: i64,
    bytes: i64,
    done_at: i64,
}

impl GcRow {
    fn into_domain(self) -> StoreResult<GcRecord> {
        Ok(GcRecord {
            id: self.id.0,
            at: self.at,
            kind: self.kind.0,
            target_id: self.target_id.0,
            display_name: self.display_name.0,
            policy: self.policy.0,
            detail: crate::parse_json(&self.detail.0, "removal detail")?,
            objects: self.objects,
            bytes: self.bytes,
            done_at: self.done_at,
        })
    }
}
