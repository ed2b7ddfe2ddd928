//! The scriptable player commands: `send`, `listen`, `friends …`, `block`, `unblock`,
//! `privacy`. Same SDK as the terminal app underneath.
//!
//! Output: where it is data, one JSON object per line on stdout (strings escaped as JSON does,
//! and C1 controls, DEL and bidi controls escaped too, so that nothing from the network acts on
//! a terminal); messages for people go to stderr, one line each.
//!
//! Exit status ([`Failure::code`]): 0 done; 1 refused (the message was not sent, the service
//! said no), with the reason; 2 bad input (address, key, URL, text), found before anything
//! connects; 3 a service could not be reached.

use std::time::Duration;

use chat_core::{DropCounter, RecipientState, SendRules};
use pchat_client::private_chat::{ChatEvent, NotSent, PrivateChat, PrivateChatConfig};
use pchat_client::social::{SocialClient, SocialError};
use pchat_core::{Privacy, normalize_address};

use crate::args::{EndpointArgs, Endpoints};
use crate::identity::IdentityArgs;

/// Why a player command failed, and its exit status.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Refused(String),
}

impl Failure {
    pub fn code(&self) -> u8 {
        match self {
            Failure::Refused(_) => 1,
            Failure::BadInput(_) => 2,
            Failure::Unreachable(_) => 3,
        }
    }
}

fn social_failure(e: SocialError) -> Failure {
    match e {
        SocialError::Rpc(_) | SocialError::NotConnected => {
            Failure::Unreachable(format!("the social service cannot be reached: {e}"))
        }
        SocialError::BadAddress(_) => Failure::BadInput(e.to_string()),
        other => Failure::Refused(other.to_string()),
    }
}

/// Identity and endpoints, checked before connecting.
pub struct Player {
    pub wallet: authchain::Wallet,
    pub identity: authchain::Identity,
    pub endpoints: Endpoints,
}

impl Player {
    pub fn load(identity: &IdentityArgs, endpoints: &EndpointArgs) -> Result<Player, Failure> {
        let wallet = identity
            .load()
            .map_err(|e| Failure::BadInput(e.to_string()))?;
        let endpoints = endpoints
            .validate()
            .map_err(|e| Failure::BadInput(e.to_string()))?;
        Ok(Player {
            identity: authchain::Identity::new(
                &wallet,
                chrono::Utc::now() + chrono::Duration::hours(24),
            ),
            wallet,
            endpoints,
        })
    }

    fn config(&self) -> PrivateChatConfig {
        let mut config = PrivateChatConfig::new(&self.endpoints.gatekeeper, &self.endpoints.social);
        config.e2ee = self.endpoints.e2ee;
        config.require_encryption = self.endpoints.require_encryption;
        config
    }

    async fn social(&self) -> Result<SocialClient, Failure> {
        SocialClient::connect(&self.endpoints.social, &self.identity)
            .await
            .map_err(social_failure)
    }

    async fn chat(&self) -> Result<(PrivateChat, pchat_client::private_chat::ChatEvents), Failure> {
        PrivateChat::connect(self.identity.clone(), self.config())
            .await
            .map_err(|e| Failure::Unreachable(e.to_string()))
    }
}

/// `pchat chat`: the terminal app (`pchat-tui`) on a [`PrivateChat`], with the wallet's local
/// history unless `history` is false. Logs go to `log_file` only.
pub async fn chat(
    player: &Player,
    history: bool,
    log_file: Option<&std::path::Path>,
) -> Result<(), Failure> {
    if let Some(path) = log_file {
        let file = std::fs::File::create(path).map_err(|e| {
            Failure::BadInput(format!("cannot write the log file {}: {e}", path.display()))
        })?;
        tracing_subscriber::fmt()
            .with_writer(std::sync::Mutex::new(file))
            .with_ansi(false)
            .init();
    }
    let history = if history {
        Some(
            pchat_tui::open_wallet_history(&player.wallet)
                .await
                .map_err(|e| Failure::Refused(format!("cannot open the local history: {e}")))?,
        )
    } else {
        None
    };
    let (chat, events) = player.chat().await?;
    pchat_tui::run(
        chat,
        events,
        pchat_tui::RunOptions {
            app: pchat_tui::app::AppOptions::local(),
            history,
        },
    )
    .await
    .map_err(|e| Failure::Refused(format!("the terminal app stopped: {e}")))
}

