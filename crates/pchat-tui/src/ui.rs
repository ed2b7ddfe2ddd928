//! Drawing the [`App`] with ratatui. Every string shown passes through [`safe`] (the
//! sanitiser) here, at the last step, whatever its origin: nothing a peer sent reaches the
//! terminal as a control sequence, and each message starts on its own line with the sender's
//! LiveKit identity; its continuation lines are indented under the text, so no text can look
//! like another message's line.

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line as TextLine, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use crate::app::{
    App, Author, Conversation, Delivery, Level, message_text, short, state_name, status_text,
    text_len,
};
use crate::command::HELP;
use crate::display::{char_width, one_line, width};
use crate::sdk::{Protection, RecipientState};

/// Narrowest text column beside a message's prefix; narrower panes put the text under it.
const MIN_TEXT_COLS: usize = 12;
/// Indent of a message's text under its prefix in a narrow pane.
const NARROW_INDENT: usize = 2;
/// Width of the conversation list.
const LEFT_WIDTH: u16 = 36;

/// `text` made safe for the terminal.
pub fn safe(text: &str) -> String {
    one_line(text).into_owned()
}

/// Splits safe `text` into pieces of at most `cols` columns (a wide character is never split).
fn wrap(text: &str, cols: usize) -> Vec<String> {
    let cols = cols.max(2); // a wide character always fits
    let mut out = vec![String::new()];
    let mut used = 0;
    for c in text.chars() {
        let w = char_width(c);
        if used + w > cols {
            out.push(String::new());
            used = 0;
        }
        if let Some(last) = out.last_mut() {
            last.push(c);
        }
        used += w;
    }
    out
}

fn hhmm(at_ms: i64, offset_secs: i32) -> String {
    chrono::DateTime::from_timestamp_millis(at_ms + i64::from(offset_secs) * 1000)
        .map(|t| t.format("%H:%M").to_string())
        .unwrap_or_else(|| "--:--".into())
}

fn state_style(state: Option<RecipientState>) -> (&'static str, Style) {
    match state {
        Some(RecipientState::Connected) => ("●", Style::default().fg(Color::Green)),
        Some(RecipientState::Disconnected) => ("○", Style::default().fg(Color::DarkGray)),
        Some(_) => ("⊘", Style::default().fg(Color::Red)),
        None => ("·", Style::default().fg(Color::DarkGray)),
    }
}

/// Draws the whole screen.
pub fn render(app: &App, frame: &mut Frame) {
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Min(5),
            Constraint::Length(3),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .split(frame.area());
    let cols = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Length(LEFT_WIDTH), Constraint::Min(20)])
        .split(rows[0]);
    let request_lines: usize = app
        .requests()
        .iter()
        .map(|(_, m)| if m.is_some() { 2 } else { 1 })
        .sum();
    let requests_height = if request_lines == 0 {
        0
    } else {
        (request_lines as u16)
            .saturating_add(2)
            .min(rows[0].height / 2)
    };
    let left = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Min(3), Constraint::Length(requests_height)])
        .split(cols[0]);
    render_list(app, frame, left[0]);
    if requests_height > 0 {
        render_requests(app, frame, left[1]);
    }
    if app.show_help() {
        render_help(frame, cols[1]);
    } else {
        render_conversation(app, frame, cols[1]);
    }
    render_input(app, frame, rows[1]);
    frame.render_widget(
        Paragraph::new(safe(&status_text(app))).style(Style::default().fg(Color::Cyan)),
        rows[2],
    );
    if let Some(n) = app.notice() {
        let style = match n.level {
            Level::Info => Style::default().fg(Color::Yellow),
            Level::Error => Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
        };
        frame.render_widget(Paragraph::new(safe(&n.text)).style(style), rows[3]);
    }
}

fn render_list(app: &App, frame: &mut Frame, area: Rect) {
    let mut lines = Vec::new();
    for c in app.conversations() {
        let open = app.open_peer() == Some(c.peer.as_str());
        let (dot, dot_style) = state_style(c.state);
        let mut spans = vec![
            Span::raw(if open { "▶ " } else { "  " }),
            Span::styled(dot, dot_style),
            Span::raw(" "),
            Span::styled(
                safe(&short(&c.peer)),
                if open {
                    Style::default().add_modifier(Modifier::BOLD)
                } else {
                    Style::default()
                },
            ),
        ];
        if app.is_friend(&c.peer) {
            spans.push(Span::styled(" ★", Style::default().fg(Color::Yellow)));
        }
        if c.unread > 0 {
            spans.push(Span::styled(
                format!(" ({})", c.unread),
                Style::default()
                    .fg(Color::Magenta)
                    .add_modifier(Modifier::BOLD),
            ));
        }
        lines.push(TextLine::from(spans));
    }
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!(" Conversations ({}) ", app.conversations().len())),
        ),
        area,
    );
}

