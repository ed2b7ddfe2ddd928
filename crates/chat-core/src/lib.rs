//! The private-chat client's rules, without I/O (the "core" layer of the client SDK).
//!
//! - [`packet`]: a private message on the wire: Decentraland's comms packet (`rfc4.Packet`)
//!   carrying a `Chat`, with protocol version 100, as the reference client sends it.
//! - [`ole`]: the `Chat.timestamp` format, an OLE Automation date.
//! - [`filter`]: which received packets are shown, by topic, sender, blocks, the receiver's
//!   privacy setting and friendships (ADR-208 "Message Filtering"), with an optional per-sender
//!   rate limit.
//! - [`recipient`]: whether a message can be sent to someone right now, and why not.
//!
//! Everything here is plain data in, decision out; the SDK supplies the social state and the
//! LiveKit room.

pub mod filter;
pub mod ole;
pub mod packet;
pub mod recipient;

pub use filter::{Drop, Filter, Incoming, RateLimit, SocialView};
pub use packet::{ChatMessage, PROTOCOL_VERSION, PacketError};
pub use recipient::{RecipientState, recipient_state};
