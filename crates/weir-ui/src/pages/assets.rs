//! The UI's own static files, compiled into the binary.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// (name, content type, body). htmx is vendored (Zero-Clause BSD, `assets/htmx.LICENSE`).
const FILES: &[(&str, &str, &str)] = &[
    ("weir.css", "text/css; charset=utf-8", include_str!("../../assets/weir.css")),
    ("weir.js", "text/javascript; charset=utf-8", include_str!("../../assets/weir.js")),
    ("htmx.min.js", "text/javascript; charset=utf-8", include_str!("../../assets/htmx.min.js")),
];

/// The bytes of JS and CSS every page loads (the budget is 100 KB).
pub fn page_weight() -> usize {
    FILES.iter().map(|(_, _, body)| body.len()).sum()
}

pub(crate) async fn serve(Path(file): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => {
            ([(header::CONTENT_TYPE, *content_type), (header::CACHE_CONTROL, "public, max-age=300")], *body)
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_page_loads_at_most_100_kb_of_script_and_style() {
        let weight = super::page_weight();
        assert!(weight <= 100 * 1024, "{weight} bytes");
    }
}
