//! A private message, and a reaction to one, on the wire.
//!
//! The reference client sends `decentraland.kernel.comms.rfc4.Packet { chat = 5: Chat { message
//! = 1, timestamp = 2 (double, an OLE date), forwarded_from = 3 (optional, left empty) },
//! protocol_version = 11 }` with protocol version 100, reliably, with the LiveKit topic and the
//! destination identity set to the recipient's address; it drops packets of any other protocol
//! version. A reaction to a message is the same `Packet` carrying `chat_reaction = 15:
//! ChatReaction { emoji_index = 1 (int32), message_id = 2 (string), address = 3 (string) }`,
//! also version 100, also reliable, also with topic and destination = the recipient (see
//! [`crate::reaction`] for what the fields hold). The types below are our own declaration of
//! that subset of the protocol (`@dcl/protocol`'s `rfc4/comms.proto`; the other `Packet`
//! variants are unknown fields here, so such a packet decodes with no message).
//!
//! ## Our extension: delivery receipts
//!
//! Two fields the reference client does not have, with field numbers far above upstream's
//! (`Packet` uses 1-17 and `Chat` 1-3 today), so that they never collide with a future upstream
//! field and every protobuf decoder that follows the standard (the reference client's C#
//! `Google.Protobuf`, `@dcl/protocol`'s ts-proto code) skips them as unknown fields:
//!
//! - `Chat.receipt_requested = 1000` (bool): the sender (our SDK) asks the receiver to confirm
//!   that the message was shown. A reference client ignores it and shows the message as usual;
//!   the text and timestamp are where they always are (tested against `@dcl/protocol`).
//! - `Packet.receipt = 1001`: `Receipt { message_id = 1 (string) }`, the confirmation, sent by
//!   our SDK reliably with topic and destination = the original sender, only for a message that
//!   asked for one. A reference client never asks, so it never receives one.
//!
//! The flag costs 3 bytes ([`RECEIPT_FLAG_BYTES`]): a text longer than
//! [`MAX_TEXT_BYTES_WITH_RECEIPT`] bytes goes without it (see [`encode_message`]). What the
//! receipts are for, and their bounds: [`crate::delivery`].
//!
//! ## Our extension: end-to-end encryption
//!
//! - `Packet.encrypted = 1002`: [`Encrypted`], a message or reaction sealed for one recipient
//!   (the format and its keys: [`crate::e2ee`], docs/e2ee.md). Same number block as the
//!   receipts (1000+, far from upstream's sequential 1-17; 1002 still has a 2-byte tag, as
//!   every number up to 2047, which matters for the per-message overhead). A reference client
//!   decodes it as a `Packet` with no message and shows nothing; our SDK only sends it to peers
//!   that published a key, i.e. to our own clients.

use std::time::SystemTime;

use prost::Message;

use crate::ole;

