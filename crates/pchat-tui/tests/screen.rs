//! The app model driven by keys and chat events, checked on the screen ratatui's `TestBackend`
//! draws: one test per state the app shows, and the nasty network payloads of issue #9 item 4a.

use chat_core::{ChatMessage, RecipientState};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use livekit_participant::ConnectionState;
use pchat_core::Privacy;
use pchat_tui::app::{Action, App, AppOptions, Delivery, HistoryConversation, HistoryLine};
use pchat_tui::display::is_unsafe;
use pchat_tui::sdk::{ChatEvent, DropReason, SentInfo, SocialAction, SocialState, ViewSnapshot};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use unicode_width::UnicodeWidthStr;

const ME: &str = "0x1111111111111111111111111111111111111111";
const BOB: &str = "0x2222222222222222222222222222222222222222";
const CAROL: &str = "0x3333333333333333333333333333333333333333";
const MALLORY: &str = "0x6666666666666666666666666666666666666666";
/// 12:00 UTC on some day.
const NOON: i64 = 1_764_417_600_000;

fn app() -> App {
    let mut app = App::new(ME, AppOptions::default());
    app.set_time(NOON);
    app
}

/// The screen, one string per row (wide characters' filler cells skipped).
fn screen(app: &App, w: u16, h: u16) -> Vec<String> {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    terminal
        .draw(|f| pchat_tui::ui::render(app, f))
        .expect("draw");
    let buf = terminal.backend().buffer().clone();
    (0..h)
        .map(|y| {
            let mut row = String::new();
            let mut skip = 0;
            for x in 0..w {
                let Some(cell) = buf.cell((x, y)) else {
                    continue;
                };
                if skip > 0 {
                    skip -= 1; // the cell under the right half of a wide character
                    continue;
                }
                let symbol = cell.symbol();
                skip = UnicodeWidthStr::width(symbol).saturating_sub(1);
                row.push_str(symbol);
            }
            row
        })
        .collect()
}

fn text(rows: &[String]) -> String {
    rows.join("\n")
}

