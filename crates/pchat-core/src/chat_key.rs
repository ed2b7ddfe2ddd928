//! The session key of end-to-end encryption as it travels (docs/e2ee.md): a client puts the
//! public half of its per-session X25519 key in the signed metadata of its token request, the
//! gatekeeper copies it into the LiveKit token's participant attributes, and every peer in the
//! room reads it there.
//!
//! One spelling only: 64 **lower-case** hexadecimal digits (32 bytes). Why so strict: a
//! signed-fetch request signed in the legacy format authenticates the lower-cased request
//! string, so a key whose letters' case mattered (base64) would not be fully covered by the
//! signature; with lower-case hex the signed text and the key are the same thing. The same
//! parser is used by the gatekeeper (on the metadata) and by the clients (on the attribute).

use std::fmt;

/// The field of the signed-fetch metadata (`x-identity-metadata`) that carries the key.
pub const METADATA_FIELD: &str = "chat_key";
/// The LiveKit participant attribute that carries the key.
pub const ATTRIBUTE: &str = "chat_key";
/// Length of a key in bytes (X25519).
pub const KEY_BYTES: usize = 32;
/// Length of a key as text.
pub const KEY_HEX_LEN: usize = 2 * KEY_BYTES;

/// A peer's public session key, as published (the bytes of an X25519 public key).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChatKey([u8; KEY_BYTES]);

/// Why a text is not a session key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadChatKey {
    #[error("chat_key must be a string")]
    NotAString,
    #[error("chat_key must be {KEY_HEX_LEN} hex digits, got {0} characters")]
    WrongLength(usize),
    #[error("chat_key must be lower-case hex digits (0-9, a-f) only")]
    NotLowerHex,
    #[error("chat_key must not be all zeros")]
    AllZero,
}

impl ChatKey {
    /// Parses the published form (64 lower-case hex digits).
    pub fn parse(text: &str) -> Result<ChatKey, BadChatKey> {
        if text.len() != KEY_HEX_LEN {
            return Err(BadChatKey::WrongLength(text.chars().count()));
        }
        // `hex` also reads upper case: only the one spelling passes.
        if !text.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(BadChatKey::NotLowerHex);
        }
        let mut out = [0u8; KEY_BYTES];
        hex::decode_to_slice(text, &mut out).map_err(|_| BadChatKey::NotLowerHex)?;
        if out == [0u8; KEY_BYTES] {
            return Err(BadChatKey::AllZero);
        }
        Ok(ChatKey(out))
    }

    /// Reads the key from a signed-fetch metadata object: `Ok(None)` when the field is absent
    /// (a client without encryption, such as the reference client), an error when it is present
    /// but not a key.
    pub fn from_metadata(
        metadata: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<ChatKey>, BadChatKey> {
        match metadata.get(METADATA_FIELD) {
            None => Ok(None),
            Some(serde_json::Value::String(s)) => ChatKey::parse(s).map(Some),
            Some(_) => Err(BadChatKey::NotAString),
        }
    }

    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> ChatKey {
        ChatKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_BYTES] {
        &self.0
    }

    /// The published form: 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// A short form to show a person (the first 8 hex digits), e.g. to compare keys by eye.
    pub fn fingerprint(&self) -> String {
        self.to_hex()[..8].to_owned()
    }
}

impl fmt::Debug for ChatKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChatKey({})", self.to_hex())
    }
}

impl fmt::Display for ChatKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_spelling_round_trips_and_others_are_refused() {
        let hex = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
        let key = ChatKey::parse(hex).expect("a key");
        assert_eq!(key.to_hex(), hex);
        assert_eq!(key.fingerprint(), "8520f009");
        assert_eq!(
            ChatKey::parse(&hex.to_uppercase()),
            Err(BadChatKey::NotLowerHex)
        );
        assert_eq!(ChatKey::parse(&hex[..62]), Err(BadChatKey::WrongLength(62)));
        assert_eq!(
            ChatKey::parse(&format!("{hex}00")),
            Err(BadChatKey::WrongLength(66))
        );
        assert_eq!(ChatKey::parse(&"0".repeat(64)), Err(BadChatKey::AllZero));
        let mut bad = hex.to_owned();
        bad.replace_range(0..1, "g");
        assert_eq!(ChatKey::parse(&bad), Err(BadChatKey::NotLowerHex));
        // Multi-byte text of the right byte length is not hex either (and does not panic).
        let wide = format!("é{}", &hex[2..]);
        assert_eq!(ChatKey::parse(&wide), Err(BadChatKey::NotLowerHex));
    }

    #[test]
    fn the_metadata_field_is_optional_but_checked() {
        let map = |s: &str| match serde_json::from_str(s) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => panic!("an object"),
        };
        assert_eq!(
            ChatKey::from_metadata(&map(r#"{"signer":"dcl:explorer"}"#)),
            Ok(None)
        );
        assert_eq!(
            ChatKey::from_metadata(&map(r#"{"chat_key":7}"#)),
            Err(BadChatKey::NotAString)
        );
        assert_eq!(
            ChatKey::from_metadata(&map(r#"{"chat_key":"ab"}"#)),
            Err(BadChatKey::WrongLength(2))
        );
        let hex = "11".repeat(32);
        assert_eq!(
            ChatKey::from_metadata(&map(&format!(r#"{{"chat_key":"{hex}"}}"#))),
            Ok(Some(ChatKey::from_bytes([0x11; 32])))
        );
    }
}
