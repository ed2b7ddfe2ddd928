//! The runner: puts the terminal in raw mode on the alternate screen (restored on exit and on
//! panic), then one `tokio::select!` loop over the keyboard (crossterm's `EventStream`), the
//! chat's events and the results of the actions it started; draws the [`App`] after each.
//!
//! Network actions (send, open a conversation, social actions, reactions) run as tasks, so a
//! slow service never freezes the screen; their results come back to the [`App`]. The local
//! history (optional) is written in the loop itself: incoming and outgoing messages are
//! recorded, a conversation is marked read while it is open, and the conversation list is
//! loaded from it at start.

use pchat_core::now_ms;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use crossterm::event::{Event as TermEvent, EventStream, KeyEventKind};
use futures_util::{Stream, StreamExt};
use pchat_history::{Direction, History};
use ratatui::Terminal;
use ratatui::backend::{Backend as TermBackend, CrosstermBackend};
use tokio::task::JoinSet;

use crate::app::{Action, App, AppOptions, Delivery, HistoryConversation, HistoryLine};
use crate::sdk::{Backend, ChatEvent, RecipientState, SentInfo, SocialAction};

/// Messages loaded from the history when a conversation is opened.
pub const HISTORY_PAGE: usize = 200;
/// Most redraws a second when events arrive faster (a flood is drawn in batches).
const REDRAW_EVERY: Duration = Duration::from_millis(50);

/// Why the app stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    #[error("terminal: {0}")]
    Terminal(#[from] io::Error),
    #[error("local history: {0}")]
    History(#[from] pchat_history::Error),
    #[error("the wallet's private key cannot be read: {0}")]
    Key(String),
}

/// How to run.
#[derive(Default)]
pub struct RunOptions {
    pub app: AppOptions,
    /// The local history to load and record into (`None`: nothing is kept).
    pub history: Option<History>,
}

/// Opens the wallet's local history at its default place
/// (`<data dir>/pchat/<address>/history.sqlite`, see `pchat-history`), encrypted with a key
/// derived from the wallet's private key.
pub async fn open_history(address: &str, private_key: &[u8; 32]) -> Result<History, TuiError> {
    let path = pchat_history::default_path(address)?;
    let key = pchat_history::HistoryKey::from_private_key(private_key);
    Ok(History::open(path, &key).await?)
}

/// [`open_history`] for `wallet` (its address and private key).
pub async fn open_wallet_history(wallet: &authchain::Wallet) -> Result<History, TuiError> {
    let mut secret = [0u8; 32];
    // `secret_hex` is always 0x + 64 hex digits.
    hex::decode_to_slice(wallet.secret_hex().trim_start_matches("0x"), &mut secret)
        .map_err(|e| TuiError::Key(e.to_string()))?;
    let history = open_history(&wallet.address().to_string(), &secret).await;
    secret.fill(0);
    history
}

/// Where the chat's events come from (the SDK's `ChatEvents`, or a channel in tests).
#[async_trait]
pub trait EventSource: Send {
    async fn recv(&mut self) -> Option<ChatEvent>;
}

#[async_trait]
impl EventSource for crate::sdk::ChatEvents {
    async fn recv(&mut self) -> Option<ChatEvent> {
        crate::sdk::ChatEvents::recv(self).await
    }
}

#[async_trait]
impl EventSource for tokio::sync::mpsc::Receiver<ChatEvent> {
    async fn recv(&mut self) -> Option<ChatEvent> {
        tokio::sync::mpsc::Receiver::recv(self).await
    }
}

/// Runs the app on this terminal until `/quit` or Ctrl-C.
pub async fn run<B: Backend, E: EventSource>(
    chat: B,
    events: E,
    options: RunOptions,
) -> Result<(), TuiError> {
    let _guard = TerminalGuard::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    terminal.clear()?;
    let keys = EventStream::new();
    let result = run_on(&mut terminal, keys, Arc::new(chat), events, options).await;
    drop(terminal);
    result
}

/// Raw mode + alternate screen + bracketed paste while alive; restored when dropped and by a
/// panic hook (a panic in the app must not leave the user's terminal unusable).
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> io::Result<TerminalGuard> {
        install_panic_hook();
        crossterm::terminal::enable_raw_mode()?;
        let guard = TerminalGuard;
        crossterm::execute!(
            io::stdout(),
            crossterm::terminal::EnterAlternateScreen,
            crossterm::event::EnableBracketedPaste
        )?;
        Ok(guard)
    }
}

fn restore_terminal() {
    let _ = crossterm::execute!(
        io::stdout(),
        crossterm::event::DisableBracketedPaste,
        crossterm::terminal::LeaveAlternateScreen,
        crossterm::cursor::Show
    );
    let _ = crossterm::terminal::disable_raw_mode();
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            previous(info);
        }));
    });
}

