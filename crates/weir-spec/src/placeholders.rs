//! Placeholder resolution in container `command` and `args`.
//!
//! The `{{$…}}` forms are the ones documented on `ExecutorInput` in
//! `api/v2alpha1/pipeline_spec.proto`. KFP resolves them in two places. The launcher replaces
//! `{{$}}` (the whole ExecutorInput as JSON), `{{$.inputs.parameters['…']}}`,
//! `{{$.inputs.artifacts['…'].uri|path}}`, `{{$.outputs.artifacts['…'].uri|path}}` and
//! `{{$.outputs.parameters['…'].output_file}}` (`compileCmdAndArgs` and `getPlaceholders` in
//! `backend/src/v2/component/launcher_v2.go`). The driver expands the `{"IfPresent": …}`
//! argument form (`resolveContainerArgs` in `backend/src/v2/driver/util.go`) and substitutes the
//! runtime values `{{$.pipeline_job_name}}`, `{{$.pipeline_task_name}}`, … where a task input's
//! constant is one of them (`resolveInputParameter` in `backend/src/v2/driver/resolve.go`).
//! The SDK writes `IfPresent` and `Concat` as JSON arguments (`IfPresentPlaceholder`,
//! `ConcatPlaceholder` in `sdk/python/kfp/dsl/placeholders.py`); `kfp.local` resolves the same
//! set, `Concat` included (`sdk/python/kfp/local/placeholder_utils.py`).

use serde_json::{Map, Value};

use crate::SpecError;

/// What placeholders can refer to, for one task attempt.
#[derive(Debug, Clone, Default)]
pub struct PlaceholderContext {
    /// The whole ExecutorInput, for `{{$}}`.
    pub executor_input: Value,
    /// Resolved input parameters (absent when not provided).
    pub parameters: Map<String, Value>,
    /// Input artifacts: name → (uri, local path). Lists use the first entry.
    pub input_artifacts: Map<String, Value>,
    /// Output artifacts: name → (uri, local path).
    pub output_artifacts: Map<String, Value>,
    /// Output parameter files: name → path.
    pub output_parameter_files: Map<String, Value>,
    pub output_metadata_file: String,
    /// `pipeline_job_name`, `pipeline_task_name`, … (without the `$.` prefix).
    pub runtime: Map<String, Value>,
}

pub use crate::values::parameter_text;

fn artifact_field(map: &Map<String, Value>, name: &str, field: &str, placeholder: &str) -> Result<String, SpecError> {
    let entry = map
        .get(name)
        .ok_or_else(|| SpecError::new(format!("placeholder {placeholder} names an unknown artifact {name:?}")))?;
    Ok(entry.get(field).and_then(Value::as_str).unwrap_or_default().to_string())
}

/// Replaces every `{{$…}}` in one string.
pub fn resolve_string(text: &str, ctx: &PlaceholderContext) -> Result<String, SpecError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{$") {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let Some(end) = after.find("}}") else {
            out.push_str(after);
            return Ok(out);
        };
        let placeholder = &after[..end + 2];
        out.push_str(&resolve_one(placeholder, ctx)?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn quoted_name<'a>(inner: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let rest = inner.strip_prefix(prefix)?;
    let quote = rest.chars().next()?;
    if quote != '\'' && quote != '"' {
        return None;
    }
    let rest = &rest[1..];
    let close = rest.find(quote)?;
    let name = &rest[..close];
    let tail = rest[close + 1..].strip_prefix(']')?;
    Some((name, tail))
}

fn resolve_one(placeholder: &str, ctx: &PlaceholderContext) -> Result<String, SpecError> {
    let inner = &placeholder[2..placeholder.len() - 2];
    if inner == "$" {
        return Ok(ctx.executor_input.to_string());
    }
    if let Some((name, tail)) = quoted_name(inner, "$.inputs.parameters[") {
        if !tail.is_empty() {
            return Err(SpecError::new(format!("unsupported placeholder {placeholder}")));
        }
        return Ok(ctx.parameters.get(name).map(parameter_text).unwrap_or_default());
    }
    if let Some((name, tail)) = quoted_name(inner, "$.inputs.artifacts[") {
        return match tail {
            ".uri" => artifact_field(&ctx.input_artifacts, name, "uri", placeholder),
            ".path" => artifact_field(&ctx.input_artifacts, name, "path", placeholder),
            _ => Err(SpecError::new(format!("unsupported placeholder {placeholder}"))),
        };
    }
    if let Some((name, tail)) = quoted_name(inner, "$.outputs.artifacts[") {
        return match tail {
            ".uri" => artifact_field(&ctx.output_artifacts, name, "uri", placeholder),
            ".path" => artifact_field(&ctx.output_artifacts, name, "path", placeholder),
            _ => Err(SpecError::new(format!("unsupported placeholder {placeholder}"))),
        };
    }
    if let Some((name, tail)) = quoted_name(inner, "$.outputs.parameters[") {
        if tail == ".output_file" {
            return ctx
                .output_parameter_files
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| SpecError::new(format!("placeholder {placeholder} names an unknown output parameter")));
        }
        return Err(SpecError::new(format!("unsupported placeholder {placeholder}")));
    }
    if inner == "$.outputs.output_file" {
        return Ok(ctx.output_metadata_file.clone());
    }
    if let Some(key) = inner.strip_prefix("$.") {
        if let Some(value) = ctx.runtime.get(key) {
            return Ok(parameter_text(value));
        }
    }
    Err(SpecError::new(format!("unsupported placeholder {placeholder}")))
}

