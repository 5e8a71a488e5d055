//! The OpenAPI document the server serves: every route is in it, every reference in it
//! resolves, and it states what the hand-written document it replaced stated (issue 13).

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::TestApp;
use serde_json::{json, Value};
use utoipa::OpenApi;

/// Every route of `weir_server::router`: the method, a request path that reaches it, and the
/// path the document gives it (KFP's custom methods are one axum route, `{id}` holding
/// `id:verb`, and a path each in the document).
const ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/apis/v2beta1/healthz", "/apis/v2beta1/healthz"),
    ("POST", "/apis/v2beta1/pipelines/upload", "/apis/v2beta1/pipelines/upload"),
    ("POST", "/apis/v2beta1/pipelines/upload_version", "/apis/v2beta1/pipelines/upload_version"),
    ("POST", "/apis/v2beta1/pipelines/create", "/apis/v2beta1/pipelines/create"),
    ("GET", "/apis/v2beta1/pipelines/names/x", "/apis/v2beta1/pipelines/names/{name}"),
    ("GET", "/apis/v2beta1/pipelines", "/apis/v2beta1/pipelines"),
    ("POST", "/apis/v2beta1/pipelines", "/apis/v2beta1/pipelines"),
    ("GET", "/apis/v2beta1/pipelines/x", "/apis/v2beta1/pipelines/{pipeline_id}"),
    ("DELETE", "/apis/v2beta1/pipelines/x", "/apis/v2beta1/pipelines/{pipeline_id}"),
    ("GET", "/apis/v2beta1/pipelines/x/versions", "/apis/v2beta1/pipelines/{pipeline_id}/versions"),
    ("POST", "/apis/v2beta1/pipelines/x/versions", "/apis/v2beta1/pipelines/{pipeline_id}/versions"),
    (
        "GET",
        "/apis/v2beta1/pipelines/x/versions/y",
        "/apis/v2beta1/pipelines/{pipeline_id}/versions/{pipeline_version_id}",
    ),
    (
        "DELETE",
        "/apis/v2beta1/pipelines/x/versions/y",
        "/apis/v2beta1/pipelines/{pipeline_id}/versions/{pipeline_version_id}",
    ),
    ("GET", "/apis/v2beta1/experiments", "/apis/v2beta1/experiments"),
    ("POST", "/apis/v2beta1/experiments", "/apis/v2beta1/experiments"),
    ("GET", "/apis/v2beta1/experiments/x", "/apis/v2beta1/experiments/{experiment_id}"),
    ("DELETE", "/apis/v2beta1/experiments/x", "/apis/v2beta1/experiments/{experiment_id}"),
    ("POST", "/apis/v2beta1/experiments/x:archive", "/apis/v2beta1/experiments/{experiment_id}:archive"),
    ("POST", "/apis/v2beta1/experiments/x:unarchive", "/apis/v2beta1/experiments/{experiment_id}:unarchive"),
    ("GET", "/apis/v2beta1/runs", "/apis/v2beta1/runs"),
    ("POST", "/apis/v2beta1/runs", "/apis/v2beta1/runs"),
    ("GET", "/apis/v2beta1/runs/x", "/apis/v2beta1/runs/{run_id}"),
    ("DELETE", "/apis/v2beta1/runs/x", "/apis/v2beta1/runs/{run_id}"),
    ("POST", "/apis/v2beta1/runs/x:terminate", "/apis/v2beta1/runs/{run_id}:terminate"),
    ("POST", "/apis/v2beta1/runs/x:retry", "/apis/v2beta1/runs/{run_id}:retry"),
    ("POST", "/apis/v2beta1/runs/x:archive", "/apis/v2beta1/runs/{run_id}:archive"),
    ("POST", "/apis/v2beta1/runs/x:unarchive", "/apis/v2beta1/runs/{run_id}:unarchive"),
    ("GET", "/apis/v2beta1/recurringruns", "/apis/v2beta1/recurringruns"),
    ("POST", "/apis/v2beta1/recurringruns", "/apis/v2beta1/recurringruns"),
    ("GET", "/apis/v2beta1/recurringruns/x", "/apis/v2beta1/recurringruns/{recurring_run_id}"),
    ("DELETE", "/apis/v2beta1/recurringruns/x", "/apis/v2beta1/recurringruns/{recurring_run_id}"),
    ("POST", "/apis/v2beta1/recurringruns/x:enable", "/apis/v2beta1/recurringruns/{recurring_run_id}:enable"),
    ("POST", "/apis/v2beta1/recurringruns/x:disable", "/apis/v2beta1/recurringruns/{recurring_run_id}:disable"),
    ("GET", "/apis/weir/v1/openapi.json", "/apis/weir/v1/openapi.json"),
    ("GET", "/apis/weir/v1/storage", "/apis/weir/v1/storage"),
    ("GET", "/apis/weir/v1/runs/x/tasks", "/apis/weir/v1/runs/{run_id}/tasks"),
    ("GET", "/apis/weir/v1/runs/x/logs", "/apis/weir/v1/runs/{run_id}/logs"),
    ("GET", "/apis/weir/v1/artifacts/1", "/apis/weir/v1/artifacts/{artifact_id}"),
    ("GET", "/apis/weir/v1/artifacts/1/content", "/apis/weir/v1/artifacts/{artifact_id}/content"),
    ("GET", "/apis/weir/v1/secrets", "/apis/weir/v1/secrets"),
    ("POST", "/apis/weir/v1/secrets", "/apis/weir/v1/secrets"),
    ("GET", "/apis/weir/v1/secrets/x", "/apis/weir/v1/secrets/{name}"),
    ("DELETE", "/apis/weir/v1/secrets/x", "/apis/weir/v1/secrets/{name}"),
    ("GET", "/apis/weir/v1/configmaps", "/apis/weir/v1/configmaps"),
    ("POST", "/apis/weir/v1/configmaps", "/apis/weir/v1/configmaps"),
    ("GET", "/apis/weir/v1/configmaps/x", "/apis/weir/v1/configmaps/{name}"),
    ("DELETE", "/apis/weir/v1/configmaps/x", "/apis/weir/v1/configmaps/{name}"),
    ("GET", "/apis/weir/v1/gc/history", "/apis/weir/v1/gc/history"),
    ("GET", "/apis/weir/v1/experiments/x/retention", "/apis/weir/v1/experiments/{experiment_id}/retention"),
    ("PUT", "/apis/weir/v1/experiments/x/retention", "/apis/weir/v1/experiments/{experiment_id}/retention"),
    ("DELETE", "/apis/weir/v1/experiments/x/retention", "/apis/weir/v1/experiments/{experiment_id}/retention"),
    ("GET", "/metrics", "/metrics"),
    ("GET", "/readyz", "/readyz"),
];

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// The document as the server serves it.
async fn served(app: &TestApp) -> Value {
    let r = app.get("/apis/weir/v1/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK);
    r.body
}

/// What a `$ref` (`#/components/...`) points at; `None` when nothing is there.
fn lookup<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    doc.pointer(pointer)
}

