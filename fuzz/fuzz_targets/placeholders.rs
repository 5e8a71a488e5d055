//! Container `command`/`args` with KFP placeholders (`{{$.inputs.parameters['x']}}`,
//! IfPresent, Concat as JSON), resolved for one attempt.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};
use weir_spec::placeholders::{resolve_args, resolve_string, PlaceholderContext};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parameters = Map::new();
    parameters.insert("x".into(), json!("value"));
    parameters.insert("n".into(), json!(3));
    parameters.insert("l".into(), json!([1, "a", {"b": null}]));
    let mut artifacts = Map::new();
    artifacts.insert("ds".into(), json!({"uri": "s3://b/k", "path": "/tmp/in/ds"}));
    let ctx = PlaceholderContext {
        executor_input: json!({"inputs": {"parameterValues": {"x": "value"}}}),
        parameters,
        input_artifacts: artifacts.clone(),
        output_artifacts: artifacts,
        output_parameter_files: Map::from_iter([("out".to_string(), Value::from("/tmp/out"))]),
        output_metadata_file: "/tmp/executor_output.json".into(),
        runtime: Map::from_iter([("pipeline_job_name".to_string(), Value::from("job"))]),
    };
    let _ = resolve_string(&text, &ctx);
    let args: Vec<String> = text.split('\u{1f}').map(str::to_string).collect();
    let _ = resolve_args(&args, &ctx);
});
