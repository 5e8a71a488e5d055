//! Which objects of the artifact store the metadata refers to.

use std::collections::BTreeSet;

use serde_json::Value;
use weir_store::TableDump;

/// An object (or a folder of objects) the metadata needs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reference {
    pub key: String,
    /// Objects expected: 1 for a file (the key itself, or one object under `key/`), n for a
    /// folder of n files.
    pub objects: i64,
    pub what: String,
    /// Where the object may be instead, for an object whose key changed between weir versions
    /// (a log stored by an earlier weir).
    pub or_at: Option<String>,
}

fn column(dump: &TableDump, name: &str) -> Option<usize> {
    dump.columns.iter().position(|c| c == name)
}

fn text(row: &[Value], i: Option<usize>) -> String {
    i.and_then(|i| row.get(i)).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn int(row: &[Value], i: Option<usize>) -> i64 {
    i.and_then(|i| row.get(i)).and_then(Value::as_i64).unwrap_or_default()
}

/// Everything a chunk of metadata rows refers to in an artifact store whose URL is `store_url`.
pub fn references(chunk: &TableDump, store_url: &str) -> Vec<Reference> {
    let mut out = Vec::new();
    match chunk.name.as_str() {
        "pipeline_versions" => {
            let (key, id) = (column(chunk, "package_key"), column(chunk, "id"));
            for row in &chunk.rows {
                out.push(Reference {
                    key: text(row, key),
                    objects: 1,
                    what: format!("package of pipeline version {}", text(row, id)),
                    or_at: None,
                });
            }
        }
        "artifacts" => {
            let (uri, id, count) = (column(chunk, "uri"), column(chunk, "id"), column(chunk, "object_count"));
            for row in &chunk.rows {
                let objects = int(row, count);
                if objects == 0 {
                    continue;
                }
                if let Some(key) = weir_artifacts::layout::key_for_uri(store_url, &text(row, uri)) {
                    out.push(Reference { key, objects, what: format!("artifact {}", int(row, id)), or_at: None });
                }
            }
        }
        "tasks" => {
            let (id, run, kind, attempts) =
                (column(chunk, "id"), column(chunk, "run_id"), column(chunk, "kind"), column(chunk, "attempts"));
            let state = column(chunk, "state");
            for row in &chunk.rows {
                if text(row, kind) != "container" {
                    continue;
                }
                // A running task's last attempt keeps its log in its folder until it ends (or
                // until the next start settles it, after a stop in between): only the attempts
                // that ended have one in the store.
                let mut ended = int(row, attempts);
                if text(row, state) == "RUNNING" {
                    ended -= 1;
                }
                for attempt in 1..=ended {
                    let (run, task) = (text(row, run), text(row, id));
                    out.push(Reference {
                        key: weir_artifacts::layout::log_key(&run, &task, attempt),
                        objects: 1,
                        what: format!("log of task {task} attempt {attempt}"),
                        or_at: Some(weir_artifacts::layout::earlier_log_key(&run, &task, attempt)),
                    });
                }
            }
        }
        _ => {}
    }
    out
}

/// Whether a reference is satisfied by a set of keys, at its key or else where it may be
/// instead; returns the keys it covers.
pub fn covered<'a>(reference: &Reference, keys: &'a BTreeSet<String>) -> Option<Vec<&'a String>> {
    let at = |key: &str| {
        if let Some(exact) = keys.get(key) {
            return Some(vec![exact]);
        }
        let prefix = format!("{key}/");
        let under: Vec<&String> = keys.range(prefix.clone()..).take_while(|k| k.starts_with(&prefix)).collect();
        (under.len() as i64 >= reference.objects).then_some(under)
    };
    at(&reference.key).or_else(|| reference.or_at.as_deref().and_then(at))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_running_task_needs_the_logs_of_its_ended_attempts_only() {
        let columns = ["id", "run_id", "kind", "state", "attempts"].map(String::from).to_vec();
        let rows = vec![
            vec![json!("done"), json!("r"), json!("container"), json!("SUCCEEDED"), json!(2)],
            vec![json!("now"), json!("r"), json!("container"), json!("RUNNING"), json!(2)],
            vec![json!("first"), json!("r"), json!("container"), json!("RUNNING"), json!(1)],
            vec![json!("waiting"), json!("r"), json!("container"), json!("PENDING"), json!(1)],
            vec![json!("dag"), json!("r"), json!("dag"), json!("SUCCEEDED"), json!(0)],
        ];
        let dump = TableDump { name: "tasks".into(), columns, rows };
        let keys: Vec<String> = references(&dump, "file:///store").into_iter().map(|r| r.key).collect();
        let log = |task: &str, attempt: i64| weir_artifacts::layout::log_key("r", task, attempt);
        assert_eq!(keys, vec![log("done", 1), log("done", 2), log("now", 1), log("waiting", 1)]);
    }

    #[test]
    fn a_log_is_found_where_weir_keeps_it_or_where_it_kept_it_before() {
        let columns = ["id", "run_id", "kind", "state", "attempts"].map(String::from).to_vec();
        let rows = vec![vec![json!("t"), json!("r"), json!("container"), json!("SUCCEEDED"), json!(1)]];
        let dump = TableDump { name: "tasks".into(), columns, rows };
        let reference = references(&dump, "file:///store").remove(0);
        let (now, before) = ("logs/r/t.1.log".to_string(), "logs/r/t/1.log".to_string());
        assert_eq!(reference.key, now);
        for key in [&now, &before] {
            let keys = BTreeSet::from([key.clone(), "logs/r/other.1.log".to_string()]);
            assert_eq!(covered(&reference, &keys), Some(vec![key]));
        }
        assert_eq!(covered(&reference, &BTreeSet::from(["logs/r/t.2.log".to_string()])), None);
    }
}
