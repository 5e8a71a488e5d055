//! Weir's artifact store: one wrapper over `object_store` for every backend.
//!
//! Chosen by URL: `file:///path` (the embedded default), `s3://bucket/prefix` (AWS, MinIO, Ceph
//! RGW and other S3-compatible servers), `az://container/prefix` (Azure Blob Storage, set up by
//! the `AZURE_*` variables; Azurite with `AZURE_STORAGE_USE_EMULATOR=true`) and
//! `gs://bucket/prefix` (set up by the `GOOGLE_*` variables; untested, see `tests/stores.rs`).
//! Keys are relative to the URL's prefix; where each kind of object goes is decided in one
//! place, [`layout`], which the engine, the server and the CLI all use.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, PutPayload};
use serde::{Deserialize, Serialize};

pub mod layout;
pub use layout::package_key;

/// Key of the storage identity marker.
pub const IDENTITY_KEY: &str = ".weir/identity.json";
/// Where weir keeps its own files in the artifact store (the identity, the last check's
/// report): never a pipeline's data, so never an orphan or a backup's content.
pub const RESERVED_PREFIX: &str = ".weir/";
/// The report of the last `weir storage check` (the UI's storage page shows it).
pub const LAST_CHECK_KEY: &str = ".weir/last-check.json";

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("{0}")]
    InvalidUrl(String),
    #[error("invalid artifact key {key:?}: {reason}")]
    InvalidKey { key: String, reason: String },
    #[error("artifact {0} not found")]
    NotFound(String),
    #[error("artifact store unavailable: {0}")]
    Unavailable(String),
}

pub type ArtifactResult<T> = Result<T, ArtifactError>;

/// How long one operation on `size` bytes may take before the store counts as unreachable:
/// 10 s, plus a second per MiB moved. A store that accepts a connection and then says nothing
/// (a network partition) would otherwise hold a request, or a step, for minutes.
fn deadline(size: u64) -> std::time::Duration {
    std::time::Duration::from_secs(10 + size / (1 << 20))
}

async fn bounded<T>(
    key: &str,
    limit: std::time::Duration,
    operation: impl std::future::Future<Output = object_store::Result<T>>,
) -> ArtifactResult<T> {
    match tokio::time::timeout(limit, operation).await {
        Ok(result) => result.map_err(|e| map_err(key, e)),
        Err(_) => Err(ArtifactError::Unavailable(format!(
            "the artifact store did not answer within {} s ({key})",
            limit.as_secs()
        ))),
    }
}

fn map_err(key: &str, e: object_store::Error) -> ArtifactError {
    match e {
        object_store::Error::NotFound { .. } => ArtifactError::NotFound(key.to_string()),
        object_store::Error::InvalidPath { source } => {
            ArtifactError::InvalidKey { key: key.to_string(), reason: source.to_string() }
        }
        other => ArtifactError::Unavailable(other.to_string()),
    }
}

/// S3 settings beyond the URL. Anything unset falls back to the usual `AWS_*` variables.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Settings {
    /// Endpoint of an S3-compatible server, e.g. `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// Address buckets as `endpoint/bucket` (true, the default: MinIO and most servers) or as
    /// `bucket.endpoint` (false).
    pub path_style: Option<bool>,
    /// Allow plain HTTP; implied by an `http://` endpoint.
    pub allow_http: Option<bool>,
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "***");
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redacted(&self.secret_access_key))
            .field("session_token", &redacted(&self.session_token))
            .field("path_style", &self.path_style)
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// One object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub modified_ms: i64,
}

/// The identity marker written to both stores on first start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityMarker {
    pub id: String,
    pub created_at: i64,
}

#[derive(Clone)]
pub struct ArtifactStore {
    inner: Arc<dyn ObjectStore>,
    url: String,
    /// The S3 bucket behind the store, when it is one on an explicit endpoint (MinIO,
    /// SeaweedFS, any S3-compatible server): what `ensure_bucket` needs.
    bucket: Option<Arc<S3Bucket>>,
}

struct S3Bucket {
    client: object_store::aws::AmazonS3,
    endpoint: String,
    name: String,
    region: String,
}

impl fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArtifactStore").field("url", &self.url).finish()
    }
}