/// Resolves a whole argument list, expanding the JSON forms `{"IfPresent": …}` and
/// `{"Concat": […]}` that the SDK writes as single arguments.
pub fn resolve_args(args: &[String], ctx: &PlaceholderContext) -> Result<Vec<String>, SpecError> {
    let mut out = Vec::with_capacity(args.len());
    for arg in args {
        let trimmed = arg.trim_start();
        if trimmed.starts_with('{') && (trimmed.contains("\"IfPresent\"") || trimmed.contains("\"Concat\"")) {
            if let Ok(json) = serde_json::from_str::<Value>(arg) {
                structured(&json, ctx, &mut out)?;
                continue;
            }
        }
        out.push(resolve_string(arg, ctx)?);
    }
    Ok(out)
}

fn structured(json: &Value, ctx: &PlaceholderContext, out: &mut Vec<String>) -> Result<(), SpecError> {
    match json {
        Value::String(s) => {
            // A nested placeholder may itself be a JSON structure.
            if s.trim_start().starts_with('{') {
                if let Ok(inner) = serde_json::from_str::<Value>(s) {
                    if inner.get("IfPresent").is_some() || inner.get("Concat").is_some() {
                        return structured(&inner, ctx, out);
                    }
                }
            }
            out.push(resolve_string(s, ctx)?);
            Ok(())
        }
        Value::Object(map) if map.contains_key("IfPresent") => {
            let spec = &map["IfPresent"];
            let name = spec.get("InputName").and_then(Value::as_str).unwrap_or_default();
            let present =
                ctx.parameters.get(name).is_some_and(|v| !v.is_null()) || ctx.input_artifacts.contains_key(name);
            let branch = if present { spec.get("Then") } else { spec.get("Else") };
            match branch {
                None | Some(Value::Null) => Ok(()),
                Some(Value::Array(items)) => items.iter().try_for_each(|item| structured(item, ctx, out)),
                Some(single) => structured(single, ctx, out),
            }
        }
        Value::Object(map) if map.contains_key("Concat") => {
            let mut parts = Vec::new();
            if let Some(Value::Array(items)) = map.get("Concat") {
                for item in items {
                    structured(item, ctx, &mut parts)?;
                }
            }
            out.push(parts.concat());
            Ok(())
        }
        other => Err(SpecError::new(format!("unsupported structured placeholder {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> PlaceholderContext {
        PlaceholderContext {
            executor_input: json!({"inputs": {}}),
            parameters: json!({"text": "hi", "n": 2, "f": 1.5, "b": true, "l": [1, 2]}).as_object().cloned().unwrap(),
            input_artifacts: json!({"data": {"uri": "s3://b/k", "path": "/w/in/data"}}).as_object().cloned().unwrap(),
            output_artifacts: json!({"out": {"uri": "s3://b/o", "path": "/w/out/out"}}).as_object().cloned().unwrap(),
            output_parameter_files: json!({"msg": "/w/params/msg"}).as_object().cloned().unwrap(),
            output_metadata_file: "/w/executor_output.json".into(),
            runtime: json!({"pipeline_job_name": "run-1", "pipeline_task_name": "echo"}).as_object().cloned().unwrap(),
        }
    }

    #[test]
    fn simple_placeholders() {
        let c = ctx();
        let args: Vec<String> = [
            "{{$.inputs.parameters['text']}}-{{$.inputs.parameters['n']}}",
            "{{$.inputs.parameters['f']}} {{$.inputs.parameters['b']}} {{$.inputs.parameters['l']}}",
            "{{$.inputs.artifacts['data'].path}} {{$.inputs.artifacts['data'].uri}}",
            "{{$.outputs.artifacts['out'].path}}",
            "{{$.outputs.parameters['msg'].output_file}}",
            "{{$.outputs.output_file}}",
            "{{$.pipeline_job_name}}/{{$.pipeline_task_name}}",
            "{{$}}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let out = resolve_args(&args, &c).unwrap();
        assert_eq!(out[0], "hi-2");
        assert_eq!(out[1], "1.5 true [1,2]");
        assert_eq!(out[2], "/w/in/data s3://b/k");
        assert_eq!(out[3], "/w/out/out");
        assert_eq!(out[4], "/w/params/msg");
        assert_eq!(out[5], "/w/executor_output.json");
        assert_eq!(out[6], "run-1/echo");
        assert_eq!(out[7], "{\"inputs\":{}}");
        assert!(resolve_args(&["{{$.nope}}".to_string()], &c).is_err());
    }

    #[test]
    fn if_present_and_concat() {
        let c = ctx();
        let args = vec![
            r#"{"IfPresent": {"InputName": "text", "Then": ["--text", "{{$.inputs.parameters['text']}}"]}}"#
                .to_string(),
            r#"{"IfPresent": {"InputName": "missing", "Then": ["--missing"], "Else": ["--default"]}}"#.to_string(),
            r#"{"IfPresent": {"InputName": "missing", "Then": ["--missing"]}}"#.to_string(),
            r#"{"Concat": ["n=", "{{$.inputs.parameters['n']}}", "!"]}"#.to_string(),
        ];
        assert_eq!(resolve_args(&args, &c).unwrap(), ["--text", "hi", "--default", "n=2!"]);
    }
}
