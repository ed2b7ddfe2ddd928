//! The app's state and rules, without I/O: it takes key presses, pasted text, [`ChatEvent`]s and
//! the results of what the runner did, and answers with [`Action`]s for the runner to perform.
//!
//! # Bounds
//!
//! Everything a peer can make the app hold is capped: [`MAX_CONVERSATIONS`] conversations in
//! memory (the least recently active one that is not open is forgotten; the local history keeps
//! it), [`MAX_LINES_PER_CONVERSATION`] lines per conversation (older ones stay in the history),
//! [`MAX_REQUESTS`] incoming friendship requests listed, [`MAX_REACTIONS_PER_LINE`] reactions
//! on one message, and [`MAX_INPUT_CHARS`] characters in
//! the input line. Dropped packets are counted per reason, never listed.

use std::collections::{BTreeMap, HashMap, HashSet};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use pchat_core::{Privacy, normalize_address};

use crate::command::{Command, parse_command};
use crate::sdk::{
    ChatEvent, ChatKey, ConnectionState, Protection, RecipientState, SentInfo, SocialAction,
    SocialState, ViewSnapshot, privacy_label,
};

/// Conversations kept in memory.
pub const MAX_CONVERSATIONS: usize = 1_000;
/// Lines kept in memory per conversation.
pub const MAX_LINES_PER_CONVERSATION: usize = 1_000;
/// Incoming friendship requests listed.
pub const MAX_REQUESTS: usize = 200;
/// Longest input line (commands included), in characters.
pub const MAX_INPUT_CHARS: usize = 2_048;
/// Reactions shown on one message.
pub const MAX_REACTIONS_PER_LINE: usize = 64;
/// Lines one PageUp/PageDown scrolls.
const PAGE: usize = 10;

/// What the runner should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send `text` to `to`; report with [`App::send_result`] and the same `seq`.
    Send {
        seq: u64,
        to: String,
        text: String,
    },
    /// A conversation was opened: watch the peer's state (report with [`App::opened`]), load
    /// its history ([`App::load_history`]) and mark it read.
    Open {
        peer: String,
    },
    /// The conversation left is no longer watched.
    Close {
        peer: String,
    },
    /// The open conversation received a message that is now on screen.
    MarkRead {
        peer: String,
    },
    /// Report with [`App::social_result`].
    Social(SocialAction),
    /// React with `emoji` to the message `message_id` of the conversation with `to`.
    React {
        to: String,
        message_id: String,
        emoji: String,
    },
    /// Require (or stop requiring) encryption in the conversation with `peer`; report with
    /// [`App::encryption_result`].
    RequireEncryption {
        peer: String,
        required: bool,
    },
    Quit,
}

/// Who wrote a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Author {
    Me,
    /// The peer (the LiveKit identity the message came from).
    Peer,
}

/// What happened to a line I wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Received,
    Pending,
    /// On the data channel (✓).
    Sent,
    /// The recipient's client confirmed that it showed it (✓✓).
    Delivered,
    /// No confirmation came (the message may still have arrived), and why.
    NotConfirmed(String),
    NotSent(String),
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub author: Author,
    /// The message id (`"{sender}:{OLE timestamp}"`), once known.
    pub id: Option<String>,
    pub text: String,
    /// Milliseconds since the Unix epoch (when it arrived, or was sent, here).
    pub at_ms: i64,
    pub delivery: Delivery,
    /// Emoji reactions shown after the text.
    pub reactions: Vec<String>,
    /// Whether it travelled encrypted end to end (`None`: not known, e.g. from the history).
    pub protection: Option<Protection>,
    /// Local sequence number of an outgoing message (for [`App::send_result`]).
    seq: Option<u64>,
}

/// A conversation with one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// Lower-case address.
    pub peer: String,
    pub lines: Vec<Line>,
    pub unread: u64,
    /// The peer's state, once the SDK has said it.
    pub state: Option<RecipientState>,
    /// Milliseconds since the Unix epoch of the last message (0: none).
    pub last_ms: i64,
    /// Last text, when only the history's summary is loaded.
    pub preview: String,
    /// The peer's published encryption key, once the SDK has said it (`Some(None)`: none).
    pub key: Option<Option<ChatKey>>,
    /// Whether plaintext is refused in this conversation (`/encrypt require`).
    pub encryption_required: bool,
}

impl Conversation {
    fn new(peer: String) -> Self {
        Conversation {
            peer,
            lines: Vec::new(),
            unread: 0,
            state: None,
            last_ms: 0,
            preview: String::new(),
            key: None,
            encryption_required: false,
        }
    }

