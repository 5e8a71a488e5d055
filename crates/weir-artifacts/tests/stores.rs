//! The artifact store wrapper against a local folder and real servers of each cloud protocol
//! weir supports.
//!
//! The servers are the ones `scripts/test.sh` starts on loopback, each with the bucket or
//! container `weir-test`; without one its test fails rather than skips:
//!
//! - S3: moto, named by `WEIR_TEST_S3_ENDPOINT`.
//! - Azure Blob Storage: Azurite, configured as a deployment configures `az://` (`object_store`
//!   reads every `AZURE_*` variable): `AZURE_STORAGE_USE_EMULATOR=true` and
//!   `AZURITE_BLOB_STORAGE_URL`.
//!
//! Google Cloud Storage (`gs://`) has no test and is not claimed: `object_store` speaks GCS's XML
//! API (HEAD, DELETE and `?list-type=2` listings on `/bucket/key`), which the registries' GCS
//! emulators do not serve (gcp-storage-emulator answers 501 to all three; fake-gcs-server refuses
//! a plain XML PUT).

use bytes::Bytes;
use weir_artifacts::{ArtifactError, ArtifactStore, IdentityMarker, S3Settings};

async fn exercise(store: &ArtifactStore) {
    assert_eq!(store.read_identity().await.unwrap(), None);
    assert!(store.list("").await.unwrap().is_empty(), "a new store is empty");
    let marker = IdentityMarker { id: "abc".into(), created_at: 7 };
    store.write_identity(&marker).await.unwrap();
    assert_eq!(store.read_identity().await.unwrap(), Some(marker));

    let data = Bytes::from(vec![7u8; 300_000]);
    store.put("pipelines/p/v/pipeline.yaml", data.clone()).await.unwrap();
    store.put("pipelines/p/w/pipeline.yaml", Bytes::from_static(b"x")).await.unwrap();
    assert_eq!(store.get("pipelines/p/v/pipeline.yaml").await.unwrap(), data);
    let (head, size) = store.get_head("pipelines/p/v/pipeline.yaml", 1000).await.unwrap();
    assert_eq!((head.len(), size), (1000, 300_000));
    let (head, size) = store.get_head("pipelines/p/w/pipeline.yaml", 1000).await.unwrap();
    assert_eq!((&head[..], size), (&b"x"[..], 1));
    assert!(matches!(store.get_head("missing/key", 10).await, Err(ArtifactError::NotFound(_))));
    assert!(store.exists("pipelines/p/v/pipeline.yaml").await.unwrap());
    assert!(!store.exists("pipelines/p/zzz").await.unwrap());
    assert_eq!(
        store.list("pipelines/p").await.unwrap(),
        ["pipelines/p/v/pipeline.yaml", "pipelines/p/w/pipeline.yaml"]
    );
    assert!(matches!(store.get("missing/key").await, Err(ArtifactError::NotFound(_))));
    assert!(matches!(store.get("../escape").await, Err(ArtifactError::InvalidKey { .. })));
    store.delete("pipelines/p/v/pipeline.yaml").await.unwrap();
    store.delete("pipelines/p/v/pipeline.yaml").await.unwrap();
    assert!(!store.exists("pipelines/p/v/pipeline.yaml").await.unwrap());
    assert_eq!(store.list("").await.unwrap(), [".weir/identity.json", "pipelines/p/w/pipeline.yaml"]);
}

/// Runs `exercise` on a fresh prefix of the bucket `weir-test` under `scheme`, then checks that
/// another prefix of the same bucket is another store.
async fn exercise_bucket(scheme: &str, settings: &S3Settings) {
    let prefix = uuid::Uuid::new_v4().simple().to_string();
    let store = ArtifactStore::open(&format!("{scheme}://weir-test/{prefix}/deep"), settings).unwrap();
    exercise(&store).await;
    let other = ArtifactStore::open(&format!("{scheme}://weir-test/{prefix}/other"), settings).unwrap();
    assert!(other.list("").await.unwrap().is_empty());
}

/// The variables `scripts/test.sh` sets for a server, which must all be there.
fn require_env(server: &str, names: &[&str]) {
    for name in names {
        assert!(
            std::env::var_os(name).is_some(),
            "{name} must be set for the test {server} server (scripts/test.sh starts one and sets it)"
        );
    }
}

/// The test S3 server (moto) and its credentials.
fn test_s3() -> S3Settings {
    let endpoint = std::env::var("WEIR_TEST_S3_ENDPOINT")
        .expect("WEIR_TEST_S3_ENDPOINT must name the test S3 server (scripts/test.sh starts one)");
    S3Settings {
        endpoint: Some(endpoint),
        region: Some("us-east-1".into()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn local_folder() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/artifacts", dir.path().display());
    let store = ArtifactStore::open(&url, &S3Settings::default()).unwrap();
    exercise(&store).await;
    // The store is confined to its folder.
    assert!(dir.path().join("artifacts/.weir/identity.json").exists());
}

#[tokio::test]
async fn s3_server() {
    let settings = test_s3();
    exercise_bucket("s3", &settings).await;
}

/// A bucket that does not exist is made (once); one that does is left alone; a local folder
/// has no bucket. Files go up and come down in parts, and listings carry sizes.
#[tokio::test]
async fn s3_bucket_is_made_when_missing_and_files_stream() {
    let settings = test_s3();
    let name = format!("weir-new-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let store = ArtifactStore::open(&format!("s3://{name}/artifacts"), &settings).unwrap();
    assert!(store.list("").await.is_err(), "the bucket does not exist yet");
    assert!(store.ensure_bucket().await.unwrap(), "made");
    assert!(!store.ensure_bucket().await.unwrap(), "already there");
    assert!(store.list("").await.unwrap().is_empty());
    let existing = ArtifactStore::open(&format!("s3://weir-test/{name}"), &settings).unwrap();
    assert!(!existing.ensure_bucket().await.unwrap());

    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..12_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("big"), &big).unwrap();
    assert_eq!(store.put_file(".weir/backups/b.tar.gz", &dir.path().join("big")).await.unwrap(), big.len() as u64);
    let listed = store.list_meta(".weir/backups/").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].key.as_str(), listed[0].size), (".weir/backups/b.tar.gz", big.len() as u64));
    assert!(listed[0].modified_ms > 0);
    store.get_to_file(".weir/backups/b.tar.gz", &dir.path().join("back")).await.unwrap();
    assert!(std::fs::read(dir.path().join("back")).unwrap() == big, "the same bytes come back");
    assert!(matches!(store.get_to_file("missing", &dir.path().join("x")).await, Err(ArtifactError::NotFound(_))));

    let local = ArtifactStore::open(&format!("file://{}/a", dir.path().display()), &S3Settings::default()).unwrap();
    assert!(!local.ensure_bucket().await.unwrap());
}

#[tokio::test]
async fn azure_emulator() {
    require_env("Azure (Azurite)", &["AZURE_STORAGE_USE_EMULATOR", "AZURITE_BLOB_STORAGE_URL"]);
    exercise_bucket("az", &S3Settings::default()).await;
    // `azure://` is the other spelling of the same store.
    let prefix = uuid::Uuid::new_v4().simple().to_string();
    let az = ArtifactStore::open(&format!("az://weir-test/{prefix}"), &S3Settings::default()).unwrap();
    az.put("k", Bytes::from_static(b"v")).await.unwrap();
    let azure = ArtifactStore::open(&format!("azure://weir-test/{prefix}"), &S3Settings::default()).unwrap();
    assert_eq!(azure.get("k").await.unwrap(), Bytes::from_static(b"v"));
}