fn key(app: &mut App, code: KeyCode) -> Vec<Action> {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn type_str(app: &mut App, s: &str) -> Vec<Action> {
    let mut out = Vec::new();
    for c in s.chars() {
        out.extend(key(app, KeyCode::Char(c)));
    }
    out
}

fn command(app: &mut App, line: &str) -> Vec<Action> {
    type_str(app, line);
    key(app, KeyCode::Enter)
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

fn state(address: &str, state: RecipientState) -> ChatEvent {
    ChatEvent::RecipientState {
        address: address.into(),
        state,
    }
}

/// `/to BOB` and Bob CONNECTED.
fn open_bob(app: &mut App) {
    let actions = command(app, &format!("/to {BOB}"));
    assert_eq!(actions, vec![Action::Open { peer: BOB.into() }]);
    app.opened(BOB, Ok(RecipientState::Connected));
}

#[test]
fn conversation_list_shows_unread_counts_and_live_state() {
    let mut app = app();
    app.on_event(message(BOB, "hello", 1.0), NOON);
    app.on_event(message(BOB, "are you there?", 2.0), NOON + 1);
    app.on_event(message(CAROL, "hi", 3.0), NOON + 2);
    app.on_event(state(BOB, RecipientState::Connected), NOON);
    let rows = screen(&app, 120, 30);
    let s = text(&rows);
    assert!(s.contains("Conversations (2)"), "{s}");
    let bob_row = rows
        .iter()
        .find(|r| r.contains("0x22222222…2222"))
        .expect("bob listed");
    assert!(bob_row.contains("● 0x22222222…2222 (2)"), "{bob_row}");
    let carol_row = rows
        .iter()
        .find(|r| r.contains("0x33333333…3333"))
        .expect("carol listed");
    assert!(carol_row.contains("· 0x33333333…3333 (1)"), "{carol_row}");
    // Carol wrote last: listed first.
    let bob_y = rows.iter().position(|r| r.contains("0x22222222…2222"));
    let carol_y = rows.iter().position(|r| r.contains("0x33333333…3333"));
    assert!(carol_y < bob_y);

    // Opening Bob's conversation shows his messages and clears his unread count.
    open_bob(&mut app);
    let rows = screen(&app, 120, 30);
    let s = text(&rows);
    assert!(s.contains(&format!("{BOB} — CONNECTED")), "{s}");
    assert!(s.contains("12:00 0x22222222…2222: hello"), "{s}");
    assert!(s.contains("12:00 0x22222222…2222: are you there?"), "{s}");
    assert!(s.contains("▶ ● 0x22222222…2222 "), "{s}");
    assert!(!s.contains("0x22222222…2222 (2)"), "{s}");

    // A message to the open conversation asks for it to be marked read; another peer's counts.
    assert_eq!(
        app.on_event(message(BOB, "third", 4.0), NOON),
        vec![Action::MarkRead { peer: BOB.into() }]
    );
    assert!(app.on_event(message(CAROL, "again", 5.0), NOON).is_empty());
    assert!(text(&screen(&app, 120, 30)).contains("0x33333333…3333 (2)"));

    // Bob's state changes live.
    app.on_event(state(BOB, RecipientState::Disconnected), NOON);
    let s = text(&screen(&app, 120, 30));
    assert!(s.contains(&format!("{BOB} — DISCONNECTED")), "{s}");
    assert!(s.contains("○ 0x22222222…2222"), "{s}");
}

#[test]
fn input_is_disabled_with_the_reason_unless_the_peer_is_connected() {
    let mut app = app();
    // No conversation: disabled, commands still typed.
    let s = text(&screen(&app, 120, 20));
    assert!(
        s.contains("input disabled: no conversation open: /to <address>"),
        "{s}"
    );
    type_str(&mut app, "hello");
    assert_eq!(app.input(), "");
    assert!(text(&screen(&app, 120, 20)).contains("(commands start with /)"));

    command(&mut app, &format!("/to {BOB}"));
    let s = text(&screen(&app, 120, 20));
    assert!(
        s.contains("checking whether 0x22222222…2222 can receive"),
        "{s}"
    );

    for (st, reason) in [
        (
            RecipientState::Disconnected,
            "DISCONNECTED: not in the chat room",
        ),
        (
            RecipientState::BlockedByOwnUser,
            "BLOCKED: you blocked them",
        ),
        (
            RecipientState::PrivateMessagesBlockedByOwnUser,
            "PRIVATE_MESSAGES_BLOCKED_BY_OWN_USER: you accept messages only from friends",
        ),
        (
            RecipientState::PrivateMessagesBlocked,
            "PRIVATE_MESSAGES_BLOCKED: they accept messages only from friends",
        ),
    ] {
        app.on_event(state(BOB, st), NOON);
        type_str(&mut app, "x");
        assert_eq!(app.input(), "", "{st:?}: typing refused");
        let s = text(&screen(&app, 160, 20));
        assert!(
            s.contains(&format!("input disabled: 0x22222222…2222 is {reason}")),
            "{s}"
        );
    }
    // Enter on a message while disabled sends nothing.
    app.on_event(state(BOB, RecipientState::Connected), NOON);
    type_str(&mut app, "hey");
    app.on_event(state(BOB, RecipientState::Disconnected), NOON);
    assert!(key(&mut app, KeyCode::Enter).is_empty());
    assert_eq!(app.input(), "hey", "kept for later");

    // CONNECTED: enabled, with the counter.
    app.on_event(state(BOB, RecipientState::Connected), NOON);
    let s = text(&screen(&app, 120, 20));
    assert!(s.contains("message (3/155)"), "{s}");
    assert!(!s.contains("input disabled"), "{s}");
}

#[test]
fn the_counter_stops_at_the_limit() {
    let mut app = App::new(
        ME,
        AppOptions {
            max_chars: 10,
            utc_offset_secs: 0,
        },
    );
    open_bob(&mut app);
    type_str(&mut app, "0123456789ABC");
    assert_eq!(app.input(), "0123456789");
    let s = text(&screen(&app, 120, 20));
    assert!(s.contains("message (10/10)"), "{s}");
    assert!(s.contains("a message holds at most 10 characters"), "{s}");
    // Counted in UTF-16 units as the reference client does: an emoji outside the BMP is two.
    let mut app = App::new(
        ME,
        AppOptions {
            max_chars: 3,
            utc_offset_secs: 0,
        },
    );
    open_bob(&mut app);
    type_str(&mut app, "a😀😀");
    assert_eq!(app.input(), "a😀");
}

#[test]
fn sending_shows_the_delivery_status() {
    let mut app = app();
    open_bob(&mut app);
    type_str(&mut app, "hi bob");
    let actions = key(&mut app, KeyCode::Enter);
    let [
        Action::Send {
            seq,
            to,
            text: sent,
        },
    ] = actions.as_slice()
    else {
        panic!("one send expected, got {actions:?}");
    };
    assert_eq!((to.as_str(), sent.as_str()), (BOB, "hi bob"));
    assert_eq!(app.input(), "");
    assert!(text(&screen(&app, 120, 20)).contains("12:00 you: hi bob …"));
    app.send_result(
        *seq,
        BOB,
        Ok(SentInfo {
            id: format!("{ME}:45000.5"),
            protection: pchat_tui::sdk::Protection::Plaintext,
        }),
    );
    assert!(text(&screen(&app, 120, 20)).contains("12:00 you: hi bob ✓"));

    type_str(&mut app, "second");
    let actions = key(&mut app, KeyCode::Enter);
    let [Action::Send { seq, .. }] = actions.as_slice() else {
        panic!("{actions:?}");
    };
    app.send_result(
        *seq,
        BOB,
        Err("cannot write to 0x22…: their state is Disconnected".into()),
    );
    let s = text(&screen(&app, 120, 20));
    assert!(
        s.contains("12:00 you: second ✗ not sent: cannot write to 0x22…"),
        "{s}"
    );
    assert!(s.contains("not sent: cannot write"), "{s}");

    // `//` sends a text starting with `/`.
    type_str(&mut app, "//shrug");
    let actions = key(&mut app, KeyCode::Enter);
    assert!(matches!(actions.as_slice(), [Action::Send { text, .. }] if text == "/shrug"));
}

#[test]
fn friendship_requests_show_as_they_arrive() {
    let mut app = app();
    app.on_event(
        ChatEvent::FriendshipRequested {
            from: CAROL.into(),
            message: Some("let's be friends".into()),
        },
        NOON,
    );
    let s = text(&screen(&app, 120, 24));
    assert!(s.contains("Friend requests (1)"), "{s}");
    assert!(s.contains("│0x33333333…3333 "), "{s}");
    assert!(s.contains("│  let's be friends "), "{s}");
    assert!(
        s.contains(&format!(
            "friend request from {CAROL}: let's be friends (/friend accept|reject)"
        )),
        "{s}"
    );
    assert!(s.contains(&format!("friend request from {CAROL}")), "{s}");

    let actions = command(&mut app, &format!("/friend accept {CAROL}"));
    assert_eq!(
        actions,
        vec![Action::Social(SocialAction::Accept(CAROL.into()))]
    );
    app.social_result(&SocialAction::Accept(CAROL.into()), Ok(()));
    let s = text(&screen(&app, 120, 24));
    assert!(!s.contains("Friend requests"), "{s}");
    assert!(
        s.contains(&format!("accepted {CAROL}'s friend request")),
        "{s}"
    );

    // From the view too (requests that arrived while away), and cancelled live.
    app.set_view(ViewSnapshot {
        privacy: Privacy::OnlyFriends,
        friends: vec![CAROL.into()],
        pending_in: vec![(BOB.into(), None)],
        ..Default::default()
    });
    let s = text(&screen(&app, 120, 24));
    assert!(s.contains("Friend requests (1)"), "{s}");
    assert!(s.contains("0x33333333…3333 ★"), "friends are listed: {s}");
    assert!(s.contains("privacy: only-friends"), "{s}");
    app.on_event(ChatEvent::FriendshipCancelled { by: BOB.into() }, NOON);
    assert!(!text(&screen(&app, 120, 24)).contains("Friend requests"));
}

#[test]
fn status_line_shows_connections_and_a_drop_summary() {
    let mut app = app();
    let s = text(&screen(&app, 140, 20));
    assert!(s.contains("room: connecting · social: connecting"), "{s}");
    app.on_event(ChatEvent::RoomState(ConnectionState::Connected), NOON);
    app.on_event(
        ChatEvent::SocialState(SocialState::Reconnecting {
            attempt: 3,
            error: pchat_client::social::SocialError::NotConnected,
        }),
        NOON,
    );
    app.on_event(ChatEvent::FilterFailClosed(true), NOON);
    // A blocked user flooding: 2,499 drops, one summary.
    for count in 1..=2499u64 {
        app.on_event(
            ChatEvent::Dropped {
                from: MALLORY.into(),
                reason: DropReason::Filter(chat_core::Rejected::BlockedByMe),
                count,
            },
            NOON,
        );
    }
    for count in 1..=7u64 {
        app.on_event(
            ChatEvent::Dropped {
                from: CAROL.into(),
                reason: DropReason::Filter(chat_core::Rejected::RateLimited),
                count,
            },
            NOON,
        );
    }
    let rows = screen(&app, 200, 20);
    let s = text(&rows);
    assert!(
        s.contains("room: connected · social: reconnecting (attempt 3: not connected to the social service) · filter fail-closed (friends only) · dropped 2506 (blocked-by-me 2499, rate-limited 7)"),
        "{s}"
    );
    assert_eq!(rows.iter().filter(|r| r.contains("dropped")).count(), 1);
    assert!(!s.contains(MALLORY), "no line per drop: {s}");
    assert!(!s.contains("0x66666666"), "{s}");
}

#[test]
fn commands_become_actions_and_failures_show() {
    let mut app = app();
    let cases = [
        (
            format!("/friend request {BOB} hello there"),
            SocialAction::Request {
                to: BOB.into(),
                message: Some("hello there".into()),
            },
        ),
        (
            format!("/friend reject {BOB}"),
            SocialAction::Reject(BOB.into()),
        ),
        (
            format!("/friend cancel {BOB}"),
            SocialAction::Cancel(BOB.into()),
        ),
        (
            format!("/friend remove {BOB}"),
            SocialAction::Remove(BOB.into()),
        ),
        (format!("/block {BOB}"), SocialAction::Block(BOB.into())),
        (format!("/unblock {BOB}"), SocialAction::Unblock(BOB.into())),
        (
            "/privacy only-friends".into(),
            SocialAction::Privacy(Privacy::OnlyFriends),
        ),
        ("/privacy all".into(), SocialAction::Privacy(Privacy::All)),
    ];
    for (line, want) in cases {
        assert_eq!(
            command(&mut app, &line),
            vec![Action::Social(want)],
            "{line}"
        );
    }
    app.social_result(
        &SocialAction::Block(BOB.into()),
        Err("the social service is unreachable".into()),
    );
    let s = text(&screen(&app, 140, 20));
    assert!(
        s.contains(&format!(
            "failed: blocked {BOB} — the social service is unreachable"
        )),
        "{s}"
    );

    // A bad command keeps the line and says why.
    assert!(command(&mut app, "/to 0xnope").is_empty());
    assert_eq!(app.input(), "/to 0xnope");
    assert!(text(&screen(&app, 140, 20)).contains("\"0xnope\" is not a wallet address"));
    app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    assert!(command(&mut app, "/dance").is_empty());
    assert!(text(&screen(&app, 140, 20)).contains("unknown command /dance: /help lists them"));
    app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));

    // /help shows the commands; Esc closes it.
    assert!(command(&mut app, "/help").is_empty());
    let s = text(&screen(&app, 140, 24));
    assert!(
        s.contains("/friend request|accept|reject|cancel|remove")
            || s.contains("/friend accept|reject <address>"),
        "{s}"
    );
    assert!(s.contains("/privacy all|only-friends"), "{s}");
    key(&mut app, KeyCode::Esc);
    assert!(!text(&screen(&app, 140, 24)).contains("Help (Esc to close)"));

    // /react goes to the last message of the open conversation.
    assert!(
        command(&mut app, "/react 👍").is_empty(),
        "no conversation open"
    );
    open_bob(&mut app);
    app.on_event(message(BOB, "nice", 45000.25), NOON);
    assert_eq!(
        command(&mut app, "/react 👍"),
        vec![Action::React {
            to: BOB.into(),
            message_id: format!("{BOB}:45000.25"),
            emoji: "👍".into()
        }]
    );
    app.react_result(BOB, &format!("{BOB}:45000.25"), "👍", Ok(()));
    assert!(text(&screen(&app, 140, 24)).contains("nice [👍 you]"));
    // Bob's reactions, by emoji index in the reference client's atlas; removals take them back;
    // unknown messages and indices are ignored.
    let thumbs = chat_core::reaction::emoji_index("👍").expect("in the atlas");
    let heart = chat_core::reaction::emoji_index("❤").expect("in the atlas");
    let id = format!("{BOB}:45000.25");
    app.on_reaction(BOB, &id, thumbs, false);
    app.on_reaction(BOB, &id, heart, false);
    app.on_reaction(BOB, &id, heart, false);
    app.on_reaction(BOB, "0xnope:1", thumbs, false);
    app.on_reaction(BOB, &id, 4095, false);
    let s = text(&screen(&app, 160, 24));
    let shown = chat_core::reaction::emoji_for_index(heart).expect("heart");
    assert!(
        s.contains(&format!(
            "nice [👍 you] [👍 0x22222222…2222] [{shown} 0x22222222…2222]"
        )),
        "{s}"
    );
    app.on_reaction(BOB, &id, thumbs, true);
    let s = text(&screen(&app, 160, 24));
    assert!(
        s.contains(&format!("nice [👍 you] [{shown} 0x22222222…2222]")),
        "{s}"
    );

    // Switching conversations closes the one left; /quit quits.
    assert_eq!(
        command(&mut app, &format!("/to {CAROL}")),
        vec![
            Action::Close { peer: BOB.into() },
            Action::Open { peer: CAROL.into() }
        ]
    );
    // Bob is no longer watched: his last state is not shown as if it were live.
    let s = text(&screen(&app, 140, 24));
    assert!(s.contains("  · 0x22222222…2222"), "{s}");
    assert_eq!(command(&mut app, "/quit"), vec![Action::Quit]);
    assert!(app.should_quit());
}

