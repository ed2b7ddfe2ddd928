//! What the app needs of the SDK.
//!
//! The events are the SDK's (`pchat_client::private_chat`). [`Backend`] is what the runner asks
//! of a connected chat — the real [`PrivateChat`], or a fake in tests, so the runner is testable
//! without a network.

use async_trait::async_trait;
use chat_core::reaction::emoji_index;
pub use chat_core::{ChatMessage, Protection, RecipientState};
pub use livekit_participant::ConnectionState;
use pchat_core::Privacy;
pub use pchat_core::chat_key::ChatKey;

pub use pchat_client::private_chat::{ChatEvent, ChatEvents, DropReason, PrivateChat, SocialState};

/// The part of the social view the app shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewSnapshot {
    pub privacy: Privacy,
    pub friends: Vec<String>,
    /// Requests to me: (from, message).
    pub pending_in: Vec<(String, Option<String>)>,
    /// My requests: addresses.
    pub pending_out: Vec<String>,
    pub blocked: Vec<String>,
    pub blocked_by: Vec<String>,
    pub online: Vec<String>,
}

/// A failed SDK call, shown in the UI (its text goes through the sanitiser like any network
/// string: a service's error can quote what a peer sent).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub Box<dyn std::error::Error + Send + Sync>);

impl BackendError {
    pub fn msg(text: impl Into<String>) -> Self {
        BackendError(text.into().into())
    }
}

/// A message handed to the room.
#[derive(Debug, Clone, PartialEq)]
pub struct SentInfo {
    /// `"{me}:{OLE timestamp}"`.
    pub id: String,
    /// Whether it left encrypted end to end.
    pub protection: Protection,
}

/// A social action (`/friend …`, `/block`, `/unblock`, `/privacy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocialAction {
    Request { to: String, message: Option<String> },
    Accept(String),
    Reject(String),
    Cancel(String),
    Remove(String),
    Block(String),
    Unblock(String),
    Privacy(Privacy),
}

impl SocialAction {
    /// What was done, for the confirmation line.
    pub fn describe(&self) -> String {
        match self {
            SocialAction::Request { to, .. } => format!("friend request sent to {to}"),
            SocialAction::Accept(a) => format!("accepted {a}'s friend request"),
            SocialAction::Reject(a) => format!("rejected {a}'s friend request"),
            SocialAction::Cancel(a) => format!("cancelled the friend request to {a}"),
            SocialAction::Remove(a) => format!("{a} is no longer a friend"),
            SocialAction::Block(a) => format!("blocked {a}"),
            SocialAction::Unblock(a) => format!("unblocked {a}"),
            SocialAction::Privacy(p) => format!("private messages from: {}", privacy_label(*p)),
        }
    }
}

pub fn privacy_label(p: Privacy) -> &'static str {
    match p {
        Privacy::All => "all",
        Privacy::OnlyFriends => "only-friends",
    }
}

/// What the runner asks of a connected chat.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// My address (lower case).
    fn address(&self) -> String;
    async fn open_conversation(&self, peer: &str) -> Result<RecipientState, BackendError>;
    fn close_conversation(&self, peer: &str);
    async fn send(&self, to: &str, text: &str) -> Result<SentInfo, BackendError>;
    /// The social view, `None` while it is not loaded.
    fn view(&self) -> Option<ViewSnapshot>;
    async fn social(&self, action: &SocialAction) -> Result<(), BackendError>;
    /// A reaction (`emoji` as typed) on the message `message_id` of the conversation with `to`.
    async fn react(&self, to: &str, message_id: &str, emoji: &str) -> Result<(), BackendError>;
    /// The key `peer` publishes now (`None`: not known here; `Some(None)`: they publish none).
    /// Later changes arrive as [`ChatEvent::PeerKey`].
    async fn peer_key(&self, peer: &str) -> Option<Option<ChatKey>> {
        let _ = peer;
        None
    }
    /// Requires encryption for the conversation with `peer` (a plaintext send is then refused),
    /// or lifts it.
    fn require_encryption(&self, peer: &str, required: bool) -> Result<(), BackendError> {
        let _ = (peer, required);
        Err(BackendError::msg("this chat has no end-to-end encryption"))
    }
}

