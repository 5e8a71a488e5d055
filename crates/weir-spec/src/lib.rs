//! The KFP PipelineSpec IR: reading pipeline packages and validating what they hold.
//!
//! A package is what `kfp.compiler` writes (YAML, first document the PipelineSpec, an optional
//! second the PlatformSpec) or the same in JSON, a zip or a gzipped tarball, as the KFP server
//! accepts them. Validation checks everything a run would trip over later: unknown component
//! or executor references, dependencies on missing tasks, cycles, the pipeline name rule.

pub mod cache;
pub mod cel;
pub mod ir;
pub mod names;
mod package;
pub mod placeholders;
pub mod platform;
mod validate;
pub mod values;

pub use package::{read_package, split_run_spec, Package, MAX_PACKAGE_BYTES};
pub use validate::validate;

/// Why a package or spec was refused. The message is meant for the user who uploaded it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

impl SpecError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