/// The protocol version of private messages.
pub const PROTOCOL_VERSION: u32 = 100;
/// Largest payload of one reliable data packet: `livekit-participant` refuses to send more
/// (`livekit_participant::packet::MAX_RELIABLE_PAYLOAD`, LiveKit's documented 15 KiB of user
/// data). The topic and the destination identities travel beside the payload in LiveKit's
/// `DataPacket` and are limited separately (256 bytes, 256 identities), so they do not count.
pub const MAX_PACKET_PAYLOAD: usize = 15 * 1024;
/// Bytes a chat packet adds around its text of 128 bytes or more (fewer for shorter text): the `Packet`
/// tag and 2-byte length (3), the `Chat` tag and 2-byte length of the text (3), the timestamp
/// (tag + 8-byte double: 9) and the protocol version (tag + 1-byte varint: 2).
pub const CHAT_FRAMING_BYTES: usize = 17;
/// Longest message text (UTF-8 bytes) we send or accept: the most that fits one packet
/// ([`MAX_PACKET_PAYLOAD`] - [`CHAT_FRAMING_BYTES`] = 15,343). The reference has no protocol
/// limit; its input box limits the length (see [`crate::outgoing`]).
pub const MAX_TEXT_BYTES: usize = MAX_PACKET_PAYLOAD - CHAT_FRAMING_BYTES;
/// Bytes `receipt_requested = true` adds to a chat packet: the 2-byte tag of field 1000 and the
/// 1-byte value (the `Chat` and `Packet` lengths stay 2-byte varints up to [`MAX_TEXT_BYTES`]).
pub const RECEIPT_FLAG_BYTES: usize = 3;
/// Longest text (UTF-8 bytes) that can ask for a receipt and still fit one packet.
pub const MAX_TEXT_BYTES_WITH_RECEIPT: usize = MAX_TEXT_BYTES - RECEIPT_FLAG_BYTES;
/// Longest message id a receipt may carry: `"0x" + 40 hex digits + ":" + a timestamp` is about
/// 60 bytes; anything much longer is not one of ours.
pub const MAX_RECEIPT_ID_BYTES: usize = 128;

/// `rfc4.Packet`, with only the `chat` and `chat_reaction` variants of its `message`, and our
/// `receipt` (see the module docs).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Packet {
    #[prost(oneof = "PacketMessage", tags = "5, 15, 1001, 1002")]
    pub message: Option<PacketMessage>,
    #[prost(uint32, tag = "11")]
    pub protocol_version: u32,
}

/// `Packet.message`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum PacketMessage {
    #[prost(message, tag = "5")]
    Chat(Chat),
    #[prost(message, tag = "15")]
    ChatReaction(ChatReaction),
    /// Our extension (not in `@dcl/protocol`): the receiver confirms a message.
    #[prost(message, tag = "1001")]
    Receipt(Receipt),
    /// Our extension (not in `@dcl/protocol`): a chat or reaction packet sealed for its
    /// recipient ([`crate::e2ee`]).
    #[prost(message, tag = "1002")]
    Encrypted(Encrypted),
}

/// Our extension: a `Packet` (its `chat` or `chat_reaction`) sealed for one recipient. See
/// [`crate::e2ee`] for the keys, the nonce and the associated data.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Encrypted {
    /// The HPKE encapsulated key (32 bytes) of the sender's context for this recipient.
    #[prost(bytes = "vec", tag = "1")]
    pub enc: Vec<u8>,
    /// The message's number in that context (the AEAD nonce is derived from it).
    #[prost(uint64, tag = "2")]
    pub seq: u64,
    /// The `Chat.timestamp` (OLE date), or the send time of a reaction: outside the ciphertext
    /// so that the associated data binds it (with the message id derived from it).
    #[prost(double, tag = "3")]
    pub timestamp: f64,
    /// ChaCha20-Poly1305 of the inner `Packet` (without its version and the chat's timestamp),
    /// with the 16-byte tag at the end.
    #[prost(bytes = "vec", tag = "4")]
    pub ciphertext: Vec<u8>,
}

/// Our extension: the confirmation that a message asking for one was shown.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Receipt {
    /// The message confirmed: `"{its sender}:{its timestamp}"`, as [`crate::message_id`] forms it.
    #[prost(string, tag = "1")]
    pub message_id: String,
}

/// `rfc4.ChatReaction`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ChatReaction {
    /// The emoji's index, or its bitwise complement (`!index`, negative) for a removal.
    #[prost(int32, tag = "1")]
    pub emoji_index: i32,
    /// The message reacted to: `"{its sender}:{its timestamp}"` (see [`crate::reaction`]).
    #[prost(string, tag = "2")]
    pub message_id: String,
    /// The reacting user's address, as the sender claims it.
    #[prost(string, tag = "3")]
    pub address: String,
}

