//! The conformance suite every metadata store backend must pass.
//!
//! A backend's test builds a fresh, migrated store and calls [`run_all`]; each check uses its
//! own names, so checks share one database. The same assertions run on every backend, so
//! behaviour (ordering, case sensitivity, paging, conflicts) cannot differ between them.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::*;

mod gc;
mod leases;
mod writes;
use gc::{removals_keep_what_others_use, retention_chooses_runs};
use leases::{engine_lease_is_taken_once, runs_are_taken_once_and_old_owners_fenced};
use writes::several_tasks_are_written_whole;

pub type Check =
    for<'a> fn(&'a dyn MetadataStore) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;

macro_rules! checks {
    ($($name:ident),+ $(,)?) => {
        /// Every check, by name.
        pub fn checks() -> Vec<(&'static str, Check)> {
            vec![$((stringify!($name), |s| Box::pin($name(s)))),+]
        }
    };
}

checks!(
    schema_and_identity,
    engine_lease_is_taken_once,
    runs_are_taken_once_and_old_owners_fenced,
    pipelines_crud_and_conflicts,
    pipeline_versions_crud,
    experiments_crud_and_archive,
    runs_crud_history_and_transitions,
    recurring_runs_crud,
    list_filters,
    list_sorting_and_paging,
    paging_survives_inserts,
    tasks_and_artifacts,
    task_versions_and_pages,
    several_tasks_are_written_whole,
    run_totals_follow_every_change,
    nul_characters_are_refused_everywhere,
    step_configs_crud,
    removals_keep_what_others_use,
    retention_chooses_runs,
);

/// Runs every check in order, panicking with the check's name on the first failure.
pub async fn run_all(store: &dyn MetadataStore) {
    for (name, check) in checks() {
        eprintln!("conformance check: {name}");
        check(store).await;
    }
}

fn uid(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

pub fn pipeline(name: &str, created_at: i64) -> Pipeline {
    Pipeline {
        id: uid("p"),
        name: name.into(),
        display_name: name.into(),
        description: format!("about {name}"),
        namespace: String::new(),
        created_at,
        tags: BTreeMap::from([("team".to_string(), "ml".to_string())]),
    }
}

pub fn version(pipeline_id: &str, name: &str, created_at: i64) -> PipelineVersion {
    PipelineVersion {
        id: uid("v"),
        pipeline_id: pipeline_id.into(),
        name: name.into(),
        display_name: name.into(),
        description: String::new(),
        created_at,
        pipeline_spec: json!({"pipelineInfo": {"name": "p"}, "root": {"dag": {"tasks": {}}}, "n": 2}),
        platform_spec: Some(json!({"platforms": {"kubernetes": {}}})),
        package_key: format!("pipelines/{pipeline_id}/{name}/pipeline.yaml"),
        package_url: String::new(),
        code_source_url: "https://example.com/src".into(),
        tags: BTreeMap::new(),
    }
}

pub fn experiment(name: &str, created_at: i64) -> Experiment {
    Experiment {
        id: uid("e"),
        display_name: name.into(),
        description: String::new(),
        namespace: String::new(),
        created_at,
        storage_state: StorageState::Available,
        last_run_created_at: 0,
    }
}

pub fn run(experiment_id: &str, name: &str, created_at: i64) -> Run {
    Run {
        id: uid("r"),
        experiment_id: experiment_id.into(),
        display_name: name.into(),
        description: String::new(),
        namespace: String::new(),
        storage_state: StorageState::Available,
        pipeline_id: String::new(),
        pipeline_version_id: String::new(),
        pipeline_spec: json!({"pipelineInfo": {"name": "p"}}),
        platform_spec: None,
        parameters: json!({"a": 1, "b": [1, 2], "c": {"d": "e"}}).as_object().cloned().unwrap_or_default(),
        pipeline_root: String::new(),
        service_account: String::new(),
        created_at,
        scheduled_at: created_at,
        finished_at: 0,
        state: RuntimeState::Pending,
        error: None,
        recurring_run_id: String::new(),
        state_history: vec![StateChange { update_time: created_at, state: RuntimeState::Pending, error: None }],
    }
}

pub fn recurring_run(experiment_id: &str, name: &str, created_at: i64) -> RecurringRun {
    RecurringRun {
        id: uid("rr"),
        display_name: name.into(),
        description: String::new(),
        experiment_id: experiment_id.into(),
        namespace: String::new(),
        pipeline_id: String::new(),
        pipeline_version_id: String::new(),
        pipeline_spec: json!({"pipelineInfo": {"name": "p"}}),
        platform_spec: None,
        parameters: Default::default(),
        pipeline_root: String::new(),
        service_account: String::new(),
        max_concurrency: 3,
        trigger: Trigger::Cron { cron: "0 0 2 * * *".into(), start_time: Some(1000), end_time: None },
        enabled: true,
        no_catchup: true,
        created_at,
        updated_at: created_at,
        last_slot_at: 0,
        last_index: 0,
    }
}

fn q(entity: Entity, filter: &str, sort: &str, size: Option<&str>, token: &str, scope: &[(&str, &str)]) -> ListQuery {
    ListQuery::resolve(entity, filter, sort, size, token, scope).expect("valid list query")
}

async fn schema_and_identity(store: &dyn MetadataStore) {
    match store.schema_state().await.unwrap() {
        SchemaState::Weir { applied, known, .. } => assert_eq!(applied, known, "a migrated store is at head"),
        other => panic!("migrated store reported {other:?}"),
    }
    let identity = StorageIdentity { id: uid("id"), created_at: 5, deployment: "conformance".into() };
    store.begin_identity(&identity).await.unwrap();
    match store.schema_state().await.unwrap() {
        SchemaState::Weir { identity: Some(found), initialising: true, .. } => assert_eq!(found, identity),
        other => panic!("unexpected state {other:?}"),
    }
    store.finish_identity().await.unwrap();
    match store.schema_state().await.unwrap() {
        SchemaState::Weir { identity: Some(found), initialising: false, .. } => assert_eq!(found, identity),
        other => panic!("unexpected state {other:?}"),
    }
    assert!(store
        .begin_identity(&StorageIdentity { id: identity.id.clone(), created_at: 6, deployment: String::new() })
        .await
        .is_err());
    // Storage has one identity: a second, different one (a weir initialising the same new
    // storage at the same moment) is refused.
    let other = StorageIdentity { id: uid("other"), created_at: 7, deployment: "other".into() };
    assert!(matches!(store.begin_identity(&other).await, Err(StoreError::AlreadyExists(_))));
    store.ping().await.unwrap();
    assert!(migrations_are_idempotent(store).await);
}

async fn migrations_are_idempotent(store: &dyn MetadataStore) -> bool {
    store.migrate().await.unwrap().is_empty()
}

async fn pipelines_crud_and_conflicts(store: &dyn MetadataStore) {
    let p = pipeline(&uid("pipe"), 1_000);
    let v = version(&p.id, "v1", 1_000);
    store.create_pipeline(&p, Some(&v)).await.unwrap();
    assert_eq!(store.get_pipeline(&p.id).await.unwrap(), p);
    assert_eq!(store.get_pipeline_by_name("", &p.name).await.unwrap(), p);
    assert_eq!(store.get_pipeline_version(&p.id, &v.id).await.unwrap(), v);

    // Same name: conflict, and nothing of the second attempt is left behind.
    let mut dup = pipeline(&p.name, 2_000);
    let dup_version = version(&dup.id, "v1", 2_000);
    let err = store.create_pipeline(&dup, Some(&dup_version)).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");
    assert!(matches!(store.get_pipeline(&dup.id).await, Err(StoreError::NotFound(_))));
    assert!(matches!(store.get_pipeline_version("", &dup_version.id).await, Err(StoreError::NotFound(_))));
    // Names are case-sensitive on every backend.
    dup.name = p.name.to_uppercase();
    store.create_pipeline(&dup, None).await.unwrap();

    // A pipeline with versions is not deleted without cascade.
    let err = store.delete_pipeline(&p.id, false).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidArgument(_)), "{err:?}");
    let deleted = store.delete_pipeline(&p.id, true).await.unwrap();
    assert_eq!(deleted, vec![v.clone()]);
    assert!(matches!(store.get_pipeline(&p.id).await, Err(StoreError::NotFound(_))));
    assert!(matches!(store.get_pipeline_version("", &v.id).await, Err(StoreError::NotFound(_))));
    assert!(store.delete_pipeline(&dup.id, false).await.unwrap().is_empty());
    assert!(matches!(store.delete_pipeline(&dup.id, false).await, Err(StoreError::NotFound(_))));
}

