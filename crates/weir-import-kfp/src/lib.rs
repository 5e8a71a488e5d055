//! `weir import kfp`: reads a Kubeflow Pipelines installation's storage, its `mlpipeline`
//! database (MySQL or PostgreSQL) and its bucket, and maps what it holds onto weir's model.
//!
//! KFP's stores are only read: one read-only snapshot transaction, object GETs. The plan maps
//! pipelines, versions, experiments, runs and recurring runs, and reports what would be
//! imported (counts by kind, namespace and state), what cannot be and why (codes with sample
//! ids), and per-kind checksums of the mapped fields. The apply writes the same mapping into
//! weir's stores through [`weir_store::ImportStore`], page by page with its ledger rows. Facts about KFP's tables are from its models
//! (`backend/src/apiserver/model/*.go` at the 2.0.0 to 2.17.0 tags) and are described in
//! docs/import-kfp.md.

mod apply;
mod map;
mod mlmd;
mod plan;
mod report;
pub mod source;
mod steps;

pub use apply::{apply, source_id, Applied, KindApplied, Target};
pub use plan::{plan, PlanOptions};
pub use report::{Counts, Report, Warning};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The command was asked something it cannot do.
    #[error("{0}")]
    Invalid(String),
    /// KFP's database could not be read.
    #[error("{0}")]
    Source(String),
    /// KFP's bucket could not be read.
    #[error("{0}")]
    Objects(String),
    /// Weir's stores could not be written.
    #[error("{0}")]
    Target(String),
}
