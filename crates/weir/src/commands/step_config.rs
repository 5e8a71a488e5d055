//! `weir secret …` and `weir configmap …`: the secrets and config maps a running weir gives
//! steps (what kfp-kubernetes pipelines name as Kubernetes Secrets and ConfigMaps). Values go
//! in from the command line or files and are never printed back for a secret.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{json, Value};

#[derive(Debug, clap::Subcommand)]
pub enum StepConfigCommand {
    /// Create one from literal values and files (it must not exist yet).
    Create {
        name: String,
        /// KEY=VALUE; repeat for more.
        #[arg(long = "from-literal", value_name = "KEY=VALUE")]
        literals: Vec<String>,
        /// KEY=PATH: the file's content is the value; repeat for more.
        #[arg(long = "from-file", value_name = "KEY=PATH")]
        files: Vec<String>,
        #[arg(long, env = "WEIR_HOST", default_value = "http://127.0.0.1:8888")]
        host: String,
    },
    /// List them: names and keys (and a config map's values).
    List {
        #[arg(long, env = "WEIR_HOST", default_value = "http://127.0.0.1:8888")]
        host: String,
    },
    /// Delete one.
    Delete {
        name: String,
        #[arg(long, env = "WEIR_HOST", default_value = "http://127.0.0.1:8888")]
        host: String,
    },
}

/// Which collection a command works on.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Secret,
    ConfigMap,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Secret => "secrets",
            Kind::ConfigMap => "configmaps",
        }
    }
}

pub async fn run(kind: Kind, command: StepConfigCommand) -> anyhow::Result<ExitCode> {
    let client = reqwest::Client::new();
    match command {
        StepConfigCommand::Create { name, literals, files, host } => {
            let mut data = BTreeMap::new();
            for pair in &literals {
                let (key, value) = split_pair(pair, "--from-literal")?;
                data.insert(key.to_string(), value.to_string());
            }
            for pair in &files {
                let (key, path) = split_pair(pair, "--from-file")?;
                let value = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
                data.insert(key.to_string(), value);
            }
            let url = format!("{}/apis/weir/v1/{}", host.trim_end_matches('/'), kind.path());
            let response = client.post(&url).json(&json!({"name": name, "data": data})).send();
            let Some(created) = answer(response.await, &host).await? else { return Ok(ExitCode::from(1)) };
            println!("created {} with keys {}", created["name"].as_str().unwrap_or(&name), keys(&created));
            Ok(ExitCode::SUCCESS)
        }
        StepConfigCommand::List { host } => {
            let url = format!("{}/apis/weir/v1/{}", host.trim_end_matches('/'), kind.path());
            let Some(list) = answer(client.get(&url).send().await, &host).await? else { return Ok(ExitCode::from(1)) };
            for item in list["items"].as_array().into_iter().flatten() {
                match item.get("data").and_then(Value::as_object) {
                    Some(values) => {
                        let shown: Vec<String> =
                            values.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect();
                        println!("{}\t{}", item["name"].as_str().unwrap_or_default(), shown.join(" "));
                    }
                    None => println!("{}\t{}", item["name"].as_str().unwrap_or_default(), keys(item)),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        StepConfigCommand::Delete { name, host } => {
            let url = format!("{}/apis/weir/v1/{}/{name}", host.trim_end_matches('/'), kind.path());
            if answer(client.delete(&url).send().await, &host).await?.is_none() {
                return Ok(ExitCode::from(1));
            }
            println!("deleted {name}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn split_pair<'a>(pair: &'a str, flag: &str) -> anyhow::Result<(&'a str, &'a str)> {
    pair.split_once('=').filter(|(k, _)| !k.is_empty()).with_context(|| format!("{flag} takes KEY=VALUE, got {pair:?}"))
}

fn keys(item: &Value) -> String {
    let keys: Vec<&str> = item["keys"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    keys.join(",")
}

/// The answer's JSON, or `None` after printing the server's message for an error.
async fn answer(response: reqwest::Result<reqwest::Response>, host: &str) -> anyhow::Result<Option<Value>> {
    let response = response.with_context(|| format!("cannot reach weir at {host}"))?;
    let status = response.status();
    let body = response.text().await.context("cannot read the server's answer")?;
    let value: Value = serde_json::from_str(&body).unwrap_or(Value::String(body.clone()));
    if !status.is_success() {
        let message = value["message"].as_str().map(str::to_string).unwrap_or(body);
        eprintln!("weir: {message}");
        return Ok(None);
    }
    Ok(Some(value))
}
