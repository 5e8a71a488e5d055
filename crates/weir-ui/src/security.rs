//! What every UI response carries and every state-changing request must show.
//!
//! Cross-site requests: a POST must come from a page of this origin (`Sec-Fetch-Site`, and
//! `Origin` where the browser sends it) and carry the token of the `weir_csrf` cookie (double
//! submit: a form field, an `X-Weir-Csrf` header, or for file uploads the `csrf` query
//! parameter). The cookie is `SameSite=Strict` and `HttpOnly`: pages render the token into
//! their forms, no script reads it.
//!
//! Every response gets a Content-Security-Policy that allows this origin's scripts and styles
//! only (no inline script, no eval), frames only from this origin (the sandboxed artifact
//! viewer), and no framing of weir by others.

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub const CSRF_COOKIE: &str = "weir_csrf";
pub const CSRF_HEADER: &str = "x-weir-csrf";
pub const CSRF_FIELD: &str = "csrf";

/// The largest form body the guard reads to find the token (file uploads carry it in the URL).
const MAX_FORM_BYTES: usize = 4 << 20;

const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                        connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; \
                        frame-ancestors 'none'";

/// The token of this browser, as the guard found or made it (a request extension).
#[derive(Debug, Clone)]
pub(crate) struct CsrfToken(pub String);

/// The prefix this request's links get: the proxy's `X-Forwarded-Prefix` when it is a clean
/// path, else the configured base path.
#[derive(Debug, Clone)]
pub(crate) struct BasePath(pub String);

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == CSRF_COOKIE && value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| value.to_string())
    })
}

fn forbidden(message: &str) -> Response {
    (StatusCode::FORBIDDEN, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message.to_string()).into_response()
}

/// Whether the browser says this request came from another site.
fn cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" && site != "none" {
            return true;
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers
            .get("x-forwarded-host")
            .or_else(|| headers.get(header::HOST))
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("null");
        return origin_host != host;
    }
    false
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    url_pairs(body).find(|(k, _)| k == name).map(|(_, v)| v)
}

/// `application/x-www-form-urlencoded` pairs, decoded.
pub(crate) fn url_pairs(body: &[u8]) -> impl Iterator<Item = (String, String)> + '_ {
    body.split(|b| *b == b'&').filter(|p| !p.is_empty()).map(|pair| {
        let mut parts = pair.splitn(2, |b| *b == b'=');
        let key = percent_decode(parts.next().unwrap_or_default());
        let value = percent_decode(parts.next().unwrap_or_default());
        (key, value)
    })
}

fn percent_decode(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn base_path(headers: &HeaderMap, configured: &str) -> String {
    headers
        .get("x-forwarded-prefix")
        .and_then(|v| v.to_str().ok())
        .and_then(|p| crate::state::normalise_base_path(p).ok())
        .unwrap_or_else(|| configured.to_string())
}

/// The middleware: checks state-changing requests, hands handlers the token and base path,
/// and sets the cookie and security headers on the way out.
pub(crate) async fn guard(
    axum::extract::State(ui): axum::extract::State<crate::state::Ui>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let existing = cookie_token(&parts.headers);
    let token = existing.clone().unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let mut body = body;
    if parts.method != Method::GET && parts.method != Method::HEAD {
        if cross_site(&parts.headers) {
            return forbidden("cross-site request refused");
        }
        let Some(expected) = existing.as_deref() else {
            return forbidden("missing CSRF cookie: reload the page and try again");
        };
        let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mut shown = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
        if shown.is_none() {
            if let Some(query) = parts.uri.query() {
                shown = form_field(query.as_bytes(), CSRF_FIELD);
            }
        }
        if shown.is_none() && content_type.starts_with("application/x-www-form-urlencoded") {
            let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
                return (StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response();
            };
            shown = form_field(&bytes, CSRF_FIELD);
            body = Body::from(bytes);
        }
        if shown.as_deref() != Some(expected) {
            return forbidden("missing or wrong CSRF token: reload the page and try again");
        }
    }
    let started = std::time::Instant::now();
    let (method, path) = (parts.method.clone(), parts.uri.path().to_string());
    parts.extensions.insert(CsrfToken(token.clone()));
    parts.extensions.insert(BasePath(base_path(&parts.headers, &ui.config.base_path)));
    let mut response = next.run(Request::from_parts(parts, body)).await;
    tracing::debug!(
        http.method = %method, http.path = %path, http.status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0, "ui request"
    );
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if existing.is_none() {
        let cookie = format!("{CSRF_COOKIE}={token}; Path=/; SameSite=Strict; HttpOnly");
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_are_decoded() {
        assert_eq!(form_field(b"a=1&csrf=ab%2Fc+d&b=2", "csrf").as_deref(), Some("ab/c d"));
        assert_eq!(form_field(b"a=1", "csrf"), None);
        assert_eq!(percent_decode(b"100%"), "100%");
        assert_eq!(percent_decode(b"%zz"), "%zz");
    }

    #[test]
    fn cross_site_requests_are_recognised() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("weir:8888"));
        assert!(!cross_site(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://weir:8888"));
        assert!(!cross_site(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(cross_site(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://weir:8888"));
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site(&headers));
    }
}
