//! Conformance checks of leases: the engine lease (one weir per SQLite storage) and the run
//! leases of replicas sharing one database.

use super::{experiment, run, task, uid};
use crate::*;

fn lease(id: &str, at: i64) -> Lease {
    Lease {
        id: id.to_string(),
        deployment: "conformance".into(),
        host: "host".into(),
        pid: 7,
        version: "0".into(),
        schema_version: 6,
        started_at: at,
        heartbeat_at: at,
    }
}

/// Of servers racing for the engine lease exactly one gets it; a holder is replaced only by
/// naming it, and a clean release frees it.
pub(super) async fn engine_lease_is_taken_once(store: &dyn MetadataStore) {
    assert_eq!(store.engine_holder().await.unwrap(), None);
    let racers: Vec<Lease> = (0..5).map(|i| lease(&uid("racer"), i)).collect();
    let (a, b, c, d, e) = tokio::join!(
        store.take_engine(&racers[0], None),
        store.take_engine(&racers[1], None),
        store.take_engine(&racers[2], None),
        store.take_engine(&racers[3], None),
        store.take_engine(&racers[4], None),
    );
    let results = [a, b, c, d, e];
    let winners: Vec<usize> = (0..5).filter(|i| results[*i].is_ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for result in results.iter().filter(|r| r.is_err()) {
        assert!(matches!(result, Err(StoreError::Aborted(_))), "{result:?}");
    }
    let winner = &racers[winners[0]];
    assert_eq!(store.engine_holder().await.unwrap().as_deref(), Some(winner.id.as_str()));
    let recorded: Vec<String> = store.leases().await.unwrap().into_iter().map(|l| l.id).collect();
    assert!(recorded.contains(&winner.id), "the winner's lease is recorded with it");
    for loser in racers.iter().filter(|l| l.id != winner.id) {
        assert!(!recorded.contains(&loser.id), "a loser writes nothing");
    }
    // Replacing a holder only works while it still holds the lease: of two servers that both
    // found the winner dead, one replaces it.
    let (next, late) = (lease(&uid("next"), 10), lease(&uid("late"), 11));
    let (first, second) =
        tokio::join!(store.take_engine(&next, Some(&winner.id)), store.take_engine(&late, Some(&winner.id)));
    assert!(first.is_ok() != second.is_ok(), "{first:?} {second:?}");
    let holder = if first.is_ok() { &next } else { &late };
    assert_eq!(store.engine_holder().await.unwrap().as_deref(), Some(holder.id.as_str()));
    let recorded: Vec<String> = store.leases().await.unwrap().into_iter().map(|l| l.id).collect();
    assert!(!recorded.contains(&winner.id), "the replaced holder's lease goes");
    store.release(&holder.id).await.unwrap();
    assert_eq!(store.engine_holder().await.unwrap(), None);
    let fresh = lease(&uid("fresh"), 12);
    store.take_engine(&fresh, None).await.unwrap();
    store.release(&fresh.id).await.unwrap();
}

/// Of replicas racing for a run exactly one takes it; a dead owner's run is taken by naming
/// it; once taken over, the old owner's writes are refused whole, and the new owner's go
/// through; the run's lease goes when it ends.
pub(super) async fn runs_are_taken_once_and_old_owners_fenced(store: &dyn MetadataStore) {
    let e = experiment(&uid("leases"), 1_000);
    store.create_experiment(&e).await.unwrap();
    let r = run(&e.id, "leased", 2_000);
    store.create_run(&r).await.unwrap();
    let (a, b) = (lease(&uid("replica-a"), 10), lease(&uid("replica-b"), 10));
    store.heartbeat(&a).await.unwrap();
    store.heartbeat(&b).await.unwrap();
    let find = |runs: Vec<ActiveRun>| runs.into_iter().find(|x| x.id == r.id).expect("the run is active");
    let seen = find(store.active_runs_with_owners().await.unwrap());
    assert_eq!((seen.state, seen.owner, seen.owner_heartbeat_at), (RuntimeState::Pending, None, None));

    let (w, x, y, z) = tokio::join!(
        store.take_run(&r.id, &a.id, None, 20),
        store.take_run(&r.id, &b.id, None, 20),
        store.take_run(&r.id, &a.id, None, 20),
        store.take_run(&r.id, &b.id, None, 20),
    );
    let races = [w, x, y, z];
    let winners: Vec<usize> =
        races.iter().enumerate().filter(|(_, won)| *won.as_ref().unwrap()).map(|(i, _)| i).collect();
    assert_eq!(winners.len(), 1, "exactly one replica takes a new run: {races:?}");
    let (owner, other) = if winners[0].is_multiple_of(2) { (&a, &b) } else { (&b, &a) };
    let seen = find(store.active_runs_with_owners().await.unwrap());
    assert_eq!(seen.owner.as_deref(), Some(owner.id.as_str()));
    assert_eq!((seen.owner_heartbeat_at, seen.owner_host.as_deref()), (Some(10), Some(owner.host.as_str())));

    // The owner writes; the other replica is refused, and nothing of its write lands.
    let root = task(&r.id, "root", TaskKind::Dag, 2_000);
    let start = |who: &Lease| Progress {
        new_tasks: vec![root.clone()],
        run: Some(RunTransition {
            from: vec![RuntimeState::Pending],
            to: RuntimeState::Running,
            error: None,
            now: 2_002,
        }),
        owner: Some(who.id.clone()),
        ..Default::default()
    };
    let refused = store.save_progress(&r.id, &start(other)).await.unwrap_err();
    assert!(matches!(refused, StoreError::Fenced(_)), "{refused:?}");
    assert_eq!(store.get_run(&r.id).await.unwrap().state, RuntimeState::Pending);
    assert!(store.list_tasks(&r.id).await.unwrap().is_empty());
    store.save_progress(&r.id, &start(owner)).await.unwrap();

    // The other replica takes the run over from the owner it names; naming a stale owner
    // (or racing a second time) takes nothing.
    assert!(!store.take_run(&r.id, &other.id, Some("nobody"), 30).await.unwrap());
    assert!(store.take_run(&r.id, &other.id, Some(&owner.id), 30).await.unwrap());
    assert!(!store.take_run(&r.id, &owner.id, Some(&owner.id), 31).await.unwrap());
    let mut step = task(&r.id, "step", TaskKind::Container, 2_003);
    step.parent_id = root.id.clone();
    let add =
        |who: &Lease| Progress { new_tasks: vec![step.clone()], owner: Some(who.id.clone()), ..Default::default() };
    assert!(matches!(store.save_progress(&r.id, &add(owner)).await, Err(StoreError::Fenced(_))));
    assert_eq!(store.list_tasks(&r.id).await.unwrap().len(), 1, "the fenced owner wrote nothing");
    store.save_progress(&r.id, &add(other)).await.unwrap();

    // Ending the run frees it: run again, it is a new run to take.
    let end = Progress {
        run: Some(RunTransition {
            from: vec![RuntimeState::Running],
            to: RuntimeState::Succeeded,
            error: None,
            now: 2_010,
        }),
        owner: Some(other.id.clone()),
        ..Default::default()
    };
    store.save_progress(&r.id, &end).await.unwrap();
    assert!(!store.active_runs_with_owners().await.unwrap().iter().any(|x| x.id == r.id));
    assert!(store.take_run(&r.id, &owner.id, None, 40).await.unwrap(), "an ended run's lease went with it");

    // A clean stop gives every run back.
    store.release_runs(&owner.id).await.unwrap();
    assert!(store.take_run(&r.id, &other.id, None, 50).await.unwrap());
    store.release_runs(&other.id).await.unwrap();
    for l in [&a, &b] {
        store.release(&l.id).await.unwrap();
    }
}
