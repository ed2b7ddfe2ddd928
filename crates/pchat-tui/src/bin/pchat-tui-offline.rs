//! The terminal app with no network, for trying it by hand and for the `tmux` tests: one peer
//! (`0x2222…2222`) is always CONNECTED and answers every message with "echo: <text>"; with
//! `--nasty`, a stranger (`0x6666…6666`) first sends the hostile payloads of issue #9 (4a);
//! with `--panic-on-boom`, the app panics when the echo of "boom" arrives (to test that the
//! terminal is restored after a panic).

use std::time::Duration;

use async_trait::async_trait;
use chat_core::{ChatMessage, RecipientState};
use pchat_tui::sdk::{Backend, BackendError, ChatEvent, SentInfo, SocialAction, ViewSnapshot};
use pchat_tui::{EventSource, RunOptions, run};
use tokio::sync::mpsc;

const ME: &str = "0x1111111111111111111111111111111111111111";
const PEER: &str = "0x2222222222222222222222222222222222222222";
const STRANGER: &str = "0x6666666666666666666666666666666666666666";

struct Echo {
    events: mpsc::Sender<ChatEvent>,
}

fn message(from: &str, text: &str, ts: f64) -> ChatEvent {
    ChatEvent::Message {
        from: from.into(),
        message: ChatMessage {
            text: text.into(),
            sent_at: None,
            timestamp: ts,
        },
        id: format!("{from}:{ts}"),
        protection: pchat_tui::sdk::Protection::Plaintext,
    }
}

#[async_trait]
impl Backend for Echo {
    fn address(&self) -> String {
        ME.into()
    }
    async fn open_conversation(&self, peer: &str) -> Result<RecipientState, BackendError> {
        Ok(if peer == PEER {
            RecipientState::Connected
        } else {
            RecipientState::Disconnected
        })
    }
    fn close_conversation(&self, _peer: &str) {}
    async fn send(&self, to: &str, text: &str) -> Result<SentInfo, BackendError> {
        if to != PEER {
            return Err(BackendError::msg("only the echo peer answers here"));
        }
        let ts = chat_core::ole::to_ole(std::time::SystemTime::now());
        let _ = self
            .events
            .send(message(PEER, &format!("echo: {text}"), ts))
            .await;
        Ok(SentInfo {
            id: format!("{ME}:{ts}"),
            protection: pchat_tui::sdk::Protection::Plaintext,
        })
    }
    fn view(&self) -> Option<ViewSnapshot> {
        Some(ViewSnapshot {
            friends: vec![PEER.into()],
            online: vec![PEER.into()],
            ..Default::default()
        })
    }
    async fn social(&self, action: &SocialAction) -> Result<(), BackendError> {
        match action {
            SocialAction::Block(_) => Err(BackendError::msg(
                "offline: no social service \u{1b}]0;pwned\u{7}",
            )),
            _ => Ok(()),
        }
    }
    async fn react(&self, _to: &str, _id: &str, _emoji: &str) -> Result<(), BackendError> {
        Ok(())
    }
}

/// The events, with a panic planted on "echo: boom" when asked.
struct Events {
    rx: mpsc::Receiver<ChatEvent>,
    panic_on_boom: bool,
}

#[async_trait]
impl EventSource for Events {
    async fn recv(&mut self) -> Option<ChatEvent> {
        let e = self.rx.recv().await;
        if self.panic_on_boom
            && matches!(&e, Some(ChatEvent::Message { message, .. }) if message.text == "echo: boom")
        {
            panic!("planted panic for the terminal-restore test");
        }
        e
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let nasty = std::env::args().any(|a| a == "--nasty");
    let panic_on_boom = std::env::args().any(|a| a == "--panic-on-boom");
    let (tx, rx) = mpsc::channel(1024);
    let _ = tx
        .send(ChatEvent::RoomState(
            livekit_participant::ConnectionState::Connected,
        ))
        .await;
    let _ = tx
        .send(ChatEvent::SocialState(
            pchat_tui::sdk::SocialState::Connected,
        ))
        .await;
    let _ = tx
        .send(ChatEvent::RecipientState {
            address: PEER.into(),
            state: RecipientState::Connected,
        })
        .await;
    if nasty {
        let tx = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            for (i, p) in pchat_tui::display::HOSTILE_TEXTS.iter().enumerate() {
                let _ = tx.send(message(STRANGER, p, 1.0 + i as f64)).await;
            }
            let _ = tx
                .send(ChatEvent::FriendshipRequested {
                    from: STRANGER.into(),
                    message: Some("friend?\r\n\u{1b}[6n\u{202e}".into()),
                })
                .await;
        });
    }
    let chat = Echo { events: tx };
    let events = Events { rx, panic_on_boom };
    run(chat, events, RunOptions::default()).await?;
    Ok(())
}
