//! The UI's router on a real SQLite store and artifact folder: every page answers, errors are
//! pages with the right status, state changes need this origin's token, and user strings are
//! escaped. (The browser tests in tests/sdk/test_ui.py drive the same pages in Chromium.)

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use tower::ServiceExt;
use weir_artifacts::{ArtifactStore, S3Settings};
use weir_server::lifecycle::{open_storage, UpgradePolicy};
use weir_service::{Context, Services};
use weir_store::{
    Artifact, ExperimentStore, ManualClock, Progress, RunStore, RuntimeState, StorageState, TaskKind, TaskStore,
};
use weir_store_sql::{ConnectSettings, SqlStore};

struct App {
    router: Router,
    services: Services,
    artifacts: ArtifactStore,
    store: Arc<SqlStore>,
    experiment: String,
    _dir: tempfile::TempDir,
}

struct Page {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Page {
    fn cookie_token(&self) -> String {
        let cookie = self.headers.get(header::SET_COOKIE).expect("a CSRF cookie").to_str().unwrap();
        cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_string()
    }
}

async fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/weir.db", dir.path().display());
    let store = Arc::new(SqlStore::connect(&url, &ConnectSettings::default()).await.unwrap());
    let artifacts =
        ArtifactStore::open(&format!("file://{}/artifacts", dir.path().display()), &S3Settings::default()).unwrap();
    open_storage(store.as_ref(), &artifacts, UpgradePolicy::Manual, "test", 1).await.unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let services = Services::new(Context::new(store.clone(), artifacts.clone(), clock));
    let experiment = services.experiments.default_experiment().await.unwrap().id;
    let router = weir_ui::router(services.clone(), weir_ui::UiConfig::default());
    App { router, services, artifacts, store, experiment, _dir: dir }
}

impl App {
    async fn send(&self, request: Request<Body>) -> Page {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        Page { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
    }

    async fn get(&self, path: &str) -> Page {
        self.send(Request::get(path).body(Body::empty()).unwrap()).await
    }

    async fn post_form(&self, path: &str, cookie: Option<&str>, form: &str) -> Page {
        let mut request = Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(token) = cookie {
            request = request.header(header::COOKIE, format!("weir_csrf={token}"));
        }
        self.send(request.body(Body::from(form.to_string())).unwrap()).await
    }

    /// A finished run with one step, named `name`.
    async fn finished_run(&self, name: &str) -> String {
        let mut run = weir_store::testsuite::run(&self.experiment, name, 1_700_000_000_000);
        run.pipeline_spec = serde_json::json!({
            "pipelineInfo": {"name": "p"}, "schemaVersion": "2.1.0", "sdkVersion": "kfp-2.17.3",
            "deploymentSpec": {"executors": {"exec-a": {"container": {"image": "python:3.11", "command": ["echo"]}}}},
            "components": {"comp-a": {"executorLabel": "exec-a"}},
            "root": {"dag": {"tasks": {"step-a": {"taskInfo": {"name": "step-a"}, "componentRef": {"name": "comp-a"}}}}}
        });
        run.state = RuntimeState::Failed;
        run.finished_at = run.created_at + 5_000;
        let mut root = weir_store::testsuite::task(&run.id, "root", TaskKind::Dag, run.created_at);
        root.state = RuntimeState::Failed;
        let mut step = weir_store::testsuite::task(&run.id, "step-a", TaskKind::Container, run.created_at);
        step.parent_id = root.id.clone();
        step.state = RuntimeState::Failed;
        step.attempts = 1;
        step.error = Some(weir_store::ErrorInfo { code: 2, message: "exit code 3: <b>boom</b>".into() });
        self.store.bulk_load(std::slice::from_ref(&run), &[root, step]).await.unwrap();
        run.id
    }
}

#[tokio::test]
async fn every_page_answers_with_its_security_headers() {
    let app = app().await;
    let run = app.finished_run("first").await;
    for path in [
        "/",
        "/runs",
        "/runs?archived=true",
        "/pipelines",
        "/experiments",
        "/recurring-runs",
        "/storage",
        "/storage?objects=true",
        "/runs/new",
        &format!("/runs/{run}"),
        &format!("/experiments/{}", app.experiment),
    ] {
        let page = app.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        let csp = page.headers.get(header::CONTENT_SECURITY_POLICY).unwrap().to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(page.headers.get(header::X_CONTENT_TYPE_OPTIONS).unwrap(), "nosniff");
        assert!(page.body.contains("/static/weir.js"), "{path}");
    }
    let script = app.get("/static/weir.js").await;
    assert!(script.body.contains("#\\/runs\\/details\\/"), "the hash links of kfp.Client are mapped");
}

#[tokio::test]
async fn a_failed_run_names_its_step_and_escapes_what_it_shows() {
    let app = app().await;
    let run = app.finished_run("<script>alert(1)</script>").await;
    let page = app.get(&format!("/runs/{run}")).await;
    assert!(!page.body.contains("<script>alert(1)"), "{}", page.body);
    // askama escapes with numeric references.
    assert!(page.body.contains("&#60;script&#62;alert(1)&#60;/script&#62;"), "{}", page.body);
    assert!(page.body.contains("Step <a href=\"/runs/"), "{}", page.body);
    assert!(page.body.contains("exit code 3: &#60;b&#62;boom&#60;/b&#62;"));
    assert!(page.body.contains("g class=\"node container failed"));
    let list = app.get("/runs").await;
    assert!(list.body.contains("&#60;script&#62;alert(1)&#60;/script&#62;") && !list.body.contains("<script>alert"));
}

#[tokio::test]
async fn missing_things_are_error_pages_with_their_status() {
    let app = app().await;
    let page = app.get("/runs/5ca1e000-0000-4000-8000-000000000001").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains("<h1>Not Found</h1>"), "{}", page.body);
    assert_eq!(app.get("/runs?state=NOPE").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.get("/runs?from=yesterday").await.status, StatusCode::BAD_REQUEST);
    let run = app.finished_run("only one").await;
    let compare = app.get(&format!("/compare?ids={run}")).await;
    assert_eq!(compare.status, StatusCode::BAD_REQUEST);
    assert!(compare.body.contains("select 2 to 10 runs"));
}

