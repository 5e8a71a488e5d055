//! Hostile input that must not escape weir's storage or exhaust it: oversized bodies get a 413
//! in KFP's error shape, and names (file names, task names, log requests) cannot make weir
//! read or write outside its stores.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{TestApp, SPEC_YAML};
use serde_json::json;

const V2: &str = "/apis/v2beta1";

#[tokio::test]
async fn oversized_bodies_are_413s() {
    let app = TestApp::new().await;
    let huge = vec![b' '; weir_server::MAX_BODY_BYTES + 1024];
    let r = app
        .send(
            Request::post(format!("{V2}/runs"))
                .header("content-type", "application/json")
                .body(Body::from(huge.clone()))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.body["code"], json!(8));
    let r = app.upload(&format!("{V2}/pipelines/upload?name=huge"), "huge.yaml", &huge).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.body["error_message"].as_str().unwrap().contains("larger"));
    assert!(app.objects().await.is_empty(), "nothing stored");
    app.finish().await;
}

#[tokio::test]
async fn file_names_cannot_escape_the_artifact_store() {
    let app = TestApp::new().await;
    for (i, name) in ["../../../etc/passwd.yaml", "/abs/x.yaml", "..\\\\x.yaml", ".hidden.yaml"].iter().enumerate() {
        let r = app.upload(&format!("{V2}/pipelines/upload?name=p{i}"), name, SPEC_YAML.as_bytes()).await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {:?}", r.body);
    }
    let root = app.artifacts_dir.path().canonicalize().unwrap();
    for key in app.objects().await {
        assert!(key.starts_with("pipelines/"), "{key}");
        assert!(!key.contains(".."), "{key}");
        let path = root.join(&key).canonicalize().unwrap();
        assert!(path.starts_with(&root), "{} escaped {}", path.display(), root.display());
    }
    // Log and task requests name ids and tasks, never paths.
    let r = app.get("/apis/weir/v1/runs/..%2F..%2Fetc/logs").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.get("/apis/weir/v1/artifacts/..%2Fidentity/content").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    app.finish().await;
}
