//! KFP's ML Metadata database (`metadb`), read only: for each run, the executions of its
//! `system.PipelineRun` context (its tasks), their properties, their events and the artifacts
//! those name, with their properties.
//!
//! MLMD's tables and encodings are from `ml_metadata/util/metadata_source_query_config.cc`
//! (v1.14.0, schema 10; v1.5.0 is schema 7, without `external_id`, `proto_value`,
//! `bool_value`) and how KFP writes them from `backend/src/v2/metadata/client.go` and
//! `converter.go`. Only the columns schema 7 and 10 share are read.

use std::collections::HashMap;

use base64::Engine as _;
use prost::Message as _;
use serde_json::{Map, Value};

use crate::source::{Dialect, Source};
use crate::ImportError;

/// MLMD's prefix of a `google.protobuf.Struct` kept in `string_value`
/// (`ml_metadata/util/struct_utils.cc`).
const STRUCT_PREFIX: &str = "mlmd-struct::";

/// Execution states (`metadata_store.proto`).
pub const COMPLETE: i64 = 3;
pub const FAILED: i64 = 4;
pub const CACHED: i64 = 5;
pub const CANCELED: i64 = 6;

/// Event types.
pub const INPUT: i64 = 3;
pub const OUTPUT: i64 = 4;

#[derive(Debug, Clone)]
pub struct Execution {
    pub id: i64,
    pub type_name: String,
    pub state: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub properties: Map<String, Value>,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub execution_id: i64,
    pub artifact_id: i64,
    pub kind: i64,
    /// The input's or output's name (the event path's key).
    pub key: String,
}

#[derive(Debug, Clone)]
pub struct Artifact {
    pub type_name: String,
    pub uri: String,
    pub created_ms: i64,
    pub properties: Map<String, Value>,
}

/// What MLMD holds of one run.
#[derive(Debug, Clone, Default)]
pub struct RunRecord {
    pub executions: Vec<Execution>,
    pub events: Vec<Event>,
    pub artifacts: HashMap<i64, Artifact>,
}

/// An open snapshot of MLMD's database.
pub struct Mlmd {
    source: Source,
    /// MLMD's table names as the database spells them (MySQL keeps `Execution`, PostgreSQL
    /// may have folded it to `execution`).
    names: HashMap<&'static str, String>,
    pub schema_version: Option<i64>,
}

const TABLES: &[&str] = &[
    "Type",
    "Context",
    "Association",
    "Execution",
    "ExecutionProperty",
    "Event",
    "EventPath",
    "Artifact",
    "ArtifactProperty",
    "MLMDEnv",
];

impl Mlmd {
    pub async fn open(url: &str) -> Result<Self, ImportError> {
        let source = Source::open(url).await?;
        let mut names = HashMap::new();
        for table in TABLES {
            if let Some(found) = source.tables.keys().find(|t| t.eq_ignore_ascii_case(table)) {
                names.insert(*table, found.clone());
            }
        }
        let missing: Vec<&str> = TABLES.iter().copied().filter(|t| *t != "MLMDEnv" && !names.contains_key(t)).collect();
        if !missing.is_empty() {
            source.close().await;
            return Err(ImportError::Invalid(format!(
                "{} is not an ML Metadata database (no {}): name KFP's metadb (--mlmd-db)",
                crate::source::redact(url),
                missing.join(", ")
            )));
        }
        let mut mlmd = Self { source, names, schema_version: None };
        if mlmd.names.contains_key("MLMDEnv") {
            let sql = format!("SELECT {} FROM {}", mlmd.text("schema_version"), mlmd.table("MLMDEnv"));
            let rows = mlmd.source.query(&sql, &[], 1).await?;
            mlmd.schema_version = rows.first().and_then(|r| r[0].as_deref()).and_then(|v| v.parse().ok());
        }
        Ok(mlmd)
    }

    pub async fn close(self) {
        self.source.close().await;
    }

