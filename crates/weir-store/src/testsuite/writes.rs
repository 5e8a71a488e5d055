//! Conformance checks of an engine pass's write of several tasks at once (results, claims and
//! the planner's changes in one `save_progress`), which a server database may send as one
//! statement.

use serde_json::json;

use super::{experiment, run, task, uid};
use crate::*;

/// Several tasks written over in one write keep every column as given, a task given twice
/// keeps what it was given last, more tasks than one statement holds are all written, and a
/// write naming a task that is not stored fails whole: nothing of it is written.
pub(super) async fn several_tasks_are_written_whole(store: &dyn MetadataStore) {
    let e = experiment(&uid("writes"), 1_000);
    store.create_experiment(&e).await.unwrap();
    let r = run(&e.id, "writes", 2_000);
    store.create_run(&r).await.unwrap();
    let root = task(&r.id, "root", TaskKind::Dag, 2_000);
    let mut steps: Vec<Task> = (0..250)
        .map(|i| Task {
            parent_id: root.id.clone(),
            iteration_index: Some(i),
            ..task(&r.id, "step", TaskKind::Container, 2_001 + i)
        })
        .collect();
    let mut created = vec![root.clone()];
    created.extend(steps.iter().cloned());
    store.save_progress(&r.id, &Progress { new_tasks: created, ..Default::default() }).await.unwrap();
    let before = store.task_changes(&r.id, None).await.unwrap().version;

    for (i, step) in steps.iter_mut().enumerate() {
        step.attempts = 1;
        step.started_at = 3_000;
        step.fingerprint = format!("{i:064}");
        step.set_state(RuntimeState::Running, None, 3_000);
    }
    // The first step twice: running, then failed with an error and outputs; the second as given.
    let mut failed = steps[0].clone();
    failed.outputs = TaskIo::parameters(json!({"Output": "x"}).as_object().cloned().unwrap_or_default());
    failed.pid = 42;
    failed.iteration_index = None;
    failed.set_state(RuntimeState::Failed, Some(ErrorInfo { code: 2, message: "exit 1".into() }), 3_500);
    let mut changed = steps.clone();
    changed.push(failed.clone());
    store.save_progress(&r.id, &Progress { changed_tasks: changed, ..Default::default() }).await.unwrap();
    steps[0] = failed;
    let stored = store.list_tasks(&r.id).await.unwrap();
    assert_eq!(stored.len(), 251);
    assert_eq!(stored[0], root);
    assert_eq!(&stored[1..], &steps[..], "every task as it was last given");
    let delta = store.task_changes(&r.id, Some(before)).await.unwrap();
    assert_eq!(delta.tasks.len(), 250, "every written task takes the write's version");

    // One task that is not stored among two that are: the write fails, and neither is changed.
    let mut again = vec![steps[1].clone(), steps[2].clone()];
    for step in &mut again {
        step.set_state(RuntimeState::Succeeded, None, 4_000);
    }
    let ghost = task(&r.id, "ghost", TaskKind::Container, 2_500);
    let progress = Progress { changed_tasks: vec![again[0].clone(), ghost, again[1].clone()], ..Default::default() };
    let refused = store.save_progress(&r.id, &progress).await;
    assert!(matches!(refused, Err(StoreError::NotFound(_))), "{refused:?}");
    let stored = store.list_tasks(&r.id).await.unwrap();
    assert_eq!(&stored[2..4], &steps[1..3], "a failed write changed a task");
    assert_eq!(store.task_changes(&r.id, Some(delta.version)).await.unwrap().tasks.len(), 0);
}
