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
                    out.push(Reference { key, objects, what: format!("artifact {}", int(row, id)) });
                }
            }
        }
        "tasks" => {
            let (id, run, kind, attempts) =
                (column(chunk, "id"), column(chunk, "run_id"), column(chunk, "kind"), column(chunk, "attempts"));
            for row in &chunk.rows {
                if text(row, kind) != "container" {
                    continue;
                }
                for attempt in 1..=int(row, attempts) {
                    let key = weir_artifacts::layout::log_key(&text(row, run), &text(row, id), attempt);
                    out.push(Reference {
                        key,
                        objects: 1,
                        what: format!("log of task {} attempt {attempt}", text(row, id)),
                    });
                }
            }
        }
        _ => {}
    }
    out
}

/// Whether a reference is satisfied by a set of keys; returns the keys it covers.
pub fn covered<'a>(reference: &Reference, keys: &'a BTreeSet<String>) -> Option<Vec<&'a String>> {
    if let Some(exact) = keys.get(&reference.key) {
        return Some(vec![exact]);
    }
    let prefix = format!("{}/", reference.key);
    let under: Vec<&String> = keys.range(prefix.clone()..).take_while(|k| k.starts_with(&prefix)).collect();
    (under.len() as i64 >= reference.objects).then_some(under)
}
