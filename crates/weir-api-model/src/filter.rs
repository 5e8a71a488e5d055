//! The `filter` query parameter: URL-decoded JSON of KFP's `Filter` message.
//!
//! The kfp client's own helpers send `"operation": 1` with a camelCase `stringValue`, the
//! generated models send enum names with snake_case keys; the real server accepts both
//! (`transformJSONForBackwardCompatibility`), so parsing here is by hand and accepts both.

use chrono::{DateTime, Utc};
use serde_json::Value;

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