#[test]
fn history_fills_the_list_and_the_conversation() {
    let mut app = app();
    app.load_conversations(vec![HistoryConversation {
        peer: CAROL.into(),
        last_ms: NOON - 3_600_000,
        preview: "see you".into(),
        unread: 4,
    }]);
    let s = text(&screen(&app, 120, 20));
    assert!(s.contains("0x33333333…3333 (4)"), "{s}");
    command(&mut app, &format!("/to {CAROL}"));
    app.load_history(
        CAROL,
        vec![
            HistoryLine {
                id: format!("{CAROL}:1"),
                mine: false,
                text: "old one".into(),
                at_ms: NOON - 7_200_000,
                delivery: Delivery::Received,
                reactions: vec![(chat_core::reaction::emoji_index("👍").expect("atlas"), true)],
                protection: Some(pchat_tui::sdk::Protection::Encrypted),
            },
            HistoryLine {
                id: format!("{ME}:2"),
                mine: true,
                text: "my old one".into(),
                at_ms: NOON - 3_600_000,
                delivery: Delivery::Sent,
                reactions: Vec::new(),
                protection: None,
            },
        ],
    );
    let s = text(&screen(&app, 120, 20));
    assert!(
        s.contains("10:00 0x33333333…3333: old one [👍 you] 🔒"),
        "{s}"
    );
    assert!(s.contains("11:00 you: my old one ✓"), "{s}");
    assert!(
        !s.contains("my old one ✓ 🔒") && !s.contains("my old one ✓ 🔓"),
        "{s}"
    );
    assert!(!s.contains("(4)"), "{s}");
}

