//! Signed fetch (ADR-44 over HTTP headers): the header names, the signed request string in its
//! two formats, and parsing of the headers a client sent.

use serde_json::{Map, Value};

use crate::error::AuthError;
use crate::link::AuthLink;

/// Header name prefix of the chain links: `x-identity-auth-chain-0`, `-1`, …
pub const CHAIN_HEADER_PREFIX: &str = "x-identity-auth-chain-";
/// Header carrying the request time in unix milliseconds.
pub const TIMESTAMP_HEADER: &str = "x-identity-timestamp";
/// Header carrying the request metadata (a compact JSON object).
pub const METADATA_HEADER: &str = "x-identity-metadata";
/// The most links a chain may have.
pub const MAX_CHAIN_LINKS: usize = 10;
/// The longest value accepted for one link header, in bytes. Real links are a few hundred bytes.
pub const MAX_LINK_HEADER_BYTES: usize = 4096;
/// The longest metadata header accepted, in bytes.
pub const MAX_METADATA_HEADER_BYTES: usize = 4096;

/// The name of chain header `index`.
pub fn chain_header_name(index: usize) -> String {
    format!("{CHAIN_HEADER_PREFIX}{index}")
}

/// Which request-string format a signature was made over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFormat {
    /// middleware 6.x: `method.lower:path.lower:timestamp:metadata` (metadata verbatim).
    V6,
    /// ADR-44 / middleware ≤ 5.x: the whole `method:path:timestamp:metadata` lower-cased.
    Legacy,
}

/// The current (6.x) request string. `path` is the URL path only (no query, no fragment).
pub fn payload_v6(method: &str, path: &str, timestamp: &str, metadata: &str) -> String {
    format!(
        "{}:{}:{}:{}",
        method.to_lowercase(),
        path.to_lowercase(),
        timestamp.to_lowercase(),
        metadata
    )
}

/// The legacy request string: everything lower-cased.
pub fn payload_legacy(method: &str, path: &str, timestamp: &str, metadata: &str) -> String {
    format!("{method}:{path}:{timestamp}:{metadata}").to_lowercase()
}

/// The signed-fetch headers of one request, parsed but not yet verified.
#[derive(Debug, Clone)]
pub struct SignedHeaders {
    pub chain: Vec<AuthLink>,
    /// The timestamp exactly as sent (it is part of the signed string).
    pub timestamp_raw: String,
    /// The timestamp in unix milliseconds.
    pub timestamp_ms: i64,
    /// The metadata exactly as sent (`""` when the header is absent).
    pub metadata_raw: String,
    /// The metadata parsed (`{}` when the header is absent).
    pub metadata: Map<String, Value>,
}

impl SignedHeaders {
    /// Parses the signed-fetch headers. `get` returns a header's value by lower-case name.
    ///
    /// Errors are all 400s: a missing first link, fewer than two or more than
    /// [`MAX_CHAIN_LINKS`] links, a link that is not JSON, a missing or non-numeric timestamp,
    /// metadata that is not a JSON object, or an oversized header.
    pub fn parse<'a, F>(get: F) -> Result<Self, AuthError>
    where
        F: Fn(&str) -> Option<&'a str>,
    {
        let mut chain = Vec::new();
        for index in 0..=MAX_CHAIN_LINKS {
            let Some(raw) = get(&chain_header_name(index)) else {
                break;
            };
            if index == MAX_CHAIN_LINKS {
                return Err(AuthError::TooManyLinks {
                    max: MAX_CHAIN_LINKS,
                });
            }
            chain.push(parse_link(index, raw)?);
        }
        if chain.is_empty() {
            return Err(AuthError::MissingChain);
        }
        if chain.len() < 2 {
            return Err(AuthError::TooFewLinks(chain.len()));
        }

        let timestamp_raw = get(TIMESTAMP_HEADER).ok_or(AuthError::MissingTimestamp)?;
        let timestamp_ms = parse_timestamp(timestamp_raw)?;

        let metadata_raw = get(METADATA_HEADER).unwrap_or("");
        let metadata = parse_metadata(metadata_raw)?;

        Ok(SignedHeaders {
            chain,
            timestamp_raw: timestamp_raw.to_owned(),
            timestamp_ms,
            metadata_raw: metadata_raw.to_owned(),
            metadata,
        })
    }

    /// The two request strings this request may have been signed over, v6 first.
    pub fn payload_candidates(&self, method: &str, path: &str) -> [(PayloadFormat, String); 2] {
        [
            (
                PayloadFormat::V6,
                payload_v6(method, path, &self.timestamp_raw, &self.metadata_raw),
            ),
            (
                PayloadFormat::Legacy,
                payload_legacy(method, path, &self.timestamp_raw, &self.metadata_raw),
            ),
        ]
    }
}

