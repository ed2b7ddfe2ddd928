//! Auth-chain links and the ephemeral-key delegation text.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::crypto::Address;
use crate::error::EphemeralPayloadError;

/// The link types of ADR-44.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    Signer,
    EcdsaEphemeral,
    EcdsaSignedEntity,
    Eip1654Ephemeral,
    Eip1654SignedEntity,
}

impl LinkType {
    pub const fn as_str(self) -> &'static str {
        match self {
            LinkType::Signer => "SIGNER",
            LinkType::EcdsaEphemeral => "ECDSA_EPHEMERAL",
            LinkType::EcdsaSignedEntity => "ECDSA_SIGNED_ENTITY",
            LinkType::Eip1654Ephemeral => "ECDSA_EIP_1654_EPHEMERAL",
            LinkType::Eip1654SignedEntity => "ECDSA_EIP_1654_SIGNED_ENTITY",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "SIGNER" => LinkType::Signer,
            "ECDSA_EPHEMERAL" => LinkType::EcdsaEphemeral,
            "ECDSA_SIGNED_ENTITY" => LinkType::EcdsaSignedEntity,
            "ECDSA_EIP_1654_EPHEMERAL" => LinkType::Eip1654Ephemeral,
            "ECDSA_EIP_1654_SIGNED_ENTITY" => LinkType::Eip1654SignedEntity,
            _ => return None,
        })
    }

    /// True for the contract-wallet (EIP-1654) link types.
    pub const fn is_contract_wallet(self) -> bool {
        matches!(
            self,
            LinkType::Eip1654Ephemeral | LinkType::Eip1654SignedEntity
        )
    }
}

/// One link of an auth chain, serialised as `{"type","payload","signature"}` in that order.
///
/// The type is kept as text so that an unknown type is reported by the verifier (401, like the
/// reference) rather than as a JSON error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthLink {
    #[serde(rename = "type")]
    pub kind: String,
    pub payload: String,
    #[serde(default)]
    pub signature: String,
}

impl AuthLink {
    pub fn new(kind: LinkType, payload: impl Into<String>, signature: impl Into<String>) -> Self {
        AuthLink {
            kind: kind.as_str().to_owned(),
            payload: payload.into(),
            signature: signature.into(),
        }
    }

    pub fn link_type(&self) -> Option<LinkType> {
        LinkType::parse(&self.kind)
    }