#[tokio::test]
async fn state_changes_need_the_token_and_leave_nothing_when_refused() {
    let app = app().await;
    let run = app.finished_run("to archive").await;
    let token = app.get("/runs").await.cookie_token();
    let archive = format!("/runs/{run}/actions/archive");
    assert_eq!(app.post_form(&archive, None, "").await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.post_form(&archive, Some(&token), "").await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.post_form(&archive, Some(&token), &format!("csrf={}", "0".repeat(32))).await.status,
        StatusCode::FORBIDDEN
    );
    let cross = Request::post(&archive)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, format!("weir_csrf={token}"))
        .header("sec-fetch-site", "cross-site")
        .body(Body::from(format!("csrf={token}")))
        .unwrap();
    assert_eq!(app.send(cross).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.store.get_run(&run).await.unwrap().storage_state, StorageState::Available);

    let done = app.post_form(&archive, Some(&token), &format!("csrf={token}")).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(app.store.get_run(&run).await.unwrap().storage_state, StorageState::Archived);

    // Bulk: an unknown action changes nothing; delete removes the selected runs.
    let other = app.finished_run("to delete").await;
    let bad = app.post_form("/runs/bulk", Some(&token), &format!("csrf={token}&ids={other}&action=explode")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // A selection naming a run that no longer exists changes none of the others.
    let gone = "5ca1e000-0000-4000-8000-000000000009";
    let stale =
        app.post_form("/runs/bulk", Some(&token), &format!("csrf={token}&ids={other}&ids={gone}&action=delete")).await;
    assert_eq!(stale.status, StatusCode::NOT_FOUND);
    assert!(app.store.get_run(&other).await.is_ok());
    let form = format!("csrf={token}&ids={other}&action=delete&return=%2F%2Fevil.example");
    let deleted = app.post_form("/runs/bulk", Some(&token), &form).await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    assert_eq!(deleted.headers.get(header::LOCATION).unwrap(), "/runs", "no redirect off this site");
    assert!(app.store.get_run(&other).await.is_err());
}