fn parse_link(index: usize, raw: &str) -> Result<AuthLink, AuthError> {
    if raw.len() > MAX_LINK_HEADER_BYTES {
        return Err(AuthError::MalformedLink {
            index,
            reason: format!("link is longer than {MAX_LINK_HEADER_BYTES} bytes"),
        });
    }
    serde_json::from_str::<AuthLink>(raw).map_err(|e| AuthError::MalformedLink {
        index,
        reason: e.to_string(),
    })
}

/// Parses a decimal unix-millisecond timestamp.
pub fn parse_timestamp(raw: &str) -> Result<i64, AuthError> {
    if raw.is_empty() || raw.len() > 16 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AuthError::InvalidTimestamp(truncate(raw, 64)));
    }
    raw.parse::<i64>()
        .map_err(|_| AuthError::InvalidTimestamp(truncate(raw, 64)))
}

/// Parses the metadata header: empty means `{}`, otherwise it must be a JSON object.
pub fn parse_metadata(raw: &str) -> Result<Map<String, Value>, AuthError> {
    if raw.is_empty() {
        return Ok(Map::new());
    }
    if raw.len() > MAX_METADATA_HEADER_BYTES {
        return Err(AuthError::InvalidMetadata(format!(
            "longer than {MAX_METADATA_HEADER_BYTES} bytes"
        )));
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(AuthError::InvalidMetadata("not a JSON object".into())),
        Err(e) => Err(AuthError::InvalidMetadata(e.to_string())),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(h: &HashMap<String, String>) -> Result<SignedHeaders, AuthError> {
        SignedHeaders::parse(|n| h.get(n).map(String::as_str))
    }

    fn link() -> String {
        r#"{"type":"SIGNER","payload":"0x23c86705dd3a3855d939322c53379d42a4e365ee","signature":""}"#
            .into()
    }

    #[test]
    fn formats_differ_only_in_case_folding() {
        assert_eq!(
            payload_v6("GET", "/A", "1", "{\"X\":1}"),
            "get:/a:1:{\"X\":1}"
        );
        assert_eq!(
            payload_legacy("GET", "/A", "1", "{\"X\":1}"),
            "get:/a:1:{\"x\":1}"
        );
    }

    #[test]
    fn rejects_bad_header_sets_with_400() {
        let mut h = HashMap::new();
        assert_eq!(parse(&h).unwrap_err(), AuthError::MissingChain);
        h.insert(chain_header_name(0), link());
        assert_eq!(parse(&h).unwrap_err(), AuthError::TooFewLinks(1));
        h.insert(chain_header_name(1), link());
        assert_eq!(parse(&h).unwrap_err(), AuthError::MissingTimestamp);
        h.insert(TIMESTAMP_HEADER.into(), "-5".into());
        assert!(matches!(
            parse(&h).unwrap_err(),
            AuthError::InvalidTimestamp(_)
        ));
        h.insert(TIMESTAMP_HEADER.into(), "99999999999999999999".into());
        assert!(matches!(
            parse(&h).unwrap_err(),
            AuthError::InvalidTimestamp(_)
        ));
        h.insert(TIMESTAMP_HEADER.into(), "1000".into());
        assert!(parse(&h).is_ok());
        h.insert(METADATA_HEADER.into(), "[1]".into());
        assert!(matches!(
            parse(&h).unwrap_err(),
            AuthError::InvalidMetadata(_)
        ));
        h.insert(METADATA_HEADER.into(), "{".into());
        assert!(matches!(
            parse(&h).unwrap_err(),
            AuthError::InvalidMetadata(_)
        ));
        h.insert(METADATA_HEADER.into(), "{}".into());
        for i in 2..=10 {
            h.insert(chain_header_name(i), link());
        }
        assert_eq!(parse(&h).unwrap_err(), AuthError::TooManyLinks { max: 10 });
        h.insert(chain_header_name(1), "{\"type\":1}".into());
        let err = parse(&h).unwrap_err();
        assert!(
            matches!(err, AuthError::MalformedLink { index: 1, .. }),
            "{err:?}"
        );
        assert_eq!(err.status(), 400);
        h.insert(chain_header_name(1), "x".repeat(70_000));
        assert!(matches!(
            parse(&h).unwrap_err(),
            AuthError::MalformedLink { index: 1, .. }
        ));
    }
}
