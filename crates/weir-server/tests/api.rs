//! The HTTP API end to end through the real router, on SQLite and a local artifact folder.
//! The kfp SDK suite (tests/sdk) covers the same surface with the real client on all backends.

mod common;

use axum::http::StatusCode;
use common::{spec_json, TestApp, SPEC_YAML};
use serde_json::json;

const V2: &str = "/apis/v2beta1";

/// What `weir deploy check` reads through the Kubernetes service proxy.
#[tokio::test]
async fn storage_names_its_identities_and_schema() {
    let app = TestApp::new().await;
    let r = app.get("/apis/weir/v1/storage").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let head = *weir_store_sql::migration_versions(weir_store_sql::Dialect::Sqlite).iter().max().unwrap();
    assert_eq!(r.body["schema_version"], json!(head));
    assert_eq!(r.body["head_version"], json!(head));
    assert_eq!(r.body["pending_migrations"], json!([]));
    assert_eq!(r.body["dialect"], json!("sqlite"));
    assert_eq!(r.body["identity"], r.body["artifact_identity"], "{}", r.body);
    assert_eq!(r.body["weir_version"], json!(env!("CARGO_PKG_VERSION")));
    app.finish().await;
}

#[tokio::test]
async fn healthz_and_not_found_shapes() {
    let app = TestApp::new().await;
    let r = app.get(&format!("{V2}/healthz")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["multi_user"], json!(false));
    assert_eq!(r.body["pipeline_store"], json!("database"));

    let r = app.get(&format!("{V2}/runs/missing")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["code"], json!(5));
    assert_eq!(r.body["details"][0]["@type"], json!("type.googleapis.com/google.rpc.Status"));
    let r = app.get("/apis/v2beta1/nothing-here").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["code"], json!(5));
    app.finish().await;
}

