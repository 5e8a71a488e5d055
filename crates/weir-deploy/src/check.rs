//! `weir deploy check`: a live namespace, read through the Kubernetes API.
//!
//! Three questions: are the namespace's claims (weir's namespace holds weir's) bound (to volumes that outlive them)? Which
//! storage does the weir pod serve (the identity in both stores)? Is the stores' schema the
//! image's? The stores are not reachable from outside the cluster, so the last two are asked
//! of the weir pod itself, through the API server's service proxy; when weir does not serve,
//! its pods' last words (their termination messages) say why.

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::ListParams;
use kube::{Api, Client};
use serde::{Deserialize, Serialize};

/// The Service weir answers on (KFP's name and port).
const SERVICE: &str = "ml-pipeline:8888";

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub namespace: String,
    pub claims: Vec<Claim>,
    pub app: App,
    /// What the serving weir says of its storage; `None` when no weir serves.
    pub storage: Option<StorageInfo>,
    /// Everything that needs a person; empty when all is well.
    pub problems: Vec<String>,
    /// Risks that are not faults (a bundled claim's volume goes with its namespace).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Claim {
    pub name: String,
    pub phase: String,
    pub volume: Option<String>,
    /// The bound volume's reclaim policy (`Retain` keeps the data when the claim goes).
    pub reclaim_policy: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct App {
    /// The weir Deployment's image, if the Deployment exists.
    pub image: Option<String>,
    pub ready_replicas: i32,
    /// Why a weir container last stopped, from its pods' statuses.
    pub last_words: Vec<String>,
}

/// `GET /apis/weir/v1/storage`, as the weir pod answers it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StorageInfo {
    pub identity: Option<String>,
    pub artifact_identity: Option<String>,
    pub deployment: Option<String>,
    pub dialect: String,
    pub artifacts_url: String,
    pub schema_version: Option<i64>,
    pub head_version: Option<i64>,
    pub pending_migrations: Vec<i64>,
    pub weir_version: String,
}

/// A client from a kubeconfig file, or the usual places (KUBECONFIG, ~/.kube/config, the
/// pod's service account) when none is named.
pub async fn client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default()).await?
        }
        None => {
            kube::Config::infer().await.context("no Kubernetes configuration found (KUBECONFIG, ~/.kube/config)")?
        }
    };
    Ok(Client::try_from(config)?)
}

