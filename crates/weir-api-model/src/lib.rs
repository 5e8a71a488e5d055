//! KFP v2beta1 wire types.
//!
//! The real KFP server marshals with grpc-gateway `UseProtoNames: true, EmitUnpopulated: false`
//! (`CustomMarshaler` in `backend/src/apiserver/common/utils.go`, installed on the gateway mux by
//! `startHTTPProxy` in `backend/src/apiserver/main.go`): protojson then writes snake_case keys
//! (the field names of `backend/api/v2beta1/*.proto`), omits empty values, and writes int64 as
//! JSON strings and enums as names. The `kfp` client reads only those names (the `attribute_map`
//! of its generated models, `backend/api/v2beta1/python_http_client/kfp_server_api/models/`), so
//! every type here serialises exactly that way; the one camelCase key is `recurringRuns`, which
//! is the proto field's own name in `backend/api/v2beta1/recurring_run.proto`. Requests are
//! parsed leniently where the client varies (int64 as number or string, camelCase filter keys).
//!
//! Every message derives its OpenAPI schema (`utoipa::ToSchema`), from which weir-server
//! generates the document it serves; `requests` and `schema` hold the schemas the Rust types
//! cannot state themselves.

pub mod execution;
pub mod filter;
pub mod page_token;
pub mod requests;
pub mod retention;
pub mod schema;
pub mod serde_helpers;
pub mod step_config;
pub mod types;

pub use filter::{Filter, FilterError, Operation, Predicate, PredicateValue};
pub use page_token::{Cursor, PageTokenError};
pub use types::*;
