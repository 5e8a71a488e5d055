//! `weir import kfp`: a Kubeflow Pipelines installation's storage, read and mapped onto weir
//! (crates/weir-import-kfp; docs/import-kfp.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use weir_artifacts::{ArtifactStore, S3Settings};
use weir_import_kfp::{PlanOptions, Report, Target};
use weir_server::lifecycle::{open_storage, LifecycleError, UpgradePolicy};
use weir_store::{Lease, StoreAdmin};

use super::storage::{now_ms, BackupTarget};
use crate::config::{Settings, StorageArgs};

#[derive(Debug, clap::Subcommand)]
pub enum ImportCommand {
    /// Read a KFP installation's mlpipeline database and bucket, only reading, and report what
    /// would be imported: counts by kind, namespace and state; what cannot be and why (codes
    /// with sample ids); per-kind checksums. With --apply, import it into weir's storage
    /// (after a backup of it). Exits 0 clean, 1 with warnings or conflicts, 2 refused.
    Kfp(Box<KfpArgs>),
}

#[derive(Debug, clap::Args)]
pub struct KfpArgs {
    /// KFP's mlpipeline database: mysql://USER:PASSWORD@HOST:3306/mlpipeline, or a
    /// postgres:// URL for KFP on PostgreSQL.
    #[arg(long, alias = "database")]
    pub mysql: String,
    /// KFP's bucket, at its root: s3://mlpipeline (credentials from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY), gs://..., az://....
    #[arg(long)]
    pub objects: String,
    /// The S3-compatible server of KFP's bucket (its MinIO or SeaweedFS), e.g.
    /// http://127.0.0.1:9000.
    #[arg(long)]
    pub s3_endpoint: Option<String>,
    #[arg(long)]
    pub s3_region: Option<String>,
    /// KFP's ML Metadata database, where its runs' steps, artifacts and metrics are: a
    /// database name on the same server as --mysql, or a URL. Default: `metadb` there, when it
    /// can be read (otherwise runs come without their steps, and the report says so).
    #[arg(long)]
    pub mlmd_db: Option<String>,
    /// KFP's cache database (v1 pipelines only: counted, not imported): a database name on the
    /// same server as --mysql, or a URL. Default: `cachedb` there, when it can be read.
    #[arg(long)]
    pub cache_db: Option<String>,
    /// The timezone KFP's ScheduledWorkflow controller read cron schedules in (its
    /// CRON_SCHEDULE_TIMEZONE); the report warns when weir's `timezone` differs.
    #[arg(long, default_value = "UTC")]
    pub kfp_timezone: String,
    /// Import runs KFP may still be running as canceled, instead of refusing.
    #[arg(long)]
    pub allow_inflight: bool,
    /// Write into weir's storage (otherwise a dry run, which writes nothing anywhere).
    #[arg(long)]
    pub apply: bool,
    /// Import recurring runs enabled where KFP has them enabled. Stop KFP's schedules first,
    /// or both will trigger them.
    #[arg(long)]
    pub enable_schedules: bool,
    /// Copy the objects of imported artifacts into weir's artifact store (by default they are
    /// referenced where KFP wrote them, and KFP's bucket must stay readable).
    #[arg(long)]
    pub copy_artifacts: bool,
    /// With --apply, write at most this many rows, then stop; running the import again
    /// continues where it stopped.
    #[arg(long)]
    pub max_rows: Option<u64>,
    /// Where the backup of weir's storage taken before --apply goes: `store` (the artifact
    /// store, under .weir/backups/) or a folder. Default: the store when it is remote, else
    /// DATA_DIR/backups.
    #[arg(long, value_parser = BackupTarget::parse)]
    pub backup_to: Option<BackupTarget>,
    /// `text` for people, `json` for scripts.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub output: String,

