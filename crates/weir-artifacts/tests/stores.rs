//! The artifact store wrapper against a local folder and a real S3 server.
//!
//! The S3 server is the one `scripts/test.sh` starts (moto on loopback, bucket `weir-test`),
//! named by `WEIR_TEST_S3_ENDPOINT`; without it the S3 test fails rather than skips.

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
    let endpoint = std::env::var("WEIR_TEST_S3_ENDPOINT")
        .expect("WEIR_TEST_S3_ENDPOINT must name the test S3 server (scripts/test.sh starts one)");
    let settings = S3Settings {
        endpoint: Some(endpoint),
        region: Some("us-east-1".into()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        ..Default::default()
    };
    let prefix = uuid::Uuid::new_v4().simple().to_string();
    let store = ArtifactStore::open(&format!("s3://weir-test/{prefix}/deep"), &settings).unwrap();
    exercise(&store).await;
    // Another prefix in the same bucket is another store.
    let other = ArtifactStore::open(&format!("s3://weir-test/{prefix}/other"), &settings).unwrap();
    assert!(other.list("").await.unwrap().is_empty());
}
