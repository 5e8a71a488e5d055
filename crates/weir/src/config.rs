//! Configuration, layered: defaults, then the `--config` file, then `WEIR_*` variables, then
//! flags (clap merges the last two), then `validate`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use weir_artifacts::S3Settings;
use weir_server::lifecycle::UpgradePolicy;

pub const CONFIG_VERSION: u32 = 1;
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8888";
pub const DEFAULT_DATA_DIR: &str = "./weir-data";

/// The deployment name when none is configured.
pub const DEFAULT_NAME: &str = "weir";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Compact,
    Json,
}

/// The deployment config file (`weir.yaml`). Unknown keys are refused so a typo never
/// silently falls back to a default.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Format version of this file; must be 1.
    pub version: u32,
    /// The deployment's name (asked back before any purge).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub metadata: MetadataSection,
    #[serde(default)]
    pub artifacts: ArtifactsSection,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub upgrade: Option<UpgradePolicy>,
    #[serde(default)]
    pub executor: ExecutorSection,
    #[serde(default)]
    pub scheduler: SchedulerSection,
    #[serde(default)]
    pub deploy: DeploySection,
    #[serde(default)]
    pub kubernetes: KubernetesSection,
    /// Retention policies and the collector (docs/retention.md).
    #[serde(default)]
    pub retention: weir_gc::worker::RetentionSettings,
}

/// Steps as Kubernetes Jobs (`executor.driver: kubernetes`; docs/kubernetes-driver.md).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSection {
    /// The namespace steps run in (default: weir's own when in a pod, else `default`).
    pub namespace: Option<String>,
    /// The service account of steps' pods (default: the namespace's `default`).
    pub service_account: Option<String>,
    /// The image the launcher is copied from: weir's own image (required).
    pub launcher_image: Option<String>,
    pub launcher_image_pull_policy: Option<String>,
    /// The S3 endpoint as pods reach it (default: weir's own `artifacts.s3.endpoint`).
    pub s3_endpoint: Option<String>,
    /// A Secret with the store's credentials for the launcher (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, optionally `AWS_REGION`).
    pub artifacts_secret: Option<String>,
    /// Requests of steps that ask for none (e.g. `100m`, `256Mi`).
    pub default_cpu_request: Option<String>,
    pub default_memory_request: Option<String>,
    /// Seconds a pod may wait for a node or its image before its step fails (default 300).
    pub pending_timeout_seconds: Option<u64>,
    /// Variables every step's pod gets, `NAME=value` (a pip index, a proxy).
    pub step_env: Option<Vec<String>>,
    /// A kubeconfig file (default: in-cluster configuration, else `KUBECONFIG`).
    pub kubeconfig: Option<PathBuf>,
}

/// How `weir deploy render` lays out the deployment on Kubernetes; its flags override these.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploySection {
    pub namespace: Option<String>,
    pub image: Option<String>,
    /// bundled, adopt or external.
    pub storage: Option<String>,
    pub database: Option<String>,
    pub objects: Option<String>,
    /// Server name to the existing PersistentVolume it runs on (storage: adopt).
    #[serde(default)]
    pub adopt_volumes: std::collections::BTreeMap<String, String>,
    pub storage_class: Option<String>,
    /// Settings of an external database and bucket (storage: external).
    #[serde(default)]
    pub external: std::collections::BTreeMap<String, String>,
    /// weir pods on the database at once (default 1).
    pub replicas: Option<u32>,
}

/// Recurring runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSection {
    /// The timezone cron schedules are read in (IANA name; default UTC), for the whole
    /// deployment as in KFP.
    pub timezone: Option<String>,
    /// Fire recurring runs (default true); a standby weir may serve the API without firing.
    pub enabled: Option<bool>,
}

