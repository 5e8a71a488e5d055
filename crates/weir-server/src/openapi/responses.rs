//! Responses and bodies the document shares between operations: the error responses of the
//! gRPC-gateway endpoints (`#/components/responses/...`), the upload form and its error body.

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Ref, Schema, SchemaFormat, Type};
use utoipa::openapi::{Content, RefOr, Response, ResponseBuilder};
use utoipa::{PartialSchema, ToResponse, ToSchema};

use crate::error::{StatusBody, UploadError};

/// A response whose body is `google.rpc.Status` (`crate::error::StatusBody`).
fn status_response(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", Content::new(Some(Ref::from_schema_name(StatusBody::name()))))
        .build()
        .into()
}

/// Declares a reusable error response, named as the type, for the codes `http_status` maps.
macro_rules! status_response {
    ($name:ident, $description:literal) => {
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), status_response($description))
            }
        }
    };
}

status_response!(BadRequest, "Invalid argument (gRPC 3 INVALID_ARGUMENT or 9 FAILED_PRECONDITION).");
status_response!(NotFound, "Not found (gRPC 5 NOT_FOUND), also for an unknown custom method.");
status_response!(Conflict, "Conflict (gRPC 6 ALREADY_EXISTS or 10 ABORTED).");
status_response!(PayloadTooLarge, "The request body is larger than the server accepts (gRPC 8 RESOURCE_EXHAUSTED).");
status_response!(Unavailable, "The metadata or artifact store is unavailable (gRPC 14 UNAVAILABLE).");

/// The multipart form of the upload endpoints: the package in the `uploadfile` part (what
/// `api::upload::upload_file` reads).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    #[schema(value_type = String, format = Binary)]
    uploadfile: Vec<u8>,
}

/// A 400 of the upload endpoints: the upload error body, except for a malformed query string,
/// which the query extractor answers as `google.rpc.Status` before the upload handler runs.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum UploadBadRequest {
    Upload(UploadError),
    Status(StatusBody),
}

/// The bytes of a file, as `GET /artifacts/{id}/content` answers them.
pub struct FileBytes;

impl PartialSchema for FileBytes {
    fn schema() -> RefOr<Schema> {
        let binary = Some(SchemaFormat::KnownFormat(KnownFormat::Binary));
        ObjectBuilder::new().schema_type(Type::String).format(binary).into()
    }
}

impl ToSchema for FileBytes {}