/// The schema itself, or the schema its `$ref` names.
fn deref<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => lookup(doc, reference).unwrap_or_else(|| panic!("{reference} does not resolve")),
        None => schema,
    }
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["components"]["schemas"].get(name).unwrap_or_else(|| panic!("no schema {name}"))
}

/// A property of an object schema, looking into `allOf` parts too.
fn property<'a>(doc: &'a Value, object: &'a Value, name: &str) -> &'a Value {
    let object = deref(doc, object);
    if let Some(found) = object["properties"].get(name) {
        return deref(doc, found);
    }
    for part in object["allOf"].as_array().into_iter().flatten() {
        if let Some(found) = deref(doc, part)["properties"].get(name) {
            return deref(doc, found);
        }
    }
    panic!("no property {name} in {object}")
}

/// The `required` list of an object schema (and of its `allOf` parts).
fn required(doc: &Value, object: &Value) -> Vec<String> {
    let object = deref(doc, object);
    let parts = std::iter::once(object).chain(object["allOf"].as_array().into_iter().flatten().map(|p| deref(doc, p)));
    parts
        .flat_map(|p| p["required"].as_array().cloned().unwrap_or_default())
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn all_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(reference)) => out.push(reference.clone()),
                    _ => all_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| all_refs(v, out)),
        _ => {}
    }
}

fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    doc["paths"][path].get(method).unwrap_or_else(|| panic!("no {method} {path} in the document"))
}

