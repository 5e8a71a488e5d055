//! The CEL the KFP compiler emits: trigger conditions over `inputs.parameter_values` and
//! `parameterExpressionSelector`s over `string_value`, evaluated by a real CEL interpreter
//! (with KFP's `parseJson` extension), not by pattern matching.

use std::sync::Arc;

use cel::{Context, ExecutionError, Program};
use serde_json::{Map, Value};

use crate::SpecError;

fn compile(expression: &str) -> Result<Program, SpecError> {
    Program::compile(expression).map_err(|e| SpecError::new(format!("invalid CEL expression {expression:?}: {e}")))
}

fn context() -> Context<'static, 'static> {
    let mut context = Context::default();
    // KFP's backend adds parseJson for selectors over JSON text (loop items of dicts).
    let _ = context.add_function("parseJson", |text: Arc<String>| -> Result<cel::Value, ExecutionError> {
        let json: Value = serde_json::from_str(&text).map_err(|e| ExecutionError::function_error("parseJson", e))?;
        cel::to_value(json).map_err(|e| ExecutionError::function_error("parseJson", e))
    });
    context
}

fn to_cel(value: &Value) -> Result<cel::Value, SpecError> {
    cel::to_value(value).map_err(|e| SpecError::new(format!("cannot pass {value} to CEL: {e}")))
}

/// Evaluates a `triggerPolicy.condition` against the task's resolved parameters.
pub fn evaluate_condition(expression: &str, parameter_values: &Map<String, Value>) -> Result<bool, SpecError> {
    let program = compile(expression)?;
    let mut context = context();
    let inputs = serde_json::json!({ "parameter_values": parameter_values });
    context.add_variable_from_value("inputs", to_cel(&inputs)?);
    match program.execute(&context) {
        Ok(cel::Value::Bool(b)) => Ok(b),
        Ok(other) => Err(SpecError::new(format!("condition {expression:?} gave {other:?}, not a boolean"))),
        Err(e) => Err(SpecError::new(format!("condition {expression:?} failed: {e}"))),
    }
}

/// Applies a `parameterExpressionSelector` to a value; `string_value` is the value's JSON text
/// (a string value as itself).
pub fn select(expression: &str, value: &Value) -> Result<Value, SpecError> {
    let program = compile(expression)?;
    let mut context = context();
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    context.add_variable_from_value("string_value", cel::Value::String(Arc::new(text)));
    let result =
        program.execute(&context).map_err(|e| SpecError::new(format!("selector {expression:?} failed: {e}")))?;
    result.json().map_err(|e| SpecError::new(format!("selector {expression:?} gave a value JSON cannot hold: {e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn compiler_conditions() {
        let p = params(json!({"pipelinechannel--flip-Output": "tails", "pipelinechannel--n": 7, "x": 2.5}));
        assert!(evaluate_condition("inputs.parameter_values['pipelinechannel--flip-Output'] == 'tails'", &p).unwrap());
        assert!(!evaluate_condition(
            "!(inputs.parameter_values['pipelinechannel--flip-Output'] == 'heads') && inputs.parameter_values['pipelinechannel--flip-Output'] == 'heads'",
            &p
        )
        .unwrap());
        assert!(evaluate_condition("int(inputs.parameter_values['pipelinechannel--n']) > 5", &p).unwrap());
        assert!(evaluate_condition(
            "double(inputs.parameter_values['pipelinechannel--n']) < inputs.parameter_values['x'] * 3.0",
            &p
        )
        .unwrap());
        assert!(evaluate_condition("true", &p).unwrap());
        assert!(evaluate_condition("inputs.parameter_values['missing'] == 1", &p).is_err());
        assert!(evaluate_condition("1 +", &p).is_err());
        assert!(evaluate_condition("'not a bool'", &p).is_err());
    }

    #[test]
    fn selectors_over_json_items() {
        assert_eq!(select("parseJson(string_value)[\"a\"]", &json!({"a": 1, "b": "x"})).unwrap(), json!(1));
        assert_eq!(select("parseJson(string_value)[\"b\"]", &json!({"a": 1, "b": "x"})).unwrap(), json!("x"));
        assert_eq!(select("string_value", &json!("plain")).unwrap(), json!("plain"));
        assert!(select("parseJson(string_value)", &json!("not json")).is_err());
    }
}