fn render_requests(app: &App, frame: &mut Frame, area: Rect) {
    // The address on one line, the request's message under it (cut to the panel's width; the
    // notice line shows it whole when it arrives).
    let cols = area.width.saturating_sub(2) as usize;
    let mut lines: Vec<TextLine> = Vec::new();
    for (from, msg) in app.requests() {
        lines.push(TextLine::from(safe(&short(from))));
        if let Some(m) = msg {
            lines.push(TextLine::from(Span::styled(
                format!(
                    "  {}",
                    crate::display::truncate_width(&safe(m), cols.saturating_sub(2))
                ),
                Style::default().fg(Color::DarkGray),
            )));
        }
    }
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!(" Friend requests ({}) ", app.requests().len()))
                .border_style(Style::default().fg(Color::Yellow)),
        ),
        area,
    );
}

fn render_help(frame: &mut Frame, area: Rect) {
    let lines: Vec<TextLine> = HELP
        .iter()
        .map(|(cmd, what)| {
            TextLine::from(vec![
                Span::styled(format!("{cmd:<38}"), Style::default().fg(Color::Cyan)),
                Span::raw(*what),
            ])
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" Help (Esc to close) "),
        ),
        area,
    );
}

/// The screen lines of one message: the first starts with time and sender, the others are
/// indented under the text.
fn message_lines(app: &App, c: &Conversation, cols: usize) -> Vec<TextLine<'static>> {
    let mut out = Vec::new();
    for line in &c.lines {
        let (who, who_style) = match line.author {
            Author::Me => ("you".to_owned(), Style::default().fg(Color::Blue)),
            Author::Peer => (safe(&short(&c.peer)), Style::default().fg(Color::Green)),
        };
        let time = format!("{} ", hhmm(line.at_ms, app.options().utc_offset_secs));
        let prefix_w = width(&time) + width(&who) + 2;
        let mut text = safe(&line.text);
        for r in &line.reactions {
            text.push_str(&format!(" [{}]", safe(r)));
        }
        let (lock, lock_style) = protection_mark(line.protection);
        let (mark, mark_style) = match &line.delivery {
            Delivery::Received => (String::new(), Style::default()),
            Delivery::Pending => (" …".to_owned(), Style::default().fg(Color::DarkGray)),
            Delivery::Sent => (" ✓".to_owned(), Style::default().fg(Color::Green)),
            Delivery::Delivered => (" ✓✓".to_owned(), Style::default().fg(Color::Green)),
            Delivery::NotConfirmed(why) => (
                format!(" ⚠ not confirmed: {}", safe(why)),
                Style::default().fg(Color::Yellow),
            ),
            Delivery::NotSent(why) => (
                format!(" ✗ not sent: {}", safe(why)),
                Style::default().fg(Color::Red),
            ),
        };
        let header = vec![
            Span::styled(time.clone(), Style::default().fg(Color::DarkGray)),
            Span::styled(who.clone(), who_style),
            Span::raw(": "),
        ];
        // The text beside the prefix, or (in a narrow pane) under it; either way every
        // continuation line starts indented, never where a sender's prefix starts.
        let beside = cols >= prefix_w + MIN_TEXT_COLS;
        let indent = if beside { prefix_w } else { NARROW_INDENT };
        let mut pieces = wrap(&text, cols.saturating_sub(indent).max(1));
        if !beside {
            out.push(TextLine::from(header.clone()));
        }
        if pieces.is_empty() {
            pieces.push(String::new());
        }
        let last = pieces.len() - 1;
        for (i, piece) in pieces.into_iter().enumerate() {
            let mut spans = if i == 0 && beside {
                header.clone()
            } else {
                vec![Span::raw(" ".repeat(indent))]
            };
            spans.push(Span::raw(piece));
            if i == last && !mark.is_empty() {
                spans.push(Span::styled(mark.clone(), mark_style));
            }
            if i == last && !lock.is_empty() {
                spans.push(Span::styled(lock.to_owned(), lock_style));
            }
            out.push(TextLine::from(spans));
        }
    }
    out
}