    // Weir's own storage, which --apply writes (as `weir server` takes it).
    /// Weir's deployment config file (YAML).
    #[arg(long, env = "WEIR_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long, env = "WEIR_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Weir's metadata store URL.
    #[arg(long, env = "WEIR_METADATA")]
    pub metadata: Option<String>,
    /// Weir's artifact store URL.
    #[arg(long, env = "WEIR_ARTIFACTS")]
    pub artifacts: Option<String>,
    /// The S3-compatible server of weir's artifact store.
    #[arg(long, env = "WEIR_S3_ENDPOINT")]
    pub weir_s3_endpoint: Option<String>,
    #[arg(long, env = "WEIR_S3_REGION")]
    pub weir_s3_region: Option<String>,
    /// Weir's deployment name.
    #[arg(long, env = "WEIR_NAME")]
    pub name: Option<String>,
}

impl KfpArgs {
    fn storage(&self) -> StorageArgs {
        StorageArgs {
            config: self.config.clone(),
            data_dir: self.data_dir.clone(),
            metadata: self.metadata.clone(),
            artifacts: self.artifacts.clone(),
            s3_endpoint: self.weir_s3_endpoint.clone(),
            s3_region: self.weir_s3_region.clone(),
            name: self.name.clone(),
        }
    }
}