async fn pipeline_versions_crud(store: &dyn MetadataStore) {
    let p = pipeline(&uid("pv"), 1_000);
    store.create_pipeline(&p, None).await.unwrap();
    assert!(matches!(store.latest_pipeline_version(&p.id).await, Err(StoreError::NotFound(_))));
    let v1 = version(&p.id, "one", 1_000);
    let v2 = version(&p.id, "two", 2_000);
    store.create_pipeline_version(&v1).await.unwrap();
    store.create_pipeline_version(&v2).await.unwrap();
    let err = store.create_pipeline_version(&version(&p.id, "two", 3_000)).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");
    let err = store.create_pipeline_version(&version("missing", "x", 3_000)).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert_eq!(store.latest_pipeline_version(&p.id).await.unwrap().id, v2.id);

    let page = store
        .list_pipeline_versions(&q(Entity::PipelineVersion, "", "", None, "", &[("pipeline_id", &p.id)]))
        .await
        .unwrap();
    assert_eq!(page.total_size, 2);
    assert_eq!(page.items.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["one", "two"]);
    assert_eq!(page.items[0].pipeline_spec["n"], json!(2));

    assert!(matches!(store.get_pipeline_version("other", &v1.id).await, Err(StoreError::NotFound(_))));
    assert_eq!(store.delete_pipeline_version(&p.id, &v1.id).await.unwrap(), v1);
    assert!(matches!(store.delete_pipeline_version(&p.id, &v1.id).await, Err(StoreError::NotFound(_))));
    assert_eq!(store.latest_pipeline_version(&p.id).await.unwrap().id, v2.id);
}

