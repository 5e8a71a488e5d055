//! `weir storage …`: look at and manage the two stores without serving.

use std::process::ExitCode;

use serde_json::json;
use weir_server::lifecycle::{open_storage, LifecycleError, UpgradePolicy};
use weir_store::{SchemaState, StoreAdmin};
use weir_store_sql::redact_url;

use crate::config::{Settings, StorageArgs};

#[derive(Debug, clap::Subcommand)]
pub enum StorageCommand {
    /// Identity, schema version and pending migrations of both stores.
    Status {
        #[command(flatten)]
        storage: StorageArgs,
        /// `text` for people, `json` for scripts.
        #[arg(long, default_value = "text")]
        output: String,
    },
    /// Apply pending schema migrations.
    Upgrade {
        #[command(flatten)]
        storage: StorageArgs,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub async fn run(command: StorageCommand) -> anyhow::Result<ExitCode> {
    match command {
        StorageCommand::Status { storage, output } => status(&storage, &output).await,
        StorageCommand::Upgrade { storage, dry_run } => upgrade(&storage, dry_run).await,
    }
}

async fn status(args: &StorageArgs, output: &str) -> anyhow::Result<ExitCode> {
    let settings = Settings::resolve(args, None, None, None)?;
    let (store, artifacts) = super::open_stores(&settings).await?;
    let schema = store.schema_state().await?;
    let marker = artifacts.read_identity().await?;
    let (db_identity, applied, known) = match &schema {
        SchemaState::Empty => (None, Vec::new(), weir_store_sql::migration_versions(store.dialect())),
        SchemaState::Weir { identity, applied, known, .. } => {
            (identity.clone().map(|i| i.id), applied.clone(), known.clone())
        }
    };
    let pending: Vec<i64> = known.iter().filter(|v| !applied.contains(v)).copied().collect();
    let report = json!({
        "deployment": settings.name,
        "metadata": {
            "url": redact_url(&settings.metadata_url),
            "dialect": StoreAdmin::dialect(store.as_ref()),
            "identity": db_identity,
            "schema_version": applied.iter().max(),
            "head_version": known.iter().max(),
            "pending_migrations": pending,
        },
        "artifacts": {
            "url": settings.artifacts_url,
            "identity": marker.map(|m| m.id),
        },
    });
    if output == "json" {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("deployment:       {}", settings.name);
        println!("metadata store:   {}", report["metadata"]["url"].as_str().unwrap_or_default());
        println!("  identity:       {}", report["metadata"]["identity"].as_str().unwrap_or("(none)"));
        println!(
            "  schema version: {} (head {})",
            report["metadata"]["schema_version"], report["metadata"]["head_version"]
        );
        println!("  pending:        {}", report["metadata"]["pending_migrations"]);
        println!("artifact store:   {}", settings.artifacts_url);
        println!("  identity:       {}", report["artifacts"]["identity"].as_str().unwrap_or("(none)"));
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn upgrade(args: &StorageArgs, dry_run: bool) -> anyhow::Result<ExitCode> {
    let settings = Settings::resolve(args, None, None, None)?;
    let (store, artifacts) = super::open_stores(&settings).await?;
    let schema = store.schema_state().await?;
    let pending: Vec<i64> = match &schema {
        SchemaState::Empty => {
            eprintln!("weir: the metadata store is empty; `weir server` initialises new storage");
            return Ok(ExitCode::from(2));
        }
        SchemaState::Weir { applied, known, .. } => known.iter().filter(|v| !applied.contains(v)).copied().collect(),
    };
    if pending.is_empty() {
        eprintln!("schema is at head; nothing to do");
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("pending migrations: {pending:?}");
    if dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    match open_storage(store.as_ref(), &artifacts, UpgradePolicy::Auto, now).await {
        Ok(opened) => {
            eprintln!("upgraded storage {}", opened.identity().id);
            Ok(ExitCode::SUCCESS)
        }
        Err(LifecycleError::Refused(message)) => {
            eprintln!("weir: refusing to upgrade: {message}");
            Ok(ExitCode::from(2))
        }
        Err(LifecycleError::Store(message)) => anyhow::bail!(message),
    }
}