#[tokio::test]
async fn links_and_redirects_keep_the_proxy_prefix() {
    let app = app().await;
    let run = app.finished_run("behind a proxy").await;
    let request =
        Request::get(format!("/runs/{run}")).header("x-forwarded-prefix", "/ml/weir/").body(Body::empty()).unwrap();
    let page = app.send(request).await;
    assert!(page.body.contains("href=\"/ml/weir/static/weir.css\""));
    assert!(page.body.contains(&format!("action=\"/ml/weir/runs/{run}/actions/archive\"")));
    assert!(!page.body.contains("href=\"/runs"), "every link has the prefix");
    let token = page.cookie_token();
    let request = Request::post(format!("/runs/{run}/actions/archive"))
        .header("x-forwarded-prefix", "/ml/weir")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, format!("weir_csrf={token}"))
        .body(Body::from(format!("csrf={token}")))
        .unwrap();
    let done = app.send(request).await;
    assert_eq!(done.headers.get(header::LOCATION).unwrap().to_str().unwrap(), format!("/ml/weir/runs/{run}"));
    // A prefix that is not a clean path is ignored, not echoed.
    let request = Request::get("/runs").header("x-forwarded-prefix", "/\"><script>").body(Body::empty()).unwrap();
    assert!(!app.send(request).await.body.contains("\"><script>"));
}

#[tokio::test]
async fn experiments_are_created_from_a_form() {
    let app = app().await;
    let token = app.get("/experiments").await.cookie_token();
    let created = app.post_form("/experiments", Some(&token), &format!("csrf={token}&name=churn+%3Cv2%3E")).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER);
    let location = created.headers.get(header::LOCATION).unwrap().to_str().unwrap().to_string();
    let page = app.get(&location).await;
    assert!(page.body.contains("<h1>churn &#60;v2&#62;</h1>"), "{}", page.body);
    let params = weir_api_model::ListParams::default();
    let names: Vec<String> =
        app.services.experiments.list(&params).await.unwrap().items.into_iter().map(|e| e.display_name).collect();
    assert!(names.contains(&"churn <v2>".to_string()));
    // An empty name is the service's error, shown as a page; nothing is made.
    let refused = app.post_form("/experiments", Some(&token), &format!("csrf={token}&name=")).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.services.experiments.list(&params).await.unwrap().items.len(), names.len());
}

/// An artifact of `run` whose file holds `content`, under the store's key `key`.
async fn artifact(app: &App, run: &str, id: i64, schema: &str, key: &str, content: &[u8]) -> i64 {
    app.artifacts.put(key, bytes::Bytes::copy_from_slice(content)).await.unwrap();
    let task = app.store.list_tasks(run).await.unwrap().pop().unwrap();
    let artifact = Artifact {
        id,
        run_id: run.to_string(),
        task_id: task.id,
        name: key.rsplit('/').next().unwrap().to_string(),
        uri: weir_artifacts::layout::uri_for_key(app.artifacts.url(), key),
        schema_title: schema.into(),
        schema_version: "0.0.1".into(),
        metadata: serde_json::json!({"rows": 100000}),
        created_at: 1_700_000_000_000,
        object_count: 1,
    };
    let progress = Progress { new_artifacts: vec![artifact], ..Default::default() };
    app.store.save_progress(run, &progress).await.unwrap();
    id
}