async fn step_configs_crud(store: &dyn MetadataStore) {
    let name = uid("secret");
    let secret = StepConfig {
        kind: StepConfigKind::Secret,
        name: name.clone(),
        data: BTreeMap::from([("password".to_string(), "p\u{e9}w \"q\"".to_string()), ("user".into(), "me".into())]),
        created_at: 1_000,
    };
    store.create_step_config(&secret).await.unwrap();
    assert_eq!(store.get_step_config(StepConfigKind::Secret, &name).await.unwrap(), secret);
    // A config map of the same name is another object, as in a Kubernetes namespace.
    let map = StepConfig { kind: StepConfigKind::ConfigMap, data: BTreeMap::new(), ..secret.clone() };
    store.create_step_config(&map).await.unwrap();
    let err = store.create_step_config(&secret).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(ref m) if m.contains(&name)), "{err:?}");
    let listed = store.list_step_configs(StepConfigKind::Secret).await.unwrap();
    assert!(listed.contains(&secret) && !listed.contains(&map));
    store.delete_step_config(StepConfigKind::Secret, &name).await.unwrap();
    let err = store.get_step_config(StepConfigKind::Secret, &name).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    let err = store.delete_step_config(StepConfigKind::Secret, &name).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert_eq!(store.get_step_config(StepConfigKind::ConfigMap, &name).await.unwrap(), map);
}

async fn experiments_crud_and_archive(store: &dyn MetadataStore) {
    let e = experiment(&uid("exp"), 1_000);
    store.create_experiment(&e).await.unwrap();
    assert_eq!(store.get_experiment(&e.id).await.unwrap(), e);
    assert_eq!(store.get_experiment_by_name("", &e.display_name).await.unwrap(), e);
    let err = store.create_experiment(&experiment(&e.display_name, 2_000)).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");

    let r = run(&e.id, "r", 3_000);
    store.create_run(&r).await.unwrap();
    let rr = recurring_run(&e.id, "rr", 3_000);
    store.create_recurring_run(&rr).await.unwrap();

    store.archive_experiment(&e.id, 4_000).await.unwrap();
    assert_eq!(store.get_experiment(&e.id).await.unwrap().storage_state, StorageState::Archived);
    assert_eq!(store.get_run(&r.id).await.unwrap().storage_state, StorageState::Archived);
    let disabled = store.get_recurring_run(&rr.id).await.unwrap();
    assert!(!disabled.enabled);
    assert_eq!(disabled.updated_at, 4_000);
    // A run cannot come back while its experiment is archived.
    let err = store.set_run_storage_state(&r.id, StorageState::Available, 5_000).await.unwrap_err();
    assert!(matches!(err, StoreError::FailedPrecondition(_)), "{err:?}");

    store.unarchive_experiment(&e.id).await.unwrap();
    assert_eq!(store.get_experiment(&e.id).await.unwrap().storage_state, StorageState::Available);
    assert_eq!(store.get_run(&r.id).await.unwrap().storage_state, StorageState::Archived);
    store.set_run_storage_state(&r.id, StorageState::Available, 5_000).await.unwrap();

    assert!(matches!(store.archive_experiment("missing", 1).await, Err(StoreError::NotFound(_))));
    store.delete_experiment(&e.id).await.unwrap();
    assert!(matches!(store.get_experiment(&e.id).await, Err(StoreError::NotFound(_))));
    // The experiment's runs are kept, as in KFP.
    assert_eq!(store.get_run(&r.id).await.unwrap().id, r.id);
    assert!(matches!(store.delete_experiment(&e.id).await, Err(StoreError::NotFound(_))));
}

async fn runs_crud_history_and_transitions(store: &dyn MetadataStore) {
    let e = experiment(&uid("runs"), 1_000);
    store.create_experiment(&e).await.unwrap();
    let r = run(&e.id, "first", 7_000);
    store.create_run(&r).await.unwrap();
    assert_eq!(store.get_run(&r.id).await.unwrap(), r);
    assert_eq!(store.get_experiment(&e.id).await.unwrap().last_run_created_at, 7_000);

    // A run in a missing experiment is refused and leaves nothing.
    let orphan = run("missing", "orphan", 8_000);
    assert!(matches!(store.create_run(&orphan).await, Err(StoreError::NotFound(_))));
    assert!(matches!(store.get_run(&orphan.id).await, Err(StoreError::NotFound(_))));

    let canceled = store
        .transition_run(&r.id, &[RuntimeState::Pending, RuntimeState::Running], RuntimeState::Canceled, None, 9_000)
        .await
        .unwrap();
    assert_eq!(canceled.state, RuntimeState::Canceled);
    assert_eq!(canceled.finished_at, 9_000);
    assert_eq!(
        canceled.state_history.iter().map(|s| s.state).collect::<Vec<_>>(),
        [RuntimeState::Pending, RuntimeState::Canceled]
    );
    let err =
        store.transition_run(&r.id, &[RuntimeState::Pending], RuntimeState::Running, None, 9_500).await.unwrap_err();
    assert!(matches!(err, StoreError::FailedPrecondition(_)), "{err:?}");
    assert_eq!(store.get_run(&r.id).await.unwrap().state_history.len(), 2, "a refused transition writes nothing");
    let error = ErrorInfo { code: 9, message: "boom".into() };
    let failed = store
        .transition_run(&r.id, &[RuntimeState::Canceled], RuntimeState::Failed, Some(error.clone()), 10_000)
        .await
        .unwrap();
    assert_eq!(failed.error, Some(error.clone()));
    assert_eq!(failed.state_history[2].error, Some(error));
    let retried =
        store.transition_run(&r.id, &[RuntimeState::Failed], RuntimeState::Pending, None, 11_000).await.unwrap();
    assert_eq!(retried.finished_at, 0);
    assert!(matches!(
        store.transition_run("missing", &[RuntimeState::Pending], RuntimeState::Running, None, 1).await,
        Err(StoreError::NotFound(_))
    ));

    store.set_run_storage_state(&r.id, StorageState::Archived, 5_000).await.unwrap();
    assert_eq!(store.get_run(&r.id).await.unwrap().storage_state, StorageState::Archived);
    store.delete_run(&r.id).await.unwrap();
    assert!(matches!(store.get_run(&r.id).await, Err(StoreError::NotFound(_))));
    assert!(matches!(store.delete_run(&r.id).await, Err(StoreError::NotFound(_))));
}

