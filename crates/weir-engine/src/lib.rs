//! Weir's execution engine.
//!
//! [`planner::advance`] is the state machine (rows in, actions out, no I/O); the runtime
//! ([`Engine`]) is the loop that loads rows, writes the planner's decisions before acting on
//! them, launches steps through a [`driver::Driver`] and records their results. What the rest
//! of weir uses is re-exported here: the engine, its settings, the driver interface and the
//! operator's step environment.

pub mod driver;
pub mod error;
mod inputs;
mod launch;
pub mod planner;
pub mod replica;
mod runtime;
pub mod step_env;
mod telemetry;

pub use error::{EngineError, StepError};
pub use launch::PlanError;
pub use planner::{advance, RunView, Step};
pub use runtime::{python_has_kfp, Engine, EngineSettings};
