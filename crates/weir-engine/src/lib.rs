//! Weir's execution engine.
//!
//! [`planner::advance`] is the state machine (rows in, actions out, no I/O); [`runtime`] is the
//! loop that loads rows, writes the planner's decisions before acting on them, launches steps
//! through a [`driver::Driver`] and records their results.

pub mod driver;
mod inputs;
pub mod launch;
pub mod planner;
pub mod runtime;
pub mod step_env;
pub mod values;

pub use planner::{advance, RunView, Step};
