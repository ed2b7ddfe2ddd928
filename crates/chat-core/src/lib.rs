//! The private-chat client's rules, without I/O (the "core" layer of the client SDK).
//!
//! - [`packet`]: a private message on the wire: Decentraland's comms packet (`rfc4.Packet`)
//!   carrying a `Chat`, with protocol version 100, as the reference client sends it; and a
//!   reaction (`ChatReaction`) in the same packet.
//! - [`reaction`]: reactions as the reference client builds them: message ids, the removal
//!   encoding, and the bounded memory that drops repeats.
//! - [`e2ee`]: our extension, end-to-end encryption between our clients: session keys, HPKE
//!   auth-mode contexts per pair of sessions, sealed messages and reactions.
//! - [`delivery`]: our extension, delivery receipts: the sender's messages waiting for one
//!   (resent, then given up, all bounded) and the receiver's memory of messages shown.
//! - [`ole`]: the `Chat.timestamp` format, an OLE Automation date.
//! - [`filter`]: which received packets are shown, by topic, sender, blocks, the receiver's
//!   privacy setting and friendships (ADR-208 "Message Filtering"), with a per-sender rate
//!   limit that is on by default.
//! - [`outgoing`]: what may be sent: the recipient's address first, then the length limit
//!   (155 UTF-16 units by default, as the reference client's input box).
//! - [`recipient`]: whether a message can be sent to someone right now, and why not.
//! - [`display`]: text from the network made safe to print on one terminal line.
//! - [`drops`]: dropped packets counted and summarised at most once per interval.
//!
//! Everything here is plain data in, decision out; the SDK supplies the social state and the
//! LiveKit room.

pub mod delivery;
pub mod display;
pub mod drops;
pub mod e2ee;
pub mod filter;
pub mod ole;
pub mod outgoing;
pub mod packet;
pub mod reaction;
pub mod recipient;

pub use delivery::{Deliveries, DeliveryConfig, Outcome, SeenMessages, Unconfirmed};
pub use drops::{DropCounter, DropKind, DropSummary};
pub use e2ee::{E2ee, OpenError, Protection, SealError, SessionKey};
pub use filter::{Accepted, Filter, Incoming, RateLimit, Rejected, SocialView};
pub use outgoing::{Outgoing, SendError, SendRules};
pub use packet::{ChatMessage, PROTOCOL_VERSION, PacketError, Payload};
pub use reaction::{Reaction, ReactionError, message_id};
pub use recipient::{RecipientState, recipient_state};