    /// Compact JSON, the form carried in an `x-identity-auth-chain-N` header.
    pub fn to_json(&self) -> String {
        // Serialising a struct of three strings cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The first line of an ephemeral delegation.
pub const EPHEMERAL_TITLE: &str = "Decentraland Login";
const EPHEMERAL_ADDRESS_PREFIX: &str = "Ephemeral address: ";
const EXPIRATION_PREFIX: &str = "Expiration: ";

/// Formats a time the way JavaScript's `Date.prototype.toISOString` does
/// (`2026-12-26T06:21:42.915Z`).
pub fn js_iso_string(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The text an owner signs to delegate to an ephemeral key.
pub fn ephemeral_message(ephemeral: &Address, expiration: DateTime<Utc>) -> String {
    format!(
        "{EPHEMERAL_TITLE}\n{EPHEMERAL_ADDRESS_PREFIX}{}\n{EXPIRATION_PREFIX}{}",
        ephemeral.to_checksum(),
        js_iso_string(expiration)
    )
}

/// A parsed ephemeral delegation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EphemeralPayload {
    pub address: Address,
    /// Expiration in unix milliseconds, read by [`crate::jsdate::parse_js_date`]; `None` when
    /// the date cannot be read (the verifier then refuses the link with a 401, like the reference).
    pub expires_at_ms: Option<i64>,
}

/// The delegation text as the reference reads it and checks its signature: with every carriage
/// return removed (so CRLF line ends read as LF, and the owner must have signed the text
/// without them).
pub fn delegation_text(payload: &str) -> Cow<'_, str> {
    if payload.contains('\r') {
        Cow::Owned(payload.replace('\r', ""))
    } else {
        Cow::Borrowed(payload)
    }
}

/// Parses an ephemeral delegation text (after [`delegation_text`]): at least three lines, the
/// second starting with `Ephemeral address: `, the third with `Expiration: `.
pub fn parse_ephemeral_message(payload: &str) -> Result<EphemeralPayload, EphemeralPayloadError> {
    let mut lines = payload.split('\n');
    let _title = lines.next();
    let address_line = lines.next().ok_or(EphemeralPayloadError::TooFewLines)?;
    let expiration_line = lines.next().ok_or(EphemeralPayloadError::TooFewLines)?;
    let address = address_line
        .strip_prefix(EPHEMERAL_ADDRESS_PREFIX)
        .ok_or(EphemeralPayloadError::NoAddressLine)?;
    let expiration = expiration_line
        .strip_prefix(EXPIRATION_PREFIX)
        .ok_or(EphemeralPayloadError::NoExpirationLine)?;
    // Not trimmed: the reference compares the text after the prefix as it is.
    let address: Address = address
        .parse()
        .map_err(|_| EphemeralPayloadError::InvalidAddress)?;
    // The reference passes the rest of the line, untrimmed, to JavaScript's date parser.
    let expires_at_ms = crate::jsdate::parse_js_date(expiration);
    Ok(EphemeralPayload {
        address,
        expires_at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ephemeral_message_round_trips() {
        let addr: Address = "0xe1F58938a4C99500b8E73f8B7d9b96432Dea6254"
            .parse()
            .expect("addr");
        let t = DateTime::parse_from_rfc3339("2026-12-26T06:21:42.915Z")
            .expect("t")
            .to_utc();
        let text = ephemeral_message(&addr, t);
        assert_eq!(
            text,
            "Decentraland Login\nEphemeral address: 0xe1F58938a4C99500b8E73f8B7d9b96432Dea6254\nExpiration: 2026-12-26T06:21:42.915Z"
        );
        let parsed = parse_ephemeral_message(&text).expect("parses");
        assert_eq!(parsed.address, addr);
        assert_eq!(parsed.expires_at_ms, Some(t.timestamp_millis()));
    }

    #[test]
    fn malformed_ephemeral_messages_are_rejected() {
        assert!(parse_ephemeral_message("Decentraland Login").is_err());
        assert!(parse_ephemeral_message("a\nb\nc").is_err());
        assert!(parse_ephemeral_message("a\nEphemeral address: 0x12\nExpiration: x").is_err());
        let bad_date =
            "a\nEphemeral address: 0xe1F58938a4C99500b8E73f8B7d9b96432Dea6254\nExpiration: soon";
        assert_eq!(
            parse_ephemeral_message(bad_date)
                .expect("parses")
                .expires_at_ms,
            None
        );
    }

    #[test]
    fn each_malformed_ephemeral_message_says_what_is_wrong() {
        use EphemeralPayloadError::*;
        let address = "0xe1F58938a4C99500b8E73f8B7d9b96432Dea6254";
        for (text, expected) in [
            ("Decentraland Login".to_owned(), TooFewLines),
            (format!("a\nEphemeral address: {address}"), TooFewLines),
            ("a\nb\nExpiration: soon".to_owned(), NoAddressLine),
            (
                format!("a\nEphemeral address: {address}\nc"),
                NoExpirationLine,
            ),
            (
                "a\nEphemeral address: 0x12\nExpiration: x".to_owned(),
                InvalidAddress,
            ),
        ] {
            assert_eq!(parse_ephemeral_message(&text), Err(expected), "{text:?}");
        }
    }

    #[test]
    fn delegation_text_drops_carriage_returns() {
        assert_eq!(delegation_text("a\r\nb\r\nc"), "a\nb\nc");
        assert!(matches!(delegation_text("a\nb"), Cow::Borrowed("a\nb")));
    }

    #[test]
    fn expiration_is_read_like_javascript() {
        let text = |exp: &str| {
            format!(
                "Decentraland Login\nEphemeral address: 0xe1F58938a4C99500b8E73f8B7d9b96432Dea6254\nExpiration: {exp}"
            )
        };
        let at = |exp: &str| {
            parse_ephemeral_message(&text(exp))
                .expect("parses")
                .expires_at_ms
        };
        // Values from Date.parse in Node 20 (TZ=UTC).
        assert_eq!(at("2099-01-01"), Some(4_070_908_800_000));
        assert_eq!(at("2099"), Some(4_070_908_800_000));
        assert_eq!(at("2099-01-01T00:00:00+02:00"), Some(4_070_901_600_000));
        assert_eq!(at("+002099-01-01T00:00:00Z"), Some(4_070_908_800_000));
        assert_eq!(at("2099-01-01T00:00:00"), Some(4_070_908_800_000));
        assert_eq!(at("soon"), None);
        assert_eq!(at("2099/01/01"), None);
    }

    #[test]
    fn links_serialise_in_reference_key_order() {
        let l = AuthLink::new(LinkType::Signer, "0xabc", "");
        assert_eq!(
            l.to_json(),
            r#"{"type":"SIGNER","payload":"0xabc","signature":""}"#
        );
    }
}