impl ArtifactStore {
    /// Opens the store a URL names. A `file://` folder is created if missing.
    pub fn open(url: &str, s3: &S3Settings) -> ArtifactResult<Self> {
        let parsed = url::Url::parse(url)
            .map_err(|e| ArtifactError::InvalidUrl(format!("invalid artifact store URL {url:?}: {e}")))?;
        let prefix = parsed.path().trim_matches('/').to_string();
        let bucket = parsed.host_str().unwrap_or_default().to_string();
        let mut s3_bucket = None;
        let inner: Arc<dyn ObjectStore> = match parsed.scheme() {
            "file" => {
                let path = parsed.to_file_path().map_err(|_| {
                    ArtifactError::InvalidUrl(format!("{url:?} is not an absolute file URL (use file:///path)"))
                })?;
                std::fs::create_dir_all(&path).map_err(|e| {
                    ArtifactError::Unavailable(format!("cannot create the artifact folder {}: {e}", path.display()))
                })?;
                let local = LocalFileSystem::new_with_prefix(&path)
                    .map_err(|e| ArtifactError::Unavailable(e.to_string()))?
                    .with_automatic_cleanup(true);
                return Ok(Self { inner: Arc::new(local), url: url.to_string(), bucket: None });
            }
            "s3" => {
                require_bucket(&bucket, url)?;
                // Fewer, shorter retries than the library's default (10 within 180 s): an
                // unreachable store should answer a request with 503 in seconds, and each
                // operation is bounded again by `deadline`.
                let retry = object_store::RetryConfig {
                    max_retries: 3,
                    retry_timeout: std::time::Duration::from_secs(10),
                    ..Default::default()
                };
                let client = object_store::ClientOptions::new().with_connect_timeout(std::time::Duration::from_secs(5));
                let mut builder =
                    AmazonS3Builder::from_env().with_bucket_name(&bucket).with_retry(retry).with_client_options(client);
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder.with_endpoint(endpoint);
                    if endpoint.starts_with("http://") {
                        builder = builder.with_allow_http(true);
                    }
                } else if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
                    if endpoint.starts_with("http://") {
                        builder = builder.with_allow_http(true);
                    }
                }
                if let Some(region) = &s3.region {
                    builder = builder.with_region(region);
                }
                if let Some(key) = &s3.access_key_id {
                    builder = builder.with_access_key_id(key);
                }
                if let Some(secret) = &s3.secret_access_key {
                    builder = builder.with_secret_access_key(secret);
                }
                if let Some(token) = &s3.session_token {
                    builder = builder.with_token(token);
                }
                if let Some(path_style) = s3.path_style {
                    builder = builder.with_virtual_hosted_style_request(!path_style);
                }
                if let Some(allow_http) = s3.allow_http {
                    builder = builder.with_allow_http(allow_http);
                }
                let client = builder.build().map_err(|e| ArtifactError::InvalidUrl(format!("S3 store {url}: {e}")))?;
                let endpoint = s3.endpoint.clone().or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
                if let Some(endpoint) = endpoint {
                    let region = s3
                        .region
                        .clone()
                        .or_else(|| std::env::var("AWS_REGION").ok())
                        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
                        .unwrap_or_else(|| "us-east-1".into());
                    s3_bucket = Some(Arc::new(S3Bucket {
                        client: client.clone(),
                        endpoint: endpoint.trim_end_matches('/').to_string(),
                        name: bucket.clone(),
                        region,
                    }));
                }
                Arc::new(client)
            }
            "gs" => {
                require_bucket(&bucket, url)?;
                let builder = GoogleCloudStorageBuilder::from_env().with_bucket_name(&bucket);
                Arc::new(builder.build().map_err(|e| ArtifactError::InvalidUrl(format!("GCS store {url}: {e}")))?)
            }
            "az" | "azure" => {
                require_bucket(&bucket, url)?;
                let builder = MicrosoftAzureBuilder::from_env().with_container_name(&bucket);
                Arc::new(builder.build().map_err(|e| ArtifactError::InvalidUrl(format!("Azure store {url}: {e}")))?)
            }
            other => {
                return Err(ArtifactError::InvalidUrl(format!(
                    "artifact store URL must start with file://, s3://, gs:// or az://, got {other}://"
                )))
            }
        };
        let inner: Arc<dyn ObjectStore> =
            if prefix.is_empty() { inner } else { Arc::new(PrefixStore::new(inner, Path::from(prefix))) };
        Ok(Self { inner, url: url.to_string(), bucket: s3_bucket })
    }

    /// Makes the bucket when it does not exist, as KFP's API server does for its own at start,
    /// so a new in-cluster MinIO or SeaweedFS needs no hand step. Only for an S3-compatible
    /// server named by an endpoint: on AWS itself (no endpoint), on GCS and Azure, making
    /// buckets is left to whoever owns the account. Returns whether a bucket was made.
    pub async fn ensure_bucket(&self) -> ArtifactResult<bool> {
        let Some(bucket) = &self.bucket else { return Ok(false) };
        let credential = bucket.client.credentials().get_credential().await.map_err(|e| map_err(&bucket.name, e))?;
        let url = format!("{}/{}", bucket.endpoint, bucket.name);
        let unavailable = |what: &str, e: &dyn fmt::Display| {
            ArtifactError::Unavailable(format!("cannot {what} bucket {}: {e}", bucket.name))
        };
        let send = |method: http::Method| {
            let mut request = http::Request::builder()
                .method(method.clone())
                .uri(&url)
                .body(object_store::client::HttpRequestBody::empty())
                .map_err(|e| unavailable("address the", &e))?;
            object_store::aws::AwsAuthorizer::new(&credential, "s3", &bucket.region).authorize(&mut request, None);
            let client = reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(5))
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .map_err(|e| unavailable("reach the", &e))?;
            Ok::<_, ArtifactError>(client.request(method, &url).headers(request.headers().clone()).send())
        };
        let found = send(http::Method::HEAD)?.await.map_err(|e| unavailable("look for the", &e))?;
        // 403: it exists and belongs to someone, or these credentials may not look; either way
        // it is not ours to make.
        if found.status() != reqwest::StatusCode::NOT_FOUND {
            return Ok(false);
        }
        let made = send(http::Method::PUT)?.await.map_err(|e| unavailable("make the", &e))?;
        if made.status().is_success() || made.status() == reqwest::StatusCode::CONFLICT {
            return Ok(made.status().is_success());
        }
        let status = made.status();
        let body = made.text().await.unwrap_or_default();
        Err(unavailable("make the", &format!("{status}: {}", body.chars().take(300).collect::<String>())))
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn put(&self, key: &str, data: Bytes) -> ArtifactResult<()> {
        let path = parse_key(key)?;
        let limit = deadline(data.len() as u64);
        bounded(key, limit, self.inner.put(&path, PutPayload::from(data))).await.map(|_| ())
    }

    pub async fn get(&self, key: &str) -> ArtifactResult<Bytes> {
        let path = parse_key(key)?;
        let result = bounded(key, deadline(0), self.inner.get(&path)).await?;
        let limit = deadline(result.meta.size);
        bounded(key, limit, result.bytes()).await
    }

    /// The first `max` bytes of an object and its whole size: a preview that does not read a
    /// large file whole.
    pub async fn get_head(&self, key: &str, max: usize) -> ArtifactResult<(Bytes, u64)> {
        let path = parse_key(key)?;
        let meta = bounded(key, deadline(0), self.inner.head(&path)).await?;
        let end = meta.size.min(max as u64);
        if end == 0 {
            return Ok((Bytes::new(), meta.size));
        }
        let head = bounded(key, deadline(end), self.inner.get_range(&path, 0..end)).await?;
        Ok((head, meta.size))
    }

    pub async fn exists(&self, key: &str) -> ArtifactResult<bool> {
        let path = parse_key(key)?;
        match bounded(key, deadline(0), self.inner.head(&path)).await {
            Ok(_) => Ok(true),
            Err(ArtifactError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes an object; deleting a missing object is not an error.
    pub async fn delete(&self, key: &str) -> ArtifactResult<()> {
        let path = parse_key(key)?;
        match bounded(key, deadline(0), self.inner.delete(&path)).await {
            Ok(()) | Err(ArtifactError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Keys under a prefix ("" for everything).
    pub async fn list(&self, prefix: &str) -> ArtifactResult<Vec<String>> {
        let path = if prefix.is_empty() { None } else { Some(parse_key(prefix)?) };
        // A listing is many requests; each page is bounded by the store client's own timeout.
        let objects: Vec<_> = self.inner.list(path.as_ref()).try_collect().await.map_err(|e| map_err(prefix, e))?;
        let mut keys: Vec<String> = objects.into_iter().map(|o| o.location.to_string()).collect();
        keys.sort();
        Ok(keys)
    }

    /// Keys under a prefix with each object's size and last change (milliseconds since the
    /// epoch), sorted by key.
    pub async fn list_meta(&self, prefix: &str) -> ArtifactResult<Vec<ObjectInfo>> {
        // A listing's prefix is a folder: "a/b/" and "a/b" name the same one.
        let folder = prefix.trim_end_matches('/');
        let path = if folder.is_empty() { None } else { Some(parse_key(folder)?) };
        let objects: Vec<_> = self.inner.list(path.as_ref()).try_collect().await.map_err(|e| map_err(prefix, e))?;
        let mut listed: Vec<ObjectInfo> = objects
            .into_iter()
            .map(|o| ObjectInfo {
                key: o.location.to_string(),
                size: o.size,
                modified_ms: o.last_modified.timestamp_millis(),
            })
            .collect();
        listed.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(listed)
    }

    /// Uploads a local file in parts, so a backup of any size passes through bounded memory.
    /// The object appears whole or not at all (a multipart upload completes atomically).
    pub async fn put_file(&self, key: &str, file: &std::path::Path) -> ArtifactResult<u64> {
        let path = parse_key(key)?;
        let mut source = tokio::fs::File::open(file)
            .await
            .map_err(|e| ArtifactError::Unavailable(format!("cannot read {}: {e}", file.display())))?;
        let mut writer = object_store::buffered::BufWriter::new(self.inner.clone(), path);
        let copied = match tokio::io::copy(&mut source, &mut writer).await {
            Ok(n) => n,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(ArtifactError::Unavailable(format!("cannot upload {key}: {e}")));
            }
        };
        tokio::io::AsyncWriteExt::shutdown(&mut writer)
            .await
            .map_err(|e| ArtifactError::Unavailable(format!("cannot upload {key}: {e}")))?;
        Ok(copied)
    }

    /// Downloads an object into a local file, streaming.
    pub async fn get_to_file(&self, key: &str, file: &std::path::Path) -> ArtifactResult<u64> {
        let path = parse_key(key)?;
        let result = bounded(key, deadline(0), self.inner.get(&path)).await?;
        let mut stream = result.into_stream();
        let mut target = tokio::fs::File::create(file)
            .await
            .map_err(|e| ArtifactError::Unavailable(format!("cannot write {}: {e}", file.display())))?;
        let mut written = 0u64;
        while let Some(chunk) = stream.try_next().await.map_err(|e| map_err(key, e))? {
            tokio::io::AsyncWriteExt::write_all(&mut target, &chunk)
                .await
                .map_err(|e| ArtifactError::Unavailable(format!("cannot write {}: {e}", file.display())))?;
            written += chunk.len() as u64;
        }
        tokio::io::AsyncWriteExt::flush(&mut target)
            .await
            .map_err(|e| ArtifactError::Unavailable(format!("cannot write {}: {e}", file.display())))?;
        Ok(written)
    }

    /// Reads the identity marker, if the store has one.
    pub async fn read_identity(&self) -> ArtifactResult<Option<IdentityMarker>> {
        match self.get(IDENTITY_KEY).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                ArtifactError::Unavailable(format!("{IDENTITY_KEY} in {} is not a weir identity marker: {e}", self.url))
            }),
            Err(ArtifactError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn write_identity(&self, marker: &IdentityMarker) -> ArtifactResult<()> {
        let body = serde_json::to_vec_pretty(marker).unwrap_or_default();
        self.put(IDENTITY_KEY, Bytes::from(body)).await
    }
}

fn require_bucket(bucket: &str, url: &str) -> ArtifactResult<()> {
    if bucket.is_empty() {
        return Err(ArtifactError::InvalidUrl(format!("{url:?} names no bucket")));
    }
    Ok(())
}

/// Parses a key, refusing anything that could leave the store's prefix.
fn parse_key(key: &str) -> ArtifactResult<Path> {
    let invalid = |reason: &str| ArtifactError::InvalidKey { key: key.to_string(), reason: reason.to_string() };
    if key.is_empty() {
        return Err(invalid("empty"));
    }
    if key.starts_with('/') || key.contains('\\') || key.contains('\0') {
        return Err(invalid("keys are relative, with '/' separators"));
    }
    if key.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
        return Err(invalid("empty, '.' and '..' segments are not allowed"));
    }
    Path::parse(key).map_err(|e| invalid(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape() {
        for bad in ["", "/etc/passwd", "a/../b", "../x", "a//b", "./a", "a\\b"] {
            assert!(parse_key(bad).is_err(), "accepted {bad:?}");
        }
        assert!(parse_key("pipelines/p/v/pipeline.yaml").is_ok());
    }

    #[test]
    fn package_keys_are_safe() {
        assert_eq!(package_key("p", "v", "../../etc/passwd"), "pipelines/p/v/passwd");
        assert_eq!(package_key("p", "v", "my pipeline.yaml"), "pipelines/p/v/my_pipeline.yaml");
        assert_eq!(package_key("p", "v", ".."), "pipelines/p/v/pipeline.yaml");
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let s = S3Settings { secret_access_key: Some("hunter2".into()), ..Default::default() };
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn refuses_unknown_schemes() {
        assert!(ArtifactStore::open("ftp://x/y", &S3Settings::default()).is_err());
        assert!(ArtifactStore::open("s3:///nobucket", &S3Settings::default()).is_err());
    }
}
