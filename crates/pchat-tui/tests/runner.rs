//! The runner's loop on ratatui's `TestBackend`, with scripted keys, a fake chat and a real
//! local history file: actions reach the chat, results and events reach the screen, messages
//! are recorded and read back.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chat_core::{ChatMessage, RecipientState};
use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use futures_util::Stream;
use pchat_history::{History, HistoryKey};
use pchat_tui::sdk::{Backend, BackendError, ChatEvent, SentInfo, SocialAction, ViewSnapshot};
use pchat_tui::{RunOptions, run_on};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio::sync::mpsc;
use unicode_width::UnicodeWidthStr;

const ME: &str = "0x1111111111111111111111111111111111111111";
const BOB: &str = "0x2222222222222222222222222222222222222222";

#[derive(Default)]
struct Fake {
    calls: Mutex<Vec<String>>,
}

#[async_trait]
impl Backend for Fake {
    fn address(&self) -> String {
        ME.into()
    }
    async fn open_conversation(&self, peer: &str) -> Result<RecipientState, BackendError> {
        self.log(format!("open {peer}"));
        Ok(RecipientState::Connected)
    }
    fn close_conversation(&self, peer: &str) {
        self.log(format!("close {peer}"));
    }
    async fn send(&self, to: &str, text: &str) -> Result<SentInfo, BackendError> {
        self.log(format!("send {to} {text}"));
        if text == "fail" {
            return Err(BackendError::msg("the room refused \u{1b}[2J"));
        }
        Ok(SentInfo {
            id: format!("{ME}:45000.{}", text.len()),
            protection: pchat_tui::sdk::Protection::Plaintext,
        })
    }
    fn view(&self) -> Option<ViewSnapshot> {
        None
    }
    async fn social(&self, action: &SocialAction) -> Result<(), BackendError> {
        self.log(format!("social {action:?}"));
        Err(BackendError::msg("social service unreachable"))
    }
    async fn react(&self, to: &str, id: &str, emoji: &str) -> Result<(), BackendError> {
        self.log(format!("react {to} {id} {emoji}"));
        Ok(())
    }
}

impl Fake {
    fn log(&self, s: String) {
        if let Ok(mut c) = self.calls.lock() {
            c.push(s);
        }
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

fn keys(
    rx: mpsc::UnboundedReceiver<TermEvent>,
) -> impl Stream<Item = io::Result<TermEvent>> + Unpin {
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok(e), rx))
    }))
}

