//! The two data channels a participant sends on, and what one packet carries at most on each.
//! Its own module so that both the errors ([`crate::error`], which name the channel of a packet
//! too large) and the packets ([`crate::packet`], which check the limits) depend on it, and
//! neither on the other's module.

/// Largest reliable payload accepted (LiveKit documents 15 KiB of user data for reliable packets).
pub const MAX_RELIABLE_PAYLOAD: usize = 15 * 1024;
/// Largest lossy payload accepted (one datagram's worth).
pub const MAX_LOSSY_PAYLOAD: usize = 1300;

/// Delivery mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reliability {
    /// Ordered and retransmitted (`_reliable` channel).
    Reliable,
    /// Unordered, never retransmitted (`_lossy` channel).
    Lossy,
}

impl Reliability {
    pub const fn max_payload(self) -> usize {
        match self {
            Reliability::Reliable => MAX_RELIABLE_PAYLOAD,
            Reliability::Lossy => MAX_LOSSY_PAYLOAD,
        }
    }

    pub const fn channel_label(self) -> &'static str {
        match self {
            Reliability::Reliable => "_reliable",
            Reliability::Lossy => "_lossy",
        }
    }
}
