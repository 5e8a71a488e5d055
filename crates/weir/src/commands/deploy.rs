//! `weir deploy render`: a deployment's kustomize overlay; `weir deploy check`: a live
//! namespace read through the Kubernetes API (both in crates/weir-deploy).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use weir_deploy::{Options, Server, Storage};

#[derive(Debug, clap::Subcommand)]
pub enum DeployCommand {
    /// Write the overlay of one deployment into a folder: `app/` and `storage/` to apply with
    /// `kubectl apply --server-side -k`, over `base/` (the manifests). Credentials already in the
    /// folder are kept; nothing written deletes anything.
    Render(RenderArgs),
    /// Read a live namespace through the Kubernetes API: whether the storage's claims are bound
    /// (and to volumes that outlive them), which storage the weir pod serves (the identity in
    /// both stores), and the stores' schema version against the image's. Exits 1 on a problem.
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[arg(long, default_value = "weir")]
    pub namespace: String,
    /// The kubeconfig to use (default: KUBECONFIG, ~/.kube/config, or the pod's account).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// `text` for people, `json` for scripts.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
}

#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// The folder to write (made if missing).
    #[arg(long, short)]
    pub out: PathBuf,
    /// A weir.yaml whose `deploy:` section (and `name`) give the choices below; flags override.
    #[arg(long, env = "WEIR_CONFIG")]
    pub config: Option<PathBuf>,
    /// [default: weir]
    #[arg(long)]
    pub namespace: Option<String>,
    /// The weir image, name[:tag]. [default: weir:THIS_VERSION]
    #[arg(long)]
    pub image: Option<String>,
    /// The name weir gives the storage it initialises. [default: weir]
    #[arg(long)]
    pub name: Option<String>,
    /// bundled (servers on new claims), adopt (servers on existing volumes) or external.
    /// [default: bundled]
    #[arg(long)]
    pub storage: Option<String>,
    /// postgres or mysql. [default: postgres]
    #[arg(long)]
    pub database: Option<String>,
    /// seaweedfs or minio. [default: seaweedfs]
    #[arg(long)]
    pub objects: Option<String>,
    /// SERVER=VOLUME: the existing PersistentVolume a server runs on (with --storage adopt);
    /// repeat for each server.
    #[arg(long = "adopt-volume")]
    pub adopt_volume: Vec<String>,
    /// The StorageClass of the adopted volumes (empty for volumes without one).
    #[arg(long)]
    pub storage_class: Option<String>,
    /// KEY=VALUE settings of an external database and bucket (db-scheme, db-host, db-port,
    /// db-name, artifacts-url, s3-endpoint, s3-region).
    #[arg(long = "external")]
    pub external: Vec<String>,
    /// weir pods on the database at once (default 1); more roll with no gap.
    #[arg(long)]
    pub replicas: Option<u32>,
}

fn server(name: &str) -> anyhow::Result<Server> {
    Server::parse(name).with_context(|| format!("unknown storage server {name:?} (postgres, mysql, seaweedfs, minio)"))
}

pub async fn run(command: DeployCommand) -> anyhow::Result<ExitCode> {
    match command {
        DeployCommand::Render(args) => render(args),
        DeployCommand::Check(args) => check(args).await,
    }
}

async fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let client = weir_deploy::check::client(args.kubeconfig.as_deref()).await?;
    let report = weir_deploy::check::check(&client, &args.namespace).await?;
    if args.output == "json" {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(if report.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn render(args: RenderArgs) -> anyhow::Result<ExitCode> {
    let (file, file_name) = match &args.config {
        Some(path) => {
            let config = crate::config::load_file(path)?;
            (config.deploy, config.name)
        }
        None => Default::default(),
    };
    let storage = match args.storage.as_deref().or(file.storage.as_deref()).unwrap_or("bundled") {
        "bundled" => Storage::Bundled,
        "adopt" => Storage::Adopt,
        "external" => Storage::External,
        other => bail!("unknown storage form {other:?} (bundled, adopt, external)"),
    };
    // Flags name servers one by one; a server named by a flag replaces the file's entry.
    let mut volumes = file.adopt_volumes.clone();
    for pair in &args.adopt_volume {
        let (name, volume) =
            pair.split_once('=').with_context(|| format!("--adopt-volume {pair:?} is not SERVER=VOLUME"))?;
        volumes.insert(name.to_string(), volume.to_string());
    }
    let mut adopt = Vec::new();
    for (name, volume) in volumes {
        adopt.push((server(&name)?, volume));
    }
    let mut external = file.external.clone();
    for pair in &args.external {
        let (key, value) = pair.split_once('=').with_context(|| format!("--external {pair:?} is not KEY=VALUE"))?;
        external.insert(key.to_string(), value.to_string());
    }
    let options = Options {
        namespace: args.namespace.or(file.namespace).unwrap_or_else(|| "weir".into()),
        image: args.image.or(file.image).unwrap_or_else(|| concat!("weir:", env!("CARGO_PKG_VERSION")).into()),
        deployment_name: args.name.or(file_name).unwrap_or_else(|| "weir".into()),
        storage,
        database: server(args.database.as_deref().or(file.database.as_deref()).unwrap_or("postgres"))?,
        objects: server(args.objects.as_deref().or(file.objects.as_deref()).unwrap_or("seaweedfs"))?,
        adopt,
        storage_class: args.storage_class.or(file.storage_class).unwrap_or_default(),
        external,
        replicas: args.replicas.or(file.replicas).unwrap_or(1),
    };
    let files = weir_deploy::render(&options)?;
    let (mut written, mut kept) = (0, 0);
    for file in files {
        let path = args.out.join(&file.path);
        if file.keep_existing && path.exists() {
            kept += 1;
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot make {}", parent.display()))?;
        }
        std::fs::write(&path, &file.content).with_context(|| format!("cannot write {}", path.display()))?;
        written += 1;
    }
    println!("wrote {written} files into {} (kept {kept} existing credential files)", args.out.display());
    println!("apply: kubectl apply --server-side --force-conflicts -k {}/storage", args.out.display());
    println!("       kubectl apply --server-side -k {}/app", args.out.display());
    println!("upgrade (after applying a new image): kubectl apply --server-side -k {}/upgrade", args.out.display());
    Ok(ExitCode::SUCCESS)
}
