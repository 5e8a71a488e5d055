//! The `filter` query parameter: URL-decoded JSON of KFP's `Filter` message.
//!
//! The kfp client's own helpers send `"operation": 1` with a camelCase `stringValue`, the
//! generated models send enum names with snake_case keys; the real server accepts both
//! (`transformJSONForBackwardCompatibility`), so parsing here is by hand and accepts both.

use chrono::{DateTime, Utc};
use serde_json::Value;
use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, Ref, Schema, SchemaFormat, Type,
};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::serde_helpers::{parse_timestamp, value_to_i64};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter: {0}")]
pub struct FilterError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, FilterError> {
    Err(FilterError(msg.into()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Equals,
    NotEquals,
    GreaterThan,
    GreaterThanEquals,
    LessThan,
    LessThanEquals,
    In,
    IsSubstring,
}

impl Operation {
    pub const ALL: [Operation; 8] = [
        Self::Equals,
        Self::NotEquals,
        Self::GreaterThan,
        Self::GreaterThanEquals,
        Self::LessThan,
        Self::LessThanEquals,
        Self::In,
        Self::IsSubstring,
    ];

    fn parse(value: &Value) -> Result<Self, FilterError> {
        let op = match value {
            Value::Number(n) => match n.as_i64() {
                Some(1) => Self::Equals,
                Some(2) => Self::NotEquals,
                Some(3) => Self::GreaterThan,
                Some(5) => Self::GreaterThanEquals,
                Some(6) => Self::LessThan,
                Some(7) => Self::LessThanEquals,
                Some(8) => Self::In,
                Some(9) => Self::IsSubstring,
                _ => return err(format!("unknown predicate operation {n}")),
            },
            Value::String(s) => match s.as_str() {
                "EQUALS" => Self::Equals,
                "NOT_EQUALS" => Self::NotEquals,
                "GREATER_THAN" => Self::GreaterThan,
                "GREATER_THAN_EQUALS" => Self::GreaterThanEquals,
                "LESS_THAN" => Self::LessThan,
                "LESS_THAN_EQUALS" => Self::LessThanEquals,
                "IN" => Self::In,
                "IS_SUBSTRING" => Self::IsSubstring,
                other => return err(format!("unknown predicate operation {other:?}")),
            },
            other => return err(format!("predicate operation must be a name or a number, got {other}")),
        };
        Ok(op)
    }

    /// The operation's number in `Predicate.Operation` of `backend/api/v2beta1/filter.proto`
    /// (4 is unused), as `parse` reads it.
    pub fn number(self) -> i64 {
        match self {
            Self::Equals => 1,
            Self::NotEquals => 2,
            Self::GreaterThan => 3,
            Self::GreaterThanEquals => 5,
            Self::LessThan => 6,
            Self::LessThanEquals => 7,
            Self::In => 8,
            Self::IsSubstring => 9,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Equals => "EQUALS",
            Self::NotEquals => "NOT_EQUALS",
            Self::GreaterThan => "GREATER_THAN",
            Self::GreaterThanEquals => "GREATER_THAN_EQUALS",
            Self::LessThan => "LESS_THAN",
            Self::LessThanEquals => "LESS_THAN_EQUALS",
            Self::In => "IN",
            Self::IsSubstring => "IS_SUBSTRING",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum PredicateValue {
    Int(i64),
    String(String),
    Timestamp(DateTime<Utc>),
    Ints(Vec<i64>),
    Strings(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    pub operation: Operation,
    pub key: String,
    pub value: PredicateValue,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub predicates: Vec<Predicate>,
}

impl Filter {
    /// Parses the query parameter; an empty string is the empty filter.
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let json: Value =
            serde_json::from_str(text).map_err(|e| FilterError(format!("filter is not valid JSON: {e}")))?;
        let Value::Object(obj) = json else {
            return err("filter must be a JSON object");
        };
        let mut predicates = Vec::new();
        for (key, value) in obj {
            match key.as_str() {
                "predicates" => {
                    let Value::Array(items) = value else {
                        return err("predicates must be a list");
                    };
                    for item in items {
                        predicates.push(parse_predicate(&item)?);
                    }
                }
                other => return err(format!("unknown filter field {other:?}")),
            }
        }
        Ok(Self { predicates })
    }
}

fn parse_predicate(item: &Value) -> Result<Predicate, FilterError> {
    let Value::Object(obj) = item else {
        return err("each predicate must be a JSON object");
    };
    let mut operation = None;
    let mut key = None;
    let mut value = None;
    for (field, raw) in obj {
        let parsed = match field.as_str() {
            "operation" | "op" => {
                operation = Some(Operation::parse(raw)?);
                continue;
            }
            "key" => {
                let Value::String(k) = raw else {
                    return err("predicate key must be a string");
                };
                key = Some(k.clone());
                continue;
            }
            "int_value" | "intValue" | "long_value" | "longValue" => {
                PredicateValue::Int(value_to_i64(raw).map_err(FilterError)?)
            }
            "string_value" | "stringValue" => match raw {
                Value::String(s) => PredicateValue::String(s.clone()),
                other => return err(format!("string_value must be a string, got {other}")),
            },
            "timestamp_value" | "timestampValue" => match raw {
                Value::String(s) => PredicateValue::Timestamp(parse_timestamp(s).map_err(FilterError)?),
                other => return err(format!("timestamp_value must be an RFC 3339 string, got {other}")),
            },
            "int_values" | "intValues" | "long_values" | "longValues" => {
                let values = list_values(raw)?;
                let ints =
                    values.iter().map(|v| value_to_i64(v).map_err(FilterError)).collect::<Result<Vec<_>, _>>()?;
                PredicateValue::Ints(ints)
            }
            "string_values" | "stringValues" => {
                let values = list_values(raw)?;
                let strings = values
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s.clone()),
                        other => err(format!("string_values must hold strings, got {other}")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                PredicateValue::Strings(strings)
            }
            other => return err(format!("unknown predicate field {other:?}")),
        };
        if value.is_some() {
            return err("a predicate takes exactly one value");
        }
        value = Some(parsed);
    }
    let Some(operation) = operation else {
        return err("predicate operation is missing");
    };
    let Some(key) = key.filter(|k| !k.is_empty()) else {
        return err("predicate key is missing");
    };
    let Some(value) = value else {
        return err(format!("predicate on {key:?} has no value"));
    };
    let is_list = matches!(value, PredicateValue::Ints(_) | PredicateValue::Strings(_));
    if (operation == Operation::In) != is_list {
        return err(format!(
            "operation {} on {key:?} needs {}",
            operation.name(),
            if operation == Operation::In {
                "a list value (int_values, long_values or string_values)"
            } else {
                "a single value"
            }
        ));
    }
    if operation == Operation::IsSubstring && !matches!(value, PredicateValue::String(_)) {
        return err(format!("IS_SUBSTRING on {key:?} needs a string_value"));
    }
    Ok(Predicate { operation, key, value })
}

/// `{"values": [...]}` as protojson writes it; a bare list is accepted too.
fn list_values(raw: &Value) -> Result<Vec<Value>, FilterError> {
    match raw {
        Value::Object(obj) => match obj.get("values") {
            Some(Value::Array(items)) => Ok(items.clone()),
            None => Ok(Vec::new()),
            Some(other) => err(format!("values must be a list, got {other}")),
        },
        Value::Array(items) => Ok(items.clone()),
        other => err(format!("expected {{\"values\": [...]}}, got {other}")),
    }
}

// ---------------------------------------------------------------------------------------------
// OpenAPI schemas of what `Filter::parse` reads.

/// An int64 as a filter value: a JSON number or a decimal string (`value_to_i64`).
pub struct Int64Input;

impl PartialSchema for Int64Input {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .description(Some("An int64, as a JSON number or a decimal string (protojson writes strings)."))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64))),
            )
            .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some(r"^\s*[-+]?[0-9]+\s*$")))
            .into()
    }
}