/// How steps run on this host.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorSection {
    /// Interpreter for lightweight Python components (default: `python3` on PATH).
    pub python: Option<PathBuf>,
    /// Working folders of steps and cached Python environments (default: DATA_DIR/work).
    pub work_dir: Option<PathBuf>,
    /// Steps running at once (default 8).
    pub max_concurrent_steps: Option<usize>,
    /// Runs under way at once; more wait PENDING in creation order (default 64).
    pub max_running_runs: Option<usize>,
    /// Fork lightweight Python steps from a warm interpreter (default true).
    pub python_fork_server: Option<bool>,
    /// Seconds a replica's lease lives without renewal (default 30): with several weirs on one
    /// database, the runs of one that stops renewing move to the others after this long.
    pub replica_lease_seconds: Option<u64>,
    /// Where steps run: `local` (processes on this host, the default) or `kubernetes` (Jobs,
    /// configured in the `kubernetes` section).
    pub driver: Option<String>,
    /// What steps get of weir's environment beyond the system variables (PATH, HOME, locale):
    /// `NAME` passes weir's value, `NAME=value` sets one. Nothing else reaches a step, store
    /// credentials included.
    pub step_env: Option<Vec<String>>,
    /// Folders whose files an importer may name by local path or `file://` URI (default:
    /// none; the artifact store's own files are always allowed).
    pub local_artifact_roots: Option<Vec<PathBuf>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub listen: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataSection {
    pub url: Option<String>,
    pub max_connections: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactsSection {
    pub url: Option<String>,
    #[serde(default)]
    pub s3: S3Settings,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    pub format: Option<LogFormat>,
    pub level: Option<String>,
}

/// Storage settings shared by every command that opens the stores.
#[derive(Debug, Clone, clap::Args)]
pub struct StorageArgs {
    /// Deployment config file (YAML).
    #[arg(long, env = "WEIR_CONFIG")]
    pub config: Option<PathBuf>,
    /// Folder for the embedded default storage (SQLite file and artifact folder).
    #[arg(long, env = "WEIR_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Metadata store: sqlite://PATH, mysql://USER[:PASS]@HOST:PORT/DB or postgres://….
    #[arg(long, env = "WEIR_METADATA")]
    pub metadata: Option<String>,
    /// Artifact store: file:///PATH, s3://BUCKET/PREFIX or az://CONTAINER/PREFIX (gs:// is accepted, untested).
    #[arg(long, env = "WEIR_ARTIFACTS")]
    pub artifacts: Option<String>,
    /// Endpoint of an S3-compatible server (else AWS_ENDPOINT_URL, else AWS).
    #[arg(long, env = "WEIR_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region (else AWS_REGION).
    #[arg(long, env = "WEIR_S3_REGION")]
    pub s3_region: Option<String>,
    /// Deployment name.
    #[arg(long, env = "WEIR_NAME")]
    pub name: Option<String>,
}

/// Settings after layering and validation.
#[derive(Debug, Clone)]
pub struct Settings {
    pub name: String,
    pub listen: SocketAddr,
    pub metadata_url: String,
    pub max_connections: u32,
    pub artifacts_url: String,
    pub s3: S3Settings,
    pub log_format: LogFormat,
    pub log_level: String,
    pub upgrade: UpgradePolicy,
    pub executor_python: PathBuf,
    pub data_dir: PathBuf,
    pub work_dir: PathBuf,
    pub max_concurrent_steps: usize,
    pub max_running_runs: usize,
    pub replica_lease: std::time::Duration,
    pub timezone: chrono_tz::Tz,
    pub scheduler_enabled: bool,
    pub python_fork_server: bool,
    pub step_env: Vec<String>,
    pub local_artifact_roots: Vec<PathBuf>,
    /// Steps as Kubernetes Jobs instead of local processes.
    pub kubernetes: Option<KubernetesSection>,
    pub retention: weir_gc::worker::RetentionSettings,
}

/// Executor settings from flags and variables (over the file).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ExecutorArgs {
    /// Python interpreter for lightweight Python components (default: python3 on PATH).
    #[arg(long, env = "WEIR_EXECUTOR_PYTHON")]
    pub executor_python: Option<PathBuf>,
    /// Working folder for steps (default: DATA_DIR/work).
    #[arg(long, env = "WEIR_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    /// How many steps run at once.
    #[arg(long, env = "WEIR_MAX_CONCURRENT_STEPS")]
    pub max_concurrent_steps: Option<usize>,
    /// How many runs are under way at once; more wait PENDING, oldest first (default 64).
    #[arg(long, env = "WEIR_MAX_RUNNING_RUNS")]
    pub max_running_runs: Option<usize>,
    /// Seconds a replica's lease lives without renewal; the runs of a weir that stops renewing
    /// move to the other weirs on the database after this long (default 30).
    #[arg(long, env = "WEIR_REPLICA_LEASE_SECONDS")]
    pub replica_lease_seconds: Option<u64>,
    /// Timezone of cron schedules (IANA name, e.g. Europe/Berlin; default UTC).
    #[arg(long, env = "WEIR_TIMEZONE")]
    pub timezone: Option<String>,
    /// Serve without firing recurring runs.
    #[arg(long, env = "WEIR_DISABLE_SCHEDULER")]
    pub disable_scheduler: bool,
    /// Start each lightweight Python step from its command line instead of forking it from a
    /// warm interpreter.
    #[arg(long, env = "WEIR_NO_PYTHON_FORK_SERVER")]
    pub no_python_fork_server: bool,
    /// A variable steps get: NAME (weir's value) or NAME=value; repeat for more. Replaces the
    /// file's list.
    #[arg(long = "step-env", env = "WEIR_STEP_ENV", value_delimiter = ',')]
    pub step_env: Vec<String>,
    /// A folder importers may read local files from; repeat for more. Replaces the file's list.
    #[arg(long = "allow-local-artifacts", env = "WEIR_ALLOW_LOCAL_ARTIFACTS", value_delimiter = ',')]
    pub local_artifact_roots: Vec<PathBuf>,
    /// Where steps run: `local` (processes on this host, the default) or `kubernetes` (Jobs;
    /// the file's `kubernetes` section, or the WEIR_K8S_* variables, say where).
    #[arg(long, env = "WEIR_DRIVER")]
    pub driver: Option<String>,
    /// The namespace steps' Jobs run in (over `kubernetes.namespace`).
    #[arg(long, env = "WEIR_K8S_NAMESPACE")]
    pub k8s_namespace: Option<String>,
    /// The launcher's image: weir's own (over `kubernetes.launcher_image`).
    #[arg(long, env = "WEIR_K8S_LAUNCHER_IMAGE")]
    pub k8s_launcher_image: Option<String>,
    /// The S3 endpoint as steps' pods reach it (over `kubernetes.s3_endpoint`).
    #[arg(long, env = "WEIR_K8S_S3_ENDPOINT")]
    pub k8s_s3_endpoint: Option<String>,
    /// The Secret of the store's credentials for the launcher (over `kubernetes.artifacts_secret`).
    #[arg(long, env = "WEIR_K8S_ARTIFACTS_SECRET")]
    pub k8s_artifacts_secret: Option<String>,
    /// Seconds a step's pod may wait for a node or its image (over
    /// `kubernetes.pending_timeout_seconds`).
    #[arg(long, env = "WEIR_K8S_PENDING_TIMEOUT_SECONDS")]
    pub k8s_pending_timeout_seconds: Option<u64>,
}

