//! One deployment's kustomize overlay, from a few choices: its namespace, its image, how its
//! storage is kept (servers on new claims, servers on volumes that already exist, or a database
//! and bucket elsewhere) and which servers. What it writes only creates and updates objects:
//! nothing in it deletes, and an existing deployment's credentials are never replaced.

pub mod check;
pub mod manifests;

use std::collections::BTreeMap;

use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeployError {
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> DeployError {
    DeployError::Invalid(message.into())
}

/// How the deployment's storage is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Storage servers in the namespace on new claims.
    Bundled,
    /// Storage servers in the namespace on volumes that already exist.
    Adopt,
    /// A database and a bucket outside the namespace.
    External,
}

/// A storage server: its kustomize component, and the claim it runs on (KFP's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Postgres,
    Mysql,
    Seaweedfs,
    Minio,
}

impl Server {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "postgres" | "postgresql" => Some(Self::Postgres),
            "mysql" | "mariadb" => Some(Self::Mysql),
            "seaweedfs" => Some(Self::Seaweedfs),
            "minio" => Some(Self::Minio),
            _ => None,
        }
    }

    pub fn component(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
            Self::Seaweedfs => "seaweedfs",
            Self::Minio => "minio",
        }
    }

    pub fn claim(self) -> &'static str {
        match self {
            Self::Postgres => "postgres-pvc",
            Self::Mysql => "mysql-pv-claim",
            Self::Seaweedfs => "seaweedfs-pvc",
            Self::Minio => "minio-pvc",
        }
    }

    fn is_database(self) -> bool {
        matches!(self, Self::Postgres | Self::Mysql)
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub namespace: String,
    /// `name[:tag]`.
    pub image: String,
    /// The name weir records in the storage it initialises (`weir server --name`).
    pub deployment_name: String,
    pub storage: Storage,
    pub database: Server,
    pub objects: Server,
    /// With [`Storage::Adopt`]: the PersistentVolume each server runs on.
    pub adopt: Vec<(Server, String)>,
    /// The StorageClass of the adopted volumes ("" for volumes without one).
    pub storage_class: String,
    /// With [`Storage::External`]: the settings of ConfigMap weir-storage (db-scheme, db-host,
    /// db-port, db-name, artifacts-url, s3-endpoint, s3-region).
    pub external: BTreeMap<String, String>,
    /// weir pods serving the database at once. More than one rolls: each replica drives the
    /// runs it took and takes a dead one's, and a new image's pods come up before old ones go
    /// (a pod that refuses the schema never becomes ready, so the old ones keep serving).
    pub replicas: u32,
}

/// One file of the overlay, by its path under the output folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: String,
    pub content: String,
    /// Credentials: written only where no file is yet (the deployment's data is locked with
    /// them), never replaced.
    pub keep_existing: bool,
}

const EXTERNAL_KEYS: &[&str] =
    &["db-scheme", "db-host", "db-port", "db-name", "artifacts-url", "s3-endpoint", "s3-region"];

/// A DNS label (a namespace's name): 1 to 63 lowercase letters, digits and '-', starting and
/// ending with a letter or digit.
fn dns_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

/// A DNS subdomain (a volume's name).
fn dns_subdomain(text: &str) -> bool {
    text.len() <= 253 && text.split('.').all(dns_label)
}

fn image_parts(image: &str) -> Result<(String, String), DeployError> {
    if image.is_empty() || image.chars().any(|c| c.is_whitespace()) {
        return Err(invalid(format!("image {image:?} is not an image reference")));
    }
    let slash = image.rfind('/').map_or(0, |i| i + 1);
    Ok(match image[slash..].rfind(':') {
        Some(colon) => (image[..slash + colon].to_string(), image[slash + colon + 1..].to_string()),
        None => (image.to_string(), "latest".to_string()),
    })
}

fn yaml(value: &Value) -> String {
    serde_norway::to_string(value).unwrap_or_default()
}

const HEADER: &str = "# Written by `weir deploy render`. Apply with `kubectl apply --server-side -k`; nothing here\n\
                      # deletes anything.\n";

fn credentials(user_key: &str, secret_key: &str) -> String {
    format!("{user_key}=weir\n{secret_key}={}\n", uuid::Uuid::new_v4().simple())
}

