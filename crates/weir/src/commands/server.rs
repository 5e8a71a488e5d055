//! `weir server`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tracing_subscriber::EnvFilter;
use weir_server::lifecycle::{open_storage, LifecycleError, Opened, UpgradePolicy};
use weir_server::AppState;
use weir_store::{Clock, Lease, StoreAdmin, SystemClock};
use weir_store_sql::redact_url;

use crate::config::{ExecutorArgs, LogFormat, Settings, StorageArgs};

#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub executor: ExecutorArgs,
    /// Address to serve on (KFP's API port by default).
    #[arg(long, env = "WEIR_LISTEN")]
    pub listen: Option<String>,
    /// Log output: compact text or one JSON object per line.
    #[arg(long, env = "WEIR_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// On SIGTERM, how long running steps may take to finish before they are stopped (and
    /// recorded to run again at the next start).
    #[arg(long, env = "WEIR_SHUTDOWN_GRACE_SECONDS", default_value_t = 30)]
    pub shutdown_grace_seconds: u64,
    /// Migrate an older schema at start (`auto`) or refuse and ask for `weir storage upgrade`.
    #[arg(long, env = "WEIR_UPGRADE", value_parser = parse_upgrade)]
    pub upgrade: Option<UpgradePolicy>,
    /// The path prefix the web UI's links get behind a reverse proxy that does not send
    /// X-Forwarded-Prefix (e.g. /weir).
    #[arg(long, env = "WEIR_UI_BASE_PATH", default_value = "")]
    pub ui_base_path: String,
    /// Serve the API only, without the web UI.
    #[arg(long, env = "WEIR_NO_UI")]
    pub no_ui: bool,
}

fn parse_upgrade(text: &str) -> Result<UpgradePolicy, String> {
    match text {
        "auto" => Ok(UpgradePolicy::Auto),
        "manual" => Ok(UpgradePolicy::Manual),
        other => Err(format!("expected auto or manual, got {other:?}")),
    }
}

