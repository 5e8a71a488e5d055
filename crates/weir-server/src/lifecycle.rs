//! What happens to storage when weir starts (docs/lifecycle.md).
//!
//! | both stores empty                 | initialise: schema at head, identity in both         |
//! | weir data, same schema            | adopt                                                |
//! | weir data, older schema           | refuse, naming `weir storage upgrade` (or migrate if `upgrade: auto`) |
//! | weir data, newer schema           | refuse                                               |
//! | identity mismatch, or half-empty  | refuse, saying which store holds what                |
//!
//! A refusal changes neither store. First-time initialisation is resumable: the identity is
//! recorded in the database as "initialising" before it is written to the artifact store, so
//! a crash part-way leaves a state the next start recognises as its own and completes.

use weir_artifacts::{ArtifactStore, IdentityMarker};
use weir_store::{MetadataStore, SchemaState, StorageIdentity, StoreError};

/// What to do with a database whose schema is older than this binary's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UpgradePolicy {
    /// Refuse to start and ask for `weir storage upgrade`.
    #[default]
    Manual,
    /// Migrate at start.
    Auto,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// Empty storage was initialised.
    Initialised(StorageIdentity),
    /// Existing weir storage was adopted (after migrating, with `upgrade: auto`).
    Adopted { identity: StorageIdentity, migrated: Vec<i64> },
}