impl From<&pchat_client::social::FullView> for ViewSnapshot {
    fn from(v: &pchat_client::social::FullView) -> Self {
        let sorted = |set: &std::collections::HashSet<String>| {
            let mut out: Vec<String> = set.iter().cloned().collect();
            out.sort();
            out
        };
        ViewSnapshot {
            privacy: v.privacy,
            friends: sorted(&v.friends),
            pending_in: v
                .pending_in
                .values()
                .map(|r| (r.address.clone(), r.message.clone()))
                .collect(),
            pending_out: v.pending_out.keys().cloned().collect(),
            blocked: sorted(&v.blocked),
            blocked_by: sorted(&v.blocked_by),
            online: sorted(&v.online),
        }
    }
}

/// Performs a social action on the SDK's social session.
pub async fn social_action(
    session: &pchat_client::social::SocialSession,
    action: &SocialAction,
) -> Result<(), pchat_client::social::SocialError> {
    match action {
        SocialAction::Request { to, message } => {
            session.request_friendship(to, message.as_deref()).await
        }
        SocialAction::Accept(a) => session.accept(a).await,
        SocialAction::Reject(a) => session.reject(a).await,
        SocialAction::Cancel(a) => session.cancel(a).await,
        SocialAction::Remove(a) => session.delete_friendship(a).await,
        SocialAction::Block(a) => session.block(a).await,
        SocialAction::Unblock(a) => session.unblock(a).await,
        SocialAction::Privacy(p) => session.set_privacy(*p).await.map(|_| ()),
    }
}

fn boxed(e: impl std::error::Error + Send + Sync + 'static) -> BackendError {
    BackendError(Box::new(e))
}

#[async_trait]
impl Backend for PrivateChat {
    fn address(&self) -> String {
        PrivateChat::address(self).to_owned()
    }

    async fn open_conversation(&self, peer: &str) -> Result<RecipientState, BackendError> {
        PrivateChat::open_conversation(self, peer)
            .await
            .map_err(boxed)
    }

    fn close_conversation(&self, peer: &str) {
        PrivateChat::close_conversation(self, peer)
    }

    async fn send(&self, to: &str, text: &str) -> Result<SentInfo, BackendError> {
        PrivateChat::send(self, to, text)
            .await
            .map(|sent| SentInfo {
                id: sent.id,
                protection: sent.protection,
            })
            .map_err(boxed)
    }

    fn view(&self) -> Option<ViewSnapshot> {
        PrivateChat::view(self).as_ref().map(ViewSnapshot::from)
    }

    async fn social(&self, action: &SocialAction) -> Result<(), BackendError> {
        match action {
            SocialAction::Privacy(p) => self.set_privacy(*p).await.map(|_| ()),
            other => social_action(PrivateChat::social(self), other).await,
        }
        .map_err(boxed)
    }

    async fn react(&self, to: &str, message_id: &str, emoji: &str) -> Result<(), BackendError> {
        let index = emoji_index(emoji).ok_or_else(|| {
            BackendError::msg(format!(
                "{emoji:?} is not one of the reference client's reaction emoji"
            ))
        })?;
        PrivateChat::react(self, to, message_id, index, false)
            .await
            .map(|_| ())
            .map_err(boxed)
    }

    async fn peer_key(&self, peer: &str) -> Option<Option<ChatKey>> {
        let e = PrivateChat::encryption(self, peer).await.ok()?;
        // With encryption off here, their key is of no use: shown as none.
        Some(e.my_key.and(e.peer_key))
    }

    fn require_encryption(&self, peer: &str, required: bool) -> Result<(), BackendError> {
        match PrivateChat::require_encryption(self, peer, required) {
            Ok(true) => Ok(()),
            Ok(false) => Err(BackendError::msg(format!(
                "too many conversations require encryption (at most {})",
                pchat_client::private_chat::MAX_REQUIRED_CONVERSATIONS
            ))),
            Err(e) => Err(boxed(e)),
        }
    }
}