fn init_tracing(settings: &Settings) {
    let filter = EnvFilter::try_from_env("WEIR_LOG").unwrap_or_else(|_| EnvFilter::new(&settings.log_level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match settings.log_format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
        LogFormat::Compact => builder.compact().try_init(),
    };
}

/// Connections of the engine's own pool (besides `metadata.max_connections` for the API).
const ENGINE_CONNECTIONS: u32 = 4;

pub async fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let settings =
        Settings::resolve_with(&args.storage, &args.executor, args.listen.as_deref(), args.log_format, args.upgrade)?;
    init_tracing(&settings);
    let ui_base_path = weir_ui::normalise_base_path(&args.ui_base_path).map_err(anyhow::Error::msg)?;
    let (store, artifacts) = super::open_stores(&settings).await?;
    // A new in-cluster S3 server (the bundled SeaweedFS or MinIO) has no bucket yet.
    match artifacts.ensure_bucket().await {
        Ok(true) => tracing::info!(artifacts = %settings.artifacts_url, "made the artifact store's bucket"),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "the artifact store's bucket could not be made"),
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // `upgrade: auto` takes the same path as `weir storage upgrade`: plan, backup, migrate.
    if settings.upgrade == UpgradePolicy::Auto {
        if let weir_store::SchemaState::Weir { applied, known, identity: Some(_), .. } =
            weir_store::StoreAdmin::schema_state(store.as_ref()).await?
        {
            if known.iter().any(|v| !applied.contains(v)) && applied.iter().all(|v| known.contains(v)) {
                if let Err(e) = super::storage::upgrade_storage(
                    &settings,
                    &store,
                    &artifacts,
                    false,
                    &super::storage::BackupTarget::default_for(&settings),
                )
                .await
                {
                    eprintln!("weir: refusing to start: cannot upgrade the storage: {e:#}");
                    return Ok(ExitCode::from(2));
                }
            }
        }
    }
    match open_storage(store.as_ref(), &artifacts, settings.upgrade, &settings.name, clock.now_ms()).await {
        Ok(Opened::Initialised(identity)) => {
            tracing::info!(storage.identity = %identity.id, "new storage initialised")
        }
        Ok(Opened::Adopted { identity, migrated }) => {
            tracing::info!(storage.identity = %identity.id, migrated = ?migrated, "existing storage adopted")
        }
        Err(LifecycleError::Refused(message)) => {
            eprintln!("weir: refusing to start: {message}");
            return Ok(ExitCode::from(2));
        }
        Err(LifecycleError::Store(message)) => anyhow::bail!("cannot open storage: {message}"),
    }
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let lease = Lease {
        id: uuid::Uuid::new_v4().to_string(),
        deployment: settings.name.clone(),
        host: super::hostname(),
        pid: std::process::id() as i64,
        version: env!("CARGO_PKG_VERSION").to_string(),
        schema_version: weir_store_sql::migration_versions(store.dialect()).into_iter().max().unwrap_or_default(),
        started_at: clock.now_ms(),
        heartbeat_at: clock.now_ms(),
    };
    let registered = std::time::Instant::now();
    if let Err(refusal) = register(store.as_ref(), &lease).await? {
        eprintln!("weir: {refusal}");
        store.close().await;
        return Ok(ExitCode::from(2));
    }
    let replica =
        Arc::new(weir_engine::replica::Replica::new(lease.id.clone(), lease.host.clone(), settings.replica_lease));
    replica.renewed(registered);
    let on_cluster = settings.kubernetes.is_some();
    let (driver, python_has_kfp, private_mounts, object_mounts) = match &settings.kubernetes {
        Some(section) => {
            let driver = kubernetes_driver(&settings, section, &artifacts).await?;
            // A pod mounts what it is given and its image runs the SDK's pip preamble, as under KFP.
            (driver, false, true, mount_point_of(artifacts.url()).is_some())
        }
        None => {
            let (python_has_kfp, private_mounts, object_mounts) = local_steps(&settings, &artifacts).await;
            let driver: Arc<dyn weir_engine::driver::Driver> = Arc::new(weir_driver_local::LocalDriver);
            (driver, python_has_kfp, private_mounts, object_mounts)
        }
    };
    let step_env = weir_engine::step_env::base_environment(std::env::vars(), &settings.step_env);
    // The engine, the collector and the heartbeat get connections of their own on a server
    // database: with API requests filling the shared pool, every step's writes would queue
    // behind them and the engine would stall under load (seen with 50 clients on MariaDB).
    // SQLite has one writer per file: one pool.
    let engine_store = if store.dialect() == weir_store_sql::Dialect::Sqlite {
        store.clone()
    } else {
        let connect = weir_store_sql::ConnectSettings { max_connections: ENGINE_CONNECTIONS, ..Default::default() };
        Arc::new(
            weir_store_sql::SqlStore::connect(&settings.metadata_url, &connect)
                .await
                .context("cannot open the engine's connections to the metadata store")?,
        )
    };
    let engine = weir_engine::Engine::new(
        engine_store.clone(),
        artifacts.clone(),
        clock.clone(),
        driver,
        weir_engine::EngineSettings {
            work_dir: settings.work_dir.clone(),
            max_concurrent_steps: settings.max_concurrent_steps,
            python: settings.executor_python.clone(),
            python_has_kfp,
            poll_interval: std::time::Duration::from_secs(2),
            max_running_runs: settings.max_running_runs,
            python_driver: if on_cluster { None } else { python_driver(&settings, python_has_kfp, step_env.clone()) },
            step_env,
            local_artifact_roots: settings.local_artifact_roots.clone(),
            private_mounts,
            object_mounts,
            replica: Some(replica.clone()),
        },
        Arc::new(tokio::sync::Notify::new()),
    );
    let state = AppState::new(store.clone(), artifacts, clock.clone())
        .with_engine(engine.notifier(), settings.work_dir.clone())
        .with_private_mounts(private_mounts)
        .with_cluster_steps(on_cluster)
        .with_retention(settings.retention.policies.clone(), settings.retention.keep_artifacts);
    if let Err(e) = state.services.experiments.default_experiment().await {
        let _ = store.release(&lease.id).await;
        anyhow::bail!("cannot create the Default experiment: {}", e.message);
    }
    // Renews the lease (six times per lifetime, so a beat or two may fail without losing it).
    // A weir stops when its storage moved on under it: its one-server lease (SQLite) was
    // taken over, or the schema was upgraded past what it knows (a rolling update's new
    // image ran the upgrade): it starts nothing more, hands its runs back and exits 2.
    let lease_lost = Arc::new(tokio::sync::Notify::new());
    let moved = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let heartbeat_task = {
        let (store, clock, mut lease, lost) = (engine_store.clone(), clock.clone(), lease.clone(), lease_lost.clone());
        let moved = moved.clone();
        let (replica, one_server) = (replica.clone(), one_server_per_storage(store.as_ref()));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(replica.ttl() / 6).await;
                lease.heartbeat_at = clock.now_ms();
                let sent = std::time::Instant::now();
                match store.heartbeat(&lease).await {
                    Ok(()) => replica.renewed(sent),
                    Err(e) => tracing::warn!(error = %e, "could not renew this server's lease"),
                }
                if let Some(reason) = moved_on(store.as_ref(), &lease, one_server).await {
                    tracing::error!("{reason}; stopping");
                    moved.store(true, std::sync::atomic::Ordering::SeqCst);
                    lost.notify_one();
                    return;
                }
            }
        })
    };
    let (stop_engine, engine_stopped) = tokio::sync::oneshot::channel::<()>();
    let engine_task = tokio::spawn(engine.clone().run(async move {
        let _ = engine_stopped.await;
    }));
    let (stop_scheduler, scheduler_stopped) = tokio::sync::oneshot::channel::<()>();
    let scheduler_task = if settings.scheduler_enabled {
        tracing::info!(timezone = %settings.timezone, "firing recurring runs");
        Some(tokio::spawn(state.services.scheduler.clone().run(settings.timezone, async move {
            let _ = scheduler_stopped.await;
        })))
    } else {
        tracing::info!("recurring runs are not fired by this weir (scheduler disabled)");
        None
    };

    // The collector finishes removals cut short by a stop, then follows new ones and applies
    // the retention policies.
    let stop_gc = Arc::new(tokio::sync::Notify::new());
    let gc_task = tokio::spawn(weir_gc::worker::run(
        weir_gc::Collector::new(engine_store.clone(), state.context().artifacts.clone(), clock.clone())
            .keeping_artifacts(settings.retention.keep_artifacts),
        settings.retention.clone(),
        state.context().gc.clone(),
        stop_gc.clone(),
    ));

    tracing::info!(
        listen = %settings.listen,
        metadata = %redact_url(&settings.metadata_url),
        artifacts = %settings.artifacts_url,
        deployment = %settings.name,
        "weir serving the KFP v2beta1 API"
    );
    let mut app = weir_server::router(state.clone());
    if !args.no_ui {
        let ui = weir_ui::UiConfig { base_path: ui_base_path, timezone: settings.timezone };
        app = app.merge(weir_ui::router(state.services.clone(), ui));
    }
    // Answers go out as soon as they are written: with Nagle's algorithm an answer sent in
    // parts (a run's head, then its tasks) waits for the client's delayed ACK, up to 40 ms.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown({
            let lost = lease_lost.clone();
            async move {
                tokio::select! {
                    _ = shutdown_signal() => {}
                    _ = lost.notified() => {}
                }
            }
        })
        .await
        .context("server failed")?;
    let _ = stop_scheduler.send(());
    if let Some(task) = scheduler_task {
        let _ = task.await;
    }
    // A deletion under way stops between objects; the journal keeps the rest for the next
    // start.
    stop_gc.notify_one();
    gc_task.abort();
    let _ = stop_engine.send(());
    let _ = engine_task.await;
    engine.drain(std::time::Duration::from_secs(args.shutdown_grace_seconds)).await;
    heartbeat_task.abort();
    // The runs this weir drove go to the others at once, rather than when its lease runs out.
    if let Err(e) = weir_store::RunLeaseStore::release_runs(store.as_ref(), &lease.id).await {
        tracing::warn!(error = %e, "could not give back this server's runs");
    }
    if let Err(e) = store.release(&lease.id).await {
        tracing::warn!(error = %e, "could not release this server's lease");
    }
    store.close().await;
    engine_store.close().await;
    tracing::info!("weir stopped");
    match moved.load(std::sync::atomic::Ordering::SeqCst) {
        true => Ok(ExitCode::from(2)),
        false => Ok(ExitCode::SUCCESS),
    }
}