pub async fn check(client: &Client, namespace: &str) -> anyhow::Result<Report> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let claims_api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let listed = claims_api
        .list(&ListParams::default())
        .await
        .with_context(|| format!("cannot list the claims of namespace {namespace}"))?;
    let mut claims = Vec::new();
    for claim in listed.items {
        let name = claim.metadata.name.clone().unwrap_or_default();
        let phase = claim.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_else(|| "Unknown".into());
        let volume = claim.spec.as_ref().and_then(|s| s.volume_name.clone()).filter(|v| !v.is_empty());
        let mut reclaim_policy = None;
        if phase != "Bound" {
            problems.push(format!(
                "claim {name} is {phase}, not Bound{}",
                match &volume {
                    Some(v) => format!(" (it waits for volume {v})"),
                    None => String::new(),
                }
            ));
        } else if let Some(v) = &volume {
            if let Some(pv) = volumes.get_opt(v).await.with_context(|| format!("cannot read volume {v}"))? {
                reclaim_policy = pv.spec.and_then(|s| s.persistent_volume_reclaim_policy);
                if reclaim_policy.as_deref() == Some("Delete") {
                    warnings.push(format!(
                        "volume {v} (claim {name}) has reclaim policy Delete: deleting the claim or the namespace \
                         deletes the data; adopt it (weir deploy render --storage adopt) to keep it"
                    ));
                }
            }
        }
        claims.push(Claim { name, phase, volume, reclaim_policy });
    }
    claims.sort_by(|a, b| a.name.cmp(&b.name));

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deployment = deployments.get_opt("weir").await.context("cannot read Deployment weir")?;
    let image = deployment
        .as_ref()
        .and_then(|d| d.spec.as_ref())
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.image.clone());
    let ready_replicas =
        deployment.as_ref().and_then(|d| d.status.as_ref()).and_then(|s| s.ready_replicas).unwrap_or(0);
    if deployment.is_none() {
        problems.push(format!("no Deployment weir in namespace {namespace}: apply the app"));
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut last_words = Vec::new();
    for pod in pods.list(&ListParams::default().labels("app.kubernetes.io/name=weir")).await?.items {
        for status in pod.status.and_then(|s| s.container_statuses).unwrap_or_default() {
            let terminated =
                status.state.and_then(|s| s.terminated).or_else(|| status.last_state.and_then(|s| s.terminated));
            if let Some(message) = terminated.and_then(|t| t.message).filter(|m| !m.trim().is_empty()) {
                last_words.push(message.trim().to_string());
            }
        }
    }

    let storage = if ready_replicas > 0 { serving_storage(client, namespace).await } else { Err(None) };
    let storage = match storage {
        Ok(info) => {
            if info.identity.is_none() || info.identity != info.artifact_identity {
                problems.push(format!(
                    "the stores do not pair: the metadata store belongs to {} and the artifact store to {}",
                    info.identity.as_deref().unwrap_or("no deployment"),
                    info.artifact_identity.as_deref().unwrap_or("no deployment")
                ));
            }
            if !info.pending_migrations.is_empty() {
                problems.push(format!(
                    "schema version {} is older than the image's {}: run the upgrade Job",
                    info.schema_version.unwrap_or_default(),
                    info.head_version.unwrap_or_default()
                ));
            }
            Some(info)
        }
        Err(reason) => {
            let why = last_words.last().and_then(|m| m.lines().rev().find(|l| l.contains("weir:")).map(str::to_string));
            problems.push(match (reason, why) {
                (_, Some(why)) => format!("weir does not serve: {why}"),
                (Some(reason), None) => format!("weir does not answer through Service {SERVICE}: {reason}"),
                (None, None) => "weir does not serve: no weir pod is ready".to_string(),
            });
            None
        }
    };
    Ok(Report {
        namespace: namespace.to_string(),
        claims,
        app: App { image, ready_replicas, last_words },
        storage,
        problems,
        warnings,
    })
}

/// Asks the serving weir, through the API server's proxy to its Service.
async fn serving_storage(client: &Client, namespace: &str) -> Result<StorageInfo, Option<String>> {
    let uri = format!("/api/v1/namespaces/{namespace}/services/{SERVICE}/proxy/apis/weir/v1/storage");
    let request = http::Request::get(uri).body(Vec::new()).map_err(|e| Some(e.to_string()))?;
    let text = client.request_text(request).await.map_err(|e| Some(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| Some(format!("unexpected answer ({e}): {text}")))
}

impl Report {
    /// For people: one line per fact, the problems last.
    pub fn text(&self) -> String {
        let mut out = format!("namespace {}\n", self.namespace);
        if self.claims.is_empty() {
            out.push_str("claims: none (external storage?)\n");
        }
        for c in &self.claims {
            out.push_str(&format!(
                "claim {}: {} to volume {} (reclaim {})\n",
                c.name,
                c.phase,
                c.volume.as_deref().unwrap_or("-"),
                c.reclaim_policy.as_deref().unwrap_or("-")
            ));
        }
        out.push_str(&format!(
            "app: image {}, {} ready\n",
            self.app.image.as_deref().unwrap_or("-"),
            self.app.ready_replicas
        ));
        if let Some(s) = &self.storage {
            out.push_str(&format!(
                "storage: identity {} (artifact store: {}), deployment {}, {} + {}\n",
                s.identity.as_deref().unwrap_or("-"),
                s.artifact_identity.as_deref().unwrap_or("-"),
                s.deployment.as_deref().unwrap_or("-"),
                s.dialect,
                s.artifacts_url
            ));
            out.push_str(&format!(
                "schema: version {} in the store, {} in the image (weir {})\n",
                s.schema_version.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
                s.head_version.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
                s.weir_version
            ));
        }
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        if self.problems.is_empty() {
            out.push_str("ok\n");
        }
        for p in &self.problems {
            out.push_str(&format!("problem: {p}\n"));
        }
        out
    }
}
