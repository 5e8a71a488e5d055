//! Weir's domain: the entities the metadata store keeps, the store traits (split by entity),
//! list queries, and the errors every backend maps its failures to.
//!
//! Nothing here knows about SQL or HTTP. Backends implement the traits; the conformance suite
//! (feature `testsuite`) is run by each backend's tests so "supported" means "the suite ran".

mod clock;
mod error;
mod gc;
mod list;
mod model;
mod traits;

#[cfg(feature = "testsuite")]
pub mod testsuite;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{StoreError, StoreResult};
pub use gc::*;
pub use list::{
    Entity, Field, FieldKind, ListQuery, Listable, Page, ResolvedPredicate, ResolvedValue, DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
};
pub use model::*;
pub use traits::*;
