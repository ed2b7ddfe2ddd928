//! Social domain logic, without I/O (the "core" layer of the social service).
//!
//! - [`friendship`]: the friendship state machine (which action may follow which, and who may
//!   take it) and the status each side sees.
//! - [`settings`]: social settings and their defaults.
//!
//! The store applies these rules with a compare-and-set per pair, so concurrent conflicting
//! actions on the same pair end in one consistent state.

pub mod friendship;
pub mod settings;

pub use friendship::{Action, FriendshipError, FriendshipStatus, LastAction, status_for, validate};
pub use settings::{BlockedMessagesVisibility, SettingsChange, SituationReactions, SocialSettings};
