//! `weir launcher`: weir's binary in a step's pod (the Kubernetes driver's launcher). Not for
//! people: the driver writes these command lines into the Jobs it creates.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum LauncherCommand {
    /// Copy this binary into a folder (the launcher's init container).
    Install { dir: PathBuf },
    /// Place the attempt's staged folder, run the step, stage what it left.
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Prefix of the attempt in the artifact store (`in/`, `out/` under it).
    #[arg(long)]
    stage: String,
    /// The attempt's folder (the same path as on weir's side).
    #[arg(long)]
    workdir: PathBuf,
    /// The attempt's log, appended to.
    #[arg(long)]
    log: PathBuf,
    /// FOLDER=SEEN_AT: a folder of the attempt the step sees at another path.
    #[arg(long = "map")]
    maps: Vec<String>,
    /// The step's command.
    #[arg(last = true, required = true)]
    argv: Vec<String>,
}

pub async fn run(command: LauncherCommand) -> anyhow::Result<ExitCode> {
    match command {
        LauncherCommand::Install { dir } => {
            weir_driver_k8s::launcher::install(&dir).map_err(anyhow::Error::msg)?;
            Ok(ExitCode::SUCCESS)
        }
        LauncherCommand::Run(args) => {
            let mut maps = Vec::new();
            for map in &args.maps {
                let (folder, seen_at) =
                    map.split_once('=').ok_or_else(|| anyhow::anyhow!("--map {map:?} is not FOLDER=SEEN_AT"))?;
                maps.push((PathBuf::from(folder), PathBuf::from(seen_at)));
            }
            let code = weir_driver_k8s::launcher::run(weir_driver_k8s::launcher::RunArgs {
                stage: args.stage,
                workdir: args.workdir,
                log: args.log,
                maps,
                argv: args.argv,
            })
            .await;
            Ok(ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1)))
        }
    }
}
