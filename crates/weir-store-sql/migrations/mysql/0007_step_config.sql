-- Weir schema version 7: secrets and config maps that steps are given.
-- kfp-kubernetes pipelines name Kubernetes Secrets and ConfigMaps (`use_secret_as_env`,
-- `use_config_map_as_env`, … in the PlatformSpec); the local driver takes them from here.
-- `kind` is `secret` or `config_map`; a name is unique within its kind, as within a namespace.
-- `data` is a JSON object of key → value. Secret values are read by the engine only.
CREATE TABLE step_config (
    kind VARCHAR(16) NOT NULL,
    name VARCHAR(253) NOT NULL,
    data LONGTEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (kind, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
