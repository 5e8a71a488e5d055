//! List queries: KFP's filter, sort and paging, resolved against an entity's fields.
//!
//! Which keys can be filtered and sorted on, and what type each has, is decided here once for
//! every backend; a backend only turns a resolved query into its own query language.

use serde_json::Value;
use weir_api_model::{Cursor, Filter, Operation, PredicateValue};

use crate::error::{StoreError, StoreResult};
use crate::model::*;

pub const DEFAULT_PAGE_SIZE: u32 = 20;
pub const MAX_PAGE_SIZE: u32 = 200;
/// Bounds on a filter, so every backend can run the query it becomes (SQLite refuses
/// expressions nested over 1000 deep, and each value of a time IN is a range of its own).
pub const MAX_PREDICATES: usize = 100;
pub const MAX_IN_VALUES: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    /// Milliseconds since the epoch in the store; seconds (or RFC 3339) in filters.
    Time,
    Int,
}

/// A filterable/sortable field: the API key, its column (same name in every backend) and type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub api: &'static str,
    pub column: &'static str,
    pub kind: FieldKind,
}

const fn f(api: &'static str, column: &'static str, kind: FieldKind) -> Field {
    Field { api, column, kind }
}

use FieldKind::{Text, Time};

const PIPELINE_FIELDS: &[Field] = &[
    f("pipeline_id", "id", Text),
    f("id", "id", Text),
    f("display_name", "display_name", Text),
    f("name", "name", Text),
    f("created_at", "created_at", Time),
    f("description", "description", Text),
    f("namespace", "namespace", Text),
];

const PIPELINE_VERSION_FIELDS: &[Field] = &[
    f("pipeline_version_id", "id", Text),
    f("id", "id", Text),
    f("display_name", "display_name", Text),
    f("name", "name", Text),
    f("created_at", "created_at", Time),
    f("description", "description", Text),
    f("pipeline_id", "pipeline_id", Text),
];

const EXPERIMENT_FIELDS: &[Field] = &[
    f("experiment_id", "id", Text),
    f("id", "id", Text),
    f("display_name", "display_name", Text),
    f("name", "display_name", Text),
    f("created_at", "created_at", Time),
    f("last_run_created_at", "last_run_created_at", Time),
    f("description", "description", Text),
    f("namespace", "namespace", Text),
    f("storage_state", "storage_state", Text),
];

const RUN_FIELDS: &[Field] = &[
    f("run_id", "id", Text),
    f("id", "id", Text),
    f("display_name", "display_name", Text),
    f("name", "display_name", Text),
    f("created_at", "created_at", Time),
    f("finished_at", "finished_at", Time),
    f("scheduled_at", "scheduled_at", Time),
    f("description", "description", Text),
    f("storage_state", "storage_state", Text),
    f("state", "state", Text),
    f("status", "state", Text),
    f("namespace", "namespace", Text),
    f("experiment_id", "experiment_id", Text),
    f("recurring_run_id", "recurring_run_id", Text),
    f("pipeline_version_id", "pipeline_version_id", Text),
    f("pipeline_id", "pipeline_id", Text),
];

const RECURRING_RUN_FIELDS: &[Field] = &[
    f("recurring_run_id", "id", Text),
    f("id", "id", Text),
    f("display_name", "display_name", Text),
    f("name", "display_name", Text),
    f("created_at", "created_at", Time),
    f("updated_at", "updated_at", Time),
    f("description", "description", Text),
    f("experiment_id", "experiment_id", Text),
    f("namespace", "namespace", Text),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Pipeline,
    PipelineVersion,
    Experiment,
    Run,
    RecurringRun,
}