/// A JSON line with every string escaped so that it is inert on a terminal.
pub fn json_line(value: &serde_json::Value) -> String {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        // serde_json escapes C0 controls; DEL, C1 and bidi controls pass through it. Only
        // inside strings can such a character appear in JSON text.
        if chat_core::display::is_unsafe(c) && u32::from(c) >= 0x7f {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

fn address_arg(address: &str) -> Result<String, Failure> {
    normalize_address(address).map_err(|_| {
        Failure::BadInput(format!(
            "{:?} is not a wallet address (0x and 40 hex digits)",
            chat_core::display::one_line(&address.chars().take(64).collect::<String>())
        ))
    })
}

/// `pchat send <address> <text>`: waits (at most `wait`) until the recipient can receive,
/// sends, and says so.
pub async fn send(player: &Player, to: &str, text: &str, wait: Duration) -> Result<(), Failure> {
    let rules = SendRules::default();
    let to = rules.check(to, text).map_err(|e| match e {
        chat_core::SendError::InvalidRecipient => address_arg(to)
            .err()
            .unwrap_or_else(|| Failure::BadInput(e.to_string())),
        other => Failure::BadInput(other.to_string()),
    })?;
    let (chat, mut events) = player.chat().await?;
    // Wait for my social view, then for the recipient to be reachable.
    let deadline = tokio::time::Instant::now() + wait;
    while chat.view().is_none() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if events.recv_timeout(left).await.is_none() {
            break;
        }
    }
    let result = loop {
        match chat.send(&to, text).await {
            Err(NotSent::Recipient { state, .. })
                if tokio::time::Instant::now() < deadline && state_may_change(state) =>
            {
                let _ = events.recv_timeout(Duration::from_millis(200)).await;
            }
            other => break other,
        }
    };
    let outcome = match result {
        Ok(sent) => {
            println!(
                "{}",
                json_line(&serde_json::json!({
                    "sent": true,
                    "to": sent.to,
                    "id": sent.id,
                    "encrypted": sent.protection.is_encrypted(),
                }))
            );
            // On the data channel; give it a moment on the wire before leaving.
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok(())
        }
        Err(NotSent::Recipient { to, state }) => Err(Failure::Refused(format!(
            "not sent: {to} is {} (nothing is queued for users who cannot receive)",
            state_name(state)
        ))),
        Err(e @ (NotSent::BadRecipient(_) | NotSent::Empty | NotSent::TooLong { .. })) => {
            Err(Failure::BadInput(format!("not sent: {e}")))
        }
        Err(e) => Err(Failure::Refused(format!("not sent: {e}"))),
    };
    chat.close().await;
    outcome
}

/// States that can turn CONNECTED by themselves soon (the peer joining, views loading).
fn state_may_change(state: RecipientState) -> bool {
    matches!(
        state,
        RecipientState::Disconnected | RecipientState::PrivateMessagesBlockedByOwnUser
    )
}

pub fn state_name(state: RecipientState) -> &'static str {
    match state {
        RecipientState::Connected => "CONNECTED",
        RecipientState::Disconnected => "DISCONNECTED",
        RecipientState::BlockedByOwnUser => "BLOCKED_BY_OWN_USER",
        RecipientState::PrivateMessagesBlockedByOwnUser => "PRIVATE_MESSAGES_BLOCKED_BY_OWN_USER",
        RecipientState::PrivateMessagesBlocked => "PRIVATE_MESSAGES_BLOCKED",
    }
}

/// The `protection` field of `pchat listen`'s lines.
fn protection_name(p: chat_core::Protection) -> &'static str {
    match p {
        chat_core::Protection::Encrypted => "encrypted",
        chat_core::Protection::Plaintext => "plaintext",
        chat_core::Protection::PlaintextFromKeyedPeer => "plaintext_from_keyed_peer",
    }
}

