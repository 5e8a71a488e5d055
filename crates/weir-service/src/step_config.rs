//! Secrets and config maps: what kfp-kubernetes pipelines name as Kubernetes Secrets and
//! ConfigMaps, kept in the metadata store for the local driver to give steps.

use std::sync::Arc;

use weir_api_model::step_config::StepConfigInput;
use weir_store::{StepConfig, StepConfigKind};

use crate::error::{ServiceError, ServiceResult};
use crate::Context;

/// A value may be this large (Kubernetes caps a whole Secret or ConfigMap at 1 MiB).
const MAX_BYTES: usize = 1 << 20;

#[derive(Clone)]
pub struct StepConfigService {
    ctx: Arc<Context>,
}

impl StepConfigService {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }

    pub async fn create(&self, kind: StepConfigKind, input: &StepConfigInput) -> ServiceResult<StepConfig> {
        check_name(kind, &input.name)?;
        let mut size = 0;
        for (key, value) in &input.data {
            check_key(kind, key)?;
            if value.contains('\0') {
                // An environment variable cannot hold one.
                return Err(ServiceError::invalid(format!(
                    "{} key {key:?}: the value holds a NUL character",
                    kind.noun()
                )));
            }
            size += key.len() + value.len();
        }
        if size > MAX_BYTES {
            return Err(ServiceError::invalid(format!(
                "{} {:?} holds {size} bytes; at most {MAX_BYTES} are allowed, as in Kubernetes",
                kind.noun(),
                input.name
            )));
        }
        let config =
            StepConfig { kind, name: input.name.clone(), data: input.data.clone(), created_at: self.ctx.now() };
        self.ctx.store.create_step_config(&config).await?;
        Ok(config)
    }

    pub async fn get(&self, kind: StepConfigKind, name: &str) -> ServiceResult<StepConfig> {
        Ok(self.ctx.store.get_step_config(kind, name).await?)
    }

    pub async fn list(&self, kind: StepConfigKind) -> ServiceResult<Vec<StepConfig>> {
        Ok(self.ctx.store.list_step_configs(kind).await?)
    }

    pub async fn delete(&self, kind: StepConfigKind, name: &str) -> ServiceResult<()> {
        Ok(self.ctx.store.delete_step_config(kind, name).await?)
    }
}

/// A DNS-1123 subdomain, as Kubernetes names Secrets and ConfigMaps.
fn check_name(kind: StepConfigKind, name: &str) -> ServiceResult<()> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !valid {
        return Err(ServiceError::invalid(format!(
            "{} name {name:?} is not valid: use lowercase letters, digits, '-' and '.', starting and ending with \
             a letter or digit, at most 253 characters (a Kubernetes object name)",
            kind.noun()
        )));
    }
    Ok(())
}

/// A key as Kubernetes allows it in a Secret or ConfigMap: also a file name when mounted.
fn check_key(kind: StepConfigKind, key: &str) -> ServiceResult<()> {
    let valid = !key.is_empty()
        && key.len() <= 253
        && key != "."
        && key != ".."
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid {
        return Err(ServiceError::invalid(format!(
            "{} key {key:?} is not valid: use letters, digits, '-', '_' and '.'",
            kind.noun()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_keys_follow_kubernetes() {
        assert!(check_name(StepConfigKind::Secret, "test-secret-1").is_ok());
        assert!(check_name(StepConfigKind::Secret, "a.b").is_ok());
        for bad in ["", "Upper", "-lead", "trail-", "sp ace", "under_score"] {
            assert!(check_name(StepConfigKind::Secret, bad).is_err(), "{bad:?}");
        }
        assert!(check_key(StepConfigKind::ConfigMap, "password").is_ok());
        assert!(check_key(StepConfigKind::ConfigMap, "config.yaml").is_ok());
        for bad in ["", ".", "..", "a/b", "a b"] {
            assert!(check_key(StepConfigKind::ConfigMap, bad).is_err(), "{bad:?}");
        }
    }
}
