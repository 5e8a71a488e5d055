//! What the UI's handlers share: the services, and how the UI is served.

use std::sync::Arc;

use weir_service::Services;

/// How the UI is served.
#[derive(Debug, Clone, Default)]
pub struct UiConfig {
    /// The path prefix weir is served under behind a reverse proxy that does not send
    /// `X-Forwarded-Prefix` (empty: at the root). No trailing slash.
    pub base_path: String,
    /// The time zone recurring runs fire in, for their next fire times.
    pub timezone: chrono_tz::Tz,
}

#[derive(Clone)]
pub(crate) struct Ui {
    pub services: Services,
    pub config: Arc<UiConfig>,
}

/// Normalises a configured base path: `"/ml/"` and `"ml"` both become `"/ml"`, `"/"` and `""`
/// the root. Anything but path segments of unreserved characters is refused.
pub fn normalise_base_path(path: &str) -> Result<String, String> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let ok = trimmed.split('/').all(|segment| {
        !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    });
    if !ok {
        return Err(format!("UI base path {path:?} must be path segments of letters, digits and -._~"));
    }
    Ok(format!("/{trimmed}"))
}