impl ToSchema for Int64Input {
    fn name() -> std::borrow::Cow<'static, str> {
        "Int64Input".into()
    }
}

/// A predicate's operation: its name or its number (`Operation::parse`).
pub struct FilterOperation;

impl PartialSchema for FilterOperation {
    fn schema() -> RefOr<Schema> {
        let names = Operation::ALL.map(Operation::name);
        let numbers = Operation::ALL.map(Operation::number);
        AnyOfBuilder::new()
            .description(Some("Predicate operation: enum name or number (4 is unused)."))
            .item(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(names)))
            .item(ObjectBuilder::new().schema_type(Type::Integer).enum_values(Some(numbers)))
            .into()
    }
}

impl ToSchema for FilterOperation {
    fn name() -> std::borrow::Cow<'static, str> {
        "FilterOperation".into()
    }
}

/// `{"values": [...]}` or a bare list (`list_values`) of `item`s.
fn list_values_schema(item: impl Fn() -> RefOr<Schema>) -> AnyOfBuilder {
    AnyOfBuilder::new()
        .description(Some("`{\"values\": [...]}` (protojson); a bare list is accepted too."))
        .item(ObjectBuilder::new().property("values", ArrayBuilder::new().items(item())))
        .item(ArrayBuilder::new().items(item()))
}