/// How a message travelled, after its delivery mark: 🔒 encrypted end to end, 🔓 plaintext
/// (the peer has no key), a warning for plaintext from a peer that has one.
fn protection_mark(p: Option<Protection>) -> (&'static str, Style) {
    match p {
        None => ("", Style::default()),
        Some(Protection::Encrypted) => (" 🔒", Style::default().fg(Color::Green)),
        Some(Protection::Plaintext) => (" 🔓", Style::default().fg(Color::DarkGray)),
        Some(Protection::PlaintextFromKeyedPeer) => (
            " ⚠ NOT ENCRYPTED although they have a key",
            Style::default().fg(Color::Yellow),
        ),
    }
}

/// The conversation's encryption, for its title.
pub fn encryption_label(c: &Conversation) -> String {
    let required = if c.encryption_required {
        ", required"
    } else {
        ""
    };
    match c.key {
        None => format!("encryption …{required}"),
        Some(Some(key)) => format!("🔒 encrypted (their key {}){required}", key.fingerprint()),
        Some(None) if c.encryption_required => {
            "🔓 no key, encryption required: not sending".to_owned()
        }
        Some(None) => "🔓 plaintext: no encryption key".to_owned(),
    }
}

fn render_conversation(app: &App, frame: &mut Frame, area: Rect) {
    let Some(c) = app.open_conversation() else {
        let lines = vec![
            TextLine::from(format!("You are {}", safe(app.me()))),
            TextLine::from(""),
            TextLine::from("/to <address> opens a conversation; /help lists the commands."),
        ];
        frame.render_widget(
            Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" Chat ")),
            area,
        );
        return;
    };
    let state = c.state.map_or("…", state_name);
    let title = format!(" {} — {} — {} ", safe(&c.peer), state, encryption_label(c));
    let inner_w = area.width.saturating_sub(2) as usize;
    let inner_h = area.height.saturating_sub(2) as usize;
    let mut lines = message_lines(app, c, inner_w);
    if lines.is_empty() && !c.preview.is_empty() {
        lines.push(TextLine::from(format!("last: {}", safe(&c.preview))));
    }
    // Bottom-anchored, scrolled up by `scroll` lines.
    let end = lines.len().saturating_sub(app.scroll());
    let start = end.saturating_sub(inner_h);
    let visible: Vec<TextLine> = lines.drain(start..end).collect();
    let (_, title_style) = state_style(c.state);
    frame.render_widget(
        Paragraph::new(visible).block(
            Block::default()
                .borders(Borders::ALL)
                .title(TextLine::from(Span::styled(title, title_style))),
        ),
        area,
    );
}

fn render_input(app: &App, frame: &mut Frame, area: Rect) {
    let input = safe(app.input());
    let (title, style) = if app.input_is_command() {
        (" command ".to_owned(), Style::default().fg(Color::Cyan))
    } else if let Some(reason) = app.disabled_reason() {
        (
            format!(" input disabled: {} ", safe(&reason)),
            Style::default().fg(Color::Red),
        )
    } else {
        let len = text_len(message_text(app.input()));
        let over = len > app.options().max_chars;
        (
            format!(" message ({len}/{}) ", app.options().max_chars),
            if over {
                Style::default().fg(Color::Red)
            } else {
                Style::default()
            },
        )
    };
    let inner_w = area.width.saturating_sub(2) as usize;
    // Keep the cursor in view: drop characters from the left while it would be past the edge.
    let chars: Vec<char> = input.chars().collect();
    let cursor = app.cursor().min(chars.len());
    let mut first = 0;
    while first < cursor
        && width(&chars[first..cursor].iter().collect::<String>()) >= inner_w.max(1)
    {
        first += 1;
    }
    let shown: String = chars[first..].iter().collect();
    let body = if shown.is_empty() && !app.input_is_command() {
        match app.disabled_reason() {
            Some(_) => TextLine::from(Span::styled(
                "type a /command (/help)",
                Style::default().fg(Color::DarkGray),
            )),
            None => TextLine::from(""),
        }
    } else {
        TextLine::from(shown)
    };
    frame.render_widget(
        Paragraph::new(body).block(
            Block::default()
                .borders(Borders::ALL)
                .title(title)
                .border_style(style),
        ),
        area,
    );
    let before: String = chars[first..cursor].iter().collect();
    let x = area.x + 1 + (width(&before) as u16).min(area.width.saturating_sub(2));
    frame.set_cursor_position(Position::new(x, area.y + 1));
}