/// What a finished task reports.
enum Outcome {
    Sent {
        seq: u64,
        to: String,
        text: String,
        result: Result<SentInfo, String>,
    },
    Opened {
        peer: String,
        result: Result<RecipientState, String>,
        /// The peer's published key at opening (`None`: not known).
        key: Option<Option<crate::sdk::ChatKey>>,
        history: Option<Result<Vec<HistoryLine>, String>>,
    },
    Social {
        action: SocialAction,
        result: Result<(), String>,
    },
    Reacted {
        to: String,
        message_id: String,
        emoji: String,
        result: Result<(), String>,
    },
}

/// The loop, on any terminal backend and any key stream (tests use ratatui's `TestBackend` and
/// a scripted stream).
pub async fn run_on<W, K, B, E>(
    terminal: &mut Terminal<W>,
    mut keys: K,
    chat: Arc<B>,
    mut events: E,
    options: RunOptions,
) -> Result<(), TuiError>
where
    W: TermBackend,
    K: Stream<Item = io::Result<TermEvent>> + Unpin,
    B: Backend,
    E: EventSource,
{
    let history = options.history;
    let mut app = App::new(&chat.address(), options.app);
    app.set_time(now_ms());
    if let Some(h) = &history {
        match h.conversations().await {
            Ok(list) => app.load_conversations(
                list.into_iter()
                    .map(|c| HistoryConversation {
                        peer: c.peer,
                        last_ms: c.last_message_ms,
                        preview: c.preview,
                        unread: c.unread,
                    })
                    .collect(),
            ),
            Err(e) => app.report_error(format!("cannot read the local history: {e}")),
        }
    }
    if let Some(view) = chat.view() {
        app.set_view(view);
    }
    let mut tasks: JoinSet<Outcome> = JoinSet::new();
    let mut redraw = tokio::time::interval(REDRAW_EVERY);
    redraw.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut dirty = true;
    let mut events_open = true;
    draw(terminal, &app)?;
    loop {
        let mut actions = Vec::new();
        tokio::select! {
            key = keys.next() => {
                match key {
                    Some(Ok(TermEvent::Key(k))) if k.kind != KeyEventKind::Release => {
                        app.set_time(now_ms());
                        actions = app.on_key(k);
                    }
                    Some(Ok(TermEvent::Paste(text))) => {
                        app.set_time(now_ms());
                        app.on_paste(&text);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(TuiError::Terminal(e)),
                    None => break,
                }
                draw(terminal, &app)?;
                dirty = false;
            }
            event = events.recv(), if events_open => {
                match event {
                    Some(event) => {
                        let now = now_ms();
                        if let Some(h) = &history {
                            record_incoming(h, &event, now, &mut app).await;
                        }
                        if event == ChatEvent::ViewChanged
                            && let Some(view) = chat.view()
                        {
                            app.set_view(view);
                        }
                        actions = app.on_event(event, now);
                    }
                    None => {
                        events_open = false;
                        app.report_error("the chat connection has closed; /quit to leave");
                    }
                }
                dirty = true;
            }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                match done {
                    Ok(outcome) => apply(&mut app, outcome, history.as_ref()).await,
                    Err(e) => app.report_error(format!("internal task failed: {e}")),
                }
                dirty = true;
            }
            _ = redraw.tick() => {
                if dirty {
                    draw(terminal, &app)?;
                    dirty = false;
                }
            }
        }
        for action in actions {
            if action == Action::Quit {
                tasks.abort_all();
                if let Some(h) = history
                    && let Err(e) = h.close().await
                {
                    tracing::warn!(error = %e, "closing the local history");
                }
                return Ok(());
            }
            perform(&mut tasks, &chat, history.as_ref(), action, &mut app).await;
            dirty = true;
        }
    }
    tasks.abort_all();
    Ok(())
}

fn draw<W>(terminal: &mut Terminal<W>, app: &App) -> Result<(), TuiError>
where
    W: TermBackend,
{
    terminal
        .draw(|f| crate::ui::render(app, f))
        .map_err(|e| TuiError::Terminal(io::Error::other(e.to_string())))?;
    Ok(())
}

async fn record_incoming(h: &History, event: &ChatEvent, now: i64, app: &mut App) {
    if let ChatEvent::Reaction { from, reaction, .. } = event {
        let r = pchat_history::Reaction {
            emoji_index: u32::from(reaction.emoji_index),
            mine: false,
        };
        let done = if reaction.removal {
            h.remove_reaction(from, &reaction.message_id, r).await
        } else {
            h.set_reaction(from, &reaction.message_id, r).await
        };
        match done {
            // A reaction to a message this history does not hold is not kept.
            Ok(()) | Err(pchat_history::Error::UnknownMessage) => {}
            Err(e) => app.report_error(format!("cannot record the reaction: {e}")),
        }
    }
    if let ChatEvent::Message {
        from,
        message,
        id,
        protection,
    } = event
    {
        let entry = pchat_history::Entry {
            id: id.clone(),
            direction: Direction::Incoming,
            text: message.text.clone(),
            // When it arrived here: the sender's own timestamp is theirs to choose.
            timestamp_ms: now,
            delivery: pchat_history::Delivery::Received,
            protection: Some(*protection),
        };
        if let Err(e) = h.record(from, entry).await {
            app.report_error(format!(
                "cannot record the message in the local history: {e}"
            ));
        }
    }
}

