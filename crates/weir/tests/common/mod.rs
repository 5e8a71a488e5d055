//! A real `weir server` process on fresh storage, for tests that stop and restart it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use weir_store_sql::testing::TestDatabase;
use weir_store_sql::Dialect;

pub struct Storage {
    pub db: TestDatabase,
    pub artifacts_url: String,
    pub data_dir: tempfile::TempDir,
}

impl Storage {
    /// SQLite + folder, or a server database + the test S3 server.
    pub fn new(dialect: Dialect) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let db = TestDatabase::new(dialect);
        let artifacts_url = match dialect {
            Dialect::Sqlite => format!("file://{}/artifacts", data_dir.path().display()),
            _ => {
                std::env::var("WEIR_TEST_S3_ENDPOINT")
                    .expect("WEIR_TEST_S3_ENDPOINT must name the test S3 server (scripts/test.sh starts one)");
                let unique = data_dir.path().file_name().unwrap().to_string_lossy().replace('.', "");
                format!("s3://weir-test/{unique}")
            }
        };
        Self { db, artifacts_url, data_dir }
    }
}

pub struct Weir {
    child: Child,
    pub base: String,
    pub log: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The Python interpreter of the test environment, when there is one (steps that need kfp).
pub fn python() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

impl Storage {
    /// The storage flags every `weir` command takes.
    pub fn flags(&self) -> Vec<String> {
        vec![
            "--data-dir".into(),
            self.data_dir.path().display().to_string(),
            "--metadata".into(),
            self.db.url.clone(),
            "--artifacts".into(),
            self.artifacts_url.clone(),
        ]
    }

    /// The artifact store, opened as weir opens it.
    pub fn artifact_store(&self) -> weir_artifacts::ArtifactStore {
        let s3 = weir_artifacts::S3Settings {
            endpoint: std::env::var("WEIR_TEST_S3_ENDPOINT").ok(),
            region: Some("us-east-1".into()),
            access_key_id: Some("test".into()),
            secret_access_key: Some("test".into()),
            ..Default::default()
        };
        weir_artifacts::ArtifactStore::open(&self.artifacts_url, &s3).unwrap()
    }

    /// Runs `weir <args> <storage flags>` to completion.
    pub fn weir(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .args(self.flags())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", std::env::var("WEIR_TEST_S3_ENDPOINT").unwrap_or_default())
            .env_remove("WEIR_CONFIG")
            .output()
            .unwrap()
    }
}

impl Weir {
    pub fn start(storage: &Storage) -> Self {
        Self::start_with(storage, &[])
    }

    pub fn start_with(storage: &Storage, extra: &[&str]) -> Self {
        Self::start_with_env(storage, extra, &[])
    }

    /// Starts weir with extra flags and extra variables in its environment.
    pub fn start_with_env(storage: &Storage, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let weir = Self::spawn(storage, extra, env);
        weir.wait_ready();
        weir
    }

    /// Starts `weir server` on a free port without waiting for it to serve; its stderr goes to
    /// `log`.
    pub fn spawn(storage: &Storage, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let log = storage.data_dir.path().join(format!("weir-{port}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["server", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(storage.data_dir.path())
            .args(["--metadata", &storage.db.url, "--artifacts", &storage.artifacts_url])
            .arg("--executor-python")
            .arg(python())
            .args(extra)
            .envs(env.iter().copied())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", std::env::var("WEIR_TEST_S3_ENDPOINT").unwrap_or_default())
            .env_remove("WEIR_CONFIG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self { child, base: format!("http://127.0.0.1:{port}"), log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's process, for tests that watch it exit.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(response) = plain_http::get_status(&format!("{}/apis/v2beta1/healthz", self.base)) {
                if response == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("weir did not start; log:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9`: no shutdown, no cleanup.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn stop(self) {
        let _ = self.stop_status();
    }

    /// SIGTERM, then the exit status once weir has stopped.
    pub fn stop_status(mut self) -> std::process::ExitStatus {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        self.child.wait().unwrap()
    }
}

/// A test that fails midway leaves no server behind (a stopped or killed one is already gone).
impl Drop for Weir {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

mod plain_http {
    //! A blocking status check while waiting for the server to listen.
    pub fn get_status(url: &str) -> Result<u16, std::io::Error> {
        use std::io::{Read, Write};
        let rest = url.strip_prefix("http://").unwrap_or(url);
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut stream = std::net::TcpStream::connect(host)?;
        write!(stream, "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0))
    }
}

pub fn spec(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pipelines").join(format!("{name}.yaml"));
    serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Polls until `check` gives a value, failing with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn get(base: &str, path: &str) -> Value {
    ::reqwest::get(format!("{base}{path}")).await.unwrap().json().await.unwrap()
}

pub async fn post(base: &str, path: &str, body: Value) -> Value {
    ::reqwest::Client::new().post(format!("{base}{path}")).json(&body).send().await.unwrap().json().await.unwrap()
}

/// Asserts a `weir` command succeeded; returns what it said on stderr.
pub fn ok(output: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}\n{}", String::from_utf8_lossy(&output.stdout));
    stderr
}

/// Everything a user can list, plus the bytes of every artifact and the logs; artifact URIs
/// name their store, so the store's URL is replaced by `<store>` for comparing across stores.
pub async fn listing(weir: &Weir, storage: &Storage, run_id: &str) -> Value {
    let base = &weir.base;
    let pipelines = get(base, "/apis/v2beta1/pipelines?page_size=200").await;
    let mut versions = Vec::new();
    for p in pipelines["pipelines"].as_array().unwrap() {
        versions
            .push(get(base, &format!("/apis/v2beta1/pipelines/{}/versions", p["pipeline_id"].as_str().unwrap())).await);
    }
    let tasks = get(base, &format!("/apis/weir/v1/runs/{run_id}/tasks")).await;
    let mut contents = Vec::new();
    for task in tasks["tasks"].as_array().unwrap() {
        for artifacts in task["outputs"]["artifacts"].as_object().unwrap().values() {
            for a in artifacts.as_array().unwrap() {
                let bytes = ::reqwest::get(format!(
                    "{base}/apis/weir/v1/artifacts/{}/content",
                    a["artifact_id"].as_str().unwrap()
                ))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
                contents.push(String::from_utf8_lossy(&bytes).into_owned());
            }
        }
    }
    let logs = ::reqwest::get(format!("{base}/apis/weir/v1/runs/{run_id}/logs")).await.unwrap().text().await.unwrap();
    let listing = json!({
        "pipelines": pipelines,
        "versions": versions,
        "experiments": get(base, "/apis/v2beta1/experiments?page_size=200").await,
        "runs": get(base, "/apis/v2beta1/runs?page_size=200").await,
        "run": get(base, &format!("/apis/v2beta1/runs/{run_id}")).await,
        "recurring": get(base, "/apis/v2beta1/recurringruns").await,
        "tasks": tasks,
        "contents": contents,
        "logs": logs,
    });
    serde_json::from_str(&listing.to_string().replace(&storage.artifacts_url, "<store>")).unwrap()
}

/// Whether a process is alive. A zombie is not: a step's own process is a child of the shell
/// that records its exit status, and once both are killed it waits for an init to reap it,
/// which on some machines (containers whose init does not reap) never comes.
pub fn pid_alive(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')).unwrap_or(false),
        Err(_) => false,
    }
}