/// Finds a program on PATH, as a shell would.
fn which(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return Some(program.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
    })
}

pub fn load_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
    let config: FileConfig =
        serde_norway::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))?;
    if config.version != CONFIG_VERSION {
        bail!(
            "config file {} has version {}; this weir reads version {CONFIG_VERSION}",
            path.display(),
            config.version
        );
    }
    Ok(config)
}

/// An absolute path, without creating anything: read-only commands must write nothing
/// (the stores create their own folders when they are opened).
fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))
}

impl Settings {
    pub fn resolve(
        args: &StorageArgs,
        listen: Option<&str>,
        log_format: Option<LogFormat>,
        upgrade: Option<UpgradePolicy>,
    ) -> anyhow::Result<Self> {
        Self::resolve_with(args, &ExecutorArgs::default(), listen, log_format, upgrade)
    }

    pub fn resolve_with(
        args: &StorageArgs,
        executor: &ExecutorArgs,
        listen: Option<&str>,
        log_format: Option<LogFormat>,
        upgrade: Option<UpgradePolicy>,
    ) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => load_file(path)?,
            None => FileConfig { version: CONFIG_VERSION, ..Default::default() },
        };
        let data_dir =
            args.data_dir.clone().or(file.data_dir.clone()).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let metadata_url = match args.metadata.clone().or(file.metadata.url.clone()) {
            Some(url) => url,
            None => format!("sqlite://{}/weir.db", absolute(&data_dir)?.display()),
        };
        let artifacts_url = match args.artifacts.clone().or(file.artifacts.url.clone()) {
            Some(url) => url,
            None => format!("file://{}/artifacts", absolute(&data_dir)?.display()),
        };
        let mut s3 = file.artifacts.s3.clone();
        if args.s3_endpoint.is_some() {
            s3.endpoint = args.s3_endpoint.clone();
        }
        if args.s3_region.is_some() {
            s3.region = args.s3_region.clone();
        }
        // Secrets come from the file or the environment, never from flags (they would show in `ps`).
        if let Ok(v) = std::env::var("WEIR_S3_ACCESS_KEY_ID") {
            s3.access_key_id = Some(v);
        }
        if let Ok(v) = std::env::var("WEIR_S3_SECRET_ACCESS_KEY") {
            s3.secret_access_key = Some(v);
        }
        let listen_text =
            listen.map(str::to_string).or(file.server.listen.clone()).unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen = listen_text.parse().with_context(|| {
            format!("invalid listen address {listen_text:?} (expected HOST:PORT, e.g. 127.0.0.1:8888)")
        })?;
        let python = executor
            .executor_python
            .clone()
            .or(file.executor.python.clone())
            .unwrap_or_else(|| PathBuf::from("python3"));
        let executor_python = which(&python).unwrap_or(python);
        let work_dir = match executor.work_dir.clone().or(file.executor.work_dir.clone()) {
            Some(dir) => dir,
            None => data_dir.join("work"),
        };
        let work_dir = absolute(&work_dir)?;
        let timezone_name =
            executor.timezone.clone().or(file.scheduler.timezone.clone()).unwrap_or_else(|| "UTC".to_string());
        let timezone: chrono_tz::Tz = timezone_name.parse().map_err(|_| {
            anyhow::anyhow!("unknown timezone {timezone_name:?} (use an IANA name such as Europe/Berlin)")
        })?;
        let driver = executor.driver.clone().or(file.executor.driver.clone()).unwrap_or_else(|| "local".into());
        let kubernetes = match driver.as_str() {
            "local" => None,
            "kubernetes" => {
                let mut section = file.kubernetes.clone();
                let over = |flag: &Option<String>, into: &mut Option<String>| {
                    if flag.is_some() {
                        *into = flag.clone();
                    }
                };
                over(&executor.k8s_namespace, &mut section.namespace);
                over(&executor.k8s_launcher_image, &mut section.launcher_image);
                over(&executor.k8s_s3_endpoint, &mut section.s3_endpoint);
                over(&executor.k8s_artifacts_secret, &mut section.artifacts_secret);
                if executor.k8s_pending_timeout_seconds.is_some() {
                    section.pending_timeout_seconds = executor.k8s_pending_timeout_seconds;
                }
                if section.launcher_image.as_deref().unwrap_or_default().is_empty() {
                    bail!("the kubernetes driver needs kubernetes.launcher_image (weir's own image; WEIR_K8S_LAUNCHER_IMAGE)");
                }
                if artifacts_url.starts_with("file://") {
                    bail!(
                        "the kubernetes driver needs an artifact store the steps' pods can reach (s3://, gs://, az://), \
                         not the local folder {artifacts_url}"
                    );
                }
                Some(section)
            }
            other => bail!("unknown executor.driver {other:?} (use local or kubernetes)"),
        };
        // The variables override the file, as flags do elsewhere: the storage commands read
        // them too, so `weir storage gc` sees what the server applies.
        let mut retention = file.retention.clone();
        if let Ok(v) = std::env::var("WEIR_RETENTION_INTERVAL_SECONDS") {
            retention.interval_seconds = v
                .parse()
                .with_context(|| format!("WEIR_RETENTION_INTERVAL_SECONDS={v:?} is not a number of seconds"))?;
        }
        if let Ok(v) = std::env::var("WEIR_RETENTION_POLICIES") {
            retention.policies = serde_json::from_str(&v)
                .with_context(|| "WEIR_RETENTION_POLICIES is not a JSON list of retention policies")?;
        }
        retention.validate().map_err(|e| anyhow::anyhow!("invalid retention settings: {e}"))?;
        let settings = Settings {
            retention,
            kubernetes,
            timezone,
            scheduler_enabled: !executor.disable_scheduler && file.scheduler.enabled.unwrap_or(true),
            python_fork_server: !executor.no_python_fork_server && file.executor.python_fork_server.unwrap_or(true),
            step_env: if executor.step_env.is_empty() {
                file.executor.step_env.clone().unwrap_or_default()
            } else {
                executor.step_env.clone()
            },
            local_artifact_roots: if executor.local_artifact_roots.is_empty() {
                file.executor.local_artifact_roots.clone().unwrap_or_default()
            } else {
                executor.local_artifact_roots.clone()
            }
            .iter()
            .map(|dir| absolute(dir))
            .collect::<anyhow::Result<Vec<_>>>()?,
            data_dir: data_dir.clone(),
            executor_python,
            work_dir,
            max_concurrent_steps: executor.max_concurrent_steps.or(file.executor.max_concurrent_steps).unwrap_or(8),
            max_running_runs: executor.max_running_runs.or(file.executor.max_running_runs).unwrap_or(64),
            replica_lease: std::time::Duration::from_secs(
                executor.replica_lease_seconds.or(file.executor.replica_lease_seconds).unwrap_or(30),
            ),
            name: args.name.clone().or(file.name.clone()).unwrap_or_else(|| DEFAULT_NAME.into()),
            listen,
            metadata_url,
            max_connections: file.metadata.max_connections.unwrap_or(10),
            artifacts_url,
            s3,
            log_format: log_format.or(file.log.format).unwrap_or_default(),
            log_level: file.log.level.clone().unwrap_or_else(|| "info".into()),
            upgrade: upgrade.or(file.upgrade).unwrap_or_default(),
        };
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> anyhow::Result<()> {
        weir_store_sql::Dialect::from_url(&self.metadata_url).map_err(|e| anyhow::anyhow!(e.to_string()))?;
        let scheme = self.artifacts_url.split("://").next().unwrap_or_default();
        if !["file", "s3", "gs", "az", "azure"].contains(&scheme) || !self.artifacts_url.contains("://") {
            bail!("artifact store URL must start with file://, s3://, gs:// or az://, got {:?}", self.artifacts_url);
        }
        if self.max_concurrent_steps == 0 {
            bail!("executor.max_concurrent_steps must be at least 1");
        }
        if self.replica_lease < std::time::Duration::from_secs(3) {
            bail!("executor.replica_lease_seconds must be at least 3");
        }
        if self.max_running_runs == 0 {
            bail!("executor.max_running_runs must be at least 1");
        }
        if self.max_connections == 0 {
            bail!("metadata.max_connections must be at least 1");
        }
        for entry in &self.step_env {
            weir_engine::step_env::check_entry(entry).map_err(|e| anyhow::anyhow!("executor.{e}"))?;
        }
        if self.name.trim().is_empty() {
            bail!("the deployment name must not be empty");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(config: Option<PathBuf>) -> StorageArgs {
        StorageArgs {
            config,
            data_dir: None,
            metadata: None,
            artifacts: None,
            s3_endpoint: None,
            s3_region: None,
            name: None,
        }
    }

    #[test]
    fn file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weir.yaml");
        std::fs::write(
            &path,
            "version: 1\nname: prod\nserver: {listen: '127.0.0.1:9999'}\nmetadata: {url: 'postgres://u@h/db'}\n\
             artifacts: {url: 's3://b/p', s3: {endpoint: 'http://127.0.0.1:9000', secret_access_key: 'x'}}\nupgrade: auto\n",
        )
        .unwrap();
        let mut a = args(Some(path.clone()));
        let s = Settings::resolve(&a, None, None, None).unwrap();
        assert_eq!(s.listen.port(), 9999);
        assert_eq!(s.metadata_url, "postgres://u@h/db");
        assert_eq!(s.upgrade, UpgradePolicy::Auto);
        assert_eq!(s.name, "prod");
        assert_eq!(s.s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        a.metadata = Some("sqlite:///tmp/x.db".into());
        let s = Settings::resolve(&a, Some("127.0.0.1:1"), Some(LogFormat::Json), Some(UpgradePolicy::Manual)).unwrap();
        assert_eq!(s.metadata_url, "sqlite:///tmp/x.db");
        assert_eq!(s.listen.port(), 1);
        assert_eq!(s.upgrade, UpgradePolicy::Manual);
    }

    #[test]
    fn refuses_unknown_keys_and_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weir.yaml");
        std::fs::write(&path, "version: 1\nmetadta: {url: x}\n").unwrap();
        let e = format!("{:#}", load_file(&path).unwrap_err());
        assert!(e.contains("metadta"), "{e}");
        std::fs::write(&path, "version: 2\n").unwrap();
        assert!(load_file(&path).is_err());
        std::fs::write(&path, "version: 1\nartifacts: {url: 'ftp://x'}\n").unwrap();
        assert!(Settings::resolve(&args(Some(path)), None, None, None).is_err());
    }

    #[test]
    fn refuses_retention_policies_that_are_not_valid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weir.yaml");
        let write = |policies: &str| {
            std::fs::write(&path, format!("version: 1\nretention:\n  policies: {policies}\n")).unwrap()
        };
        write("[{name: all}]");
        let e = format!("{:#}", Settings::resolve(&args(Some(path.clone())), None, None, None).unwrap_err());
        assert!(e.contains("invalid retention settings") && e.contains("older_than, keep_last or archived_for"), "{e}");
        write("[{name: a, keep_last: 1}, {name: a, older_than: 1d}]");
        let e = format!("{:#}", Settings::resolve(&args(Some(path.clone())), None, None, None).unwrap_err());
        assert!(e.contains("two retention policies are named \"a\""), "{e}");
        write("[{name: a, keep_lst: 1}]");
        let e = format!("{:#}", load_file(&path).unwrap_err());
        assert!(e.contains("keep_lst"), "{e}");
        write("[{name: failed, states: [FAILED], older_than: 30d}]");
        let s = Settings::resolve(&args(Some(path.clone())), None, None, None).unwrap();
        assert_eq!(s.retention.policies[0].name, "failed");
        assert_eq!(s.retention.interval_seconds, 3600);
    }

    #[test]
    fn embedded_default_under_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(None);
        a.data_dir = Some(dir.path().join("d"));
        let s = Settings::resolve(&a, None, None, None).unwrap();
        assert!(
            s.metadata_url.starts_with("sqlite:///") && s.metadata_url.ends_with("/d/weir.db"),
            "{}",
            s.metadata_url
        );
        assert!(s.artifacts_url.starts_with("file:///") && s.artifacts_url.ends_with("/d/artifacts"));
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
    }
}