/// `rfc4.Chat`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Chat {
    #[prost(string, tag = "1")]
    pub message: String,
    #[prost(double, tag = "2")]
    pub timestamp: f64,
    #[prost(string, optional, tag = "3")]
    pub forwarded_from: Option<String>,
    /// Our extension (not in `@dcl/protocol`): the sender asks for a [`Receipt`].
    #[prost(bool, tag = "1000")]
    pub receipt_requested: bool,
}

/// Why a payload is not a private message we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("not a comms packet: {0}")]
    Undecodable(String),
    #[error("not a chat packet")]
    NotChat,
    #[error("protocol version {0}, expected {PROTOCOL_VERSION}")]
    WrongVersion(u32),
    #[error("empty message")]
    Empty,
    #[error("message of {0} bytes is over the {MAX_TEXT_BYTES}-byte limit")]
    TooLong(usize),
    #[error("neither a chat message nor a chat reaction")]
    Unsupported,
    #[error("bad reaction: {0}")]
    BadReaction(#[from] crate::reaction::ReactionError),
    #[error("a receipt whose message id is empty or over {MAX_RECEIPT_ID_BYTES} bytes")]
    BadReceipt,
    #[error("an encrypted packet, to be opened first")]
    Encrypted,
}

/// What a received payload holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// A message (from a reference client, or one of ours that asks no receipt).
    Message(ChatMessage),
    /// A message whose sender asks for a receipt once it is shown.
    MessageWithReceipt(ChatMessage),
    Reaction(crate::reaction::Reaction),
    /// A receipt for the message with this id.
    Receipt(String),
}

/// A decoded private message.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub text: String,
    /// When the sender says it was sent (`None` if the timestamp is not a sensible date).
    pub sent_at: Option<SystemTime>,
    /// The raw OLE timestamp, as sent.
    pub timestamp: f64,
}

fn check_text(text: &str) -> Result<(), PacketError> {
    if text.trim().is_empty() {
        return Err(PacketError::Empty);
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(PacketError::TooLong(text.len()));
    }
    Ok(())
}

/// The payload for a private message sent at `now`, as the reference client sends it.
pub fn encode(text: &str, now: SystemTime) -> Result<Vec<u8>, PacketError> {
    encode_message(text, now, false).map(|(payload, _)| payload)
}

/// The payload for a private message sent at `now`, asking for a receipt if `want_receipt` and
/// the text is at most [`MAX_TEXT_BYTES_WITH_RECEIPT`] bytes (longer ones would not fit one
/// packet with the flag). The `bool` says whether the payload asks for a receipt.
pub fn encode_message(
    text: &str,
    now: SystemTime,
    want_receipt: bool,
) -> Result<(Vec<u8>, bool), PacketError> {
    check_text(text)?;
    let receipt_requested = want_receipt && text.len() <= MAX_TEXT_BYTES_WITH_RECEIPT;
    let payload = Packet {
        message: Some(PacketMessage::Chat(Chat {
            message: text.to_owned(),
            timestamp: ole::to_ole(now),
            forwarded_from: None,
            receipt_requested,
        })),
        protocol_version: PROTOCOL_VERSION,
    }
    .encode_to_vec();
    Ok((payload, receipt_requested))
}

/// The payload of a receipt for the message `message_id`.
pub fn encode_receipt(message_id: &str) -> Result<Vec<u8>, PacketError> {
    check_receipt_id(message_id)?;
    Ok(Packet {
        message: Some(PacketMessage::Receipt(Receipt {
            message_id: message_id.to_owned(),
        })),
        protocol_version: PROTOCOL_VERSION,
    }
    .encode_to_vec())
}

fn check_receipt_id(id: &str) -> Result<(), PacketError> {
    if id.is_empty() || id.len() > MAX_RECEIPT_ID_BYTES {
        return Err(PacketError::BadReceipt);
    }
    Ok(())
}