/// The value of `int_values` (and its aliases).
pub struct FilterIntValues;

impl PartialSchema for FilterIntValues {
    fn schema() -> RefOr<Schema> {
        list_values_schema(|| Ref::from_schema_name(Int64Input::name()).into()).into()
    }
}

impl ToSchema for FilterIntValues {
    fn name() -> std::borrow::Cow<'static, str> {
        "FilterIntValues".into()
    }
}

/// The value of `string_values` (and its alias).
pub struct FilterStringValues;

impl PartialSchema for FilterStringValues {
    fn schema() -> RefOr<Schema> {
        list_values_schema(|| ObjectBuilder::new().schema_type(Type::String).into()).into()
    }
}

impl ToSchema for FilterStringValues {
    fn name() -> std::borrow::Cow<'static, str> {
        "FilterStringValues".into()
    }
}

/// How a field takes filter values (`weir_store::FieldKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Text,
    /// An RFC 3339 `timestamp_value`, or seconds since the epoch as an int or long value.
    Time,
    Int,
}

/// The schema of a filter on one resource: `keys` are its filterable fields, in order. Every
/// value key `parse_predicate` reads is listed; a predicate holds the operation, the key and
/// exactly one value.
pub fn filter_schema(resource: &str, keys: &[(&str, KeyKind)]) -> RefOr<Schema> {
    let of_kind = |kind: KeyKind| keys.iter().filter(|(_, k)| *k == kind).map(|(key, _)| *key).collect::<Vec<&str>>();
    let mut kinds = vec![format!("Text fields take string values ({})", of_kind(KeyKind::Text).join(", "))];
    if !of_kind(KeyKind::Time).is_empty() {
        kinds.push(format!(
            "time fields take timestamp_value or seconds since the epoch as int/long values ({})",
            of_kind(KeyKind::Time).join(", ")
        ));
    }
    if !of_kind(KeyKind::Int).is_empty() {
        kinds.push(format!("integer fields take int/long values ({})", of_kind(KeyKind::Int).join(", ")));
    }
    let description = format!(
        "operation, key and exactly one value. {}. `IN` takes a list value, the others a single one; \
         `IS_SUBSTRING` only a string_value. Value keys may be snake_case or camelCase.",
        kinds.join("; ")
    );
    let reference = |name: std::borrow::Cow<'static, str>| Ref::from_schema_name(name);
    let date_time = Some(SchemaFormat::KnownFormat(KnownFormat::DateTime));
    let timestamp = || ObjectBuilder::new().schema_type(Type::String).format(date_time.clone());
    let key = ObjectBuilder::new().schema_type(Type::String).enum_values(Some(keys.iter().map(|(key, _)| *key)));
    let mut predicate = ObjectBuilder::new()
        .description(Some(description))
        .property("operation", reference(FilterOperation::name()))
        .required("operation")
        .property("key", key)
        .required("key")
        .min_properties(Some(3))
        .max_properties(Some(3))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    for name in ["int_value", "intValue", "long_value", "longValue"] {
        predicate = predicate.property(name, reference(Int64Input::name()));
    }
    for name in ["string_value", "stringValue"] {
        predicate = predicate.property(name, ObjectBuilder::new().schema_type(Type::String));
    }
    for name in ["timestamp_value", "timestampValue"] {
        predicate = predicate.property(name, timestamp());
    }
    for name in ["int_values", "intValues", "long_values", "longValues"] {
        predicate = predicate.property(name, reference(FilterIntValues::name()));
    }
    for name in ["string_values", "stringValues"] {
        predicate = predicate.property(name, reference(FilterStringValues::name()));
    }
    ObjectBuilder::new()
        .description(Some(format!("KFP's Filter message as JSON, for {resource} fields.")))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .property("predicates", ArrayBuilder::new().items(predicate))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_helper_form_with_integer_operation_and_camel_case() {
        let f = Filter::parse(r#"{"predicates":[{"operation":1,"key":"display_name","stringValue":"x"}]}"#).unwrap();
        assert_eq!(f.predicates[0].operation, Operation::Equals);
        assert_eq!(f.predicates[0].value, PredicateValue::String("x".into()));
    }

    #[test]
    fn enum_names_snake_case_and_lists() {
        let f = Filter::parse(
            r#"{"predicates":[{"operation":"IN","key":"state","string_values":{"values":["A","B"]}},
                              {"op":"GREATER_THAN","key":"created_at","timestamp_value":"2024-05-01T12:00:00Z"},
                              {"operation":"LESS_THAN","key":"n","longValue":"7"}]}"#,
        )
        .unwrap();
        assert_eq!(f.predicates.len(), 3);
        assert_eq!(f.predicates[0].value, PredicateValue::Strings(vec!["A".into(), "B".into()]));
        assert!(matches!(f.predicates[1].value, PredicateValue::Timestamp(_)));
        assert_eq!(f.predicates[2].value, PredicateValue::Int(7));
    }

    #[test]
    fn operation_numbers_and_names_are_what_parse_reads() {
        for op in Operation::ALL {
            assert_eq!(Operation::parse(&Value::from(op.number())).unwrap(), op);
            assert_eq!(Operation::parse(&Value::from(op.name())).unwrap(), op);
        }
    }

    #[test]
    fn rejects_malformed_filters() {
        for bad in [
            "{",
            "[]",
            r#"{"predicates":[{"operation":4,"key":"a","string_value":"x"}]}"#,
            r#"{"predicates":[{"operation":"EQUALS","string_value":"x"}]}"#,
            r#"{"predicates":[{"operation":"EQUALS","key":"a"}]}"#,
            r#"{"predicates":[{"operation":"IN","key":"a","string_value":"x"}]}"#,
            r#"{"predicates":[{"operation":"EQUALS","key":"a","string_values":{"values":["x"]}}]}"#,
            r#"{"predicates":[{"operation":"IS_SUBSTRING","key":"a","int_value":3}]}"#,
            r#"{"predicates":[{"operation":"EQUALS","key":"a","string_value":"x","int_value":1}]}"#,
            r#"{"bogus":[]}"#,
        ] {
            assert!(Filter::parse(bad).is_err(), "accepted {bad}");
        }
    }
}
