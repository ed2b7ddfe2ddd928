//! Domain types shared across the private-chat workspace (the "core" layer): the private
//! message privacy setting, wallet-address normalisation, and the sharded rooms' names and
//! home rooms ([`rooms`]), and the published form of an end-to-end encryption session key
//! ([`chat_key`]). No I/O.

pub mod chat_key;
pub mod rooms;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Who may send a user private messages (`social_settings.private_messages_privacy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Privacy {
    /// Anyone on the platform (the default for users without settings).
    #[default]
    All,
    /// Only friends.
    OnlyFriends,
}

impl Privacy {
    pub const fn as_str(self) -> &'static str {
        match self {
            Privacy::All => "all",
            Privacy::OnlyFriends => "only_friends",
        }
    }

    /// The LiveKit participant metadata that carries this setting:
    /// `{"private_messages_privacy":"<value>"}`.
    pub fn participant_metadata(self) -> String {
        format!("{{\"private_messages_privacy\":\"{}\"}}", self.as_str())
    }

    /// Reads the setting from participant metadata; `None` when absent or unknown.
    pub fn from_participant_metadata(metadata: &str) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_str(metadata).ok()?;
        value
            .get("private_messages_privacy")?
            .as_str()?
            .parse()
            .ok()
    }
}

/// An unknown privacy value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid private_messages_privacy: expected \"all\" or \"only_friends\"")]
pub struct InvalidPrivacy;

impl FromStr for Privacy {
    type Err = InvalidPrivacy;

    /// Case-insensitive, as the reference gatekeeper accepts it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("all") {
            Ok(Privacy::All)
        } else if s.eq_ignore_ascii_case("only_friends") {
            Ok(Privacy::OnlyFriends)
        } else {
            Err(InvalidPrivacy)
        }
    }
}

impl fmt::Display for Privacy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An address that is not `0x` + 40 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid address")]
pub struct InvalidAddress;

/// Validates a wallet address and returns it lower-cased (the form used as LiveKit identity and
/// database key).
pub fn normalize_address(s: &str) -> Result<String, InvalidAddress> {
    normalize_address_owned(s.to_owned()).map_err(|_| InvalidAddress)
}

/// An address that is not `0x` + 40 hex digits, handed back by [`normalize_address_owned`] so
/// that the caller can name it without a copy. Its `Debug` is the text's own (quoted and
/// escaped), the form error answers quote it in.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid address {0:?}")]
pub struct NotAnAddress(pub String);

impl fmt::Debug for NotAnAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// [`normalize_address`] reusing the string it is given (no allocation); an invalid address is
/// handed back in the error.
pub fn normalize_address_owned(mut s: String) -> Result<String, NotAnAddress> {
    let valid = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .is_some_and(|digits| digits.len() == 40 && digits.bytes().all(|b| b.is_ascii_hexdigit()));
    if !valid {
        return Err(NotAnAddress(s));
    }
    s.make_ascii_lowercase();
    Ok(s)
}

/// The gatekeeper's answer (400, `{"ok":false,"message":…}`) to a privacy update for a user who
/// is not in the private-messages room, word for word as the reference gatekeeper writes it.
/// Our gatekeeper answers with it and the social service recognises it by it (a user who is not
/// in the room has no metadata to update; their next token carries the new value).
pub const PARTICIPANT_NOT_CONNECTED: &str = "Participant is not connected to the room";

/// The current time in milliseconds since the Unix epoch (UTC); 0 if the clock is before it.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privacy_parses_case_insensitively_and_serialises_lower() {
        assert_eq!("ALL".parse::<Privacy>(), Ok(Privacy::All));
        assert_eq!("Only_Friends".parse::<Privacy>(), Ok(Privacy::OnlyFriends));
        assert!("friends".parse::<Privacy>().is_err());
        assert_eq!(
            Privacy::OnlyFriends.participant_metadata(),
            r#"{"private_messages_privacy":"only_friends"}"#
        );
        assert_eq!(
            Privacy::from_participant_metadata(r#"{"private_messages_privacy":"all"}"#),
            Some(Privacy::All)
        );
        assert_eq!(Privacy::from_participant_metadata("not json"), None);
    }

    #[test]
    fn addresses_normalise_to_lower_case() {
        assert_eq!(
            normalize_address("0x23C86705Dd3a3855D939322C53379d42A4E365ee"),
            Ok("0x23c86705dd3a3855d939322c53379d42a4e365ee".into())
        );
        for bad in [
            "",
            "0x",
            "23c86705dd3a3855d939322c53379d42a4e365ee",
            "0x23c8",
            "0xzz86705dd3a3855d939322c53379d42a4e365ee",
        ] {
            assert_eq!(normalize_address(bad), Err(InvalidAddress), "{bad}");
        }
    }

    #[test]
    fn an_invalid_owned_address_comes_back_in_its_error() {
        let err = normalize_address_owned("0x23c8\n".to_owned()).expect_err("too short");
        assert_eq!(err, NotAnAddress("0x23c8\n".to_owned()));
        // Quoted as error answers quote it (`invalid address "0x23c8\n"`).
        assert_eq!(format!("{err:?}"), r#""0x23c8\n""#);
        assert_eq!(
            normalize_address_owned("0X23C86705DD3A3855D939322C53379D42A4E365EE".to_owned()),
            Ok("0x23c86705dd3a3855d939322c53379d42a4e365ee".to_owned())
        );
    }
}