/// The private message in a received payload.
pub fn decode(payload: &[u8]) -> Result<ChatMessage, PacketError> {
    match decode_packet(payload)? {
        Some(PacketMessage::Chat(chat)) => chat_message(chat),
        Some(PacketMessage::Encrypted(_)) => Err(PacketError::Encrypted),
        Some(PacketMessage::ChatReaction(_) | PacketMessage::Receipt(_)) | None => {
            Err(PacketError::NotChat)
        }
    }
}

/// The payload for a reaction, as the reference client encodes it (see [`crate::reaction`]).
pub fn encode_reaction(reaction: &crate::reaction::Reaction) -> Result<Vec<u8>, PacketError> {
    reaction.validate()?;
    Ok(Packet {
        message: Some(PacketMessage::ChatReaction(reaction.to_wire())),
        protocol_version: PROTOCOL_VERSION,
    }
    .encode_to_vec())
}

/// The reaction in a received payload.
pub fn decode_reaction(payload: &[u8]) -> Result<crate::reaction::Reaction, PacketError> {
    match decode_packet(payload)? {
        Some(PacketMessage::ChatReaction(r)) => Ok(crate::reaction::Reaction::from_wire(r)?),
        Some(PacketMessage::Encrypted(_)) => Err(PacketError::Encrypted),
        Some(PacketMessage::Chat(_) | PacketMessage::Receipt(_)) | None => {
            Err(PacketError::Unsupported)
        }
    }
}

/// A received payload: a private message, a reaction or a receipt, each checked as [`decode`],
/// [`decode_reaction`] and [`encode_receipt`] check them.
pub fn decode_payload(payload: &[u8]) -> Result<Payload, PacketError> {
    match decode_packet(payload)? {
        Some(PacketMessage::Chat(chat)) => {
            if chat.receipt_requested {
                chat_message(chat).map(Payload::MessageWithReceipt)
            } else {
                chat_message(chat).map(Payload::Message)
            }
        }
        Some(PacketMessage::ChatReaction(r)) => {
            Ok(Payload::Reaction(crate::reaction::Reaction::from_wire(r)?))
        }
        Some(PacketMessage::Receipt(r)) => {
            check_receipt_id(&r.message_id)?;
            Ok(Payload::Receipt(r.message_id))
        }
        Some(PacketMessage::Encrypted(_)) => Err(PacketError::Encrypted),
        None => Err(PacketError::Unsupported),
    }
}

/// Whether `payload` is a version-100 packet carrying our [`Encrypted`] (to be opened with
/// [`crate::e2ee::E2ee::open`] before it is judged).
pub fn is_encrypted(payload: &[u8]) -> bool {
    matches!(
        decode_packet(payload),
        Ok(Some(PacketMessage::Encrypted(_)))
    )
}

/// The variant of a version-100 packet (`None`: another kind, e.g. a position, whose variant is
/// an unknown field here).
pub(crate) fn decode_packet(payload: &[u8]) -> Result<Option<PacketMessage>, PacketError> {
    let packet = Packet::decode(payload).map_err(|e| PacketError::Undecodable(e.to_string()))?;
    if packet.protocol_version != PROTOCOL_VERSION {
        return Err(PacketError::WrongVersion(packet.protocol_version));
    }
    Ok(packet.message)
}