use pchat_tui::display::HOSTILE_TEXTS as NASTY;

fn assert_clean(rows: &[String]) {
    for (y, row) in rows.iter().enumerate() {
        let bad: Vec<char> = row.chars().filter(|c| is_unsafe(*c)).collect();
        assert!(bad.is_empty(), "row {y} holds {bad:?}: {row:?}");
    }
}

#[test]
fn network_text_never_reaches_the_terminal_as_control() {
    let mut app = app();
    open_bob(&mut app);
    for (i, payload) in NASTY.iter().enumerate() {
        app.on_event(message(BOB, payload, i as f64 + 1.0), NOON);
    }
    // From a stranger whose identity is hostile too (the SDK checks addresses, the app must not
    // rely on it), with a hostile request message.
    let hostile_id = "0x5555\u{1b}[2J\r\n\u{202e}";
    app.on_event(message(hostile_id, "\u{1b}[6n", 99.0), NOON);
    app.on_event(
        ChatEvent::FriendshipRequested {
            from: CAROL.into(),
            message: Some("be my friend\r\n\u{1b}]52;c;ZXZpbA==\u{7}\u{202e}".into()),
        },
        NOON,
    );
    app.on_event(
        ChatEvent::SocialState(SocialState::Reconnecting {
            attempt: 1,
            error: pchat_client::social::SocialError::BadAddress(
                "server said \u{1b}[2J\u{9b}".into(),
            ),
        }),
        NOON,
    );
    app.social_result(
        &SocialAction::Block(CAROL.into()),
        Err("refused: \u{1b}]0;pwned\u{7}\r\n".into()),
    );
    for (w, h) in [(120, 40), (60, 40), (200, 50)] {
        let rows = screen(&app, w, h);
        assert_clean(&rows);
        let s = text(&rows);
        assert!(s.contains("␛[2Jclear screen"), "made visible: {s}");
        assert!(s.contains("\\u{9b}31m red"), "{s}");
        assert!(s.contains("\\u{202e}txt.exe"), "{s}");
        assert!(s.contains("nul␀byte"), "{s}");
        assert!(s.contains("del␡"), "{s}");
        if w >= 120 {
            assert!(s.contains("refused: ␛]0;pwned␇␍␊"), "{s}");
        }
    }

    // One message is one entry: a line in Bob's pane starting with a time and a sender exists
    // once per message, and the fake "someone else" line never starts a line.
    let rows = screen(&app, 200, 50);
    let pane: Vec<&str> = rows.iter().filter_map(|r| r.split('│').nth(3)).collect();
    let starts: Vec<&&str> = pane
        .iter()
        .filter(|r| r.len() > 6 && r.as_bytes()[2] == b':' && r.as_bytes()[5] == b' ')
        .collect();
    assert_eq!(starts.len(), NASTY.len(), "{pane:#?}");
    assert!(
        starts
            .iter()
            .all(|r| r.starts_with("12:00 0x22222222…2222: ")),
        "every line is from Bob's identity: {starts:#?}"
    );
    // Wrapped continuation lines are indented, never at the edge where a sender's prefix starts
    // (wide pane: under the text; narrow pane: the text goes under the prefix).
    for (w, indent) in [(90, 23), (60, 2)] {
        let rows = screen(&app, w, 80);
        let pane: Vec<&str> = rows.iter().filter_map(|r| r.split('│').nth(3)).collect();
        let mut prefixes = 0;
        for r in &pane {
            if r.starts_with("12:00 0x22222222…2222:") {
                prefixes += 1;
            } else {
                assert!(
                    r.starts_with(&" ".repeat(indent)) || r.trim().is_empty(),
                    "width {w}: {r:?}"
                );
            }
        }
        assert_eq!(prefixes, NASTY.len(), "width {w}: {pane:#?}");
    }

    // The hostile identity's conversation, opened: its address is shown inert.
    app.on_key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE));
    for _ in 0..3 {
        let rows = screen(&app, 120, 40);
        assert_clean(&rows);
        app.on_key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE));
    }
}