fn parameter<'a>(operation: &'a Value, name: &str) -> &'a Value {
    let parameters = operation["parameters"].as_array().expect("parameters");
    parameters.iter().find(|p| p["name"] == json!(name)).unwrap_or_else(|| panic!("no parameter {name}"))
}

#[tokio::test]
async fn serves_the_generated_document() {
    let app = TestApp::new().await;
    let r = app.send(Request::get("/apis/weir/v1/openapi.json").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::OK);
    let generated = serde_json::to_value(weir_server::openapi::ApiDoc::openapi()).unwrap();
    assert_eq!(r.body, generated);
    assert_eq!(r.body["openapi"], json!("3.1.0"));
    assert_eq!(r.body["info"]["title"], json!("weir"));
    let tags: Vec<&str> = r.body["tags"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    for tag in ["HealthzService", "PipelineService", "PipelineUploadService", "ExperimentService", "RunService"] {
        assert!(tags.contains(&tag), "tag {tag} missing: {tags:?}");
    }
    app.finish().await;
}

#[tokio::test]
async fn every_route_is_in_the_document_and_every_operation_is_routed() {
    let app = TestApp::new().await;
    let doc = served(&app).await;
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys().filter(|m| METHODS.contains(&m.as_str())) {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    for (method, request_path, doc_path) in ROUTES {
        assert!(
            documented.contains(&(method.to_string(), doc_path.to_string())),
            "{method} {doc_path} is routed but not documented"
        );
        // The router answers its fallbacks for what it does not route; a routed request gets
        // past them (to a handler, which may well answer 404 for the made-up id).
        let request = Request::builder().method(Method::from_bytes(method.as_bytes()).unwrap()).uri(*request_path);
        let r = app.send(request.body(Body::empty()).unwrap()).await;
        let message = r.body.get("message").and_then(Value::as_str).unwrap_or_default();
        assert!(
            message != "no such endpoint" && message != "method not allowed on this endpoint",
            "{method} {request_path} is not routed: {message}"
        );
    }
    for (method, path) in &documented {
        assert!(
            ROUTES.iter().any(|(m, _, p)| m == method && p == path),
            "{method} {path} is documented but not in this test's route table"
        );
    }
    app.finish().await;
}

#[tokio::test]
async fn every_reference_resolves_and_every_response_has_a_schema() {
    let app = TestApp::new().await;
    let doc = served(&app).await;
    let mut refs = Vec::new();
    all_refs(&doc, &mut refs);
    assert!(refs.iter().any(|r| r.starts_with("#/components/responses/")));
    for reference in &refs {
        assert!(lookup(&doc, reference).is_some(), "{reference} does not resolve");
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            assert!(responses.contains_key("200"), "{method} {path} has no 200");
            for (status, response) in responses {
                let response = deref(&doc, response);
                let content = response["content"].as_object();
                let content = content.unwrap_or_else(|| panic!("{method} {path} {status} has no content"));
                for (media_type, media) in content {
                    assert!(media.get("schema").is_some(), "{method} {path} {status} {media_type} has no schema");
                }
                if status != "200" && path.starts_with("/apis/") {
                    assert!(content.contains_key("application/json"), "{method} {path} {status}: no JSON error body");
                }
            }
        }
    }
    app.finish().await;
}

/// Facts of the hand-written document (crates/weir-server/openapi.json before issue 13) that
/// the generated one must keep.
#[tokio::test]
async fn keeps_what_the_hand_written_document_stated() {
    let app = TestApp::new().await;
    let doc = served(&app).await;

    // The error body: google.rpc.Status with every field required and its one detail typed.
    let status = schema(&doc, "Status");
    assert_eq!(required(&doc, status), ["code", "message", "details"]);
    let detail = deref(&doc, &property(&doc, status, "details")["items"]);
    assert_eq!(property(&doc, detail, "@type")["enum"], json!(["type.googleapis.com/google.rpc.Status"]));
    let not_found = &doc["components"]["responses"]["NotFound"]["content"]["application/json"]["schema"];
    assert_eq!(not_found["$ref"], json!("#/components/schemas/Status"));
    let upload = operation(&doc, "post", "/apis/v2beta1/pipelines/upload");
    assert_eq!(required(&doc, schema(&doc, "UploadError")), ["error_message", "error_details"]);
    let conflict = &upload["responses"]["409"]["content"]["application/json"]["schema"];
    assert_eq!(conflict["$ref"], json!("#/components/schemas/UploadError"));
    assert!(upload["responses"]["400"]["content"]["text/plain"].is_object());

    // The upload form: a binary `uploadfile` part, sent as application/octet-stream.
    let form = &upload["requestBody"]["content"]["multipart/form-data"];
    assert_eq!(upload["requestBody"]["required"], json!(true));
    assert_eq!(property(&doc, &form["schema"], "uploadfile")["format"], json!("binary"));
    assert_eq!(form["encoding"]["uploadfile"]["contentType"], json!("application/octet-stream"));
    assert_eq!(parameter(upload, "tags")["content"]["application/json"]["schema"]["type"], json!("object"));
    let upload_version = operation(&doc, "post", "/apis/v2beta1/pipelines/upload_version");
    assert_eq!(parameter(upload_version, "pipelineid")["required"], json!(true));

    // int64 as strings, timestamps as RFC 3339.
    let run_details = schema(&doc, "RunDetails");
    assert_eq!(property(&doc, run_details, "pipeline_context_id")["type"], json!("string"));
    assert_eq!(property(&doc, run_details, "pipeline_context_id")["format"], json!("int64"));
    assert_eq!(property(&doc, schema(&doc, "RecurringRun"), "max_concurrency")["format"], json!("int64"));
    assert_eq!(property(&doc, schema(&doc, "Run"), "created_at")["format"], json!("date-time"));

    // Enums by name.
    let state = property(&doc, schema(&doc, "Run"), "state");
    let states = ["PENDING", "RUNNING", "SUCCEEDED", "SKIPPED", "FAILED", "CANCELING", "CANCELED", "PAUSED"];
    assert_eq!(state["enum"], json!(states));
    assert_eq!(property(&doc, schema(&doc, "Experiment"), "storage_state")["enum"], json!(["AVAILABLE", "ARCHIVED"]));

    // Requests: what is required, and the bounds weir-service checks.
    assert_eq!(required(&doc, schema(&doc, "ExperimentInput")), ["display_name"]);
    assert_eq!(property(&doc, schema(&doc, "ExperimentInput"), "display_name")["pattern"], json!(r"\S"));
    let recurring = schema(&doc, "RecurringRunInput");
    for field in ["display_name", "max_concurrency", "trigger"] {
        assert!(required(&doc, recurring).contains(&field.to_string()), "{field} not required");
    }
    let integer = &property(&doc, recurring, "max_concurrency")["anyOf"][0];
    assert_eq!((&integer["minimum"], &integer["maximum"]), (&json!(1), &json!(10)));
    assert_eq!(required(&doc, schema(&doc, "PipelineVersionInput")), ["pipeline_spec"]);
    assert!(schema(&doc, "PipelineSpec")["examples"][0]["pipelineInfo"].is_object());

    // Lists: paging, sorting and filtering parameters, and the page.
    let list_runs = operation(&doc, "get", "/apis/v2beta1/runs");
    assert_eq!(parameter(list_runs, "page_size")["schema"]["minimum"], json!(0));
    let sort_by = parameter(list_runs, "sort_by")["schema"]["pattern"].as_str().unwrap();
    assert!(sort_by.contains("finished_at"), "{sort_by}");
    let filter = &parameter(list_runs, "filter")["content"]["application/json"]["schema"];
    assert_eq!(filter["$ref"], json!("#/components/schemas/RunFilter"));
    let predicate = &property(&doc, deref(&doc, filter), "predicates")["items"];
    assert_eq!(predicate["additionalProperties"], json!(false));
    assert!(predicate["properties"]["key"]["enum"].as_array().unwrap().contains(&json!("scheduled_at")));
    assert_eq!(deref(&doc, &predicate["properties"]["operation"])["anyOf"][1]["enum"], json!([1, 2, 3, 5, 6, 7, 8, 9]));
    assert!(parameter(list_runs, "experiment_id")["schema"].is_object());
    let page = schema(&doc, "ListRecurringRunsResponse");
    assert!(page["properties"]["recurringRuns"].is_object());
    assert_eq!(required(&doc, page), ["total_size"]);
    assert_eq!(page["properties"]["total_size"]["format"], json!("int32"));

    // weir's own: readiness always names both errors, null when none.
    assert_eq!(required(&doc, schema(&doc, "Readiness")), ["ready", "metadata_error", "artifacts_error"]);
    app.finish().await;
}
