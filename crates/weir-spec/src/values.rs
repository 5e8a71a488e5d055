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

/// Renders a parameter value as text the way KFP's launcher does (`getPlaceholders` in
/// `backend/src/v2/component/launcher_v2.go`; `pbValueToString` in `backend/src/v2/driver/util.go`
/// prints integral numbers without a fraction the same way).
pub fn parameter_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        // Go marshals a protobuf Struct with its keys sorted, whatever order they came in.
        other => sorted_keys(other).to_string(),
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

/// Checks and completes the parameters a task gives its component, as KFP's driver resolves
/// them (`resolveInputs` in backend/src/v2/driver/resolve.go). Unlike a run's parameters:
/// - inputs the component does not declare are kept: the SDK adds them for f-strings in
///   constants (`pipelinechannel--…`) and for runtime resource fields (`cpu_limit`,
///   `accelerator_count`, …), and KFP passes them on;
/// - any value given to a STRING input becomes its text (numbers as Go prints them, lists and
///   objects as compact JSON with sorted keys), as the driver's `PbValueToText` does;
/// - a number fits either number type; other mismatches are errors, as KFP's are.
pub fn complete_task_parameters(
    interface: &Interface,
    given: &Map<String, Value>,
    what: &str,
) -> Result<Map<String, Value>, SpecError> {
    let mut declared = Map::new();
    let mut undeclared = Map::new();
    for (name, value) in given {
        match interface.parameters.get(name) {
            Some(def) if def.parameter_type == "STRING" && !value.is_string() && !value.is_null() => {
                declared.insert(name.clone(), Value::String(parameter_text(value)));
            }
            Some(def) if matches!(def.parameter_type.as_str(), "NUMBER_INTEGER" | "NUMBER_DOUBLE") => {
                if !value.is_number() && !value.is_null() {
                    return Err(SpecError::new(format!(
                        "parameter {name:?} of {what} must be {}, got {value}",
                        type_name(&def.parameter_type)
                    )));
                }
                declared.insert(name.clone(), value.clone());
            }
            Some(_) => {
                declared.insert(name.clone(), value.clone());
            }
            None => {
                undeclared.insert(name.clone(), integral_numbers(value));
            }
        }
    }
    let mut out = complete_parameters(interface, &declared, what)?;
    out.extend(undeclared);
    Ok(out)
}

/// Replaces `{{$.inputs.parameters['NAME']}}` inside string values with the text of the
/// task's own input NAME. The SDK compiles an f-string such as `f"{x} is big"` into a constant
/// holding that placeholder plus an input named `pipelinechannel--…`; KFP's launcher replaces
/// the placeholders in the command line after putting the ExecutorInput into it
/// (`compileCmdAndArgs` in backend/src/v2/component/launcher_v2.go), so they reach the values.
/// A reference to a name the task does not have is left as it is, as there.
pub fn expand_parameter_references(parameters: &mut Map<String, Value>) {
    const OPEN: &str = "{{$.inputs.parameters[";
    let texts: Vec<(String, String)> =
        parameters.iter().map(|(name, value)| (name.clone(), parameter_text(value))).collect();
    for value in parameters.values_mut() {
        let Value::String(text) = value else { continue };
        if !text.contains(OPEN) {
            continue;
        }
        let mut expanded = text.clone();
        for (name, replacement) in &texts {
            for quote in ['\'', '"'] {
                let placeholder = format!("{OPEN}{quote}{name}{quote}]}}}}");
                if expanded.contains(&placeholder) {
                    expanded = expanded.replace(&placeholder, replacement);
                }
            }
        }
        *text = expanded;
    }
}

/// The value with every object's keys in sorted order (Go's JSON of a protobuf Struct).
pub fn sorted_keys(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), sorted_keys(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted_keys).collect()),
        other => other.clone(),
    }
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
    fn task_parameters_convert_to_strings_and_keep_undeclared_inputs() {
        let interface: Interface = serde_json::from_value(json!({"parameters": {
            "msg": {"parameterType": "STRING"},
            "n": {"parameterType": "NUMBER_INTEGER"},
            "flag": {"parameterType": "BOOLEAN", "isOptional": true}
        }}))
        .unwrap();
        let given = json!({
            "msg": {"B_b": ["A", "B"], "A_a": "heads"},
            "n": 2.0,
            "pipelinechannel--x-Output": 7,
            "cpu_limit": "4000m"
        });
        let out = complete_task_parameters(&interface, given.as_object().unwrap(), "task \"t\"").unwrap();
        assert_eq!(out["msg"], json!(r#"{"A_a":"heads","B_b":["A","B"]}"#));
        assert_eq!(out["n"], json!(2));
        assert_eq!(out["pipelinechannel--x-Output"], json!(7));
        assert_eq!(out["cpu_limit"], json!("4000m"));
        assert!(!out.contains_key("flag"));
        for (value, text) in [(json!(1.5), "1.5"), (json!(true), "true"), (json!([1, "a"]), r#"[1,"a"]"#)] {
            let out =
                complete_task_parameters(&interface, json!({"msg": value, "n": 1}).as_object().unwrap(), "t").unwrap();
            assert_eq!(out["msg"], json!(text));
        }
        let e = complete_task_parameters(&interface, json!({"msg": "m", "n": "1"}).as_object().unwrap(), "task")
            .unwrap_err();
        assert!(e.0.contains("must be an integer"), "{e}");
        let e = complete_task_parameters(&interface, json!({"msg": "m", "n": 1, "flag": 1}).as_object().unwrap(), "t")
            .unwrap_err();
        assert!(e.0.contains("must be a boolean"), "{e}");
    }

    #[test]
    fn references_to_inputs_expand_inside_strings() {
        let mut params = json!({
            "msg": "tails and {{$.inputs.parameters['pipelinechannel--n-Output']}} <= 15!",
            "pipelinechannel--n-Output": 12,
            "cpu": "{{$.inputs.parameters['pipelinechannel--cpu']}}",
            "pipelinechannel--cpu": "4000m",
            "other": "{{$.inputs.parameters['absent']}}"
        })
        .as_object()
        .cloned()
        .unwrap();
        expand_parameter_references(&mut params);
        assert_eq!(params["msg"], json!("tails and 12 <= 15!"));
        assert_eq!(params["cpu"], json!("4000m"));
        assert_eq!(params["other"], json!("{{$.inputs.parameters['absent']}}"));
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
