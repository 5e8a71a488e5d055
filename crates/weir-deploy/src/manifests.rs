//! The manifests under `deploy/`, compiled into the binary so `weir deploy render` can write a
//! deployment's overlay anywhere, without a checkout of the repository.

/// Every file of `deploy/`, by its path under it.
pub const FILES: &[(&str, &str)] = &[
    ("app/configmap.yaml", include_str!("../../../deploy/app/configmap.yaml")),
    ("app/deployment.yaml", include_str!("../../../deploy/app/deployment.yaml")),
    ("app/kustomization.yaml", include_str!("../../../deploy/app/kustomization.yaml")),
    ("app/rbac.yaml", include_str!("../../../deploy/app/rbac.yaml")),
    ("app/service.yaml", include_str!("../../../deploy/app/service.yaml")),
    ("app/serviceaccount.yaml", include_str!("../../../deploy/app/serviceaccount.yaml")),
    ("storage/adopt/kustomization.yaml", include_str!("../../../deploy/storage/adopt/kustomization.yaml")),
    ("storage/adopt/volumes.yaml", include_str!("../../../deploy/storage/adopt/volumes.yaml")),
    ("storage/bundled/kustomization.yaml", include_str!("../../../deploy/storage/bundled/kustomization.yaml")),
    (
        "storage/components/minio/kustomization.yaml",
        include_str!("../../../deploy/storage/components/minio/kustomization.yaml"),
    ),
    ("storage/components/minio/minio.yaml", include_str!("../../../deploy/storage/components/minio/minio.yaml")),
    (
        "storage/components/mysql/kustomization.yaml",
        include_str!("../../../deploy/storage/components/mysql/kustomization.yaml"),
    ),
    ("storage/components/mysql/mysql.yaml", include_str!("../../../deploy/storage/components/mysql/mysql.yaml")),
    (
        "storage/components/postgres/kustomization.yaml",
        include_str!("../../../deploy/storage/components/postgres/kustomization.yaml"),
    ),
    (
        "storage/components/postgres/postgres.yaml",
        include_str!("../../../deploy/storage/components/postgres/postgres.yaml"),
    ),
    (
        "storage/components/seaweedfs/kustomization.yaml",
        include_str!("../../../deploy/storage/components/seaweedfs/kustomization.yaml"),
    ),
    (
        "storage/components/seaweedfs/seaweedfs.yaml",
        include_str!("../../../deploy/storage/components/seaweedfs/seaweedfs.yaml"),
    ),
    ("storage/external/kustomization.yaml", include_str!("../../../deploy/storage/external/kustomization.yaml")),
    ("storage/servers/database.env", include_str!("../../../deploy/storage/servers/database.env")),
    ("storage/servers/kustomization.yaml", include_str!("../../../deploy/storage/servers/kustomization.yaml")),
    ("storage/servers/objects.env", include_str!("../../../deploy/storage/servers/objects.env")),
    ("upgrade/job.yaml", include_str!("../../../deploy/upgrade/job.yaml")),
    ("upgrade/kustomization.yaml", include_str!("../../../deploy/upgrade/kustomization.yaml")),
];