    fn quote(&self, name: &str) -> String {
        match self.source.dialect {
            Dialect::Mysql => format!("`{name}`"),
            Dialect::Postgres => format!("\"{name}\""),
        }
    }

    fn table(&self, name: &'static str) -> String {
        self.quote(self.names.get(name).map(String::as_str).unwrap_or(name))
    }

    /// A column (or `alias.column`) read as text.
    fn text(&self, column: &str) -> String {
        let quoted = match column.split_once('.') {
            Some((alias, name)) => format!("{alias}.{}", self.quote(name)),
            None => self.quote(column),
        };
        match self.source.dialect {
            Dialect::Mysql => format!("CAST({quoted} AS CHAR)"),
            Dialect::Postgres => format!("{quoted}::text"),
        }
    }

    fn placeholders(&self, n: usize) -> String {
        vec!["?"; n].join(", ")
    }

    /// How many executions and artifacts MLMD holds for runs, in all (for the plan).
    pub async fn totals(&mut self) -> Result<(u64, u64), ImportError> {
        let count = self.cast_count();
        let executions_sql = format!("SELECT {count} FROM {}", self.table("Execution"));
        let artifacts_sql = format!("SELECT {count} FROM {}", self.table("Artifact"));
        let executions = self.source.query(&executions_sql, &[], 1).await?;
        let artifacts = self.source.query(&artifacts_sql, &[], 1).await?;
        let number = |rows: Vec<Vec<Option<String>>>| {
            rows.first().and_then(|r| r[0].as_deref()).and_then(|v| v.parse().ok()).unwrap_or(0)
        };
        Ok((number(executions), number(artifacts)))
    }