    fn push(&mut self, line: Line) {
        self.last_ms = self.last_ms.max(line.at_ms);
        self.preview.clear();
        self.lines.push(line);
        if self.lines.len() > MAX_LINES_PER_CONVERSATION {
            let extra = self.lines.len() - MAX_LINES_PER_CONVERSATION;
            self.lines.drain(..extra);
        }
    }
}

/// A message from the history, for [`App::load_history`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryLine {
    pub id: String,
    pub mine: bool,
    pub text: String,
    pub at_ms: i64,
    pub delivery: Delivery,
    /// Reactions kept with it: (emoji index in the reference client's atlas, mine).
    pub reactions: Vec<(u16, bool)>,
    /// How it travelled, as the history recorded it (`None`: not known).
    pub protection: Option<Protection>,
}

/// A conversation from the history, for [`App::load_conversations`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryConversation {
    pub peer: String,
    pub last_ms: i64,
    pub preview: String,
    pub unread: u64,
}

/// How serious a notice is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
}

/// A one-line message to the user (the result of the last thing done, or what just happened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub level: Level,
    pub text: String,
}

/// The app's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppOptions {
    /// Longest message in characters (UTF-16 units, as the reference client counts).
    pub max_chars: usize,
    /// Offset of the local time zone from UTC, in seconds, for the times shown.
    pub utc_offset_secs: i32,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            max_chars: 155,
            utc_offset_secs: 0,
        }
    }
}

impl AppOptions {
    /// The defaults, with times shown in this machine's time zone.
    pub fn local() -> Self {
        AppOptions {
            utc_offset_secs: chrono::Local::now().offset().local_minus_utc(),
            ..AppOptions::default()
        }
    }
}

/// Length of a message as the limit counts it: UTF-16 code units, as the reference client's
/// input field does.
pub use chat_core::outgoing::text_len;

/// The whole state of the app.
#[derive(Debug, Clone)]
pub struct App {
    me: String,
    options: AppOptions,
    /// Newest activity first.
    conversations: Vec<Conversation>,
    open: Option<String>,
    input: String,
    /// Cursor position in characters.
    cursor: usize,
    /// Lines scrolled up from the bottom of the open conversation.
    scroll: usize,
    requests: Vec<(String, Option<String>)>,
    view: Option<ViewSnapshot>,
    friends: HashSet<String>,
    online: HashSet<String>,
    room: ConnectionState,
    social: SocialState,
    fail_closed: bool,
    drops: BTreeMap<&'static str, u64>,
    lagged: u64,
    notice: Option<Notice>,
    show_help: bool,
    quit: bool,
    next_seq: u64,
    /// The local time, set by the runner ([`App::set_time`]).
    now_ms: i64,
}

impl App {
    /// The app of the wallet `me`.
    pub fn new(me: &str, options: AppOptions) -> Self {
        App {
            me: me.to_ascii_lowercase(),
            options,
            conversations: Vec::new(),
            open: None,
            input: String::new(),
            cursor: 0,
            scroll: 0,
            requests: Vec::new(),
            view: None,
            friends: HashSet::new(),
            online: HashSet::new(),
            room: ConnectionState::Connecting,
            social: SocialState::Connecting,
            fail_closed: false,
            drops: BTreeMap::new(),
            lagged: 0,
            notice: Some(Notice {
                level: Level::Info,
                text: "type /to <address> to open a conversation, /help for the commands".into(),
            }),
            show_help: false,
            quit: false,
            next_seq: 0,
            now_ms: 0,
        }
    }

    /// The local time (milliseconds since the Unix epoch), for the lines written next.
    pub fn set_time(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
    }

    // ---- read access (for rendering and tests) ----

