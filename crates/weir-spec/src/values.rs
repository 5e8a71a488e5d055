//! Parameter values as KFP's backend hands them to steps: checked against a component's
//! interface, completed with defaults, numbers as Go's protojson prints them. The server checks
//! a run's parameters by the same rules the engine resolves a step's by.

use crate::ir::{Interface, ParameterDef};
use crate::SpecError;
use serde_json::{Map, Number, Value};

/// Integral doubles become JSON integers, everywhere in the value, as Go's protojson prints
/// them (the SDK writes `2.0` for integer defaults and the executor rejects a float for `int`).
pub fn integral_numbers(value: &Value) -> Value {
    match value {
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => Value::Number(Number::from(f as i64)),
            _ => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(integral_numbers).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), integral_numbers(v))).collect()),
        other => other.clone(),
    }
}

/// Whether a value fits a declared parameter type.
pub fn fits(def: &ParameterDef, value: &Value) -> bool {
    match def.parameter_type.as_str() {
        "NUMBER_INTEGER" => value.as_i64().is_some() || value.as_f64().is_some_and(|f| f.fract() == 0.0),
        "NUMBER_DOUBLE" => value.is_number(),
        "STRING" => value.is_string(),
        "BOOLEAN" => value.is_boolean(),
        "LIST" => value.is_array(),
        "STRUCT" | "TASK_FINAL_STATUS" => value.is_object(),
        _ => true,
    }
}

/// Checks and completes the parameters given to a component: every value must fit its type,
/// required ones must be present, defaults fill the rest. The error is for the user.
pub fn complete_parameters(
    interface: &Interface,
    given: &Map<String, Value>,
    what: &str,
) -> Result<Map<String, Value>, SpecError> {
    let mut out = Map::new();
    for (name, value) in given {
        let Some(def) = interface.parameters.get(name) else {
            return Err(SpecError::new(format!("{what} has no parameter {name:?}")));
        };
        if value.is_null() {
            continue;
        }
        if !fits(def, value) {
            return Err(SpecError::new(format!(
                "parameter {name:?} of {what} must be {}, got {value}",
                type_name(&def.parameter_type)
            )));
        }
        out.insert(name.clone(), integral_numbers(value));
    }
    for (name, def) in &interface.parameters {
        if out.contains_key(name) {
            continue;
        }
        match &def.default_value {
            Some(default) => {
                out.insert(name.clone(), integral_numbers(default));
            }
            None if def.is_optional => {}
            None => {
                return Err(SpecError::new(format!(
                    "{what} needs parameter {name:?} ({}), which was not given",
                    type_name(&def.parameter_type)
                )))
            }
        }
    }
    Ok(out)
}

fn type_name(parameter_type: &str) -> &'static str {
    match parameter_type {
        "NUMBER_INTEGER" => "an integer",
        "NUMBER_DOUBLE" => "a number",
        "STRING" => "a string",
        "BOOLEAN" => "a boolean",
        "LIST" => "a list",
        "STRUCT" => "an object",
        _ => "a value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integral_doubles_become_integers() {
        assert_eq!(integral_numbers(&json!(2.0)), json!(2));
        assert_eq!(integral_numbers(&json!(2.5)), json!(2.5));
        assert_eq!(integral_numbers(&json!({"k": [1.0, 2.5, {"z": 3.0}]})), json!({"k": [1, 2.5, {"z": 3}]}));
    }

    #[test]
    fn parameters_are_checked_and_completed() {
        let interface: Interface = serde_json::from_value(json!({"parameters": {
            "n": {"parameterType": "NUMBER_INTEGER", "defaultValue": 3.0, "isOptional": true},
            "name": {"parameterType": "STRING"},
            "opt": {"parameterType": "STRING", "isOptional": true}
        }}))
        .unwrap();
        let out = complete_parameters(&interface, json!({"name": "x"}).as_object().unwrap(), "the pipeline").unwrap();
        assert_eq!(Value::Object(out), json!({"name": "x", "n": 3}));
        let e = complete_parameters(&interface, &Map::new(), "the pipeline").unwrap_err();
        assert!(e.0.contains("\"name\""), "{e}");
        let e = complete_parameters(&interface, json!({"name": 1}).as_object().unwrap(), "the pipeline").unwrap_err();
        assert!(e.0.contains("must be a string"), "{e}");
        let e = complete_parameters(&interface, json!({"name": "x", "bogus": 1}).as_object().unwrap(), "the pipeline")
            .unwrap_err();
        assert!(e.0.contains("bogus"), "{e}");
        assert!(complete_parameters(&interface, json!({"name": "x", "n": 2.5}).as_object().unwrap(), "p").is_err());
    }
}