#[tokio::test]
async fn artifacts_are_previewed_rendered_or_sandboxed() {
    let app = app().await;
    let run = app.finished_run("with artifacts").await;
    // A large dataset: only its head is read and shown.
    let rows: String = (0..200_000).map(|i| format!("{i},row {i}\n")).collect();
    let dataset = artifact(&app, &run, 1001, "system.Dataset", "data/rows.csv", rows.as_bytes()).await;
    let page = app.get(&format!("/artifacts/{dataset}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&format!("first 50 lines of {} bytes", rows.len())), "{}", page.body);
    assert!(page.body.contains("49,row 49") && !page.body.contains("50,row 50"));
    // Markdown: rendered, raw HTML shown as text, unsafe links dropped.
    let markdown = b"# Report\n\n<script>alert(1)</script>\n\n[x](javascript:alert(2)) *fine*\n";
    let notes = artifact(&app, &run, 1002, "system.Markdown", "data/notes.md", markdown).await;
    let page = app.get(&format!("/artifacts/{notes}")).await;
    assert!(page.body.contains("<h1>Report</h1>"), "{}", page.body);
    assert!(!page.body.contains("<script>alert(1)") && !page.body.contains("href=\"javascript"), "{}", page.body);
    assert!(page.body.contains("<em>fine</em>"));
    // HTML: framed with a sandbox, and served as an opaque origin even when opened directly.
    let html = artifact(&app, &run, 1003, "system.HTML", "data/page.html", b"<script>parent.x=1</script>").await;
    let page = app.get(&format!("/artifacts/{html}")).await;
    assert!(page.body.contains(&format!("sandbox=\"allow-scripts\" src=\"/artifacts/{html}/raw\"")), "{}", page.body);
    let raw = app.get(&format!("/artifacts/{html}/raw")).await;
    let csp = raw.headers.get(header::CONTENT_SECURITY_POLICY).unwrap().to_str().unwrap();
    assert!(csp.starts_with("sandbox allow-scripts;") && !csp.contains("allow-same-origin"), "{csp}");
    // Anything else is a download, never rendered.
    let raw = app.get(&format!("/artifacts/{dataset}/raw")).await;
    assert!(raw.headers.get(header::CONTENT_DISPOSITION).unwrap().to_str().unwrap().starts_with("attachment"));
    assert_eq!(raw.body.len(), rows.len());
}

#[tokio::test]
async fn the_storage_page_shows_the_last_check() {
    let app = app().await;
    let page = app.get("/storage").await;
    assert!(page.body.contains("No check has run yet"), "{}", page.body);
    assert!(page.body.contains("both stores agree"));
    let report = serde_json::json!({"at": 1_700_000_000_000i64, "ok": false, "problems": ["1 object(s) the metadata refers to are missing"],
                                    "missing": 1, "orphans": 2, "referenced": 30, "objects": 31});
    app.artifacts.put(weir_artifacts::LAST_CHECK_KEY, report.to_string().into()).await.unwrap();
    let page = app.get("/storage?objects=true").await;
    assert!(page.body.contains("30 references against 31 objects: 1 missing, 2 orphans"), "{}", page.body);
    assert!(page.body.contains("1 object(s) the metadata refers to are missing"));
    // weir's own files are not counted among the objects.
    assert!(page.body.contains("<dt>Objects</dt><dd>0</dd>"), "{}", page.body);
}

#[tokio::test]
async fn the_storage_page_lists_removals_and_an_experiment_goes_with_its_runs() {
    let app = app().await;
    let experiment = app
        .services
        .experiments
        .create(&weir_api_model::Experiment { display_name: "short-lived".into(), ..Default::default() })
        .await
        .unwrap();
    let page = app.get(&format!("/experiments/{}", experiment.id)).await;
    assert!(page.body.contains("actions/delete-with-runs"), "{}", page.body);
    let token = page.cookie_token();
    let done = app
        .post_form(
            &format!("/experiments/{}/actions/delete-with-runs", experiment.id),
            Some(&token),
            &format!("csrf={token}"),
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    // The removal is recorded at once; the collector (not running here) finishes it.
    let page = app.get("/storage").await;
    assert!(page.body.contains("aria-label=\"Removals\""), "{}", page.body);
    assert!(page.body.contains(&format!("short-lived ({})", experiment.id)), "{}", page.body);
    assert!(page.body.contains("(deleting)"), "{}", page.body);
    app.services.context.collector().drain(&|_| {}).await.unwrap();
    assert!(app.store.get_experiment(&experiment.id).await.is_err(), "the cascade removed the experiment");
    let page = app.get("/storage").await;
    assert!(!page.body.contains("(deleting)"), "{}", page.body);
}
