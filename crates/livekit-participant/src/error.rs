//! Errors of the participant.

use crate::channel::Reliability;

/// Why a send was refused before anything went on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("payload of {size} bytes is over the {max}-byte limit for {reliability:?} packets")]
    PayloadTooLarge {
        size: usize,
        max: usize,
        reliability: Reliability,
    },
    #[error("topic is longer than {max} bytes")]
    TopicTooLong { max: usize },
    #[error("more than {max} destination identities")]
    TooManyDestinations { max: usize },
    #[error("not connected to the room")]
    NotConnected,
    #[error("the participant was closed")]
    Closed,
}

/// Why a connection attempt or a connection failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot get a token: {0}")]
    Token(crate::token::TokenSourceError),
    #[error("signalling failed: {0}")]
    Signal(String),
    #[error("the server refused the join: {0}")]
    Refused(String),
    #[error("WebRTC failed: {0}")]
    WebRtc(String),
    #[error("timed out: {0}")]
    Timeout(&'static str),
    #[error("the server asked us to leave: {0}")]
    Left(String),
}
