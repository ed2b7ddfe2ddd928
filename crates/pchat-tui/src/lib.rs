//! The terminal chat app, `pchat chat`: a conversation list with unread counts and each peer's
//! live state, the open conversation with its history, an input line with a length counter
//! (disabled, with the reason, unless the peer is CONNECTED), incoming friendship requests, and a
//! status line with the room and social connection states and a summary of dropped packets.
//!
//! - [`App`]: the state and rules, no I/O (keys and chat events in, [`Action`]s out).
//! - [`ui::render`]: drawing with ratatui; every string passes through [`display::one_line`]
//!   first (network text is data: no control sequence reaches the terminal).
//! - [`run`]: the terminal runner (crossterm raw mode + alternate screen, one `select!` loop),
//!   with the optional local history of `pchat-history`.
//!
//! Bounds of what peers can make the app hold: see [`app`].

pub mod app;
pub mod command;
pub mod display;
pub mod runner;
pub mod sdk;
pub mod ui;

pub use app::{Action, App, AppOptions};
pub use runner::{
    EventSource, RunOptions, TuiError, open_history, open_wallet_history, run, run_on,
};
pub use sdk::{Backend, BackendError, ChatEvent, SocialAction, ViewSnapshot};