pub async fn run(command: ImportCommand) -> anyhow::Result<ExitCode> {
    let ImportCommand::Kfp(args) = command;
    let settings =
        S3Settings { endpoint: args.s3_endpoint.clone(), region: args.s3_region.clone(), ..Default::default() };
    let objects = ArtifactStore::open(&args.objects, &settings)
        .with_context(|| format!("cannot open KFP's bucket {}", args.objects))?;
    let mlmd_url = beside_url(&args, args.mlmd_db.as_deref(), "metadb", "ML Metadata", "--mlmd-db").await?;
    let cache_url = beside_url(&args, args.cache_db.as_deref(), "cachedb", "cache database", "--cache-db").await?;
    let options = PlanOptions {
        database_url: args.mysql.clone(),
        objects,
        allow_inflight: args.allow_inflight,
        mlmd_url,
        cache_url,
    };
    let mut plan = weir_import_kfp::plan(&options).await?;
    timezone_check(&args, &mut plan)?;
    let report = if args.apply && plan.refused.is_empty() {
        match apply(&args, &options).await? {
            Ok(mut report) => {
                timezone_check(&args, &mut report)?;
                report
            }
            Err(refusal) => {
                eprintln!("weir: {refusal}");
                return Ok(ExitCode::from(2));
            }
        }
    } else {
        plan
    };
    if args.output == "json" {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(ExitCode::from(report.exit_code()))
}

/// One of KFP's other databases: as named (a name on the same server as --mysql, or a URL),
/// or `default` beside `mlpipeline` when it is there.
async fn beside_url(
    args: &KfpArgs,
    named: Option<&str>,
    default: &str,
    what: &str,
    flag: &str,
) -> anyhow::Result<Option<String>> {
    let beside = |database: &str| -> anyhow::Result<String> {
        let mut url = url::Url::parse(&args.mysql).context("--mysql is not a URL")?;
        url.set_path(&format!("/{database}"));
        Ok(url.to_string())
    };
    match named {
        Some(named) if named.contains("://") => Ok(Some(named.to_string())),
        Some(named) => Ok(Some(beside(named)?)),
        None => {
            let url = beside(default)?;
            match weir_import_kfp::source::Source::open(&url).await {
                Ok(source) => {
                    source.close().await;
                    Ok(Some(url))
                }
                Err(e) => {
                    eprintln!("note: KFP's {what} is not read ({e}); name it with {flag}");
                    Ok(None)
                }
            }
        }
    }
}

/// KFP's ScheduledWorkflow controller reads cron schedules in its `CRON_SCHEDULE_TIMEZONE`
/// (UTC unless set), weir in its deployment's `timezone`: a difference moves every imported
/// cron schedule, so the report says so.
fn timezone_check(args: &KfpArgs, report: &mut Report) -> anyhow::Result<()> {
    let cron_schedules = report.counts.get("recurring runs").map(|c| c.total).unwrap_or(0);
    if cron_schedules == 0 {
        return Ok(());
    }
    let kfp: chrono_tz::Tz = args
        .kfp_timezone
        .parse()
        .map_err(|_| anyhow::anyhow!("--kfp-timezone {:?} is not an IANA timezone name", args.kfp_timezone))?;
    let weir = Settings::resolve(&args.storage(), None, None, None).map(|s| s.timezone).unwrap_or(chrono_tz::UTC);
    if kfp != weir {
        report.warnings.insert(
            "CRON_TIMEZONE_DIFFERS".into(),
            weir_import_kfp::Warning {
                count: cron_schedules,
                meaning: format!(
                    "KFP read cron schedules in {kfp}, this weir reads them in {weir}: set `timezone: {kfp}` in weir's \
                     config, or the imported schedules fire at other hours"
                ),
                samples: Vec::new(),
            },
        );
    }
    Ok(())
}

/// The import into weir's storage: opened as `weir server` opens it (new storage is
/// initialised, an old schema refused), with no weir serving it, backed up first, and held
/// under the engine lease meanwhile so that no weir starts on it half-imported.
async fn apply(args: &KfpArgs, options: &PlanOptions) -> anyhow::Result<Result<Report, String>> {
    let settings = Settings::resolve(&args.storage(), None, None, None)?;
    let (store, artifacts) = super::open_stores(&settings).await?;
    match open_storage(store.as_ref(), &artifacts, UpgradePolicy::Manual, &settings.name, now_ms()).await {
        Ok(_) => {}
        Err(LifecycleError::Refused(message)) => return Ok(Err(format!("refusing to import: {message}"))),
        Err(LifecycleError::Store(message)) => anyhow::bail!("cannot open weir's storage: {message}"),
    }
    let lease = Lease {
        id: format!("import-{}", uuid::Uuid::new_v4()),
        deployment: settings.name.clone(),
        host: super::hostname(),
        pid: std::process::id() as i64,
        version: env!("CARGO_PKG_VERSION").to_string(),
        schema_version: weir_store_sql::migration_versions(store.dialect()).into_iter().max().unwrap_or_default(),
        started_at: now_ms(),
        heartbeat_at: now_ms(),
    };
    if let Err(holder) = super::server::take_engine_lease(store.as_ref(), &lease).await? {
        return Ok(Err(format!(
            "refusing to import while weir serves this storage: {}; stop it first",
            super::storage::describe_leases(&[holder])
        )));
    }
    // Servers of a PostgreSQL or MySQL storage do not take the engine lease (several serve one
    // database): any live one refuses the import. Each side writes its lease before looking
    // at the other's, so of an import and a server starting together one sees the other.
    let serving: Vec<Lease> =
        super::storage::live_leases(store.as_ref()).await?.into_iter().filter(|l| l.id != lease.id).collect();
    if !serving.is_empty() {
        store.release(&lease.id).await?;
        return Ok(Err(format!(
            "refusing to import while weir serves this storage: {}; stop it first",
            super::storage::describe_leases(&serving)
        )));
    }
    let renew = {
        let (store, mut lease) = (store.clone(), lease.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis((super::storage::LEASE_TTL_MS / 3) as u64)).await;
                lease.heartbeat_at = now_ms();
                if let Err(e) = store.heartbeat(&lease).await {
                    tracing::warn!(error = %e, "could not renew the import's lease");
                }
            }
        })
    };
    let result = async {
        let target = args.backup_to.clone().unwrap_or_else(|| BackupTarget::default_for(&settings));
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("weir-backup-before-import-{}-{}.tar.gz", now_ms(), &unique[..8]);
        let (place, _) = super::storage::take_backup(&settings, &store, &artifacts, &target, &name).await?;
        eprintln!("backup taken: {place}");
        let bar = super::storage::progress_spinner("importing");
        let progress = |kind: &str, done: u64| bar.set_message(format!("importing {kind}s: {done}"));
        let target = Target {
            store: store.as_ref(),
            artifacts: &artifacts,
            enable_schedules: args.enable_schedules,
            now_ms: now_ms(),
            progress: &progress,
            max_rows: args.max_rows,
            copy_artifacts: args.copy_artifacts,
        };
        let report = weir_import_kfp::apply(options, &target).await;
        bar.finish_and_clear();
        anyhow::Ok(report?)
    }
    .await;
    renew.abort();
    if let Err(e) = store.release(&lease.id).await {
        tracing::warn!(error = %e, "could not release the import's lease");
    }
    store.close().await;
    Ok(Ok(result?))
}