async fn recurring_runs_crud(store: &dyn MetadataStore) {
    let e = experiment(&uid("rr"), 1_000);
    store.create_experiment(&e).await.unwrap();
    let mut rr = recurring_run(&e.id, "nightly", 2_000);
    rr.trigger = Trigger::Periodic { interval_second: 3600, start_time: None, end_time: Some(99_000) };
    store.create_recurring_run(&rr).await.unwrap();
    assert_eq!(store.get_recurring_run(&rr.id).await.unwrap(), rr);
    assert!(matches!(
        store.create_recurring_run(&recurring_run("missing", "x", 1)).await,
        Err(StoreError::NotFound(_))
    ));

    store.set_recurring_run_enabled(&rr.id, false, 3_000).await.unwrap();
    let got = store.get_recurring_run(&rr.id).await.unwrap();
    assert!(!got.enabled);
    assert_eq!(got.updated_at, 3_000);
    // Disabling again changes nothing, as in KFP.
    store.set_recurring_run_enabled(&rr.id, false, 4_000).await.unwrap();
    assert_eq!(store.get_recurring_run(&rr.id).await.unwrap().updated_at, 3_000);
    store.set_recurring_run_enabled(&rr.id, true, 5_000).await.unwrap();
    assert!(store.get_recurring_run(&rr.id).await.unwrap().enabled);

    let page = store
        .list_recurring_runs(&q(Entity::RecurringRun, "", "", None, "", &[("experiment_id", &e.id)]))
        .await
        .unwrap();
    assert_eq!(page.items.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), [rr.id.as_str()]);
    // A slot fires once: a stale cursor aborts, a slot already recorded is refused, and
    // neither leaves a run behind.
    let current = store.get_recurring_run(&rr.id).await.unwrap();
    let mut first = run(&e.id, "slot-1", 6_000);
    first.recurring_run_id = rr.id.clone();
    store.fire_slot(&current, 60_000, &first).await.unwrap();
    let moved = store.get_recurring_run(&rr.id).await.unwrap();
    assert_eq!((moved.last_slot_at, moved.last_index), (60_000, 1));
    let stale = run(&e.id, "stale", 6_001);
    assert!(matches!(store.fire_slot(&current, 120_000, &stale).await, Err(StoreError::Aborted(_))));
    assert!(matches!(store.get_run(&stale.id).await, Err(StoreError::NotFound(_))));
    let mut rewound = moved.clone();
    rewound.last_slot_at = 60_000;
    let again = run(&e.id, "again", 6_002);
    assert!(matches!(store.fire_slot(&rewound, 60_000, &again).await, Err(StoreError::AlreadyExists(_))));
    assert!(matches!(store.get_run(&again.id).await, Err(StoreError::NotFound(_))));
    assert_eq!(store.active_runs_of(&rr.id).await.unwrap(), 1);
    assert_eq!(store.enabled_recurring_runs().await.unwrap().iter().filter(|r| r.id == rr.id).count(), 1);

    store.delete_recurring_run(&rr.id).await.unwrap();
    assert!(matches!(store.get_recurring_run(&rr.id).await, Err(StoreError::NotFound(_))));
    assert_eq!(store.get_run(&first.id).await.unwrap().recurring_run_id, rr.id, "its runs are kept");
    assert!(matches!(store.set_recurring_run_enabled(&rr.id, true, 1).await, Err(StoreError::NotFound(_))));
}

