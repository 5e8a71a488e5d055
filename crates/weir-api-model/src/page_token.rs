//! Opaque page tokens for keyset paging.
//!
//! A token carries the sort key, direction, the last row's sort value and id, and a digest of
//! the filter it was made for, so a page boundary stays correct while rows are inserted and a
//! token cannot be replayed against another query.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid page token: {0}")]
pub struct PageTokenError(pub String);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// API name of the sort field.
    #[serde(rename = "k")]
    pub sort_key: String,
    #[serde(rename = "d")]
    pub descending: bool,
    /// Sort value of the last row returned.
    #[serde(rename = "v")]
    pub last_value: Value,
    /// Primary key of the last row returned (tie-breaker).
    #[serde(rename = "i")]
    pub last_id: String,
    /// The filter text the token belongs to.
    #[serde(rename = "f")]
    pub filter: String,
    /// Scope the list was made in (for example the parent pipeline id).
    #[serde(rename = "s", default)]
    pub scope: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    pub fn decode(token: &str) -> Result<Self, PageTokenError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token.trim_end_matches('='))
            .map_err(|_| PageTokenError("not a token issued by this server".into()))?;
        serde_json::from_slice(&bytes).map_err(|_| PageTokenError("not a token issued by this server".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let c = Cursor {
            sort_key: "created_at".into(),
            descending: true,
            last_value: Value::from(17),
            last_id: "abc".into(),
            filter: String::new(),
            scope: "p".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(Cursor::decode("!!!").is_err());
        assert!(Cursor::decode("aGVsbG8").is_err());
    }
}