async fn perform<B: Backend>(
    tasks: &mut JoinSet<Outcome>,
    chat: &Arc<B>,
    history: Option<&History>,
    action: Action,
    app: &mut App,
) {
    match action {
        Action::Send { seq, to, text } => {
            let chat = chat.clone();
            tasks.spawn(async move {
                let result = chat.send(&to, &text).await.map_err(|e| e.to_string());
                Outcome::Sent {
                    seq,
                    to,
                    text,
                    result,
                }
            });
        }
        Action::Open { peer } => {
            let chat = chat.clone();
            let history = history.cloned();
            tasks.spawn(async move {
                let result = chat
                    .open_conversation(&peer)
                    .await
                    .map_err(|e| e.to_string());
                let history = match history {
                    Some(h) => Some(load_history(&h, &peer).await),
                    None => None,
                };
                let key = chat.peer_key(&peer).await;
                Outcome::Opened {
                    peer,
                    result,
                    key,
                    history,
                }
            });
        }
        Action::Close { peer } => chat.close_conversation(&peer),
        Action::MarkRead { peer } => {
            if let Some(h) = history
                && let Err(e) = h.mark_read(&peer).await
            {
                app.report_error(format!("local history: {e}"));
            }
        }
        Action::Social(action) => {
            let chat = chat.clone();
            tasks.spawn(async move {
                let result = chat.social(&action).await.map_err(|e| e.to_string());
                Outcome::Social { action, result }
            });
        }
        Action::React {
            to,
            message_id,
            emoji,
        } => {
            let chat = chat.clone();
            tasks.spawn(async move {
                let result = chat
                    .react(&to, &message_id, &emoji)
                    .await
                    .map_err(|e| e.to_string());
                Outcome::Reacted {
                    to,
                    message_id,
                    emoji,
                    result,
                }
            });
        }
        Action::RequireEncryption { peer, required } => {
            let result = chat
                .require_encryption(&peer, required)
                .map_err(|e| e.to_string());
            app.encryption_result(&peer, required, result);
        }
        Action::Quit => {}
    }
}

async fn load_history(h: &History, peer: &str) -> Result<Vec<HistoryLine>, String> {
    let messages = h
        .messages(peer, HISTORY_PAGE, None)
        .await
        .map_err(|e| e.to_string())?;
    h.mark_read(peer).await.map_err(|e| e.to_string())?;
    Ok(messages
        .into_iter()
        .map(|m| HistoryLine {
            id: m.id,
            mine: m.direction == Direction::Outgoing,
            text: m.text,
            at_ms: m.timestamp_ms,
            delivery: match m.delivery {
                pchat_history::Delivery::Received => Delivery::Received,
                pchat_history::Delivery::Pending => Delivery::Pending,
                pchat_history::Delivery::Sent => Delivery::Sent,
                pchat_history::Delivery::NotSent { reason } => Delivery::NotSent(reason),
            },
            reactions: m
                .reactions
                .iter()
                .filter_map(|r| Some((u16::try_from(r.emoji_index).ok()?, r.mine)))
                .collect(),
            protection: m.protection,
        })
        .collect())
}

async fn apply(app: &mut App, outcome: Outcome, history: Option<&History>) {
    match outcome {
        Outcome::Sent {
            seq,
            to,
            text,
            result,
        } => {
            if let (Some(h), Ok(sent)) = (history, &result) {
                let entry = pchat_history::Entry {
                    id: sent.id.clone(),
                    direction: Direction::Outgoing,
                    text,
                    timestamp_ms: now_ms(),
                    delivery: pchat_history::Delivery::Sent,
                    protection: Some(sent.protection),
                };
                if let Err(e) = h.record(&to, entry).await {
                    app.report_error(format!(
                        "cannot record the message in the local history: {e}"
                    ));
                }
            }
            app.send_result(seq, &to, result);
        }
        Outcome::Opened {
            peer,
            result,
            key,
            history,
        } => {
            if let Some(key) = key {
                app.peer_key_at_opening(&peer, key);
            }
            match history {
                Some(Ok(lines)) => app.load_history(&peer, lines),
                Some(Err(e)) => app.report_error(format!("cannot read the local history: {e}")),
                None => {}
            }
            app.opened(&peer, result);
        }
        Outcome::Social { action, result } => app.social_result(&action, result),
        Outcome::Reacted {
            to,
            message_id,
            emoji,
            result,
        } => {
            if let (Some(h), Ok(()), Some(index)) =
                (history, &result, chat_core::reaction::emoji_index(&emoji))
            {
                let r = pchat_history::Reaction {
                    emoji_index: u32::from(index),
                    mine: true,
                };
                match h.set_reaction(&to, &message_id, r).await {
                    Ok(()) | Err(pchat_history::Error::UnknownMessage) => {}
                    Err(e) => app.report_error(format!("cannot record the reaction: {e}")),
                }
            }
            app.react_result(&to, &message_id, &emoji, result)
        }
    }
}