async fn list_filters(store: &dyn MetadataStore) {
    let e = experiment(&uid("filters"), 1_000);
    store.create_experiment(&e).await.unwrap();
    let scope = [("experiment_id", e.id.as_str())];
    let names = ["alpha", "Alpha", "beta", "gamma_1", "gamma%2"];
    let mut runs = Vec::new();
    for (i, name) in names.iter().enumerate() {
        // Seconds 10..14, with a few milliseconds in: filters compare whole seconds.
        let r = run(&e.id, name, (10 + i as i64) * 1000 + 250);
        store.create_run(&r).await.unwrap();
        runs.push(r);
    }
    store.transition_run(&runs[2].id, &[RuntimeState::Pending], RuntimeState::Failed, None, 20_000).await.unwrap();

    let names_for = |filter: &str| {
        let query = q(Entity::Run, filter, "", None, "", &scope);
        async move {
            let page = store.list_runs(&query).await.unwrap();
            assert_eq!(page.total_size as usize, page.items.len());
            page.items.into_iter().map(|r| r.display_name).collect::<Vec<_>>()
        }
    };
    // One predicate; `value` holds its single value field, in any of the accepted spellings.
    let pred = |op: &str, key: &str, value: serde_json::Value| {
        let mut predicate = json!({"operation": op, "key": key});
        if let (Some(target), Some(fields)) = (predicate.as_object_mut(), value.as_object()) {
            target.extend(fields.clone());
        }
        json!({ "predicates": [predicate] }).to_string()
    };
    assert_eq!(names_for(&pred("EQUALS", "display_name", json!({"string_value": "alpha"}))).await, ["alpha"]);
    assert_eq!(
        names_for(&pred("NOT_EQUALS", "name", json!({"stringValue": "alpha"}))).await,
        ["Alpha", "beta", "gamma_1", "gamma%2"]
    );
    assert_eq!(
        names_for(&pred("IS_SUBSTRING", "display_name", json!({"string_value": "lph"}))).await,
        ["alpha", "Alpha"]
    );
    assert_eq!(names_for(&pred("IS_SUBSTRING", "display_name", json!({"string_value": "Alp"}))).await, ["Alpha"]);
    assert_eq!(names_for(&pred("IS_SUBSTRING", "display_name", json!({"string_value": "%"}))).await, ["gamma%2"]);
    assert_eq!(names_for(&pred("IS_SUBSTRING", "display_name", json!({"string_value": "_"}))).await, ["gamma_1"]);
    assert_eq!(
        names_for(&pred("IN", "display_name", json!({"string_values": {"values": ["beta", "alpha", "zzz"]}}))).await,
        ["alpha", "beta"]
    );
    assert_eq!(names_for(&pred("EQUALS", "state", json!({"string_value": "FAILED"}))).await, ["beta"]);
    assert_eq!(
        names_for(&pred("GREATER_THAN", "display_name", json!({"string_value": "b"}))).await,
        ["beta", "gamma_1", "gamma%2"]
    );
    assert_eq!(names_for(&pred("LESS_THAN_EQUALS", "display_name", json!({"string_value": "Alpha"}))).await, ["Alpha"]);
    // Times: seconds, as integers or RFC 3339.
    assert_eq!(names_for(&pred("EQUALS", "created_at", json!({"long_value": "11"}))).await, ["Alpha"]);
    assert_eq!(names_for(&pred("GREATER_THAN", "created_at", json!({"int_value": 12}))).await, ["gamma_1", "gamma%2"]);
    assert_eq!(
        names_for(&pred("GREATER_THAN_EQUALS", "created_at", json!({"int_value": 13}))).await,
        ["gamma_1", "gamma%2"]
    );
    assert_eq!(names_for(&pred("LESS_THAN", "created_at", json!({"int_value": 11}))).await, ["alpha"]);
    assert_eq!(names_for(&pred("LESS_THAN_EQUALS", "created_at", json!({"int_value": 11}))).await, ["alpha", "Alpha"]);
    assert_eq!(
        names_for(&pred("NOT_EQUALS", "created_at", json!({"timestamp_value": "1970-01-01T00:00:10Z"}))).await,
        ["Alpha", "beta", "gamma_1", "gamma%2"]
    );
    assert_eq!(
        names_for(&pred("IN", "created_at", json!({"long_values": {"values": [10, "14"]}}))).await,
        ["alpha", "gamma%2"]
    );
    // Several predicates are ANDed.
    let both = json!({"predicates": [
        {"operation": "IS_SUBSTRING", "key": "display_name", "string_value": "a"},
        {"operation": "GREATER_THAN", "key": "created_at", "int_value": 11}
    ]})
    .to_string();
    assert_eq!(names_for(&both).await, ["beta", "gamma_1", "gamma%2"]);
}