    pub fn me(&self) -> &str {
        &self.me
    }
    pub fn options(&self) -> &AppOptions {
        &self.options
    }
    pub fn conversations(&self) -> &[Conversation] {
        &self.conversations
    }
    pub fn open_peer(&self) -> Option<&str> {
        self.open.as_deref()
    }
    pub fn open_conversation(&self) -> Option<&Conversation> {
        let open = self.open.as_deref()?;
        self.conversations.iter().find(|c| c.peer == open)
    }
    pub fn input(&self) -> &str {
        &self.input
    }
    pub fn cursor(&self) -> usize {
        self.cursor
    }
    pub fn scroll(&self) -> usize {
        self.scroll
    }
    pub fn requests(&self) -> &[(String, Option<String>)] {
        &self.requests
    }
    pub fn room_state(&self) -> ConnectionState {
        self.room
    }
    pub fn social_state(&self) -> &SocialState {
        &self.social
    }
    pub fn fail_closed(&self) -> bool {
        self.fail_closed
    }
    pub fn privacy(&self) -> Option<Privacy> {
        self.view.as_ref().map(|v| v.privacy)
    }
    pub fn is_friend(&self, peer: &str) -> bool {
        self.friends.contains(peer)
    }
    pub fn is_online(&self, peer: &str) -> bool {
        self.online.contains(peer)
    }
    pub fn drops(&self) -> &BTreeMap<&'static str, u64> {
        &self.drops
    }
    pub fn lagged(&self) -> u64 {
        self.lagged
    }
    pub fn notice(&self) -> Option<&Notice> {
        self.notice.as_ref()
    }
    pub fn show_help(&self) -> bool {
        self.show_help
    }
    pub fn should_quit(&self) -> bool {
        self.quit
    }

    /// Whether the input line is a command (typed with a leading `/`).
    pub fn input_is_command(&self) -> bool {
        self.input.starts_with('/') && !self.input.starts_with("//")
    }

    /// Why a message cannot be written now (`None`: it can).
    pub fn disabled_reason(&self) -> Option<String> {
        let Some(c) = self.open_conversation() else {
            return Some("no conversation open: /to <address>".into());
        };
        let peer = short(&c.peer);
        match c.state {
            Some(RecipientState::Connected) => None,
            None => Some(format!("checking whether {peer} can receive…")),
            Some(state) => Some(state_reason(state, &peer)),
        }
    }

    // ---- input ----

    /// A key press. Returns what the runner should do.
    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Action> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('c') | KeyCode::Char('d') if ctrl => {
                self.quit = true;
                vec![Action::Quit]
            }
            KeyCode::Char('u') if ctrl => {
                self.input.clear();
                self.cursor = 0;
                Vec::new()
            }
            KeyCode::Char(c) if !ctrl => {
                self.insert(&c.to_string());
                Vec::new()
            }
            KeyCode::Backspace => {
                if self.cursor > 0 {
                    self.cursor -= 1;
                    self.remove_at(self.cursor);
                }
                Vec::new()
            }
            KeyCode::Delete => {
                self.remove_at(self.cursor);
                Vec::new()
            }
            KeyCode::Left => {
                self.cursor = self.cursor.saturating_sub(1);
                Vec::new()
            }
            KeyCode::Right => {
                self.cursor = (self.cursor + 1).min(self.input.chars().count());
                Vec::new()
            }
            KeyCode::Home => {
                self.cursor = 0;
                Vec::new()
            }
            KeyCode::End => {
                self.cursor = self.input.chars().count();
                Vec::new()
            }
            KeyCode::Esc => {
                self.show_help = false;
                self.notice = None;
                Vec::new()
            }
            KeyCode::PageUp => {
                self.scroll = self.scroll.saturating_add(PAGE);
                self.clamp_scroll();
                Vec::new()
            }
            KeyCode::PageDown => {
                self.scroll = self.scroll.saturating_sub(PAGE);
                Vec::new()
            }
            KeyCode::Tab => self.cycle(1),
            KeyCode::BackTab => self.cycle(-1),
            KeyCode::Enter => self.submit(),
            _ => Vec::new(),
        }
    }

    /// Pasted text (bracketed paste): inserted as typed, line breaks as spaces.
    pub fn on_paste(&mut self, text: &str) {
        let flat: String = text
            .chars()
            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
            .collect();
        self.insert(&flat);
    }

    fn insert(&mut self, s: &str) {
        let mut buf: Vec<char> = self.input.chars().collect();
        let mut at = self.cursor.min(buf.len());
        for c in s.chars() {
            if c.is_control() {
                continue; // a key press never types a control character into a message
            }
            let candidate_len = buf.len() + 1;
            if candidate_len > MAX_INPUT_CHARS {
                self.error(format!(
                    "the input line holds at most {MAX_INPUT_CHARS} characters"
                ));
                break;
            }
            buf.insert(at, c);
            at += 1;
            let as_text: String = buf.iter().collect();
            let is_command = as_text.starts_with('/') && !as_text.starts_with("//");
            if !is_command {
                if let Some(reason) = self.disabled_reason() {
                    buf.remove(at - 1);
                    at -= 1;
                    self.error(format!("{reason} (commands start with /)"));
                    break;
                }
                let len = text_len(message_text(&as_text));
                if len > self.options.max_chars {
                    buf.remove(at - 1);
                    at -= 1;
                    self.error(format!(
                        "a message holds at most {} characters",
                        self.options.max_chars
                    ));
                    break;
                }
            }
        }
        self.input = buf.into_iter().collect();
        self.cursor = at;
    }

    fn remove_at(&mut self, at: usize) {
        let mut buf: Vec<char> = self.input.chars().collect();
        if at < buf.len() {
            buf.remove(at);
            self.input = buf.into_iter().collect();
        }
    }

    fn cycle(&mut self, step: isize) -> Vec<Action> {
        if self.conversations.is_empty() {
            return Vec::new();
        }
        let n = self.conversations.len() as isize;
        let current = self
            .open
            .as_deref()
            .and_then(|o| self.conversations.iter().position(|c| c.peer == o))
            .map(|i| i as isize)
            .unwrap_or(-1);
        let next = (current + step).rem_euclid(n) as usize;
        let peer = self.conversations[next].peer.clone();
        self.open_peer_conversation(peer)
    }

    fn submit(&mut self) -> Vec<Action> {
        let line = std::mem::take(&mut self.input);
        self.cursor = 0;
        if line.trim().is_empty() {
            return Vec::new();
        }
        if line.starts_with('/') && !line.starts_with("//") {
            self.show_help = false;
            return match parse_command(&line) {
                Ok(cmd) => self.command(cmd),
                Err(e) => {
                    self.error(e.to_string());
                    self.input = line;
                    self.cursor = self.input.chars().count();
                    Vec::new()
                }
            };
        }
        let text = message_text(&line).to_owned();
        if let Some(reason) = self.disabled_reason() {
            self.error(reason);
            self.input = line;
            self.cursor = self.input.chars().count();
            return Vec::new();
        }
        let len = text_len(&text);
        if len > self.options.max_chars {
            self.error(format!(
                "the message has {len} characters; the limit is {}",
                self.options.max_chars
            ));
            self.input = line;
            self.cursor = self.input.chars().count();
            return Vec::new();
        }
        let Some(to) = self.open.clone() else {
            return Vec::new();
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let now = self.now_ms;
        if let Some(c) = self.conversation_mut(&to) {
            c.push(Line {
                author: Author::Me,
                id: None,
                text: text.clone(),
                at_ms: now,
                delivery: Delivery::Pending,
                reactions: Vec::new(),
                protection: None,
                seq: Some(seq),
            });
        }
        self.touch(&to);
        self.scroll = 0;
        vec![Action::Send { seq, to, text }]
    }

    fn command(&mut self, cmd: Command) -> Vec<Action> {
        match cmd {
            Command::To(peer) => self.open_peer_conversation(peer),
            Command::Social(action) => vec![Action::Social(action)],
            Command::React(emoji) => {
                let Some(c) = self.open_conversation() else {
                    self.error("no conversation open: /to <address>");
                    return Vec::new();
                };
                let Some(line) = c.lines.iter().rev().find(|l| l.id.is_some()) else {
                    self.error("no message to react to in this conversation");
                    return Vec::new();
                };
                let to = c.peer.clone();
                let message_id = line.id.clone().unwrap_or_default();
                vec![Action::React {
                    to,
                    message_id,
                    emoji,
                }]
            }
            Command::RequireEncryption(required) => {
                let Some(peer) = self.open.clone() else {
                    self.error("no conversation open: /to <address>");
                    return Vec::new();
                };
                vec![Action::RequireEncryption { peer, required }]
            }
            Command::Help => {
                self.show_help = true;
                Vec::new()
            }
            Command::Quit => {
                self.quit = true;
                vec![Action::Quit]
            }
        }
    }

    fn open_peer_conversation(&mut self, peer: String) -> Vec<Action> {
        if peer == self.me {
            self.error("that is your own address");
            return Vec::new();
        }
        let mut actions = Vec::new();
        if let Some(prev) = self.open.take() {
            if prev == peer {
                self.open = Some(prev);
                return actions;
            }
            // No longer watched (unless a friend): its last state would go stale.
            if !self.friends.contains(&prev)
                && let Some(c) = self.conversation_mut(&prev)
            {
                c.state = None;
            }
            actions.push(Action::Close { peer: prev });
        }
        if self.conversation_mut(&peer).is_none() {
            self.insert_conversation(Conversation::new(peer.clone()));
        }
        if let Some(c) = self.conversation_mut(&peer) {
            c.unread = 0;
        }
        self.open = Some(peer.clone());
        self.scroll = 0;
        self.notice = None;
        actions.push(Action::Open { peer });
        actions
    }

    // ---- results of actions ----

    /// The SDK's answer to [`Action::Open`]: the peer's state, or why it could not be watched.
    pub fn opened(&mut self, peer: &str, result: Result<RecipientState, String>) {
        match result {
            Ok(state) => self.set_state(peer, state),
            Err(e) => self.error(format!("cannot open the conversation with {peer}: {e}")),
        }
    }

    /// The SDK's answer to [`Action::Send`].
    pub fn send_result(&mut self, seq: u64, to: &str, result: Result<SentInfo, String>) {
        let Some(c) = self.conversation_mut(to) else {
            return;
        };
        let Some(line) = c.lines.iter_mut().rev().find(|l| l.seq == Some(seq)) else {
            return;
        };
        match result {
            Ok(sent) => {
                line.delivery = Delivery::Sent;
                line.id = Some(sent.id);
                line.protection = Some(sent.protection);
            }
            Err(e) => {
                line.delivery = Delivery::NotSent(e.clone());
                self.error(format!("not sent: {e}"));
            }
        }
    }

    /// The SDK's answer to [`Action::Social`].
    pub fn social_result(&mut self, action: &SocialAction, result: Result<(), String>) {
        match result {
            Ok(()) => {
                match action {
                    SocialAction::Accept(a) | SocialAction::Reject(a) => {
                        self.requests.retain(|(f, _)| f != a);
                    }
                    SocialAction::Privacy(p) => {
                        if let Some(v) = self.view.as_mut() {
                            v.privacy = *p;
                        }
                    }
                    _ => {}
                }
                self.info(action.describe());
            }
            Err(e) => self.error(format!("failed: {} — {e}", action.describe())),
        }
    }

    /// The answer to [`Action::RequireEncryption`].
    pub fn encryption_result(&mut self, peer: &str, required: bool, r: Result<(), String>) {
        match r {
            Ok(()) => {
                if let Some(c) = self.conversation_mut(peer) {
                    c.encryption_required = required;
                }
                self.info(if required {
                    format!("{peer}: encryption required; a message that cannot be encrypted is not sent")
                } else {
                    format!("{peer}: plaintext allowed when they have no encryption key")
                });
            }
            Err(e) => self.error(format!("cannot change the encryption setting: {e}")),
        }
    }

    /// The answer to [`Action::React`].
    pub fn react_result(&mut self, to: &str, message_id: &str, emoji: &str, r: Result<(), String>) {
        match r {
            Ok(()) => {
                if let Some(line) = self.conversation_mut(to).and_then(|c| {
                    c.lines
                        .iter_mut()
                        .find(|l| l.id.as_deref() == Some(message_id))
                }) {
                    let tag = format!("{emoji} you");
                    if !line.reactions.contains(&tag)
                        && line.reactions.len() < MAX_REACTIONS_PER_LINE
                    {
                        line.reactions.push(tag);
                    }
                }
            }
            Err(e) => self.error(format!("reaction not sent: {e}")),
        }
    }

    /// A reaction from `from` (the LiveKit identity) on a message of our conversation:
    /// `emoji_index` in the reference client's atlas, `removal` to take it back. Reactions on
    /// unknown messages are ignored; each message shows at most [`MAX_REACTIONS_PER_LINE`].
    pub fn on_reaction(&mut self, from: &str, message_id: &str, emoji_index: u16, removal: bool) {
        let Some(emoji) = chat_core::reaction::emoji_for_index(emoji_index) else {
            return;
        };
        let peer = from.to_ascii_lowercase();
        let Some(line) = self.conversation_mut(&peer).and_then(|c| {
            c.lines
                .iter_mut()
                .find(|l| l.id.as_deref() == Some(message_id))
        }) else {
            return;
        };
        let tag = format!("{emoji} {}", short(&peer));
        if removal {
            line.reactions.retain(|r| *r != tag);
        } else if !line.reactions.contains(&tag) && line.reactions.len() < MAX_REACTIONS_PER_LINE {
            line.reactions.push(tag);
        }
    }

    /// An error the runner met (history, terminal…), shown on the notice line.
    pub fn report_error(&mut self, text: impl Into<String>) {
        self.error(text);
    }

    /// The conversation list from the local history (at start).
    pub fn load_conversations(&mut self, list: Vec<HistoryConversation>) {
        for h in list {
            let Ok(peer) = normalize_address(&h.peer) else {
                continue;
            };
            if self.conversation_mut(&peer).is_none() {
                self.insert_conversation(Conversation::new(peer.clone()));
            }
            let is_open = self.open.as_deref() == Some(peer.as_str());
            if let Some(c) = self.conversation_mut(&peer) {
                c.last_ms = c.last_ms.max(h.last_ms);
                if c.lines.is_empty() {
                    c.preview = h.preview;
                }
                if !is_open {
                    c.unread = c.unread.max(h.unread);
                }
            }
        }
        self.sort();
    }

    /// A conversation's messages from the local history (older than anything shown live).
    pub fn load_history(&mut self, peer: &str, messages: Vec<HistoryLine>) {
        let Some(c) = self.conversation_mut(peer) else {
            return;
        };
        let who = short(&c.peer);
        let known: HashSet<String> = c.lines.iter().filter_map(|l| l.id.clone()).collect();
        let mut merged: Vec<Line> = messages
            .into_iter()
            .filter(|m| !known.contains(&m.id))
            .map(|m| Line {
                author: if m.mine { Author::Me } else { Author::Peer },
                id: Some(m.id),
                text: m.text,
                at_ms: m.at_ms,
                delivery: m.delivery,
                reactions: m
                    .reactions
                    .iter()
                    .filter_map(|(index, mine)| {
                        let emoji = chat_core::reaction::emoji_for_index(*index)?;
                        Some(format!("{emoji} {}", if *mine { "you" } else { &who }))
                    })
                    .take(MAX_REACTIONS_PER_LINE)
                    .collect(),
                protection: m.protection,
                seq: None,
            })
            .collect();
        merged.append(&mut c.lines);
        merged.sort_by_key(|l| l.at_ms);
        let extra = merged.len().saturating_sub(MAX_LINES_PER_CONVERSATION);
        merged.drain(..extra);
        if let Some(last) = merged.last() {
            c.last_ms = c.last_ms.max(last.at_ms);
        }
        c.lines = merged;
        c.preview.clear();
    }

    /// The social view (reloaded by the runner on `ViewChanged`).
    pub fn set_view(&mut self, view: ViewSnapshot) {
        self.friends = view.friends.iter().cloned().collect();
        self.online = view.online.iter().cloned().collect();
        self.requests = view.pending_in.clone();
        self.requests.truncate(MAX_REQUESTS);
        for f in &view.friends {
            if self.conversations.len() >= MAX_CONVERSATIONS {
                break;
            }
            if self.conversation_mut(f).is_none() {
                self.insert_conversation(Conversation::new(f.clone()));
            }
        }
        self.view = Some(view);
        self.sort();
    }

    // ---- events ----

    /// An event of the chat. `now_ms`: the local time it arrived.
    pub fn on_event(&mut self, event: ChatEvent, now_ms: i64) -> Vec<Action> {
        self.now_ms = now_ms;
        match event {
            ChatEvent::Message {
                from,
                message,
                id,
                protection,
            } => {
                let peer = from.to_ascii_lowercase();
                if self.conversation_mut(&peer).is_none() {
                    self.insert_conversation(Conversation::new(peer.clone()));
                }
                let is_open = self.open.as_deref() == Some(peer.as_str());
                if let Some(c) = self.conversation_mut(&peer) {
                    if c.lines.iter().any(|l| l.id.as_deref() == Some(id.as_str())) {
                        return Vec::new();
                    }
                    c.push(Line {
                        author: Author::Peer,
                        id: Some(id),
                        text: message.text,
                        at_ms: now_ms,
                        delivery: Delivery::Received,
                        reactions: Vec::new(),
                        protection: Some(protection),
                        seq: None,
                    });
                    if !is_open {
                        c.unread += 1;
                    }
                }
                self.touch(&peer);
                if is_open {
                    return vec![Action::MarkRead { peer }];
                }
            }
            ChatEvent::PeerKey { address, key } => self.on_peer_key(&address, key),
            ChatEvent::Reaction { from, reaction, .. } => self.on_reaction(
                &from,
                &reaction.message_id,
                reaction.emoji_index,
                reaction.removal,
            ),
            ChatEvent::Dropped { reason, count, .. } => {
                let slot = self.drops.entry(reason.name()).or_insert(0);
                *slot = (*slot).max(count);
            }
            ChatEvent::RecipientState { address, state } => self.set_state(&address, state),
            ChatEvent::ViewChanged => {}
            ChatEvent::FriendshipRequested { from, message } => {
                self.requests.retain(|(f, _)| *f != from);
                if self.requests.len() >= MAX_REQUESTS {
                    self.requests.remove(0);
                }
                self.info(match &message {
                    Some(m) => format!("friend request from {from}: {m} (/friend accept|reject)"),
                    None => format!("friend request from {from} (/friend accept|reject)"),
                });
                self.requests.push((from, message));
            }
            ChatEvent::FriendshipAccepted { by } => {
                self.friends.insert(by.clone());
                self.info(format!("{by} accepted your friend request"));
            }
            ChatEvent::FriendshipRejected { by } => {
                self.info(format!("{by} rejected your friend request"))
            }
            ChatEvent::FriendshipCancelled { by } => {
                self.requests.retain(|(f, _)| *f != by);
                self.info(format!("{by} cancelled their friend request"));
            }
            ChatEvent::FriendshipDeleted { by } => {
                self.friends.remove(&by);
                self.info(format!("{by} removed you from their friends"));
            }
            ChatEvent::BlockedBy { address, blocked } => {
                if blocked {
                    self.info(format!("{address} blocked you"));
                } else {
                    self.info(format!("{address} unblocked you"));
                }
            }
            ChatEvent::FriendOnline { address } => {
                self.online.insert(address);
            }
            ChatEvent::FriendOffline { address } => {
                self.online.remove(&address);
            }
            ChatEvent::RoomState(s) => self.room = s,
            ChatEvent::SocialState(s) => self.social = s,
            ChatEvent::FilterFailClosed(b) => self.fail_closed = b,
            ChatEvent::Lagged { dropped } => self.lagged = self.lagged.saturating_add(dropped),
            ChatEvent::Delivered { id, to } => self.set_delivery(&to, &id, Delivery::Delivered),
            ChatEvent::NotDelivered { id, to, reason } => {
                self.set_delivery(&to, &id, Delivery::NotConfirmed(reason.to_string()));
                self.info(format!("a message to {to} was not confirmed: {reason}"));
            }
        }
        Vec::new()
    }

    // ---- helpers ----

    /// The delivery of my message `id` to `peer` (a line no longer in memory is left alone).
    fn set_delivery(&mut self, peer: &str, id: &str, delivery: Delivery) {
        let peer = peer.to_ascii_lowercase();
        if let Some(line) = self.conversation_mut(&peer).and_then(|c| {
            c.lines
                .iter_mut()
                .rev()
                .find(|l| l.author == Author::Me && l.id.as_deref() == Some(id))
        }) {
            line.delivery = delivery;
        }
    }

    fn set_state(&mut self, peer: &str, state: RecipientState) {
        if let Some(c) = self.conversation_mut(peer) {
            c.state = Some(state);
        }
    }

    fn conversation_mut(&mut self, peer: &str) -> Option<&mut Conversation> {
        self.conversations.iter_mut().find(|c| c.peer == peer)
    }

    /// The peer's key when its conversation was opened (silently: changes after it come as
    /// [`ChatEvent::PeerKey`] and are announced).
    pub fn peer_key_at_opening(&mut self, peer: &str, key: Option<ChatKey>) {
        if let Some(c) = self.conversation_mut(peer) {
            c.key = Some(key);
        }
    }

    /// A watched peer's published key appeared, changed (a new session) or went.
    fn on_peer_key(&mut self, peer: &str, key: Option<ChatKey>) {
        let is_open = self.open.as_deref() == Some(peer);
        let Some(c) = self.conversation_mut(peer) else {
            return;
        };
        let before = c.key.replace(key);
        if !is_open {
            return;
        }
        match (before.flatten(), key) {
            (Some(old), Some(new)) if old != new => self.info(format!(
                "{peer} has a new encryption key {} (a new session)",
                new.fingerprint()
            )),
            (Some(_), None) => self.info(format!(
                "{peer} publishes no encryption key now: messages to them go in plaintext"
            )),
            (None, Some(new)) if before.is_some() => self.info(format!(
                "{peer} publishes encryption key {}: messages are encrypted",
                new.fingerprint()
            )),
            _ => {}
        }
    }

    fn insert_conversation(&mut self, c: Conversation) {
        if self.conversations.len() >= MAX_CONVERSATIONS {
            // Forget the least recently active conversation that is not open.
            let open = self.open.clone();
            if let Some(i) = self
                .conversations
                .iter()
                .enumerate()
                .filter(|(_, c)| Some(&c.peer) != open.as_ref())
                .min_by_key(|(_, c)| c.last_ms)
                .map(|(i, _)| i)
            {
                self.conversations.remove(i);
            }
        }
        self.conversations.push(c);
        self.sort();
    }

    /// Moves `peer`'s conversation into its place by activity.
    fn touch(&mut self, _peer: &str) {
        self.sort();
    }

    fn sort(&mut self) {
        self.conversations
            .sort_by(|a, b| b.last_ms.cmp(&a.last_ms).then_with(|| a.peer.cmp(&b.peer)));
    }

    fn clamp_scroll(&mut self) {
        let n = self.open_conversation().map_or(0, |c| c.lines.len());
        self.scroll = self.scroll.min(n.saturating_sub(1));
    }

    fn info(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            level: Level::Info,
            text: text.into(),
        });
    }

    fn error(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            level: Level::Error,
            text: text.into(),
        });
    }
}