/// `pchat listen`: one JSON object per received message (and reaction, and friendship
/// request) on stdout; drops summarised on stderr at most every 5 s; for `seconds` (forever if
/// `None`) or until Ctrl-C.
pub async fn listen(player: &Player, seconds: Option<u64>) -> Result<(), Failure> {
    let (chat, mut events) = player.chat().await?;
    eprintln!("listening as {}", chat.address());
    let until = seconds.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut drops = DropCounter::default();
    let stop = crate::shutdown_signal();
    tokio::pin!(stop);
    loop {
        let left = until.map(|u| u.saturating_duration_since(tokio::time::Instant::now()));
        if left == Some(Duration::ZERO) {
            break;
        }
        let event = tokio::select! {
            _ = &mut stop => break,
            e = events.recv_timeout(left.unwrap_or(Duration::from_secs(3600))) => e,
        };
        let now = std::time::Instant::now();
        if let Some(summary) = drops.poll(now) {
            eprintln!("{summary}");
        }
        let Some(event) = event else {
            if until.is_none()
                && chat.room_state() != livekit_participant::ConnectionState::Disconnected
            {
                continue;
            }
            break;
        };
        let line = match event {
            ChatEvent::Message {
                from,
                message,
                id,
                protection,
            } => Some(serde_json::json!({
                "type": "message",
                "from": from,
                "text": message.text,
                "id": id,
                "timestamp": message.timestamp,
                "encrypted": protection.is_encrypted(),
                "protection": protection_name(protection),
            })),
            ChatEvent::Reaction {
                from,
                reaction,
                protection,
            } => Some(serde_json::json!({
                "type": "reaction",
                "from": from,
                "encrypted": protection.is_encrypted(),
                "protection": protection_name(protection),
                "message_id": reaction.message_id,
                "emoji_index": reaction.emoji_index,
                "emoji": chat_core::reaction::emoji_for_index(reaction.emoji_index),
                "removal": reaction.removal,
            })),
            ChatEvent::FriendshipRequested { from, message } => Some(serde_json::json!({
                "type": "friendship_request",
                "from": from,
                "message": message,
            })),
            ChatEvent::Dropped {
                from,
                reason,
                count,
            } => {
                match &reason {
                    pchat_client::private_chat::DropReason::Filter(d) => {
                        if let Some(summary) = drops.record(d, &from, now) {
                            eprintln!("{summary}");
                        }
                    }
                    // Refused encrypted packets: the first few, then every power of two.
                    pchat_client::private_chat::DropReason::E2ee(e)
                        if count <= 3 || count.is_power_of_two() =>
                    {
                        eprintln!(
                            "an encrypted packet from {} was refused ({count} so far for {}): {e}",
                            chat_core::display::one_line(&from),
                            e.name()
                        );
                    }
                    _ => {}
                }
                None
            }
            ChatEvent::Lagged { dropped } => {
                eprintln!("{dropped} events lost: output was read too slowly");
                None
            }
            ChatEvent::FilterFailClosed(true) => {
                eprintln!("social service unavailable: only friends' messages are shown");
                None
            }
            _ => None,
        };
        if let Some(line) = line {
            println!("{}", json_line(&line));
        }
    }
    chat.close().await;
    Ok(())
}

/// What `pchat friends` does.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum FriendsCommand {
    /// My friends, one JSON object per line.
    List,
    /// Pending requests, incoming and sent, one JSON object per line.
    Requests,
    /// Ask someone to be friends.
    Request {
        address: String,
        /// A message sent with the request.
        #[arg(long)]
        message: Option<String>,
    },
    /// Accept someone's request.
    Accept { address: String },
    /// Reject someone's request.
    Reject { address: String },
    /// Withdraw my request to someone.
    Cancel { address: String },
    /// End a friendship.
    Remove { address: String },
}