#[test]
fn pasted_text_is_one_line() {
    let mut app = app();
    open_bob(&mut app);
    app.on_paste("one\r\ntwo\u{1b}[2J");
    assert_eq!(app.input(), "one  two[2J");
    assert_clean(&screen(&app, 80, 20));
}

fn with_protection(event: ChatEvent, p: pchat_tui::sdk::Protection) -> ChatEvent {
    match event {
        ChatEvent::Message {
            from, message, id, ..
        } => ChatEvent::Message {
            from,
            message,
            id,
            protection: p,
        },
        other => other,
    }
}

#[test]
fn encryption_shows_per_message_and_per_conversation() {
    use pchat_tui::sdk::{ChatKey, Protection};
    let key = |b: u8| ChatKey::from_bytes([b; 32]);
    let mut app = app();
    open_bob(&mut app);
    assert!(text(&screen(&app, 140, 20)).contains("encryption …"));

    app.on_event(
        ChatEvent::PeerKey {
            address: BOB.into(),
            key: Some(key(0x8a)),
        },
        NOON,
    );
    let s = text(&screen(&app, 140, 20));
    assert!(s.contains("🔒 encrypted (their key 8a8a8a8a)"), "{s}");

    app.on_event(
        with_protection(message(BOB, "sealed hello", 45000.1), Protection::Encrypted),
        NOON,
    );
    app.on_event(
        with_protection(
            message(BOB, "clear hello", 45000.2),
            Protection::PlaintextFromKeyedPeer,
        ),
        NOON,
    );
    type_str(&mut app, "hi");
    let actions = key_enter(&mut app);
    let [Action::Send { seq, .. }] = actions.as_slice() else {
        panic!("{actions:?}");
    };
    app.send_result(
        *seq,
        BOB,
        Ok(SentInfo {
            id: format!("{ME}:45000.5"),
            protection: Protection::Encrypted,
        }),
    );
    let s = text(&screen(&app, 140, 20));
    assert!(s.contains("sealed hello 🔒"), "{s}");
    assert!(
        s.contains("clear hello ⚠ NOT ENCRYPTED although they have a key"),
        "{s}"
    );
    assert!(s.contains("you: hi ✓ 🔒"), "{s}");

    // Bob reconnects with a new key: said on the notice line.
    app.on_event(
        ChatEvent::PeerKey {
            address: BOB.into(),
            key: Some(key(0x3f)),
        },
        NOON,
    );
    let s = text(&screen(&app, 140, 20));
    assert!(s.contains("has a new encryption key 3f3f3f3f"), "{s}");
    assert!(s.contains("their key 3f3f3f3f"), "{s}");

    // Bob now on a client without a key: plaintext, said in the title and the notice.
    app.on_event(
        ChatEvent::PeerKey {
            address: BOB.into(),
            key: None,
        },
        NOON,
    );
    let s = text(&screen(&app, 140, 20));
    assert!(s.contains("🔓 plaintext: no encryption key"), "{s}");
    assert!(s.contains("publishes no encryption key now"), "{s}");
    app.on_event(message(BOB, "from the explorer", 45000.7), NOON);
    assert!(text(&screen(&app, 140, 20)).contains("from the explorer 🔓"));

    // Requiring encryption: an action, then the title says so.
    let actions = command(&mut app, "/encrypt require");
    assert_eq!(
        actions,
        vec![Action::RequireEncryption {
            peer: BOB.into(),
            required: true
        }]
    );
    app.encryption_result(BOB, true, Ok(()));
    let s = text(&screen(&app, 140, 20));
    assert!(
        s.contains("no key, encryption required: not sending"),
        "{s}"
    );
    assert!(command(&mut app, "/encrypt maybe").is_empty());
    assert!(text(&screen(&app, 140, 20)).contains("usage: /encrypt require|allow"));
}