fn send_str(tx: &mpsc::UnboundedSender<TermEvent>, s: &str) {
    for c in s.chars() {
        let _ = tx.send(TermEvent::Key(KeyEvent::new(
            KeyCode::Char(c),
            KeyModifiers::NONE,
        )));
    }
    let _ = tx.send(TermEvent::Key(KeyEvent::new(
        KeyCode::Enter,
        KeyModifiers::NONE,
    )));
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn the_loop_performs_actions_and_records_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.sqlite");
    let key = HistoryKey::from_private_key(&[7; 32]);
    let history = History::open(&path, &key).await.expect("history");

    let fake = Arc::new(Fake::default());
    let (key_tx, key_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::channel(16);
    let terminal = Arc::new(Mutex::new(None::<Vec<String>>));
    let chat = fake.clone();
    let options = RunOptions {
        history: Some(history.clone()),
        ..Default::default()
    };
    let task = tokio::spawn(async move {
        let mut t = Terminal::new(TestBackend::new(120, 30)).expect("terminal");
        let r = run_on(&mut t, keys(key_rx), chat, ev_rx, options).await;
        (r, t)
    });
    let _ = terminal;

    // A message from Bob is recorded as unread.
    ev_tx
        .send(ChatEvent::Message {
            from: BOB.into(),
            message: ChatMessage {
                text: "hi \u{1b}[2J".into(),
                sent_at: None,
                timestamp: 45000.5,
            },
            id: format!("{BOB}:45000.5"),
            protection: pchat_tui::sdk::Protection::Encrypted,
        })
        .await
        .expect("event");
    let h = history.clone();
    let mut unread = 0;
    for _ in 0..200 {
        if let Ok(list) = h.conversations().await
            && let Some(c) = list.first()
        {
            unread = c.unread;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(unread, 1);

    // Opening the conversation asks the chat, and marks it read.
    send_str(&key_tx, &format!("/to {BOB}"));
    eventually("open", || fake.calls().contains(&format!("open {BOB}"))).await;
    let mut read = false;
    for _ in 0..200 {
        if h.conversations().await.expect("list")[0].unread == 0 {
            read = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(read, "marked read when opened");

    // A message typed is sent and recorded; a refused one shows why.
    send_str(&key_tx, "hello bob");
    eventually("send", || {
        fake.calls().contains(&format!("send {BOB} hello bob"))
    })
    .await;
    send_str(&key_tx, "fail");
    send_str(&key_tx, &format!("/block {BOB}"));
    eventually("social", || {
        fake.calls().iter().any(|c| c.starts_with("social Block"))
    })
    .await;
    let mut stored = Vec::new();
    for _ in 0..200 {
        stored = h.messages(BOB, 10, None).await.expect("messages");
        if stored.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let texts: Vec<&str> = stored.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["hi \u{1b}[2J", "hello bob"]);

    // Reactions: Bob's on his message, mine with /react (on the last message: my own), both kept.
    let thumbs = chat_core::reaction::emoji_index("👍").expect("atlas");
    ev_tx
        .send(ChatEvent::Reaction {
            from: BOB.into(),
            reaction: chat_core::Reaction::add(thumbs, format!("{BOB}:45000.5"), BOB),
            protection: pchat_tui::sdk::Protection::Encrypted,
        })
        .await
        .expect("event");
    send_str(&key_tx, "/react 👍");
    eventually("react", || {
        fake.calls()
            .iter()
            .any(|c| c.starts_with(&format!("react {BOB} {ME}:45000.")))
    })
    .await;
    let mut reactions = Vec::new();
    for _ in 0..200 {
        stored = h.messages(BOB, 10, None).await.expect("messages");
        reactions = stored
            .iter()
            .map(|m| m.reactions.clone())
            .collect::<Vec<_>>();
        if reactions.iter().all(|r| !r.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let thumbs32 = u32::from(thumbs);
    assert_eq!(
        reactions,
        vec![
            vec![pchat_history::Reaction {
                emoji_index: thumbs32,
                mine: false
            }],
            vec![pchat_history::Reaction {
                emoji_index: thumbs32,
                mine: true
            }],
        ]
    );

    // Let the results arrive, then quit and read the last screen.
    tokio::time::sleep(Duration::from_millis(300)).await;
    send_str(&key_tx, "/quit");
    let (result, t) = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("quits")
        .expect("task");
    result.expect("runs cleanly");
    let buf = t.backend().buffer().clone();
    let mut s = String::new();
    for y in 0..30 {
        let mut skip = 0;
        for x in 0..120 {
            let Some(cell) = buf.cell((x, y)) else {
                continue;
            };
            if skip > 0 {
                skip -= 1; // under the right half of a wide character
                continue;
            }
            skip = UnicodeWidthStr::width(cell.symbol()).saturating_sub(1);
            s.push_str(cell.symbol());
        }
        s.push('\n');
    }
    assert!(s.contains("hi ␛[2J [👍 0x22222222…2222]"), "{s}");
    assert!(s.contains("you: hello bob [👍 you] ✓"), "{s}");
    assert!(
        s.contains("you: fail ✗ not sent: the room refused ␛[2J"),
        "{s}"
    );
    assert!(
        s.contains(&format!(
            "failed: blocked {BOB} — social service unreachable"
        )),
        "{s}"
    );
}
