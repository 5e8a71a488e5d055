//! `weir import kfp`: a Kubeflow Pipelines installation's storage, read and mapped onto weir
//! (crates/weir-import-kfp; docs/import-kfp.md).

use std::process::ExitCode;

use anyhow::Context;
use weir_artifacts::{ArtifactStore, S3Settings};
use weir_import_kfp::PlanOptions;

#[derive(Debug, clap::Subcommand)]
pub enum ImportCommand {
    /// Read a KFP installation's mlpipeline database and bucket, only reading, and report what
    /// would be imported: counts by kind, namespace and state; what cannot be and why (codes
    /// with sample ids); per-kind checksums. Exits 0 clean, 1 with warnings, 2 refused.
    Kfp(KfpArgs),
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
    /// The S3-compatible server of the bucket (KFP's MinIO or SeaweedFS), e.g.
    /// http://127.0.0.1:9000.
    #[arg(long)]
    pub s3_endpoint: Option<String>,
    #[arg(long)]
    pub s3_region: Option<String>,
    /// Import runs KFP may still be running as canceled, instead of refusing.
    #[arg(long)]
    pub allow_inflight: bool,
    /// `text` for people, `json` for scripts.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
}

pub async fn run(command: ImportCommand) -> anyhow::Result<ExitCode> {
    let ImportCommand::Kfp(args) = command;
    let settings =
        S3Settings { endpoint: args.s3_endpoint.clone(), region: args.s3_region.clone(), ..Default::default() };
    let objects = ArtifactStore::open(&args.objects, &settings)
        .with_context(|| format!("cannot open KFP's bucket {}", args.objects))?;
    let options = PlanOptions { database_url: args.mysql.clone(), objects, allow_inflight: args.allow_inflight };
    let report = weir_import_kfp::plan(&options).await?;
    if args.output == "json" {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(ExitCode::from(report.exit_code()))
}
