//! `TestApp`: the real router on a fresh database and artifact folder.

#![allow(dead_code)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;
use weir_artifacts::{ArtifactStore, S3Settings};
use weir_server::lifecycle::{open_storage, UpgradePolicy};
use weir_server::AppState;
use weir_store::ManualClock;
use weir_store_sql::testing::TestDatabase;
use weir_store_sql::{ConnectSettings, Dialect, SqlStore};

pub struct TestApp {
    pub state: AppState,
    pub router: axum::Router,
    pub clock: Arc<ManualClock>,
    pub db: TestDatabase,
    pub artifacts_dir: tempfile::TempDir,
}

pub struct Response {
    pub status: StatusCode,
    pub body: Value,
}

impl TestApp {
    pub async fn new() -> Self {
        Self::on(Dialect::Sqlite).await
    }

    pub async fn on(dialect: Dialect) -> Self {
        let db = TestDatabase::new(dialect);
        let store = Arc::new(SqlStore::connect(&db.url, &ConnectSettings::default()).await.expect("connect"));
        let artifacts_dir = tempfile::tempdir().unwrap();
        let artifacts =
            ArtifactStore::open(&format!("file://{}", artifacts_dir.path().display()), &S3Settings::default()).unwrap();
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        open_storage(store.as_ref(), &artifacts, UpgradePolicy::Manual, "test", 1).await.expect("initialise storage");
        let state = AppState::new(store, artifacts, clock.clone());
        state.services.experiments.default_experiment().await.map_err(|e| e.message).unwrap();
        let router = weir_server::router(state.clone());
        Self { state, router, clock, db, artifacts_dir }
    }

    pub async fn finish(self) {
        self.db.drop_database().await;
    }

    pub async fn send(&self, request: Request<Body>) -> Response {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Response { status, body }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send(Request::get(path).header("content-type", "application/json").body(Body::empty()).unwrap()).await
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.send(Request::delete(path).header("content-type", "application/json").body(Body::empty()).unwrap()).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        let body = if body.is_null() { Body::empty() } else { Body::from(body.to_string()) };
        self.send(Request::post(path).header("content-type", "application/json").body(body).unwrap()).await
    }

    /// A multipart upload, as the kfp client sends it.
    pub async fn upload(&self, path: &str, file_name: &str, content: &[u8]) -> Response {
        let boundary = "weirtestboundary";
        let mut body = Vec::new();
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"uploadfile\"; filename=\"{file_name}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        self.send(
            Request::post(path)
                .header("content-type", format!("multipart/form-data; boundary={boundary}"))
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }

    /// Every object in the artifact store except the identity marker.
    pub async fn objects(&self) -> Vec<String> {
        self.state
            .context()
            .artifacts
            .list("")
            .await
            .unwrap()
            .into_iter()
            .filter(|k| k != weir_artifacts::IDENTITY_KEY)
            .collect()
    }
}

pub const SPEC_YAML: &str = r#"# PIPELINE DEFINITION
components:
  comp-add:
    executorLabel: exec-add
    inputDefinitions:
      parameters:
        a: {parameterType: NUMBER_INTEGER}
deploymentSpec:
  executors:
    exec-add:
      container:
        image: python:3.11
        command: [sh, -c, 'echo $0', '{{$.inputs.parameters[''a'']}}']
pipelineInfo:
  name: tiny
root:
  dag:
    tasks:
      add:
        componentRef: {name: comp-add}
        inputs:
          parameters:
            a: {componentInputParameter: a}
        taskInfo: {name: add}
  inputDefinitions:
    parameters:
      a: {parameterType: NUMBER_INTEGER, defaultValue: 2.0}
schemaVersion: 2.1.0
sdkVersion: kfp-2.17.3
"#;

pub fn spec_json() -> Value {
    serde_norway::from_str(SPEC_YAML).unwrap()
}