async fn list_sorting_and_paging(store: &dyn MetadataStore) {
    let e = experiment(&uid("paging"), 1_000);
    store.create_experiment(&e).await.unwrap();
    let scope = [("experiment_id", e.id.as_str())];
    // Two runs share a creation time: the id breaks the tie, so paging never skips or repeats.
    let times = [5_000, 3_000, 3_000, 9_000, 1_000, 7_000, 7_000];
    let mut created = Vec::new();
    for (i, t) in times.iter().enumerate() {
        let r = run(&e.id, &format!("run-{i}"), *t);
        store.create_run(&r).await.unwrap();
        created.push(r);
    }
    let mut expected: Vec<(i64, String)> = created.iter().map(|r| (r.created_at, r.id.clone())).collect();
    expected.sort();
    for (sort, descending) in
        [("", false), ("created_at", false), ("created_at desc", true), ("display_name DESC", true)]
    {
        let mut seen = Vec::new();
        let mut token = String::new();
        let mut pages = 0;
        loop {
            let query = q(Entity::Run, "", if token.is_empty() { sort } else { "" }, Some("3"), &token, &scope);
            let page = store.list_runs(&query).await.unwrap();
            assert_eq!(page.total_size, times.len() as i64);
            assert!(page.items.len() <= 3);
            seen.extend(page.items.iter().map(|r| (r.created_at, r.display_name.clone(), r.id.clone())));
            pages += 1;
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(pages, 3, "sort {sort:?}");
        assert_eq!(seen.len(), times.len(), "sort {sort:?}: every row exactly once");
        if sort.starts_with("display_name") {
            let names: Vec<&str> = seen.iter().map(|s| s.1.as_str()).collect();
            let mut sorted = names.clone();
            sorted.sort();
            sorted.reverse();
            assert_eq!(names, sorted);
        } else {
            let mut order: Vec<(i64, String)> = seen.iter().map(|s| (s.0, s.2.clone())).collect();
            if descending {
                order.reverse();
            }
            assert_eq!(order, expected, "sort {sort:?}");
        }
    }
    // A page size of 0 means the default; the same query without a scope sees other rows too.
    let all = store.list_runs(&q(Entity::Run, "", "", Some("0"), "", &[])).await.unwrap();
    assert!(all.total_size >= times.len() as i64);
}

async fn paging_survives_inserts(store: &dyn MetadataStore) {
    let prefix = uid("ins");
    let p_names: Vec<String> = (0..5).map(|i| format!("{prefix}-{i}")).collect();
    for (i, name) in p_names.iter().enumerate() {
        store.create_pipeline(&pipeline(name, 100_000 + i as i64), None).await.unwrap();
    }
    let filter =
        json!({"predicates": [{"operation": "IS_SUBSTRING", "key": "name", "string_value": prefix}]}).to_string();
    let first =
        store.list_pipelines(&q(Entity::Pipeline, &filter, "created_at desc", Some("2"), "", &[])).await.unwrap();
    assert_eq!(first.items.len(), 2);
    // A newer row arrives between pages: with keyset paging the next page neither repeats a
    // row nor skips one of the rows that existed before.
    store.create_pipeline(&pipeline(&format!("{prefix}-new"), 200_000), None).await.unwrap();
    let mut seen: Vec<String> = first.items.iter().map(|p| p.name.clone()).collect();
    let mut token = first.next_page_token;
    while !token.is_empty() {
        let page = store.list_pipelines(&q(Entity::Pipeline, "", "", Some("2"), &token, &[])).await.unwrap();
        seen.extend(page.items.iter().map(|p| p.name.clone()));
        token = page.next_page_token;
    }
    let mut expected: Vec<String> = p_names.clone();
    expected.reverse();
    assert_eq!(seen, expected);
}

pub fn task(run_id: &str, name: &str, kind: TaskKind, now: i64) -> Task {
    Task {
        id: uid("t"),
        run_id: run_id.into(),
        parent_id: String::new(),
        name: name.into(),
        display_name: name.into(),
        kind,
        iteration_index: None,
        state: RuntimeState::Pending,
        attempts: 0,
        inputs: TaskIo::parameters(json!({"n": 3}).as_object().cloned().unwrap_or_default()),
        outputs: TaskIo::default(),
        fingerprint: String::new(),
        pipeline_name: "p".into(),
        cached: false,
        image: "python:3.11".into(),
        error: None,
        created_at: now,
        started_at: 0,
        finished_at: 0,
        retry_at: 0,
        pid: 0,
        state_history: vec![StateChange { update_time: now, state: RuntimeState::Pending, error: None }],
    }
}

/// `task_changes` gives a reader what changed since the version it saw, everything after a
/// removal, and a missing run is not found; `list_tasks_page` pages in creation order;
/// `get_run_raw` keeps the spec's text.
async fn task_versions_and_pages(store: &dyn MetadataStore) {
    let e = experiment(&uid("versions"), 1_000);
    store.create_experiment(&e).await.unwrap();
    let r = run(&e.id, "big", 2_000);
    store.create_run(&r).await.unwrap();
    let (raw, spec) = store.get_run_raw(&r.id).await.unwrap();
    assert_eq!(raw.pipeline_spec, Value::Null);
    assert_eq!(serde_json::from_str::<Value>(&spec).unwrap(), r.pipeline_spec);
    assert_eq!(raw.display_name, r.display_name);

    let first = store.task_changes(&r.id, None).await.unwrap();
    assert!(first.complete && first.tasks.is_empty(), "{first:?}");
    let root = task(&r.id, "root", TaskKind::Dag, 2_000);
    let mut steps: Vec<Task> = (0..5)
        .map(|i| Task { parent_id: root.id.clone(), ..task(&r.id, &format!("s{i}"), TaskKind::Container, 2_001 + i) })
        .collect();
    let mut created = vec![root.clone()];
    created.extend(steps.iter().cloned());
    store.save_progress(&r.id, &Progress { new_tasks: created.clone(), ..Default::default() }).await.unwrap();
    let all = store.task_changes(&r.id, Some(first.version)).await.unwrap();
    assert!(!all.complete && all.version > first.version);
    assert_eq!(all.tasks, created);
    let none = store.task_changes(&r.id, Some(all.version)).await.unwrap();
    assert_eq!((none.version, none.complete, none.tasks.len()), (all.version, false, 0));

    // Only what a write touched comes back, in creation order.
    steps[3].set_state(RuntimeState::Running, None, 3_000);
    steps[1].set_state(RuntimeState::Running, None, 3_000);
    let changed = Progress { changed_tasks: vec![steps[3].clone(), steps[1].clone()], ..Default::default() };
    store.save_progress(&r.id, &changed).await.unwrap();
    let delta = store.task_changes(&r.id, Some(all.version)).await.unwrap();
    assert!(!delta.complete);
    assert_eq!(delta.tasks, vec![steps[1].clone(), steps[3].clone()]);
    // A write that changes no task leaves the version as it is.
    store.save_progress(&r.id, &Progress { owner: None, ..Default::default() }).await.unwrap();
    assert_eq!(store.task_changes(&r.id, Some(delta.version)).await.unwrap().version, delta.version);

    // A removal makes readers start over.
    let removed = Progress { deleted_tasks: vec![steps[4].id.clone()], ..Default::default() };
    store.save_progress(&r.id, &removed).await.unwrap();
    let again = store.task_changes(&r.id, Some(delta.version)).await.unwrap();
    assert!(again.complete);
    assert_eq!(again.tasks.len(), 5);
    assert!(again.tasks.iter().all(|t| t.id != steps[4].id));

    // Pages in creation order, each after the previous page's last task.
    let listed: Vec<String> = store.list_tasks(&r.id).await.unwrap().into_iter().map(|t| t.id).collect();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_tasks_page(&r.id, after.clone(), 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        after = page.last().map(|t| (t.created_at, t.id.clone()));
        seen.extend(page.into_iter().map(|t| t.id));
        assert!(seen.len() <= listed.len(), "pages repeat tasks: {seen:?}");
    }
    assert_eq!(seen, listed);

    // Tasks made in one pass share their creation time (a loop's iterations): pages that end
    // inside such a group go on after its last id, skipping and repeating none.
    let tied = run(&e.id, "tied", 2_000);
    store.create_run(&tied).await.unwrap();
    let mut made: Vec<Task> = [5, 7, 5, 6, 5, 7, 5, 6, 8]
        .iter()
        .enumerate()
        .map(|(i, at)| task(&tied.id, &format!("i{i}"), TaskKind::Container, *at))
        .collect();
    store.save_progress(&tied.id, &Progress { new_tasks: made.clone(), ..Default::default() }).await.unwrap();
    made.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let order: Vec<String> = made.into_iter().map(|t| t.id).collect();
    for size in [1, 2, 3, 4, 9, 10] {
        let (mut seen, mut after) = (Vec::new(), None);
        loop {
            let page = store.list_tasks_page(&tied.id, after.clone(), size).await.unwrap();
            assert!(page.len() <= size as usize);
            let Some(last) = page.last() else { break };
            after = Some((last.created_at, last.id.clone()));
            seen.extend(page.into_iter().map(|t| t.id));
            assert!(seen.len() <= order.len(), "pages of {size} repeat tasks: {seen:?}");
        }
        assert_eq!(seen, order, "pages of {size}");
    }

    // A poll's one read: the run as `get_run_raw` gives it, its tasks as `task_changes` does.
    let (polled, polled_spec, since) = store.run_with_task_changes(&r.id, Some(delta.version)).await.unwrap();
    assert_eq!((polled, polled_spec), store.get_run_raw(&r.id).await.unwrap());
    assert_eq!(since, store.task_changes(&r.id, Some(delta.version)).await.unwrap());
    assert!(since.complete);
    let (_, _, current) = store.run_with_task_changes(&r.id, Some(since.version)).await.unwrap();
    assert_eq!((current.version, current.complete, current.tasks.len()), (since.version, false, 0));

    assert!(matches!(store.task_changes("no-such-run", None).await, Err(StoreError::NotFound(_))));
    assert!(matches!(store.run_with_task_changes("no-such-run", None).await, Err(StoreError::NotFound(_))));
    assert!(matches!(store.get_run_raw("no-such-run").await, Err(StoreError::NotFound(_))));
}

async fn tasks_and_artifacts(store: &dyn MetadataStore) {
    let e = experiment(&uid("tasks"), 1_000);
    store.create_experiment(&e).await.unwrap();
    let r = run(&e.id, "exec", 2_000);
    store.create_run(&r).await.unwrap();
    assert!(store.active_runs().await.unwrap().contains(&(r.id.clone(), RuntimeState::Pending)));

    let root = task(&r.id, "root", TaskKind::Dag, 2_000);
    let mut step = task(&r.id, "step", TaskKind::Container, 2_001);
    step.parent_id = root.id.clone();
    step.iteration_index = Some(4);
    let progress = Progress {
        new_tasks: vec![root.clone(), step.clone()],
        run: Some(RunTransition {
            from: vec![RuntimeState::Pending],
            to: RuntimeState::Running,
            error: None,
            now: 2_002,
        }),
        ..Default::default()
    };
    store.save_progress(&r.id, &progress).await.unwrap();
    assert_eq!(store.get_run(&r.id).await.unwrap().state, RuntimeState::Running);
    assert_eq!(store.list_tasks(&r.id).await.unwrap(), vec![root.clone(), step.clone()]);

    // A step succeeds with an artifact and a fingerprint; the cache finds it.
    step.set_state(RuntimeState::Succeeded, None, 3_000);
    step.fingerprint = "f".repeat(64);
    step.attempts = 1;
    step.outputs = TaskIo {
        parameters: json!({"Output": 9}).as_object().cloned().unwrap_or_default(),
        artifacts: [("model".to_string(), vec![77])].into(),
        items: None,
    };
    let artifact = Artifact {
        id: 77 + (uuid::Uuid::new_v4().as_u128() as i64 & 0xffff_ffff) * 1000,
        run_id: r.id.clone(),
        task_id: step.id.clone(),
        name: "model".into(),
        uri: "s3://b/k/model".into(),
        schema_title: "system.Model".into(),
        schema_version: "0.0.1".into(),
        metadata: json!({"accuracy": 0.9}),
        created_at: 3_000,
        object_count: 2,
    };
    store
        .save_progress(
            &r.id,
            &Progress {
                changed_tasks: vec![step.clone()],
                new_artifacts: vec![artifact.clone()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(store.find_cached("p", &step.fingerprint).await.unwrap(), Some(step.clone()));
    assert_eq!(store.find_cached("other-pipeline", &step.fingerprint).await.unwrap(), None);
    assert_eq!(store.list_artifacts(&r.id).await.unwrap(), vec![artifact.clone()]);
    assert_eq!(store.get_artifacts(&[artifact.id, 1]).await.unwrap(), vec![artifact.clone()]);

    // A transition whose source state does not hold writes nothing at all.
    let mut late = step.clone();
    late.display_name = "changed".into();
    let err = store
        .save_progress(
            &r.id,
            &Progress {
                changed_tasks: vec![late],
                run: Some(RunTransition {
                    from: vec![RuntimeState::Pending],
                    to: RuntimeState::Failed,
                    error: None,
                    now: 4_000,
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Aborted(_)), "{err:?}");
    assert_eq!(store.list_tasks(&r.id).await.unwrap()[1].display_name, "step");

    let finish = Progress {
        deleted_tasks: vec![root.id.clone()],
        run: Some(RunTransition {
            from: vec![RuntimeState::Running],
            to: RuntimeState::Succeeded,
            error: None,
            now: 5_000,
        }),
        ..Default::default()
    };
    store.save_progress(&r.id, &finish).await.unwrap();
    let done = store.get_run(&r.id).await.unwrap();
    assert_eq!(done.state, RuntimeState::Succeeded);
    assert_eq!(done.finished_at, 5_000);
    assert!(!store.active_runs().await.unwrap().iter().any(|(id, _)| id == &r.id));
    assert_eq!(store.list_tasks(&r.id).await.unwrap().len(), 1);
    store.delete_run(&r.id).await.unwrap();
    assert!(store.list_tasks(&r.id).await.unwrap().is_empty());
    assert!(store.list_artifacts(&r.id).await.unwrap().is_empty());
}

/// `total_size` of a runs list, whether the store counts rows or keeps counts: it must follow
/// creates, archiving (one run or a whole experiment) and deletes.
async fn run_totals_follow_every_change(store: &dyn MetadataStore) {
    let e = experiment(&uid("totals"), 1_000);
    store.create_experiment(&e).await.unwrap();
    let available = r#"{"predicates":[{"key":"storage_state","operation":"EQUALS","string_value":"AVAILABLE"}]}"#;
    let not_archived = r#"{"predicates":[{"key":"storage_state","operation":"NOT_EQUALS","string_value":"ARCHIVED"}]}"#;
    let named = r#"{"predicates":[{"key":"display_name","operation":"EQUALS","string_value":"t-0"}]}"#;
    let totals = || async {
        let mut out = Vec::new();
        for filter in ["", available, not_archived, named] {
            let page = store.list_runs(&q(Entity::Run, filter, "", Some("1"), "", &[("experiment_id", &e.id)])).await;
            out.push(page.unwrap().total_size);
        }
        out
    };
    let runs: Vec<Run> = (0..5).map(|i| run(&e.id, &format!("t-{i}"), 2_000 + i)).collect();
    for r in &runs {
        store.create_run(r).await.unwrap();
    }
    assert_eq!(totals().await, [5, 5, 5, 1]);
    store.set_run_storage_state(&runs[1].id, StorageState::Archived, 5_000).await.unwrap();
    assert_eq!(totals().await, [5, 4, 4, 1]);
    store.delete_run(&runs[2].id).await.unwrap();
    assert_eq!(totals().await, [4, 3, 3, 1]);
    store.archive_experiment(&e.id, 3_000).await.unwrap();
    assert_eq!(totals().await, [4, 0, 0, 1]);
    store.unarchive_experiment(&e.id).await.unwrap();
    store.set_run_storage_state(&runs[0].id, StorageState::Available, 5_000).await.unwrap();
    assert_eq!(totals().await, [4, 1, 1, 1]);
    let all = store.list_runs(&q(Entity::Run, "", "", Some("1"), "", &[])).await.unwrap().total_size;
    store.delete_run(&runs[0].id).await.unwrap();
    assert_eq!(store.list_runs(&q(Entity::Run, "", "", Some("1"), "", &[])).await.unwrap().total_size, all - 1);
}

/// PostgreSQL cannot store NUL in text; every backend refuses it the same way (a 400 at the
/// API), in values written and in values looked up.
async fn nul_characters_are_refused_everywhere(store: &dyn MetadataStore) {
    let e = experiment("nul\0name", 1_000);
    assert!(matches!(store.create_experiment(&e).await, Err(StoreError::InvalidArgument(_))));
    assert!(matches!(store.get_experiment("a\0b").await, Err(StoreError::InvalidArgument(_))));
    let filter = r#"{"predicates":[{"key":"display_name","operation":"EQUALS","string_value":"a\u0000"}]}"#;
    let listed = store.list_experiments(&q(Entity::Experiment, filter, "", None, "", &[])).await;
    assert!(matches!(listed, Err(StoreError::InvalidArgument(_))), "{listed:?}");
}
