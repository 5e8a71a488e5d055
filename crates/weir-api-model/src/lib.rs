//! KFP v2beta1 wire types.
//!
//! The real KFP server marshals with grpc-gateway `UseProtoNames: true, EmitUnpopulated: false`:
//! snake_case keys, empty values omitted, int64 as JSON strings, enums as names. The `kfp`
//! client reads only those names, so every type here serialises exactly that way (see
//! KFP-COMPAT.md §1.1 and §1.4). Requests are parsed leniently where the client varies
//! (int64 as number or string, camelCase filter keys).

pub mod filter;
pub mod page_token;
pub mod serde_helpers;
pub mod types;

pub use filter::{Filter, FilterError, Operation, Predicate, PredicateValue};
pub use page_token::{Cursor, PageTokenError};
pub use types::*;
