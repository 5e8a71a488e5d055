//! `weir run …`: client verbs against a running weir.

use std::process::ExitCode;

use anyhow::Context;

#[derive(Debug, clap::Subcommand)]
pub enum RunCommand {
    /// Print the output (stdout and stderr) of a run's steps, every attempt, oldest first.
    Logs {
        /// The run's id.
        run: String,
        /// A step's task id or name; every step when omitted.
        task: Option<String>,
        /// The weir server.
        #[arg(long, env = "WEIR_HOST", default_value = "http://127.0.0.1:8888")]
        host: String,
    },
}

pub async fn run(command: RunCommand) -> anyhow::Result<ExitCode> {
    match command {
        RunCommand::Logs { run, task, host } => logs(&host, &run, task.as_deref()).await,
    }
}

async fn logs(host: &str, run: &str, task: Option<&str>) -> anyhow::Result<ExitCode> {
    let mut url = reqwest::Url::parse(&format!("{}/apis/weir/v1/runs/{run}/logs", host.trim_end_matches('/')))
        .with_context(|| format!("invalid host {host:?}"))?;
    if let Some(task) = task {
        url.query_pairs_mut().append_pair("task", task);
    }
    let response = reqwest::get(url.clone()).await.with_context(|| format!("cannot reach weir at {host}"))?;
    let status = response.status();
    let body = response.text().await.context("cannot read the server's answer")?;
    if !status.is_success() {
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or(body);
        eprintln!("weir: {message}");
        return Ok(ExitCode::from(if status.as_u16() == 404 { 3 } else { 1 }));
    }
    print!("{body}");
    Ok(ExitCode::SUCCESS)
}
