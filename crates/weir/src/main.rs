//! The `weir` binary: command line, configuration and wiring.

mod commands;
mod config;

use clap::{Parser, Subcommand};

/// glibc's allocator took about a fifth of the server's CPU under a big run (the upkeep of its
/// free lists: `malloc_consolidate`, `unlink_chunk`), in the many short-lived buffers of rows,
/// JSON and requests. jemalloc's per-thread caches and size classes serve them for less, with
/// about the same memory; mimalloc, also measured, kept a third more (bench/RESULTS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(name = "weir", version, about = "A Kubeflow Pipelines compatible pipeline platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the KFP v2beta1 API on the configured storage.
    Server(Box<commands::server::ServerArgs>),
    /// Inspect and manage the two stores.
    #[command(subcommand)]
    Storage(commands::storage::StorageCommand),
    /// Work with runs on a running weir.
    #[command(subcommand)]
    Run(commands::run::RunCommand),
    /// Secrets steps are given (kfp-kubernetes `use_secret_as_env`, `use_secret_as_volume`).
    #[command(subcommand)]
    Secret(commands::step_config::StepConfigCommand),
    /// Config maps steps are given (kfp-kubernetes `use_config_map_as_env`, …).
    #[command(subcommand, name = "configmap")]
    ConfigMap(commands::step_config::StepConfigCommand),
    /// Kubernetes: write a deployment's kustomize overlay (docs/kubernetes.md).
    #[command(subcommand)]
    Deploy(commands::deploy::DeployCommand),
    /// Bring another installation's storage over (a dry run: nothing is written).
    #[command(subcommand)]
    Import(commands::import::ImportCommand),
    /// The Kubernetes driver's launcher, run in steps' pods.
    #[command(subcommand, hide = true)]
    Launcher(commands::launcher::LauncherCommand),
    /// Print the OpenAPI document of the HTTP API (what `GET /apis/weir/v1/openapi.json` serves).
    Openapi,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Openapi) {
        // Needs no runtime and no storage: the document is generated from the code.
        println!("{}", weir_server::openapi::document());
        return std::process::ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("weir: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Server(args) => commands::server::run(*args).await,
            Command::Storage(command) => commands::storage::run(command).await,
            Command::Run(command) => commands::run::run(command).await,
            Command::Secret(command) => commands::step_config::run(commands::step_config::Kind::Secret, command).await,
            Command::ConfigMap(command) => {
                commands::step_config::run(commands::step_config::Kind::ConfigMap, command).await
            }
            Command::Deploy(command) => commands::deploy::run(command).await,
            Command::Import(command) => commands::import::run(command).await,
            Command::Launcher(command) => commands::launcher::run(command).await,
            Command::Openapi => Ok(std::process::ExitCode::SUCCESS),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("weir: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
