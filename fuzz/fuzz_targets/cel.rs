//! Trigger conditions and ParallelFor item selectors: CEL expressions from a compiled spec,
//! evaluated over parameter values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (expression, value) = text.split_once('\u{1f}').unwrap_or((&text, "{}"));
    let value: Value = serde_json::from_str(value).unwrap_or(json!({"a": 1, "b": "x", "c": [1, 2], "d": {"e": true}}));
    let mut parameters = Map::new();
    parameters.insert("pipelinechannel--p".into(), value.clone());
    parameters.insert("pipelinechannel--q-Output".into(), json!("text"));
    let _ = weir_spec::cel::evaluate_condition(expression, &parameters);
    let _ = weir_spec::cel::select(expression, &value);
});