/// The message a line sends: `//text` sends `/text`.
pub fn message_text(line: &str) -> &str {
    line.strip_prefix('/')
        .filter(|r| r.starts_with('/'))
        .unwrap_or(line)
}

/// `0x1234abcd…ef01`: enough of an address to tell two apart at a glance (the full address is
/// in the conversation's title).
pub fn short(address: &str) -> String {
    if address.len() == 42 && address.is_ascii() {
        format!("{}…{}", &address[..10], &address[38..])
    } else {
        address.to_owned()
    }
}

/// The state's name, as the reference client shows it.
pub fn state_name(state: RecipientState) -> &'static str {
    match state {
        RecipientState::Connected => "CONNECTED",
        RecipientState::Disconnected => "DISCONNECTED",
        RecipientState::BlockedByOwnUser => "BLOCKED",
        RecipientState::PrivateMessagesBlockedByOwnUser => "PRIVATE_MESSAGES_BLOCKED_BY_OWN_USER",
        RecipientState::PrivateMessagesBlocked => "PRIVATE_MESSAGES_BLOCKED",
    }
}

/// Why the input is disabled in `state`.
pub fn state_reason(state: RecipientState, peer: &str) -> String {
    let name = state_name(state);
    match state {
        RecipientState::Connected => format!("{peer} is {name}"),
        RecipientState::Disconnected => format!("{peer} is {name}: not in the chat room"),
        RecipientState::BlockedByOwnUser => {
            format!("{peer} is {name}: you blocked them (/unblock to write)")
        }
        RecipientState::PrivateMessagesBlockedByOwnUser => format!(
            "{peer} is {name}: you accept messages only from friends (/privacy all to write)"
        ),
        RecipientState::PrivateMessagesBlocked => {
            format!("{peer} is {name}: they accept messages only from friends")
        }
    }
}