impl Entity {
    /// The keys KFP accepts per resource (`backend/src/apiserver/model/*.go`), plus v1 aliases.
    pub fn fields(self) -> &'static [Field] {
        match self {
            Entity::Pipeline => PIPELINE_FIELDS,
            Entity::PipelineVersion => PIPELINE_VERSION_FIELDS,
            Entity::Experiment => EXPERIMENT_FIELDS,
            Entity::Run => RUN_FIELDS,
            Entity::RecurringRun => RECURRING_RUN_FIELDS,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Entity::Pipeline => "pipelines",
            Entity::PipelineVersion => "pipeline versions",
            Entity::Experiment => "experiments",
            Entity::Run => "runs",
            Entity::RecurringRun => "recurring runs",
        }
    }

    fn field(self, key: &str) -> StoreResult<&'static Field> {
        self.fields().iter().find(|f| f.api == key).ok_or_else(|| {
            let names: Vec<&str> = self.fields().iter().map(|f| f.api).collect();
            StoreError::InvalidArgument(format!(
                "{key:?} is not a field of {}; use one of {}",
                self.name(),
                names.join(", ")
            ))
        })
    }
}

/// A predicate checked against the field's type, with times in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedPredicate {
    pub field: Field,
    pub operation: Operation,
    pub value: ResolvedValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ResolvedValue {
    Text(String),
    Texts(Vec<String>),
    Int(i64),
    Ints(Vec<i64>),
    /// A whole second, as [start, end) in milliseconds: KFP compares times in seconds.
    Second(i64),
    Seconds(Vec<i64>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub entity: Entity,
    pub predicates: Vec<ResolvedPredicate>,
    pub sort: Field,
    pub descending: bool,
    pub page_size: u32,
    /// Resume after this (sort value, id).
    pub after: Option<(Value, String)>,
    filter_text: String,
    scope: String,
}

impl ListQuery {
    /// Resolves KFP list parameters. `scope` names the parent the list is inside (a pipeline id
    /// for versions, an experiment id for runs), both to build its predicate and to bind page
    /// tokens to it.
    pub fn resolve(
        entity: Entity,
        filter_text: &str,
        sort_by: &str,
        page_size: Option<&str>,
        page_token: &str,
        scope: &[(&str, &str)],
    ) -> StoreResult<Self> {
        let invalid = |e: String| StoreError::InvalidArgument(e);
        let filter = Filter::parse(filter_text).map_err(|e| invalid(e.to_string()))?;
        if filter.predicates.len() > MAX_PREDICATES {
            return Err(invalid(format!(
                "a filter may have at most {MAX_PREDICATES} predicates, got {}",
                filter.predicates.len()
            )));
        }
        let mut predicates = Vec::new();
        for p in &filter.predicates {
            let field = *entity.field(&p.key)?;
            let value = resolve_value(&field, p.operation, &p.value)?;
            let values = match &value {
                ResolvedValue::Texts(v) => v.len(),
                ResolvedValue::Ints(v) => v.len(),
                ResolvedValue::Seconds(v) => v.len(),
                _ => 1,
            };
            if values > MAX_IN_VALUES {
                return Err(invalid(format!(
                    "an IN predicate may list at most {MAX_IN_VALUES} values, {:?} lists {values}",
                    p.key
                )));
            }
            predicates.push(ResolvedPredicate { field, operation: p.operation, value });
        }
        let mut scope_text = String::new();
        for (key, value) in scope {
            if value.is_empty() {
                continue;
            }
            let field = *entity.field(key)?;
            predicates.push(ResolvedPredicate {
                field,
                operation: Operation::Equals,
                value: ResolvedValue::Text((*value).to_string()),
            });
            scope_text.push_str(&format!("{key}={value};"));
        }

        let page_size = match page_size.map(str::trim).filter(|s| !s.is_empty()) {
            None => DEFAULT_PAGE_SIZE,
            Some(text) => {
                let n: i64 = text.parse().map_err(|_| invalid(format!("page_size {text:?} is not a number")))?;
                if n < 0 {
                    return Err(invalid(format!("page_size must not be negative, got {n}")));
                }
                if n == 0 {
                    DEFAULT_PAGE_SIZE
                } else {
                    n.min(MAX_PAGE_SIZE as i64) as u32
                }
            }
        };

        let cursor = if page_token.is_empty() {
            None
        } else {
            Some(Cursor::decode(page_token).map_err(|e| invalid(e.to_string()))?)
        };

        let (sort_key, descending) = match parse_sort(sort_by)? {
            Some(sort) => sort,
            None => match &cursor {
                // The client echoes the token with an empty sort_by: the token's sort applies.
                Some(c) => (c.sort_key.clone(), c.descending),
                None => ("created_at".to_string(), false),
            },
        };
        let sort = *entity.field(&sort_key)?;

        let after = match cursor {
            None => None,
            Some(c) => {
                if c.sort_key != sort_key || c.descending != descending {
                    return Err(invalid(format!("page token was made for sort_by {:?}, not {sort_by:?}", c.sort_key)));
                }
                if !filter_text.is_empty() && c.filter != filter_text {
                    return Err(invalid("page token was made for another filter".into()));
                }
                if c.scope != scope_text {
                    return Err(invalid("page token was made for another list".into()));
                }
                if !filter_text.is_empty() || c.filter.is_empty() {
                    Some((c.last_value, c.last_id))
                } else {
                    // Token carries the filter; the caller omitted it on the next page.
                    let filter = Filter::parse(&c.filter).map_err(|e| invalid(e.to_string()))?;
                    for p in &filter.predicates {
                        let field = *entity.field(&p.key)?;
                        let value = resolve_value(&field, p.operation, &p.value)?;
                        predicates.push(ResolvedPredicate { field, operation: p.operation, value });
                    }
                    return Ok(Self {
                        entity,
                        predicates,
                        sort,
                        descending,
                        page_size,
                        after: Some((c.last_value, c.last_id)),
                        filter_text: c.filter,
                        scope: scope_text,
                    });
                }
            }
        };

        Ok(Self {
            entity,
            predicates,
            sort,
            descending,
            page_size,
            after,
            filter_text: filter_text.to_string(),
            scope: scope_text,
        })
    }

    /// Everything in the entity, in primary order; for internal walks (backups, checks).
    pub fn all(entity: Entity) -> Self {
        Self {
            entity,
            predicates: Vec::new(),
            sort: *entity.field("created_at").expect("every entity has created_at"),
            descending: false,
            page_size: MAX_PAGE_SIZE,
            after: None,
            filter_text: String::new(),
            scope: String::new(),
        }
    }
}

fn parse_sort(sort_by: &str) -> StoreResult<Option<(String, bool)>> {
    let mut words = sort_by.split_whitespace();
    let Some(key) = words.next() else {
        return Ok(None);
    };
    let descending = match words.next().map(|w| w.to_ascii_lowercase()) {
        None => false,
        Some(w) if w == "asc" => false,
        Some(w) if w == "desc" => true,
        Some(w) => {
            return Err(StoreError::InvalidArgument(format!(
                "sort_by {sort_by:?}: expected \"field\", \"field asc\" or \"field desc\", got {w:?}"
            )))
        }
    };
    if words.next().is_some() {
        return Err(StoreError::InvalidArgument(format!(
            "sort_by {sort_by:?}: expected \"field\", \"field asc\" or \"field desc\""
        )));
    }
    Ok(Some((key.to_string(), descending)))
}

fn resolve_value(field: &Field, op: Operation, value: &PredicateValue) -> StoreResult<ResolvedValue> {
    let mismatch =
        |what: &str| StoreError::InvalidArgument(format!("{} on {:?} cannot take {what}", op.name(), field.api));
    let resolved = match (field.kind, value) {
        (FieldKind::Text, PredicateValue::String(s)) => ResolvedValue::Text(s.clone()),
        (FieldKind::Text, PredicateValue::Strings(v)) => ResolvedValue::Texts(v.clone()),
        (FieldKind::Text, PredicateValue::Int(i)) if op != Operation::IsSubstring => ResolvedValue::Text(i.to_string()),
        (FieldKind::Time, PredicateValue::Int(i)) => ResolvedValue::Second(*i),
        (FieldKind::Time, PredicateValue::Ints(v)) => ResolvedValue::Seconds(v.clone()),
        (FieldKind::Time, PredicateValue::Timestamp(t)) => ResolvedValue::Second(t.timestamp()),
        (FieldKind::Int, PredicateValue::Int(i)) => ResolvedValue::Int(*i),
        (FieldKind::Int, PredicateValue::Ints(v)) => ResolvedValue::Ints(v.clone()),
        (FieldKind::Text, PredicateValue::Timestamp(_)) => return Err(mismatch("a timestamp_value")),
        (FieldKind::Text, PredicateValue::Ints(_)) => return Err(mismatch("int_values")),
        (FieldKind::Text, PredicateValue::Int(_)) => return Err(mismatch("a number")),
        (_, PredicateValue::String(_)) => return Err(mismatch("a string_value")),
        (_, PredicateValue::Strings(_)) => return Err(mismatch("string_values")),
        (FieldKind::Int, PredicateValue::Timestamp(_)) => return Err(mismatch("a timestamp_value")),
    };
    if op == Operation::IsSubstring && field.kind != FieldKind::Text {
        return Err(mismatch("IS_SUBSTRING"));
    }
    Ok(resolved)
}

/// What the paging code needs to know about a row.
pub trait Listable {
    fn id(&self) -> &str;
    /// The value of a sortable column, as the store holds it.
    fn sort_value(&self, column: &str) -> Value;
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total_size: i64,
    /// Empty on the last page.
    pub next_page_token: String,
}

impl<T: Listable> Page<T> {
    /// Builds a page from up to `page_size + 1` rows fetched in order: the extra row only says
    /// that another page exists.
    pub fn from_rows(mut rows: Vec<T>, total_size: i64, query: &ListQuery) -> Self {
        let mut next_page_token = String::new();
        if rows.len() > query.page_size as usize {
            rows.truncate(query.page_size as usize);
            if let Some(last) = rows.last() {
                next_page_token = Cursor {
                    sort_key: query.sort.api.to_string(),
                    descending: query.descending,
                    last_value: last.sort_value(query.sort.column),
                    last_id: last.id().to_string(),
                    filter: query.filter_text.clone(),
                    scope: query.scope.clone(),
                }
                .encode();
            }
        }
        Self { items: rows, total_size, next_page_token }
    }
}

macro_rules! listable {
    ($ty:ty { $($column:literal => $field:ident),+ $(,)? }) => {
        impl Listable for $ty {
            fn id(&self) -> &str {
                &self.id
            }

            fn sort_value(&self, column: &str) -> Value {
                match column {
                    $($column => Value::from(self.$field.clone()),)+
                    _ => Value::Null,
                }
            }
        }
    };
}

listable!(Pipeline {
    "id" => id, "display_name" => display_name, "name" => name,
    "created_at" => created_at, "description" => description, "namespace" => namespace,
});
listable!(PipelineVersion {
    "id" => id, "display_name" => display_name, "name" => name,
    "created_at" => created_at, "description" => description, "pipeline_id" => pipeline_id,
});

impl Listable for Experiment {
    fn id(&self) -> &str {
        &self.id
    }

    fn sort_value(&self, column: &str) -> Value {
        match column {
            "id" => Value::from(self.id.clone()),
            "display_name" => Value::from(self.display_name.clone()),
            "created_at" => Value::from(self.created_at),
            "last_run_created_at" => Value::from(self.last_run_created_at),
            "description" => Value::from(self.description.clone()),
            "namespace" => Value::from(self.namespace.clone()),
            "storage_state" => Value::from(self.storage_state.as_str()),
            _ => Value::Null,
        }
    }
}

impl Listable for Run {
    fn id(&self) -> &str {
        &self.id
    }

    fn sort_value(&self, column: &str) -> Value {
        match column {
            "id" => Value::from(self.id.clone()),
            "display_name" => Value::from(self.display_name.clone()),
            "created_at" => Value::from(self.created_at),
            "finished_at" => Value::from(self.finished_at),
            "scheduled_at" => Value::from(self.scheduled_at),
            "description" => Value::from(self.description.clone()),
            "storage_state" => Value::from(self.storage_state.as_str()),
            "state" => Value::from(self.state.as_str()),
            "namespace" => Value::from(self.namespace.clone()),
            "experiment_id" => Value::from(self.experiment_id.clone()),
            "recurring_run_id" => Value::from(self.recurring_run_id.clone()),
            "pipeline_version_id" => Value::from(self.pipeline_version_id.clone()),
            "pipeline_id" => Value::from(self.pipeline_id.clone()),
            _ => Value::Null,
        }
    }
}

listable!(RecurringRun {
    "id" => id, "display_name" => display_name, "created_at" => created_at,
    "updated_at" => updated_at, "description" => description,
    "experiment_id" => experiment_id, "namespace" => namespace,
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_bounded() {
        let predicate = r#"{"key": "display_name", "operation": "EQUALS", "string_value": "x"}"#;
        let many = format!(r#"{{"predicates": [{}]}}"#, vec![predicate; MAX_PREDICATES + 1].join(","));
        let err = ListQuery::resolve(Entity::Run, &many, "", None, "", &[]).unwrap_err();
        assert!(err.to_string().contains("at most 100 predicates"), "{err}");
        let values: Vec<String> = (0..=MAX_IN_VALUES).map(|i| i.to_string()).collect();
        let wide = format!(
            r#"{{"predicates": [{{"key": "created_at", "operation": "IN", "int_values": {{"values": [{}]}}}}]}}"#,
            values.join(",")
        );
        let err = ListQuery::resolve(Entity::Run, &wide, "", None, "", &[]).unwrap_err();
        assert!(err.to_string().contains("at most 500 values"), "{err}");
        let fits = format!(r#"{{"predicates": [{}]}}"#, vec![predicate; MAX_PREDICATES].join(","));
        assert!(ListQuery::resolve(Entity::Run, &fits, "", None, "", &[]).is_ok());
    }

    #[test]
    fn defaults_and_limits() {
        let q = ListQuery::resolve(Entity::Run, "", "", None, "", &[]).unwrap();
        assert_eq!(q.page_size, DEFAULT_PAGE_SIZE);
        assert_eq!(q.sort.api, "created_at");
        let q = ListQuery::resolve(Entity::Run, "", "display_name DESC", Some("1000"), "", &[]).unwrap();
        assert_eq!(q.page_size, MAX_PAGE_SIZE);
        assert!(q.descending);
        assert!(ListQuery::resolve(Entity::Run, "", "bogus", None, "", &[]).is_err());
        assert!(ListQuery::resolve(Entity::Run, "", "created_at sideways", None, "", &[]).is_err());
        assert!(ListQuery::resolve(Entity::Run, "", "", Some("-1"), "", &[]).is_err());
        assert!(ListQuery::resolve(Entity::Run, "", "", None, "garbage", &[]).is_err());
    }

    #[test]
    fn filter_types_are_checked() {
        let ok = r#"{"predicates":[{"operation":"GREATER_THAN","key":"created_at","timestamp_value":"2024-01-01T00:00:00Z"}]}"#;
        let q = ListQuery::resolve(Entity::Run, ok, "", None, "", &[]).unwrap();
        assert_eq!(q.predicates[0].value, ResolvedValue::Second(1704067200));
        let bad_key = r#"{"predicates":[{"operation":"EQUALS","key":"nope","string_value":"x"}]}"#;
        assert!(ListQuery::resolve(Entity::Run, bad_key, "", None, "", &[]).is_err());
        let bad_type = r#"{"predicates":[{"operation":"EQUALS","key":"created_at","string_value":"x"}]}"#;
        assert!(ListQuery::resolve(Entity::Run, bad_type, "", None, "", &[]).is_err());
    }

    #[test]
    fn token_is_bound_to_its_query() {
        let q = ListQuery::resolve(Entity::Pipeline, "", "display_name", Some("1"), "", &[]).unwrap();
        let rows = vec![
            Pipeline {
                id: "a".into(),
                name: "a".into(),
                display_name: "a".into(),
                description: String::new(),
                namespace: String::new(),
                created_at: 1,
                tags: Default::default(),
            },
            Pipeline {
                id: "b".into(),
                name: "b".into(),
                display_name: "b".into(),
                description: String::new(),
                namespace: String::new(),
                created_at: 2,
                tags: Default::default(),
            },
        ];
        let page = Page::from_rows(rows, 2, &q);
        assert_eq!(page.items.len(), 1);
        let token = page.next_page_token;
        let next = ListQuery::resolve(Entity::Pipeline, "", "", Some("1"), &token, &[]).unwrap();
        assert_eq!(next.after, Some((Value::from("a"), "a".to_string())));
        assert_eq!(next.sort.api, "display_name");
        assert!(ListQuery::resolve(Entity::Pipeline, "", "created_at", Some("1"), &token, &[]).is_err());
    }
}
