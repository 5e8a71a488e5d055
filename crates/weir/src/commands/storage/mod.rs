//! `weir storage …`: look at and manage the two stores without serving.

mod archive;
mod backup;
mod backups;
mod check;
mod gc;
mod purge;
mod restore;
mod status;
mod upgrade;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use weir_artifacts::ArtifactStore;
use weir_store::{Lease, MetadataStore};
use weir_store_sql::SqlStore;

use crate::config::{Settings, StorageArgs};

pub(crate) use backups::{take_backup, BackupTarget};
pub(crate) use upgrade::upgrade_storage;

/// A lease renewed less than this long ago means a weir is still serving.
pub const LEASE_TTL_MS: i64 = weir_service::storage::LEASE_TTL_MS;

#[derive(Debug, clap::Subcommand)]
pub enum StorageCommand {
    /// Identity, schema version, pending migrations, rows, objects and serving weirs.
    Status {
        #[command(flatten)]
        storage: StorageArgs,
        /// `text` for people, `json` for scripts.
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Check that every object the metadata refers to exists; list objects nothing refers to.
    Check {
        #[command(flatten)]
        storage: StorageArgs,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// What the retention policies would remove, and orphan objects (a dry run); --apply
    /// removes them.
    Gc {
        #[command(flatten)]
        storage: StorageArgs,
        /// Remove what the dry run lists: runs the policies choose, unfinished deletions, and
        /// orphan objects older than the grace period.
        #[arg(long)]
        apply: bool,
        /// Orphan objects younger than this are left (over retention.orphan_grace_seconds;
        /// default one day).
        #[arg(long)]
        grace_seconds: Option<u64>,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Migrate the metadata store to this weir's schema, after taking a backup.
    Upgrade {
        #[command(flatten)]
        storage: StorageArgs,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Where the backup taken first goes: `store` (the artifact store, under
        /// .weir/backups/) or a folder. Default: the store when it is remote (S3, GCS, Azure),
        /// else DATA_DIR/backups.
        #[arg(long, alias = "backup-dir", value_parser = BackupTarget::parse)]
        backup_to: Option<BackupTarget>,
    },
    /// List the backups kept in the artifact store (an upgrade's), or fetch one to a file.
    Backups {
        #[command(flatten)]
        storage: StorageArgs,
        /// The backup to fetch (its name as listed).
        #[arg(long)]
        get: Option<String>,
        /// Where --get writes the backup.
        #[arg(short, long)]
        output_file: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Write both stores to one portable, checksummed archive.
    Backup {
        #[command(flatten)]
        storage: StorageArgs,
        /// The archive to write (a .tar.gz).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Load an archive into empty storage (any backend).
    Restore {
        #[command(flatten)]
        storage: StorageArgs,
        /// The archive to read.
        #[arg(short, long)]
        input: PathBuf,
    },
    /// Delete everything weir stored in both stores. Needs --yes and the deployment's name.
    Purge {
        #[command(flatten)]
        storage: StorageArgs,
        /// Confirm that the data is to be deleted.
        #[arg(long)]
        yes: bool,
        /// The deployment's name, typed back (as in the config file or --name).
        #[arg(long)]
        confirm_name: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

pub async fn run(command: StorageCommand) -> anyhow::Result<ExitCode> {
    match command {
        StorageCommand::Status { storage, output } => status::run(&storage, output).await,
        StorageCommand::Check { storage, output } => check::run(&storage, output).await,
        StorageCommand::Gc { storage, apply, grace_seconds, output } => {
            gc::run(&storage, apply, grace_seconds, output).await
        }
        StorageCommand::Upgrade { storage, dry_run, backup_to } => upgrade::run(&storage, dry_run, backup_to).await,
        StorageCommand::Backups { storage, get, output_file, output } => {
            backups::run(&storage, get.as_deref(), output_file.as_deref(), output).await
        }
        StorageCommand::Backup { storage, output } => backup::run(&storage, &output).await,
        StorageCommand::Restore { storage, input } => restore::run(&storage, &input).await,
        StorageCommand::Purge { storage, yes, confirm_name } => {
            purge::run(&storage, yes, confirm_name.as_deref()).await
        }
    }
}

pub(crate) struct Opened {
    pub settings: Settings,
    pub store: Arc<SqlStore>,
    pub artifacts: ArtifactStore,
}

pub(crate) async fn open(args: &StorageArgs) -> anyhow::Result<Opened> {
    let settings = Settings::resolve(args, None, None, None)?;
    let (store, artifacts) = super::open_stores(&settings).await?;
    Ok(Opened { settings, store, artifacts })
}

/// A spinner with a message, for work whose length is not known ahead.
pub(crate) fn progress_spinner(message: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(message.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// Servers whose lease was renewed recently, leaving out those of this host whose process is
/// no longer a weir (killed with SIGKILL: nothing released their lease).
pub(crate) async fn live_leases(store: &dyn MetadataStore) -> anyhow::Result<Vec<Lease>> {
    let now = now_ms();
    Ok(store.leases().await?.into_iter().filter(|l| now - l.heartbeat_at < LEASE_TTL_MS && !died_here(l)).collect())
}

/// Whether a lease names a process of this host that is no longer a weir.
pub(crate) fn died_here(lease: &Lease) -> bool {
    lease.host == crate::commands::hostname()
        && !std::fs::read_to_string(format!("/proc/{}/comm", lease.pid)).map(|c| c.trim() == "weir").unwrap_or(false)
}

pub(crate) fn describe_leases(leases: &[Lease]) -> String {
    leases
        .iter()
        .map(|l| format!("{} (deployment {}, host {}, pid {})", l.id, l.deployment, l.host, l.pid))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every key in the artifact store except the identity marker.
pub(crate) async fn object_keys(artifacts: &ArtifactStore) -> anyhow::Result<std::collections::BTreeSet<String>> {
    Ok(artifacts.list("").await?.into_iter().filter(|k| !k.starts_with(weir_artifacts::RESERVED_PREFIX)).collect())
}