impl Opened {
    pub fn identity(&self) -> &StorageIdentity {
        match self {
            Opened::Initialised(identity) | Opened::Adopted { identity, .. } => identity,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Store(String),
}

fn store_err(e: impl std::fmt::Display) -> LifecycleError {
    LifecycleError::Store(e.to_string())
}

/// Checks (and on first start, initialises) the pair of stores.
pub async fn open_storage(
    store: &dyn MetadataStore,
    artifacts: &ArtifactStore,
    policy: UpgradePolicy,
    deployment: &str,
    now_ms: i64,
) -> Result<Opened, LifecycleError> {
    // Weirs started together on new storage initialise it together: one of them may read the
    // two stores while another writes them, and see a pairing that is only half written. A
    // refusal is only final when the stores read the same again.
    let mut seen = read_stores(store, artifacts).await?;
    for _ in 0..5 {
        let opened = open_read(store, artifacts, policy, deployment, now_ms, seen.clone()).await;
        if !matches!(opened, Err(LifecycleError::Refused(_))) {
            return opened;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let again = read_stores(store, artifacts).await?;
        if again == seen {
            return opened;
        }
        seen = again;
    }
    open_read(store, artifacts, policy, deployment, now_ms, seen).await
}

async fn read_stores(
    store: &dyn MetadataStore,
    artifacts: &ArtifactStore,
) -> Result<(SchemaState, Option<IdentityMarker>), LifecycleError> {
    let schema = store.schema_state().await.map_err(store_err)?;
    let marker = artifacts.read_identity().await.map_err(store_err)?;
    Ok((schema, marker))
}

async fn open_read(
    store: &dyn MetadataStore,
    artifacts: &ArtifactStore,
    policy: UpgradePolicy,
    deployment: &str,
    now_ms: i64,
    (schema, marker): (SchemaState, Option<IdentityMarker>),
) -> Result<Opened, LifecycleError> {
    let db = store.dialect();
    let art = artifacts.url();

    match (schema, marker) {
        (SchemaState::Empty, None) => initialise(store, artifacts, None, deployment, now_ms).await,
        (SchemaState::Empty, Some(marker)) => Err(LifecycleError::Refused(format!(
            "the metadata store ({db}) is empty but the artifact store {art} belongs to weir deployment {}; \
             refusing to pair them. Point --metadata at that deployment's database, or --artifacts at an empty store",
            marker.id
        ))),
        (SchemaState::Weir { identity: None, applied, .. }, None) => {
            // Tables but no identity: our own first start stopped between migrating and
            // recording the identity.
            tracing::info!(applied = ?applied, "resuming an interrupted first start");
            initialise(store, artifacts, None, deployment, now_ms).await
        }
        (SchemaState::Weir { identity: None, .. }, Some(marker)) => Err(LifecycleError::Refused(format!(
            "the metadata store ({db}) has weir tables but no storage identity, while the artifact store {art} \
             belongs to weir deployment {}; refusing to pair them",
            marker.id
        ))),
        (SchemaState::Weir { identity: Some(identity), initialising, applied, known }, marker) => {
            match marker {
                Some(marker) if marker.id != identity.id => {
                    return Err(LifecycleError::Refused(format!(
                        "storage identity mismatch: the metadata store ({db}) belongs to weir deployment {} \
                         but the artifact store {art} belongs to weir deployment {}; refusing to pair them",
                        identity.id, marker.id
                    )))
                }
                None if initialising => {
                    return initialise(store, artifacts, Some(identity), deployment, now_ms).await;
                }
                None => {
                    return Err(LifecycleError::Refused(format!(
                        "the metadata store ({db}) belongs to weir deployment {} but the artifact store {art} \
                         has no weir identity (is it empty, or the wrong bucket or prefix?); refusing to start \
                         rather than pair them",
                        identity.id
                    )))
                }
                Some(_) if initialising => {
                    store.finish_identity().await.map_err(store_err)?;
                }
                Some(_) => {}
            }
            let head = known.iter().max().copied().unwrap_or_default();
            let unknown: Vec<i64> = applied.iter().filter(|v| !known.contains(v)).copied().collect();
            if let Some(newest) = unknown.iter().max().copied() {
                if newest > head {
                    return Err(LifecycleError::Refused(format!(
                        "the metadata store has schema version {newest} but this weir knows versions up to {head}: \
                         it was written by a newer weir. Run that version (an old binary never writes a newer schema)"
                    )));
                }
                return Err(LifecycleError::Refused(format!(
                    "the metadata store has migration(s) {unknown:?} that this weir does not ship; it was migrated \
                     by a different build of weir"
                )));
            }
            let pending: Vec<i64> = known.iter().filter(|v| !applied.contains(v)).copied().collect();
            if pending.is_empty() {
                return Ok(Opened::Adopted { identity, migrated: Vec::new() });
            }
            match policy {
                UpgradePolicy::Manual => Err(LifecycleError::Refused(format!(
                    "the metadata store has schema version {} and this weir needs {}: run `weir storage upgrade` \
                     (it takes a backup first), or set `upgrade: auto` in the deployment config",
                    applied.iter().max().copied().unwrap_or_default(),
                    known.iter().max().copied().unwrap_or_default()
                ))),
                UpgradePolicy::Auto => {
                    let migrated = store.migrate().await.map_err(store_err)?;
                    Ok(Opened::Adopted { identity, migrated })
                }
            }
        }
    }
}

async fn initialise(
    store: &dyn MetadataStore,
    artifacts: &ArtifactStore,
    recorded: Option<StorageIdentity>,
    deployment: &str,
    now_ms: i64,
) -> Result<Opened, LifecycleError> {
    store.migrate().await.map_err(store_err)?;
    let identity = match recorded {
        Some(identity) => identity,
        None => {
            let identity = StorageIdentity {
                id: uuid::Uuid::new_v4().to_string(),
                created_at: now_ms,
                deployment: deployment.to_string(),
            };
            match store.begin_identity(&identity).await {
                Ok(()) => identity,
                // Another weir starting at the same moment recorded its identity first: finish
                // initialising with that one.
                Err(StoreError::AlreadyExists(_)) => match store.schema_state().await.map_err(store_err)? {
                    SchemaState::Weir { identity: Some(theirs), .. } => theirs,
                    other => return Err(LifecycleError::Store(format!("unexpected storage state {other:?}"))),
                },
                Err(e) => return Err(store_err(e)),
            }
        }
    };
    artifacts
        .write_identity(&IdentityMarker { id: identity.id.clone(), created_at: identity.created_at })
        .await
        .map_err(store_err)?;
    store.finish_identity().await.map_err(store_err)?;
    tracing::info!(storage.identity = %identity.id, "initialised new storage");
    Ok(Opened::Initialised(identity))
}