fn key_enter(app: &mut App) -> Vec<Action> {
    key(app, KeyCode::Enter)
}

#[test]
fn a_confirmed_message_shows_two_ticks_and_an_unconfirmed_one_says_why() {
    let mut app = app();
    open_bob(&mut app);
    for (i, text) in ["confirmed", "lost"].iter().enumerate() {
        type_str(&mut app, text);
        let actions = key(&mut app, KeyCode::Enter);
        let [Action::Send { seq, .. }] = actions.as_slice() else {
            panic!("{actions:?}");
        };
        app.send_result(
            *seq,
            BOB,
            Ok(SentInfo {
                id: format!("{ME}:4500{i}.5"),
                protection: pchat_tui::sdk::Protection::Encrypted,
            }),
        );
    }
    app.on_event(
        ChatEvent::Delivered {
            id: format!("{ME}:45000.5"),
            to: BOB.into(),
        },
        NOON,
    );
    app.on_event(
        ChatEvent::NotDelivered {
            id: format!("{ME}:45001.5"),
            to: BOB.into(),
            reason: chat_core::Unconfirmed::NoReceipt {
                waited: std::time::Duration::from_secs(10),
                resends: 3,
            },
        },
        NOON,
    );
    // An outcome for a message that is not on screen changes nothing.
    app.on_event(
        ChatEvent::Delivered {
            id: format!("{ME}:1.5"),
            to: BOB.into(),
        },
        NOON,
    );
    let s = text(&screen(&app, 140, 20));
    assert!(s.contains("you: confirmed ✓✓ 🔒"), "{s}");
    assert!(
        s.contains("you: lost ⚠ not confirmed: no receipt within 10 s (sent again 3 times) 🔒"),
        "{s}"
    );
    assert!(
        s.contains("was not confirmed: no receipt within 10 s"),
        "{s}"
    );
}