    fn cast_count(&self) -> &'static str {
        match self.source.dialect {
            Dialect::Mysql => "CAST(COUNT(*) AS CHAR)",
            Dialect::Postgres => "COUNT(*)::text",
        }
    }

    /// What MLMD holds of these runs (by KFP run UUID): four queries per call, whatever the
    /// number of runs.
    pub async fn runs(&mut self, run_ids: &[String]) -> Result<HashMap<String, RunRecord>, ImportError> {
        let mut out: HashMap<String, RunRecord> = HashMap::new();
        if run_ids.is_empty() {
            return Ok(out);
        }
        // Executions of each run's context, with their type.
        let sql = format!(
            "SELECT {}, {}, {}, {}, {}, {} FROM {} c JOIN {} ct ON ct.{id} = c.{type_id} \
             JOIN {} a ON a.{context_id} = c.{id} JOIN {} e ON e.{id} = a.{execution_id} \
             JOIN {} et ON et.{id} = e.{type_id} WHERE ct.{name} = 'system.PipelineRun' AND c.{name} IN ({})",
            self.text("c.name"),
            self.text("e.id"),
            self.text("et.name"),
            self.text("e.last_known_state"),
            self.text("e.create_time_since_epoch"),
            self.text("e.last_update_time_since_epoch"),
            self.table("Context"),
            self.table("Type"),
            self.table("Association"),
            self.table("Execution"),
            self.table("Type"),
            self.placeholders(run_ids.len()),
            id = self.quote("id"),
            type_id = self.quote("type_id"),
            context_id = self.quote("context_id"),
            execution_id = self.quote("execution_id"),
            name = self.quote("name"),
        );
        let mut run_of: HashMap<i64, String> = HashMap::new();
        for row in self.source.query(&sql, run_ids, 6).await? {
            let run = text(&row[0]);
            let id = int(&row[1]);
            run_of.insert(id, run.clone());
            out.entry(run).or_default().executions.push(Execution {
                id,
                type_name: text(&row[2]),
                state: int(&row[3]),
                created_ms: int(&row[4]),
                updated_ms: int(&row[5]),
                properties: Map::new(),
            });
        }
        // Integer ids are written into the SQL (PostgreSQL compares no integer with a text bind).
        let mut execution_ids: Vec<i64> = run_of.keys().copied().collect();
        execution_ids.sort_unstable();
        if execution_ids.is_empty() {
            return Ok(out);
        }
        let mut properties: HashMap<i64, Map<String, Value>> = HashMap::new();
        for chunk in execution_ids.chunks(500) {
            for (id, name, value) in self.properties("ExecutionProperty", "execution_id", chunk).await? {
                properties.entry(id).or_default().insert(name, value);
            }
        }
        for record in out.values_mut() {
            for execution in &mut record.executions {
                execution.properties = properties.remove(&execution.id).unwrap_or_default();
            }
        }

        // Events with their path's key, then the artifacts they name.
        let mut artifact_run: Vec<(i64, String)> = Vec::new();
        for chunk in execution_ids.chunks(500) {
            let sql = format!(
                "SELECT {}, {}, {}, {} FROM {} ev LEFT JOIN {} p ON p.{event_id} = ev.{id} AND p.{is_index_step} = 0 \
                 WHERE ev.{execution_id} IN ({})",
                self.text("ev.execution_id"),
                self.text("ev.artifact_id"),
                self.text("ev.type"),
                self.text("p.step_key"),
                self.table("Event"),
                self.table("EventPath"),
                list(chunk),
                id = self.quote("id"),
                event_id = self.quote("event_id"),
                is_index_step = self.quote("is_index_step"),
                execution_id = self.quote("execution_id"),
            );
            for row in self.source.query(&sql, &[], 4).await? {
                let event = Event {
                    execution_id: int(&row[0]),
                    artifact_id: int(&row[1]),
                    kind: int(&row[2]),
                    key: text(&row[3]),
                };
                if let Some(run) = run_of.get(&event.execution_id) {
                    artifact_run.push((event.artifact_id, run.clone()));
                    out.entry(run.clone()).or_default().events.push(event);
                }
            }
        }
        let artifact_ids: Vec<i64> = {
            let mut ids: Vec<i64> = artifact_run.iter().map(|(id, _)| *id).collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        let mut artifacts: HashMap<i64, Artifact> = HashMap::new();
        for chunk in artifact_ids.chunks(500) {
            let sql = format!(
                "SELECT {}, {}, {}, {} FROM {} ar JOIN {} t ON t.{id} = ar.{type_id} WHERE ar.{id} IN ({})",
                self.text("ar.id"),
                self.text("t.name"),
                self.text("ar.uri"),
                self.text("ar.create_time_since_epoch"),
                self.table("Artifact"),
                self.table("Type"),
                list(chunk),
                id = self.quote("id"),
                type_id = self.quote("type_id"),
            );
            for row in self.source.query(&sql, &[], 4).await? {
                let id = int(&row[0]);
                artifacts.insert(
                    id,
                    Artifact {
                        type_name: text(&row[1]),
                        uri: text(&row[2]),
                        created_ms: int(&row[3]),
                        properties: Map::new(),
                    },
                );
            }
            for (id, name, value) in self.properties("ArtifactProperty", "artifact_id", chunk).await? {
                if let Some(artifact) = artifacts.get_mut(&id) {
                    artifact.properties.insert(name, value);
                }
            }
        }
        for (artifact_id, run) in artifact_run {
            if let (Some(artifact), Some(record)) = (artifacts.get(&artifact_id), out.get_mut(&run)) {
                record.artifacts.entry(artifact_id).or_insert_with(|| artifact.clone());
            }
        }
        Ok(out)
    }

    /// The custom properties of some executions or artifacts: (owner id, name, value).
    async fn properties(
        &mut self,
        table: &'static str,
        owner: &str,
        ids: &[i64],
    ) -> Result<Vec<(i64, String, Value)>, ImportError> {
        let sql = format!(
            "SELECT {}, {}, {}, {}, {} FROM {} WHERE {} IN ({})",
            self.text(owner),
            self.text("name"),
            self.text("int_value"),
            self.text("double_value"),
            self.text("string_value"),
            self.table(table),
            self.quote(owner),
            list(ids),
        );
        let rows = self.source.query(&sql, &[], 5).await?;
        Ok(rows.into_iter().map(|row| (int(&row[0]), text(&row[1]), value(&row[2], &row[3], &row[4]))).collect())
    }
}