fn chat_message(chat: Chat) -> Result<ChatMessage, PacketError> {
    check_text(&chat.message)?;
    Ok(ChatMessage {
        sent_at: ole::from_ole(chat.timestamp),
        timestamp: chat.timestamp,
        text: chat.message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn round_trip() {
        let now = UNIX_EPOCH + Duration::from_secs(1_764_150_000);
        let bytes = encode("hola 👋", now).expect("encode");
        let m = decode(&bytes).expect("decode");
        assert_eq!(m.text, "hola 👋");
        assert_eq!(m.timestamp, ole::to_ole(now));
        assert!(m.sent_at.is_some());
    }

    #[test]
    fn bad_payloads_are_refused_with_a_reason() {
        assert!(matches!(
            decode(&[0xff, 0xff, 0xff]),
            Err(PacketError::Undecodable(_))
        ));
        // Protocol version 100 but no chat (e.g. a position packet: field 1).
        let position = [0x0a, 0x00, 0x58, 100];
        assert_eq!(decode(&position), Err(PacketError::NotChat));
        let old = Packet {
            message: Some(PacketMessage::Chat(Chat {
                message: "hi".into(),
                timestamp: 45_000.0,
                forwarded_from: None,
                receipt_requested: false,
            })),
            protocol_version: 11,
        }
        .encode_to_vec();
        assert_eq!(decode(&old), Err(PacketError::WrongVersion(11)));
        assert_eq!(encode("  ", SystemTime::now()), Err(PacketError::Empty));
        let long = "x".repeat(MAX_TEXT_BYTES + 1);
        assert_eq!(
            encode(&long, SystemTime::now()),
            Err(PacketError::TooLong(MAX_TEXT_BYTES + 1))
        );
        let mut weird_time =
            Packet::decode(encode("hi", SystemTime::now()).expect("e").as_slice()).expect("d");
        if let Some(PacketMessage::Chat(c)) = &mut weird_time.message {
            c.timestamp = f64::NAN;
        }
        let m = decode(&weird_time.encode_to_vec()).expect("a NaN time is not fatal");
        assert_eq!(m.sent_at, None);
    }

    #[test]
    fn a_receipt_request_and_a_receipt_round_trip() {
        let now = UNIX_EPOCH + Duration::from_secs(1_764_150_000);
        let (plain, asked) = encode_message("hola", now, false).expect("encode");
        assert!(!asked);
        assert_eq!(plain, encode("hola", now).expect("encode"));
        let (with, asked) = encode_message("hola", now, true).expect("encode");
        assert!(asked);
        assert_eq!(with.len(), plain.len() + RECEIPT_FLAG_BYTES);
        let Ok(Payload::MessageWithReceipt(m)) = decode_payload(&with) else {
            panic!("a message asking for a receipt")
        };
        assert_eq!((m.text.as_str(), m.timestamp), ("hola", ole::to_ole(now)));
        // Read as a message only, it is the same message.
        assert_eq!(decode(&with).expect("decode"), m);
        assert!(matches!(decode_payload(&plain), Ok(Payload::Message(_))));

        let id = crate::message_id("0xAbC", m.timestamp);
        let receipt = encode_receipt(&id).expect("receipt");
        assert_eq!(decode_payload(&receipt), Ok(Payload::Receipt(id)));
        assert_eq!(decode(&receipt), Err(PacketError::NotChat));
        assert_eq!(encode_receipt(""), Err(PacketError::BadReceipt));
        let long = "x".repeat(MAX_RECEIPT_ID_BYTES + 1);
        assert_eq!(encode_receipt(&long), Err(PacketError::BadReceipt));
        let forged = Packet {
            message: Some(PacketMessage::Receipt(Receipt { message_id: long })),
            protocol_version: PROTOCOL_VERSION,
        }
        .encode_to_vec();
        assert_eq!(decode_payload(&forged), Err(PacketError::BadReceipt));
    }

    #[test]
    fn the_longest_texts_go_without_a_receipt_request() {
        let now = SystemTime::now();
        let fits = "x".repeat(MAX_TEXT_BYTES_WITH_RECEIPT);
        let (p, asked) = encode_message(&fits, now, true).expect("encode");
        assert!(asked);
        assert_eq!(p.len(), MAX_PACKET_PAYLOAD);
        let over = "x".repeat(MAX_TEXT_BYTES_WITH_RECEIPT + 1);
        let (p, asked) = encode_message(&over, now, true).expect("encode");
        assert!(!asked);
        assert!(p.len() <= MAX_PACKET_PAYLOAD);
    }
}
