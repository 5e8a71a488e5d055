//! What every page shares: the request's base path and token, the error page, and the small
//! formatting rules (times, durations, states) the templates use.

use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use weir_service::ServiceError;
use weir_store::RuntimeState;

use crate::security::{BasePath, CsrfToken};

/// The request's link prefix and CSRF token, for templates.
#[derive(Debug, Clone)]
pub(crate) struct Chrome {
    pub base: String,
    pub csrf: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Chrome {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let base = parts.extensions.get::<BasePath>().map(|b| b.0.clone()).unwrap_or_default();
        let csrf = parts.extensions.get::<CsrfToken>().map(|t| t.0.clone()).unwrap_or_default();
        Ok(Chrome { base, csrf })
    }
}

impl Chrome {
    /// A redirect after a form post (303: the browser follows with GET).
    pub fn see_other(&self, path: &str) -> Response {
        Redirect::to(&format!("{}{}", self.base, path)).into_response()
    }
}

/// A failed page: the services' error shown as a page with the matching status.
#[derive(Debug)]
pub(crate) struct UiError {
    pub status: StatusCode,
    pub message: String,
}

impl UiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: message.into() }
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, message: message.to_string() }
    }
}

impl From<ServiceError> for UiError {
    fn from(e: ServiceError) -> Self {
        let status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self { status, message: e.message }
    }
}

impl From<askama::Error> for UiError {
    fn from(e: askama::Error) -> Self {
        Self::internal(format!("rendering failed: {e}"))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    chrome: Chrome,
    title: String,
    message: &'a str,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        // The error page is plain: it has no request context, so its links go to the root.
        let page = ErrorPage {
            chrome: Chrome { base: String::new(), csrf: String::new() },
            title: self.status.canonical_reason().unwrap_or("Error").to_string(),
            message: &self.message,
        };
        let body = page.render().unwrap_or_else(|_| self.message.clone());
        (self.status, Html(body)).into_response()
    }
}

pub(crate) type UiResult<T = Response> = Result<T, UiError>;

/// A rendered template as a response.
pub(crate) fn html(template: impl Template) -> UiResult {
    Ok(Html(template.render()?).into_response())
}

/// A fragment or download that must not be cached by the browser between polls.
pub(crate) fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    response
}

/// `2026-12-04 23:09:26` in UTC, or `—` for "never".
pub(crate) fn time(ms: i64) -> String {
    if ms <= 0 {
        return "—".into();
    }
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()
}

/// `1h 2m`, `3m 4s`, `5.2s` between two times; running ones count to `now`.
pub(crate) fn duration(start: i64, end: i64, now: i64) -> String {
    if start <= 0 {
        return "—".into();
    }
    let end = if end > 0 { end } else { now };
    let ms = (end - start).max(0);
    let s = ms / 1000;
    match s {
        0..=59 => format!("{:.1}s", ms as f64 / 1000.0),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

/// The CSS class of a state (colours and icons live in the stylesheet).
pub(crate) fn state_class(state: RuntimeState) -> &'static str {
    match state {
        RuntimeState::Pending | RuntimeState::Paused => "pending",
        RuntimeState::Running | RuntimeState::Canceling => "running",
        RuntimeState::Succeeded => "succeeded",
        RuntimeState::Skipped => "skipped",
        RuntimeState::Failed => "failed",
        RuntimeState::Canceled => "canceled",
    }
}

/// A JSON value as a person reads it: strings bare, everything else as compact JSON.
pub(crate) fn value_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Percent-encodes a query value.
pub(crate) fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(0, 10, 20), "—");
        assert_eq!(duration(1_000, 6_200, 0), "5.2s");
        assert_eq!(duration(1, 125_001, 0), "2m 5s");
        assert_eq!(duration(1, 3_723_001, 0), "1h 2m");
        assert_eq!(duration(1_000, 0, 3_000), "2.0s");
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(query_escape("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