pub async fn friends(player: &Player, command: FriendsCommand) -> Result<(), Failure> {
    use FriendsCommand::*;
    // Check the address before connecting.
    let address = match &command {
        List | Requests => None,
        Request { address, .. }
        | Accept { address }
        | Reject { address }
        | Cancel { address }
        | Remove { address } => Some(address_arg(address)?),
    };
    let social = player.social().await?;
    let address = address.unwrap_or_default();
    let done = match command {
        List => {
            let mut friends: Vec<String> = social
                .friends()
                .await
                .map_err(social_failure)?
                .into_iter()
                .collect();
            friends.sort();
            for f in friends {
                println!("{}", json_line(&serde_json::json!({"address": f})));
            }
            None
        }
        Requests => {
            let incoming = social.pending_requests().await.map_err(social_failure)?;
            let sent = social.sent_requests().await.map_err(social_failure)?;
            for (direction, list) in [("incoming", incoming), ("sent", sent)] {
                for r in list {
                    println!(
                        "{}",
                        json_line(&serde_json::json!({
                            "direction": direction,
                            "address": r.address,
                            "message": r.message,
                            "created_at": r.created_at,
                        }))
                    );
                }
            }
            None
        }
        Request { message, .. } => {
            social
                .request_friendship(&address, message.as_deref())
                .await
                .map_err(social_failure)?;
            Some("friendship requested")
        }
        Accept { .. } => {
            social.accept(&address).await.map_err(social_failure)?;
            Some("friendship accepted")
        }
        Reject { .. } => {
            social.reject(&address).await.map_err(social_failure)?;
            Some("friendship request rejected")
        }
        Cancel { .. } => {
            social.cancel(&address).await.map_err(social_failure)?;
            Some("friendship request cancelled")
        }
        Remove { .. } => {
            social
                .delete_friendship(&address)
                .await
                .map_err(social_failure)?;
            Some("friendship removed")
        }
    };
    if let Some(what) = done {
        eprintln!("{what}: {address}");
    }
    social.close().await;
    Ok(())
}

/// `pchat block|unblock <address>`.
pub async fn block(player: &Player, address: &str, blocked: bool) -> Result<(), Failure> {
    let address = address_arg(address)?;
    let social = player.social().await?;
    if blocked {
        social.block(&address).await.map_err(social_failure)?;
        eprintln!("blocked: {address}");
    } else {
        social.unblock(&address).await.map_err(social_failure)?;
        eprintln!("unblocked: {address}");
    }
    social.close().await;
    Ok(())
}

/// `pchat privacy [all|only-friends]`: prints the setting, or sets it.
pub async fn privacy(player: &Player, set: Option<&str>) -> Result<(), Failure> {
    let wanted = match set {
        None => None,
        Some(s) => Some(parse_privacy(s)?),
    };
    let social = player.social().await?;
    let now = match wanted {
        Some(p) => social.set_privacy(p).await.map_err(social_failure)?,
        None => social.settings().await.map_err(social_failure)?,
    };
    println!(
        "{}",
        json_line(&serde_json::json!({"privacy": privacy_name(now)}))
    );
    social.close().await;
    Ok(())
}

pub fn parse_privacy(s: &str) -> Result<Privacy, Failure> {
    match s.to_ascii_lowercase().replace('_', "-").as_str() {
        "all" => Ok(Privacy::All),
        "only-friends" => Ok(Privacy::OnlyFriends),
        _ => Err(Failure::BadInput(format!(
            "{:?} is not a privacy setting: all or only-friends",
            chat_core::display::one_line(&s.chars().take(32).collect::<String>())
        ))),
    }
}

pub fn privacy_name(p: Privacy) -> &'static str {
    match p {
        Privacy::All => "all",
        Privacy::OnlyFriends => "only-friends",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_escape_what_a_terminal_would_act_on() {
        let line =
            json_line(&serde_json::json!({"text": "a\u{1b}]0;x\u{7}\u{9b}2J\u{202e}b\r\n\u{7f}"}));
        assert!(
            line.chars().all(|c| !chat_core::display::is_unsafe(c)),
            "{line}"
        );
        let back: serde_json::Value = serde_json::from_str(&line).expect("still JSON");
        assert_eq!(back["text"], "a\u{1b}]0;x\u{7}\u{9b}2J\u{202e}b\r\n\u{7f}");
    }

    #[test]
    fn privacy_names() {
        assert_eq!(
            parse_privacy("only_friends").ok(),
            Some(Privacy::OnlyFriends)
        );
        assert_eq!(parse_privacy("ALL").ok(), Some(Privacy::All));
        assert!(matches!(
            parse_privacy("friends"),
            Err(Failure::BadInput(_))
        ));
    }
}