/// The status line's drop summary: `dropped 2499 (blocked-by-me 2400, rate-limited 99)`.
pub fn drop_summary(drops: &BTreeMap<&'static str, u64>) -> Option<String> {
    let total: u64 = drops.values().sum();
    if total == 0 {
        return None;
    }
    let parts: Vec<String> = drops.iter().map(|(k, v)| format!("{k} {v}")).collect();
    Some(format!("dropped {total} ({})", parts.join(", ")))
}

/// The status line's connection part.
pub fn status_text(app: &App) -> String {
    let room = match app.room_state() {
        ConnectionState::Connecting => "connecting",
        ConnectionState::Connected => "connected",
        ConnectionState::Reconnecting => "reconnecting",
        ConnectionState::Disconnected => "disconnected",
    };
    let social = match app.social_state() {
        SocialState::Connecting => "connecting".to_owned(),
        SocialState::Connected => "connected".to_owned(),
        SocialState::Reconnecting { attempt, error } => {
            format!("reconnecting (attempt {attempt}: {error})")
        }
    };
    let mut out = format!("room: {room} · social: {social}");
    if let Some(p) = app.privacy() {
        out.push_str(&format!(" · privacy: {}", privacy_label(p)));
    }
    if app.fail_closed() {
        out.push_str(" · filter fail-closed (friends only)");
    }
    if let Some(d) = drop_summary(app.drops()) {
        out.push_str(" · ");
        out.push_str(&d);
    }
    if app.lagged() > 0 {
        out.push_str(&format!(" · lagged {}", app.lagged()));
    }
    out
}

/// Unread counts by peer (for tests and the title).
pub fn unread_by_peer(app: &App) -> HashMap<String, u64> {
    app.conversations()
        .iter()
        .map(|c| (c.peer.clone(), c.unread))
        .collect()
}