/// Integer ids as an SQL list.
fn list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
}

fn text(value: &Option<String>) -> String {
    value.clone().unwrap_or_default()
}

fn int(value: &Option<String>) -> i64 {
    value.as_deref().and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// A property's value: whichever column is set. MLMD keeps a struct in `string_value` behind
/// its prefix, as base64 of the serialized `google.protobuf.Struct`.
fn value(int_value: &Option<String>, double_value: &Option<String>, string_value: &Option<String>) -> Value {
    if let Some(text) = string_value {
        if let Some(encoded) = text.strip_prefix(STRUCT_PREFIX) {
            return decode_struct(encoded).unwrap_or_else(|| Value::String(text.clone()));
        }
        return Value::String(text.clone());
    }
    if let Some(number) = double_value.as_deref().and_then(|v| v.trim().parse::<f64>().ok()) {
        return serde_json::Number::from_f64(number).map(Value::Number).unwrap_or(Value::Null);
    }
    if let Some(number) = int_value.as_deref().and_then(|v| v.trim().parse::<i64>().ok()) {
        return Value::from(number);
    }
    Value::Null
}

fn decode_struct(encoded: &str) -> Option<Value> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let decoded = prost_types::Struct::decode(bytes.as_slice()).ok()?;
    Some(struct_json(&decoded))
}

fn struct_json(s: &prost_types::Struct) -> Value {
    Value::Object(s.fields.iter().map(|(k, v)| (k.clone(), value_json(v))).collect())
}

fn value_json(v: &prost_types::Value) -> Value {
    use prost_types::value::Kind;
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n).map(Value::Number).unwrap_or(Value::Null),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::StructValue(s)) => struct_json(s),
        Some(Kind::ListValue(l)) => Value::Array(l.values.iter().map(value_json).collect()),
    }
}

/// Artifact metadata as the component set it: KFP wraps lists as `{"list": […]}` and objects
/// as `{"struct": {…}}` when it writes them (`converter.go` `StructValueToMLMDValue`).
pub fn unwrap_metadata(value: Value) -> Value {
    match value {
        Value::Object(mut map) if map.len() == 1 && (map.contains_key("list") || map.contains_key("struct")) => {
            let inner = map.remove("list").or_else(|| map.remove("struct")).unwrap_or(Value::Null);
            unwrap_metadata(inner)
        }
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, unwrap_metadata(v))).collect()),
        Value::Array(items) => Value::Array(items.into_iter().map(unwrap_metadata).collect()),
        other => other,
    }
}

/// A number KFP's struct gave (every number is a double) as an integer when it is one.
pub fn tidy_number(value: &Value) -> Value {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9e15 => Value::from(f as i64),
            _ => value.clone(),
        },
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), tidy_number(v))).collect()),
        Value::Array(items) => Value::Array(items.iter().map(tidy_number).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structs_decode_from_mlmd_text() {
        let s = prost_types::Struct {
            fields: [
                ("n".to_string(), prost_types::Value { kind: Some(prost_types::value::Kind::NumberValue(3.0)) }),
                ("s".to_string(), prost_types::Value { kind: Some(prost_types::value::Kind::StringValue("x".into())) }),
            ]
            .into(),
        };
        let text = format!("{STRUCT_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(s.encode_to_vec()));
        assert_eq!(value(&None, &None, &Some(text)), serde_json::json!({"n": 3.0, "s": "x"}));
        assert_eq!(value(&Some("1".into()), &None, &None), serde_json::json!(1));
        assert_eq!(value(&None, &Some("0.5".into()), &None), serde_json::json!(0.5));
        assert_eq!(
            unwrap_metadata(serde_json::json!({"labels": {"list": ["a"]}, "cfg": {"struct": {"k": 1}}})),
            serde_json::json!({"labels": ["a"], "cfg": {"k": 1}})
        );
    }
}