/// The overlay of one deployment: `base/` (the manifests), `app/` and `storage/`.
pub fn render(options: &Options) -> Result<Vec<File>, DeployError> {
    if !dns_label(&options.namespace) {
        return Err(invalid(format!(
            "namespace {:?} is not a DNS label (lowercase letters, digits, '-')",
            options.namespace
        )));
    }
    if !dns_label(&options.deployment_name) {
        return Err(invalid(format!("deployment name {:?} is not a DNS label", options.deployment_name)));
    }
    if !options.database.is_database() || options.objects.is_database() {
        return Err(invalid("the database is postgres or mysql, the object store seaweedfs or minio"));
    }
    let (image_name, image_tag) = image_parts(&options.image)?;
    let mut files: Vec<File> = manifests::FILES
        .iter()
        .filter(|(path, _)| !path.ends_with(".env"))
        .map(|(path, content)| File {
            path: format!("base/{path}"),
            content: content.to_string(),
            keep_existing: false,
        })
        .collect();
    files.push(File {
        path: "base/storage/servers/database.env".into(),
        content: credentials("username", "password"),
        keep_existing: true,
    });
    files.push(File {
        path: "base/storage/servers/objects.env".into(),
        content: credentials("accesskey", "secretkey"),
        keep_existing: true,
    });
    let mut app = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": options.namespace,
        "resources": ["../base/app"],
        "images": [{"name": "weir", "newName": image_name, "newTag": image_tag}],
    });
    if options.replicas == 0 {
        return Err(invalid("replicas must be at least 1"));
    }
    if options.replicas > 1 {
        let patch = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "weir"},
            "spec": {
                "replicas": options.replicas,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            },
        });
        app["patches"] = json!([{"patch": yaml(&patch)}]);
    }
    files.push(File {
        path: "app/kustomization.yaml".into(),
        content: format!("{HEADER}{}", yaml(&app)),
        keep_existing: false,
    });
    // The schema upgrade Job, for the same image: applied on its own when an upgrade needs it.
    let upgrade = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": options.namespace,
        "resources": ["../base/upgrade"],
        "images": [{"name": "weir", "newName": image_name, "newTag": image_tag}],
    });
    files.push(File {
        path: "upgrade/kustomization.yaml".into(),
        content: format!("{HEADER}{}", yaml(&upgrade)),
        keep_existing: false,
    });
    let name_setting = json!({"name": "weir-storage", "behavior": "merge", "literals": [format!("deployment-name={}", options.deployment_name)]});
    let mut storage = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": options.namespace,
    });
    if options.storage != Storage::Adopt && !options.adopt.is_empty() {
        return Err(invalid("volumes are adopted only with the adopt storage form"));
    }
    match options.storage {
        Storage::External => {
            let mut literals = vec![format!("deployment-name={}", options.deployment_name)];
            for (key, value) in &options.external {
                if !EXTERNAL_KEYS.contains(&key.as_str()) {
                    return Err(invalid(format!(
                        "unknown external storage setting {key:?} (known: {})",
                        EXTERNAL_KEYS.join(", ")
                    )));
                }
                literals.push(format!("{key}={value}"));
            }
            storage["resources"] = json!(["../base/storage/external"]);
            storage["configMapGenerator"] =
                json!([{"name": "weir-storage", "behavior": "merge", "literals": literals}]);
        }
        Storage::Bundled | Storage::Adopt => {
            let servers = [options.database, options.objects];
            storage["resources"] = json!(["../base/storage/servers"]);
            storage["components"] = json!(servers
                .iter()
                .map(|s| format!("../base/storage/components/{}", s.component()))
                .collect::<Vec<_>>());
            storage["configMapGenerator"] = json!([name_setting]);
            if options.storage == Storage::Adopt {
                let mut volumes = Vec::new();
                let mut patches = Vec::new();
                for server in servers {
                    let Some((_, volume)) = options.adopt.iter().find(|(s, _)| *s == server) else {
                        return Err(invalid(format!(
                            "name the volume {} runs on (--adopt-volume {}=VOLUME)",
                            server.component(),
                            server.component()
                        )));
                    };
                    if !dns_subdomain(volume) {
                        return Err(invalid(format!("volume {volume:?} is not a valid volume name")));
                    }
                    // Only the fields weir owns: kept, and reserved for this namespace's claim. An
                    // empty uid lets a volume left Released by a deleted namespace bind again.
                    volumes.push(json!({
                        "apiVersion": "v1",
                        "kind": "PersistentVolume",
                        "metadata": {"name": volume},
                        "spec": {
                            "persistentVolumeReclaimPolicy": "Retain",
                            "claimRef": {"namespace": options.namespace, "name": server.claim(), "uid": ""},
                        },
                    }));
                    patches.push(json!({
                        "target": {"kind": "PersistentVolumeClaim", "name": server.claim()},
                        "patch": yaml(&json!([
                            {"op": "add", "path": "/spec/storageClassName", "value": options.storage_class},
                            {"op": "add", "path": "/spec/volumeName", "value": volume},
                        ])),
                    }));
                }
                for server in options.adopt.iter().map(|(s, _)| s) {
                    if !servers.contains(server) {
                        return Err(invalid(format!("{} is not one of this deployment's servers", server.component())));
                    }
                }
                let content = volumes.iter().map(yaml).collect::<Vec<_>>().join("---\n");
                files.push(File {
                    path: "storage/volumes.yaml".into(),
                    content: format!("{HEADER}{content}"),
                    keep_existing: false,
                });
                storage["resources"] = json!(["../base/storage/servers", "volumes.yaml"]);
                storage["patches"] = json!(patches);
            }
        }
    }
    files.push(File {
        path: "storage/kustomization.yaml".into(),
        content: format!("{HEADER}{}", yaml(&storage)),
        keep_existing: false,
    });
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(storage: Storage) -> Options {
        Options {
            namespace: "ml".into(),
            image: "registry.example/weir:0.2.0".into(),
            deployment_name: "weir".into(),
            storage,
            database: Server::Mysql,
            objects: Server::Seaweedfs,
            adopt: vec![],
            storage_class: String::new(),
            external: BTreeMap::new(),
            replicas: 1,
        }
    }

    #[test]
    fn several_replicas_roll_and_one_is_recreated() {
        let one = render(&options(Storage::Bundled)).unwrap();
        assert!(!file(&one, "app/kustomization.yaml").contains("RollingUpdate"));
        let three = render(&Options { replicas: 3, ..options(Storage::Bundled) }).unwrap();
        let app = file(&three, "app/kustomization.yaml");
        assert!(
            app.contains("replicas: 3") && app.contains("RollingUpdate") && app.contains("maxUnavailable: 0"),
            "{app}"
        );
        assert!(render(&Options { replicas: 0, ..options(Storage::Bundled) }).is_err());
    }

    fn file<'a>(files: &'a [File], path: &str) -> &'a str {
        &files.iter().find(|f| f.path == path).unwrap_or_else(|| panic!("no {path}")).content
    }

    #[test]
    fn every_manifest_is_embedded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
        let mut on_disk = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    on_disk.push(path.strip_prefix(&root).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        on_disk.sort();
        let embedded: Vec<String> = manifests::FILES.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(embedded, on_disk, "crates/weir-deploy/src/manifests.rs lists every file of deploy/");
    }

    #[test]
    fn a_bundled_overlay_names_its_servers_image_and_namespace() {
        let files = render(&options(Storage::Bundled)).unwrap();
        let app = file(&files, "app/kustomization.yaml");
        assert!(
            app.contains("namespace: ml")
                && app.contains("newName: registry.example/weir")
                && app.contains("newTag: 0.2.0"),
            "{app}"
        );
        let storage = file(&files, "storage/kustomization.yaml");
        assert!(storage.contains("components/mysql") && storage.contains("components/seaweedfs"), "{storage}");
        let secrets: Vec<&File> = files.iter().filter(|f| f.keep_existing).collect();
        assert_eq!(secrets.len(), 2);
        assert!(secrets.iter().all(|f| !f.content.contains("change-me")));
        // Fresh credentials each time: a second render must not be written over the first.
        let again = render(&options(Storage::Bundled)).unwrap();
        assert_ne!(
            file(&files, "base/storage/servers/database.env"),
            file(&again, "base/storage/servers/database.env")
        );
    }

    #[test]
    fn adoption_reserves_the_named_volumes_and_deletes_nothing() {
        let mut o = options(Storage::Adopt);
        o.adopt = vec![(Server::Mysql, "pvc-0a1b".into()), (Server::Seaweedfs, "pvc-2c3d".into())];
        o.storage_class = "standard".into();
        let files = render(&o).unwrap();
        let volumes = file(&files, "storage/volumes.yaml");
        assert!(volumes.contains("name: pvc-0a1b") && volumes.contains("name: mysql-pv-claim"), "{volumes}");
        assert!(volumes.contains("persistentVolumeReclaimPolicy: Retain"));
        let storage = file(&files, "storage/kustomization.yaml");
        assert!(storage.contains("value: pvc-2c3d") && storage.contains("value: standard"), "{storage}");
        for f in &files {
            assert!(
                !f.content.to_lowercase().contains("delete:") && !f.content.contains("$patch: delete"),
                "{}",
                f.path
            );
        }
    }

    #[test]
    fn bad_choices_are_refused_plainly() {
        let mut o = options(Storage::Adopt);
        assert!(render(&o).unwrap_err().to_string().contains("--adopt-volume mysql=VOLUME"));
        o.adopt = vec![(Server::Mysql, "a".into()), (Server::Seaweedfs, "b".into()), (Server::Minio, "c".into())];
        assert!(render(&o).unwrap_err().to_string().contains("minio is not one of"));
        let mut o = options(Storage::Bundled);
        o.namespace = "ML prod".into();
        assert!(render(&o).is_err());
        let mut o = options(Storage::Bundled);
        o.adopt = vec![(Server::Mysql, "a".into())];
        assert!(render(&o).is_err());
        let mut o = options(Storage::External);
        o.external.insert("password".into(), "x".into());
        assert!(render(&o).unwrap_err().to_string().contains("unknown external storage setting"));
        assert_eq!(image_parts("weir").unwrap(), ("weir".into(), "latest".into()));
        assert_eq!(image_parts("localhost:5000/weir").unwrap(), ("localhost:5000/weir".into(), "latest".into()));
    }
}