#[tokio::test]
async fn upload_stores_the_spec_and_the_package() {
    let app = TestApp::new().await;
    let r = app
        .upload(&format!("{V2}/pipelines/upload?name=tiny-one&description=d"), "tiny.yaml", SPEC_YAML.as_bytes())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let pipeline_id = r.body["pipeline_id"].as_str().unwrap().to_string();
    assert_eq!(r.body["name"], json!("tiny-one"));
    assert_eq!(r.body["description"], json!("d"));
    assert!(r.body.get("namespace").is_none(), "empty fields are omitted");

    let versions = app.get(&format!("{V2}/pipelines/{pipeline_id}/versions")).await;
    assert_eq!(versions.body["total_size"], json!(1));
    let version = &versions.body["pipeline_versions"][0];
    assert_eq!(version["name"], json!("tiny-one"));
    assert_eq!(version["pipeline_spec"]["pipelineInfo"]["name"], json!("tiny"));
    // The original file is kept byte for byte.
    let objects = app.objects().await;
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert!(objects[0].starts_with(&format!("pipelines/{pipeline_id}/")));
    assert_eq!(app.state.context().artifacts.get(&objects[0]).await.unwrap(), SPEC_YAML.as_bytes());

    // A second version, by upload; then by JSON with an inline spec.
    let r = app
        .upload(
            &format!("{V2}/pipelines/upload_version?name=v2&pipelineid={pipeline_id}"),
            "tiny.yaml",
            SPEC_YAML.as_bytes(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = app
        .post(
            &format!("{V2}/pipelines/{pipeline_id}/versions"),
            json!({"display_name": "v3", "pipeline_spec": spec_json()}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let v3 = r.body["pipeline_version_id"].as_str().unwrap().to_string();
    assert_eq!(app.objects().await.len(), 3);

    // Delete without cascade refuses; versions then pipeline removes rows and packages.
    let r = app.delete(&format!("{V2}/pipelines/{pipeline_id}")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app.delete(&format!("{V2}/pipelines/{pipeline_id}/versions/{v3}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(app.objects().await.len(), 2);
    let r = app.delete(&format!("{V2}/pipelines/{pipeline_id}?cascade=true")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(app.objects().await.is_empty());
    assert_eq!(app.get(&format!("{V2}/pipelines/{pipeline_id}")).await.status, StatusCode::NOT_FOUND);
    app.finish().await;
}

#[tokio::test]
async fn refused_uploads_leave_nothing() {
    let app = TestApp::new().await;
    let cyclic = SPEC_YAML
        .replace("        taskInfo: {name: add}", "        taskInfo: {name: add}\n        dependentTasks: [add]");
    let unknown = SPEC_YAML.replace("componentRef: {name: comp-add}", "componentRef: {name: comp-nope}");
    let bad_name = SPEC_YAML.replace("name: tiny", "name: Tiny Pipeline");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("bad.yaml", b"a: [unclosed".to_vec(), "YAML"),
        ("map.yaml", b"just: a map".to_vec(), "not a pipeline spec"),
        ("cycle.yaml", cyclic.into_bytes(), "itself"),
        ("unknown.yaml", unknown.into_bytes(), "unknown component"),
        ("name.yaml", bad_name.into_bytes(), "invalid pipeline name"),
        ("blob.bin", vec![0, 159, 146, 150], "format"),
    ];
    for (file, content, expect) in cases {
        let r = app.upload(&format!("{V2}/pipelines/upload?name=x-{file}"), file, &content).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{file}: {:?}", r.body);
        let message = r.body["error_message"].as_str().unwrap_or_default();
        assert!(message.contains(expect), "{file}: {message:?} lacks {expect:?}");
    }
    let r = app.get(&format!("{V2}/pipelines")).await;
    assert_eq!(r.body, json!({"total_size": 0}));
    assert!(app.objects().await.is_empty());

    // A duplicate name is a 409, and its package is removed again.
    assert_eq!(
        app.upload(&format!("{V2}/pipelines/upload?name=dup"), "p.yaml", SPEC_YAML.as_bytes()).await.status,
        StatusCode::OK
    );
    let r = app.upload(&format!("{V2}/pipelines/upload?name=dup"), "p.yaml", SPEC_YAML.as_bytes()).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(app.objects().await.len(), 1);
    // No uploadfile part.
    let r = app.post(&format!("{V2}/pipelines/upload"), json!({})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    app.finish().await;
}

#[tokio::test]
async fn runs_lifecycle_through_the_api() {
    let app = TestApp::new().await;
    let exp = app.post(&format!("{V2}/experiments"), json!({"display_name": "e1", "namespace": ""})).await;
    assert_eq!(exp.status, StatusCode::OK);
    let experiment_id = exp.body["experiment_id"].as_str().unwrap().to_string();
    let dup = app.post(&format!("{V2}/experiments"), json!({"display_name": "e1"})).await;
    assert_eq!(dup.status, StatusCode::CONFLICT);

    let body = json!({
        "experiment_id": experiment_id,
        "display_name": "r1",
        "pipeline_spec": spec_json(),
        "runtime_config": {"parameters": {"a": 3}},
    });
    let r = app.post(&format!("{V2}/runs"), body).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let run_id = r.body["run_id"].as_str().unwrap().to_string();
    assert_eq!(r.body["state"], json!("PENDING"));
    assert_eq!(r.body["runtime_config"]["parameters"]["a"], json!(3));
    assert_eq!(r.body["finished_at"], json!("1970-01-01T00:00:00Z"));
    assert_eq!(r.body["state_history"][0]["state"], json!("PENDING"));
    let exp = app.get(&format!("{V2}/experiments/{experiment_id}")).await;
    assert_eq!(exp.body["last_run_created_at"], exp.body["created_at"]);

    // A run without an experiment goes to Default; bad bodies are 400s.
    let r = app.post(&format!("{V2}/runs"), json!({"display_name": "r2", "pipeline_spec": spec_json()})).await;
    assert_eq!(r.status, StatusCode::OK);
    for bad in [
        json!({"pipeline_spec": spec_json()}),
        json!({"display_name": "x"}),
        json!({"display_name": "x", "pipeline_spec": {"pipelineInfo": {"name": "BAD NAME"}}}),
        json!({"display_name": "x", "pipeline_spec": spec_json(), "pipeline_version_reference": {"pipeline_id": "p"}}),
        json!({"display_name": "x", "pipeline_spec": spec_json(), "runtime_config": {"parameters": {"a": "three"}}}),
        json!({"display_name": "x", "pipeline_spec": spec_json(), "runtime_config": {"parameters": {"typo": 1}}}),
    ] {
        assert_eq!(app.post(&format!("{V2}/runs"), bad.clone()).await.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let r = app
        .post(
            &format!("{V2}/runs"),
            json!({"display_name": "x", "experiment_id": "nope", "pipeline_spec": spec_json()}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .send(axum::http::Request::post(format!("{V2}/runs")).body(axum::body::Body::from("{not json")).unwrap())
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Terminate a pending run: CANCELED. Retry: PENDING again. Retry of a pending run: 409.
    assert_eq!(app.post(&format!("{V2}/runs/{run_id}:terminate"), json!(null)).await.status, StatusCode::OK);
    assert_eq!(app.get(&format!("{V2}/runs/{run_id}")).await.body["state"], json!("CANCELED"));
    assert_eq!(app.post(&format!("{V2}/runs/{run_id}:terminate"), json!(null)).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.post(&format!("{V2}/runs/{run_id}:retry"), json!(null)).await.status, StatusCode::OK);
    let r = app.get(&format!("{V2}/runs/{run_id}")).await;
    assert_eq!(r.body["state"], json!("PENDING"));
    assert_eq!(r.body["state_history"].as_array().unwrap().len(), 3);
    assert_eq!(app.post(&format!("{V2}/runs/{run_id}:retry"), json!(null)).await.status, StatusCode::CONFLICT);
    assert_eq!(app.post(&format!("{V2}/runs/{run_id}:bogus"), json!(null)).await.status, StatusCode::NOT_FOUND);

    // Archive the experiment: its runs are archived and cannot be unarchived until it is.
    assert_eq!(
        app.post(&format!("{V2}/experiments/{experiment_id}:archive"), json!(null)).await.status,
        StatusCode::OK
    );
    assert_eq!(app.get(&format!("{V2}/runs/{run_id}")).await.body["storage_state"], json!("ARCHIVED"));
    assert_eq!(app.post(&format!("{V2}/runs/{run_id}:unarchive"), json!(null)).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        app.post(&format!("{V2}/experiments/{experiment_id}:unarchive"), json!(null)).await.status,
        StatusCode::OK
    );
    assert_eq!(app.post(&format!("{V2}/runs/{run_id}:unarchive"), json!(null)).await.status, StatusCode::OK);

    // Lists: by experiment, filtered, sorted, paged.
    let list = app.get(&format!("{V2}/runs?experiment_id={experiment_id}")).await;
    assert_eq!(list.body["total_size"], json!(1));
    let all = app.get(&format!("{V2}/runs?page_size=1&sort_by=created_at%20desc")).await;
    assert_eq!(all.body["total_size"], json!(2));
    assert!(all.body["next_page_token"].is_string());
    let bad = app.get(&format!("{V2}/runs?sort_by=nope")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let bad = app.get(&format!("{V2}/runs?filter=%7Bbroken")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let bad = app.get(&format!("{V2}/runs?experiment_id=nope")).await;
    assert_eq!(bad.status, StatusCode::NOT_FOUND);

    // The Default experiment cannot be deleted; others can, their runs stay.
    let default = app.get(&format!("{V2}/experiments?filter=%7B%22predicates%22%3A%5B%7B%22operation%22%3A1%2C%22key%22%3A%22display_name%22%2C%22stringValue%22%3A%22Default%22%7D%5D%7D")).await;
    let default_id = default.body["experiments"][0]["experiment_id"].as_str().unwrap().to_string();
    assert_eq!(app.delete(&format!("{V2}/experiments/{default_id}")).await.status, StatusCode::CONFLICT);
    assert_eq!(app.delete(&format!("{V2}/experiments/{experiment_id}")).await.status, StatusCode::OK);
    assert_eq!(app.get(&format!("{V2}/runs/{run_id}")).await.status, StatusCode::OK);
    assert_eq!(app.delete(&format!("{V2}/runs/{run_id}")).await.status, StatusCode::OK);
    assert_eq!(app.get(&format!("{V2}/runs/{run_id}")).await.status, StatusCode::NOT_FOUND);
    app.finish().await;
}

#[tokio::test]
async fn runs_from_a_pipeline_version() {
    let app = TestApp::new().await;
    let r = app.upload(&format!("{V2}/pipelines/upload?name=versioned"), "p.yaml", SPEC_YAML.as_bytes()).await;
    let pipeline_id = r.body["pipeline_id"].as_str().unwrap().to_string();
    app.clock.advance(5_000);
    let v2 = app
        .upload(
            &format!("{V2}/pipelines/upload_version?name=second&pipelineid={pipeline_id}"),
            "p.yaml",
            SPEC_YAML.as_bytes(),
        )
        .await;
    let v2_id = v2.body["pipeline_version_id"].as_str().unwrap().to_string();

    // Naming only the pipeline takes its newest version.
    let r = app
        .post(
            &format!("{V2}/runs"),
            json!({"display_name": "r", "pipeline_version_reference": {"pipeline_id": pipeline_id}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["pipeline_version_reference"]["pipeline_version_id"], json!(v2_id));
    assert!(r.body.get("pipeline_spec").is_none());
    let r = app
        .post(&format!("{V2}/runs"), json!({"display_name": "r", "pipeline_version_reference": {"pipeline_id": "other", "pipeline_version_id": v2_id}}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    app.finish().await;
}

#[tokio::test]
async fn recurring_runs_validate_their_triggers() {
    let app = TestApp::new().await;
    let base = json!({"display_name": "nightly", "pipeline_spec": spec_json(), "max_concurrency": 2, "mode": "ENABLE",
                      "trigger": {"cron_schedule": {"cron": "0 0 2 * * *", "start_time": "2030-01-01T00:00:00Z"}}});
    let r = app.post(&format!("{V2}/recurringruns"), base.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["max_concurrency"], json!("2"), "int64 is a JSON string");
    assert_eq!(r.body["status"], json!("ENABLED"));
    assert_eq!(r.body["trigger"]["cron_schedule"]["start_time"], json!("2030-01-01T00:00:00Z"));
    let id = r.body["recurring_run_id"].as_str().unwrap().to_string();

    let mut cases = Vec::new();
    for (path, value) in [
        ("/trigger/cron_schedule/cron", json!("every day")),
        ("/trigger/cron_schedule/cron", json!("0 0 25 * * *")),
        ("/max_concurrency", json!(0)),
        ("/max_concurrency", json!(11)),
        ("/trigger", json!({"periodic_schedule": {"interval_second": 0}})),
        ("/trigger", json!({})),
        (
            "/trigger",
            json!({"periodic_schedule": {"interval_second": 60, "start_time": "2030-01-02T00:00:00Z", "end_time": "2030-01-01T00:00:00Z"}}),
        ),
        ("/pipeline_spec", json!(null)),
    ] {
        let mut body = base.clone();
        *body.pointer_mut(path).unwrap() = value.clone();
        cases.push((path, value, body));
    }
    let mut unknown_version = base.clone();
    unknown_version.as_object_mut().unwrap().remove("pipeline_spec");
    unknown_version["pipeline_version_reference"] = json!({"pipeline_id": "p", "pipeline_version_id": "nope"});
    for (path, value, body) in cases {
        let r = app.post(&format!("{V2}/recurringruns"), body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path} = {value}: {:?}", r.body);
    }
    assert_eq!(app.post(&format!("{V2}/recurringruns"), unknown_version).await.status, StatusCode::BAD_REQUEST);

    let list = app.get(&format!("{V2}/recurringruns")).await;
    assert_eq!(list.body["total_size"], json!(1));
    assert!(list.body["recurringRuns"].is_array(), "the one camelCase list key");
    assert_eq!(app.post(&format!("{V2}/recurringruns/{id}:disable"), json!(null)).await.status, StatusCode::OK);
    assert_eq!(app.get(&format!("{V2}/recurringruns/{id}")).await.body["status"], json!("DISABLED"));
    assert_eq!(app.delete(&format!("{V2}/recurringruns/{id}")).await.status, StatusCode::OK);
    assert_eq!(app.get(&format!("{V2}/recurringruns/{id}")).await.status, StatusCode::NOT_FOUND);
    app.finish().await;
}

#[tokio::test]
async fn metrics_count_requests() {
    let app = TestApp::new().await;
    app.get(&format!("{V2}/healthz")).await;
    let response = app
        .router
        .clone()
        .oneshot(axum::http::Request::get("/metrics").body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    let text =
        String::from_utf8(axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec()).unwrap();
    assert!(text.contains("weir_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/apis/v2beta1/healthz\""), "{text}");
    assert!(text.contains("weir_http_request_duration_seconds_bucket"), "{text}");
    assert!(text.contains("weir_db_pool_connections"), "{text}");
    app.finish().await;
}

use tower::ServiceExt;

/// `get_run` answers from each task's kept JSON plus the tasks written since the last read:
/// after new, changed and removed tasks its answer is the one a server reading everything
/// afresh gives, and a run's tasks page in creation order.
#[tokio::test]
async fn run_details_follow_task_writes_and_tasks_page() {
    use weir_store::{Progress, RuntimeState, Task, TaskKind, TaskStore};

    let app = TestApp::new().await;
    let store = std::sync::Arc::new(
        weir_store_sql::SqlStore::connect(&app.db.url, &weir_store_sql::ConnectSettings::default()).await.unwrap(),
    );
    // A second server on the same database, whose reads start from nothing each time.
    let fresh = || {
        let folder = format!("file://{}", app.artifacts_dir.path().display());
        let artifacts = weir_artifacts::ArtifactStore::open(&folder, &Default::default()).unwrap();
        let state = weir_server::AppState::new(store.clone(), artifacts, app.clock.clone());
        weir_server::router(state)
    };
    let get_fresh = |path: String| {
        let router = fresh();
        async move {
            use tower::ServiceExt;
            let request = axum::http::Request::get(path).body(axum::body::Body::empty()).unwrap();
            let response = router.oneshot(request).await.unwrap();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
        }
    };
    let created = app.post(&format!("{V2}/runs"), json!({"display_name": "big", "pipeline_spec": spec_json()})).await;
    let run_id = created.body["run_id"].as_str().unwrap().to_string();
    let path = format!("{V2}/runs/{run_id}");
    let before = app.get(&path).await.body;
    assert_eq!(before["pipeline_spec"], created.body["pipeline_spec"]);
    assert!(before.get("run_details").is_none());

    // The store suite's task, placed in this run's tree.
    let task = |name: &str, parent: &str, at: i64| {
        let kind = if parent.is_empty() { TaskKind::Dag } else { TaskKind::Container };
        Task { parent_id: parent.to_string(), ..weir_store::testsuite::task(&run_id, name, kind, at) }
    };
    let root = task("root", "", 1);
    let mut children: Vec<Task> = (0..3).map(|i| task(&format!("step-{i}"), &root.id, 2 + i)).collect();
    let mut first = vec![root.clone()];
    first.extend(children.iter().cloned());
    store.save_progress(&run_id, &Progress { new_tasks: first, ..Default::default() }).await.unwrap();
    let read = app.get(&path).await.body;
    assert_eq!(read, get_fresh(path.clone()).await);
    let details = read["run_details"]["task_details"].as_array().unwrap();
    assert_eq!(details.len(), 4);
    let child_ids: Vec<&str> =
        details[0]["child_tasks"].as_array().unwrap().iter().map(|c| c["task_id"].as_str().unwrap()).collect();
    assert_eq!(child_ids, children.iter().map(|c| c.id.as_str()).collect::<Vec<_>>());
    assert_eq!(read["pipeline_spec"], created.body["pipeline_spec"]);

    // A changed task and a new one; then a removal.
    children[1].set_state(RuntimeState::Running, None, 10);
    let late = task("step-late", &root.id, 20);
    store
        .save_progress(
            &run_id,
            &Progress { changed_tasks: vec![children[1].clone()], new_tasks: vec![late.clone()], ..Default::default() },
        )
        .await
        .unwrap();
    let read = app.get(&path).await.body;
    assert_eq!(read, get_fresh(path.clone()).await);
    assert_eq!(read["run_details"]["task_details"][2]["state"], json!("RUNNING"));
    assert_eq!(read["run_details"]["task_details"][0]["child_tasks"].as_array().unwrap().len(), 4);
    let removed = Progress { deleted_tasks: vec![children[0].id.clone()], ..Default::default() };
    store.save_progress(&run_id, &removed).await.unwrap();
    let read = app.get(&path).await.body;
    assert_eq!(read, get_fresh(path.clone()).await);
    assert_eq!(read["run_details"]["task_details"].as_array().unwrap().len(), 4);
    assert!(!read.to_string().contains(&children[0].id));

    // Pages of two, in the order of the whole listing.
    let tasks_path = format!("/apis/weir/v1/runs/{run_id}/tasks");
    let all: Vec<serde_json::Value> = app.get(&tasks_path).await.body["tasks"].as_array().unwrap().clone();
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = app.get(&format!("{tasks_path}?page_size=2&page_token={token}")).await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        let tasks = page.body["tasks"].as_array().unwrap();
        assert!(tasks.len() <= 2);
        paged.extend(tasks.iter().cloned());
        match page.body.get("next_page_token").and_then(|t| t.as_str()) {
            Some(next) => token = next.to_string(),
            None => break,
        }
    }
    assert_eq!(paged, all);
    assert_eq!(all.len(), 4);
    for bad in ["page_size=0", "page_size=1001", "page_size=2&page_token=nonsense", "page_size=x"] {
        let answer = app.get(&format!("{tasks_path}?{bad}")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}: {:?}", answer.body);
    }
    assert_eq!(app.get("/apis/weir/v1/runs/nope/tasks?page_size=2").await.status, StatusCode::NOT_FOUND);

    // A deleted run's details go with it.
    assert_eq!(app.delete(&path).await.status, StatusCode::OK);
    assert_eq!(app.get(&path).await.status, StatusCode::NOT_FOUND);
    app.finish().await;
}