fn python_driver(
    settings: &Settings,
    python_has_kfp: bool,
    step_env: Vec<(String, String)>,
) -> Option<Arc<dyn weir_engine::driver::PythonDriver>> {
    if !(python_has_kfp && settings.python_fork_server) {
        return None;
    }
    match weir_driver_local::ForkServer::new(&settings.executor_python, &settings.work_dir, step_env) {
        Ok(server) => Some(Arc::new(server)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot prepare the Python fork server; Python steps start from their command line");
            None
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}

/// Several weirs serve one PostgreSQL or MySQL/MariaDB database, each driving the runs it took;
/// an SQLite file is one host's embedded storage, served by one weir (a second started by
/// mistake is refused rather than left to fight over the file's one writer lock).
fn one_server_per_storage(store: &dyn weir_store::MetadataStore) -> bool {
    store.dialect() == "sqlite"
}

/// Records this server's lease, or says why it must not serve: another weir serves this
/// SQLite storage, or an exclusive operation (`weir import kfp --apply`) is writing to it.
async fn register(store: &dyn weir_store::MetadataStore, lease: &Lease) -> anyhow::Result<Result<(), String>> {
    let refusal = |holder: Lease| {
        format!(
            "refusing to start: another weir serves this storage: {}. Weir serves an SQLite storage from one \
             server (several weirs share a PostgreSQL or MySQL database); stop the other one first. A weir \
             that died on another host is forgotten {} s after its last heartbeat.",
            super::storage::describe_leases(&[holder]),
            super::storage::LEASE_TTL_MS / 1000
        )
    };
    if one_server_per_storage(store) {
        return Ok(take_engine_lease(store, lease).await?.map_err(refusal));
    }
    // Leases of weirs on this host that were killed (nothing released them): their runs are
    // taken at once instead of when the leases run out.
    for dead in store.leases().await?.into_iter().filter(super::storage::died_here) {
        store.release(&dead.id).await?;
    }
    store.heartbeat(lease).await?;
    // The engine lease is only taken by exclusive operations now; one that is live refuses
    // this server (it checks the servers' leases after taking it, so one of two starting
    // together always sees the other).
    if let Some(holder) = store.engine_holder().await? {
        let live = super::storage::live_leases(store).await?;
        if let Some(found) = live.into_iter().find(|l| l.id == holder) {
            store.release(&lease.id).await?;
            return Ok(Err(format!(
                "refusing to start: an import is writing to this storage ({}); start weir when it has finished",
                super::storage::describe_leases(&[found])
            )));
        }
    }
    Ok(Ok(()))
}

/// Why this weir must stop serving, if it must: another took its one-server lease, or the
/// schema holds migrations this binary does not know.
async fn moved_on(store: &dyn weir_store::MetadataStore, lease: &Lease, one_server: bool) -> Option<String> {
    if one_server {
        match store.engine_holder().await {
            Ok(holder) if holder.as_deref() != Some(lease.id.as_str()) => {
                return Some(format!("another weir took over this storage's engine lease (held by {holder:?})"));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not check this server's engine lease"),
        }
    }
    match store.schema_state().await {
        Ok(weir_store::SchemaState::Weir { applied, known, .. }) => {
            let unknown: Vec<i64> = applied.into_iter().filter(|v| !known.contains(v)).collect();
            (!unknown.is_empty()).then(|| {
                format!("the storage holds schema migrations {unknown:?} this weir does not know (a newer weir upgraded it)")
            })
        }
        Ok(weir_store::SchemaState::Empty) => Some("the storage's tables are gone".into()),
        Err(e) => {
            tracing::warn!(error = %e, "could not check the storage's schema");
            None
        }
    }
}

/// Takes this storage's engine lease for `lease`; on refusal returns the live holder. A holder
/// that is gone (its heartbeat stale, or its process on this host dead) is replaced; racing
/// starts look again after losing, and then find the winner live.
pub(crate) async fn take_engine_lease(
    store: &dyn weir_store::MetadataStore,
    lease: &Lease,
) -> anyhow::Result<Result<(), Lease>> {
    let mut last_error = None;
    for _ in 0..10 {
        let replacing = match store.engine_holder().await? {
            None => None,
            Some(holder) => {
                let live = super::storage::live_leases(store).await?;
                if let Some(found) = live.into_iter().find(|l| l.id == holder) {
                    return Ok(Err(found));
                }
                Some(holder)
            }
        };
        match store.take_engine(lease, replacing.as_deref()).await {
            Ok(()) => return Ok(Ok(())),
            // Another weir moved first: look at the holder again.
            Err(weir_store::StoreError::Aborted(e)) => last_error = Some(e),
            Err(e) if e.is_retryable() => {
                last_error = Some(e.to_string());
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!("cannot take this storage's engine lease: {}", last_error.unwrap_or_default())
}

/// Where an object store's artifacts are mounted for steps (`/s3`, `/gcs`), by its URL.
fn mount_point_of(url: &str) -> Option<std::path::PathBuf> {
    [("s3://", "/s3"), ("gs://", "/gcs")]
        .into_iter()
        .find(|(scheme, _)| url.starts_with(scheme))
        .map(|(_, point)| std::path::PathBuf::from(point))
}

/// What this host gives local steps: whether its interpreter has kfp, whether steps can have
/// mount namespaces, and whether an object store's artifacts are mounted for them.
async fn local_steps(settings: &Settings, artifacts: &weir_artifacts::ArtifactStore) -> (bool, bool, bool) {
    let python_has_kfp = weir_engine::python_has_kfp(&settings.executor_python).await;
    tracing::info!(
        executor.python = %settings.executor_python.display(),
        executor.kfp = python_has_kfp,
        "steps run as local processes{}",
        if python_has_kfp {
            "; Python components skip the pip preamble"
        } else {
            "; the interpreter has no kfp, so Python components run their pip preamble"
        }
    );
    // With an object store, steps see their artifacts where KFP's SDK puts an object's local
    // copy (`/s3/…`, `/gcs/…`), in a mount namespace of their own: only when weir may make one.
    let mount_point = mount_point_of(artifacts.url());
    let private_mounts = weir_driver_local::private_mounts_available();
    if private_mounts {
        tracing::info!("steps get mount namespaces of their own: volumes at paths, and an object store's artifacts at their durable URIs' local paths");
    } else {
        tracing::warn!("weir cannot make mount namespaces (it runs without root): runs that mount volumes at paths are refused, and with an object store steps see their artifacts at paths in their attempt's folder");
    }
    // The empty folder an object store's artifacts are mounted on, for every step.
    let object_mounts = match &mount_point {
        Some(point) if private_mounts => match std::fs::create_dir_all(point) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(mount_point = %point.display(), error = %e, "cannot make the mount point of the object store's artifacts; steps see them at paths in their attempt's folder");
                false
            }
        },
        _ => false,
    };
    (python_has_kfp, private_mounts, object_mounts)
}

/// The Kubernetes driver, connected, from the `kubernetes` section.
async fn kubernetes_driver(
    settings: &Settings,
    section: &crate::config::KubernetesSection,
    artifacts: &weir_artifacts::ArtifactStore,
) -> anyhow::Result<Arc<dyn weir_engine::driver::Driver>> {
    let namespace = section.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| {
        std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
            .map(|n| n.trim().to_string())
            .unwrap_or_else(|_| "default".into())
    });
    let step_env = section
        .step_env
        .iter()
        .flatten()
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) => Ok((name.to_string(), value.to_string())),
            None => Err(anyhow::anyhow!("kubernetes.step_env entry {pair:?} is not NAME=value")),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let k8s = weir_driver_k8s::Settings {
        namespace,
        service_account: section.service_account.clone(),
        launcher_image: section.launcher_image.clone().unwrap_or_default(),
        launcher_pull_policy: section.launcher_image_pull_policy.clone(),
        store_url: artifacts.url().to_string(),
        store_endpoint: section.s3_endpoint.clone().or(settings.s3.endpoint.clone()),
        store_secret: section.artifacts_secret.clone(),
        default_cpu_request: section.default_cpu_request.clone(),
        default_memory_request: section.default_memory_request.clone(),
        pending_timeout: std::time::Duration::from_secs(section.pending_timeout_seconds.unwrap_or(300)),
        step_env,
        deployment: settings.name.clone(),
        kubeconfig: section.kubeconfig.clone(),
    };
    let driver = weir_driver_k8s::KubernetesDriver::connect(k8s, artifacts.clone())
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the Kubernetes driver: {e}"))?;
    Ok(Arc::new(driver))
}
