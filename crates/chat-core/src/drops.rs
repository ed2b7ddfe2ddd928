//! Dropped packets, counted and summarised instead of reported one by one.
//!
//! A blocked user flooding 500 packets a second must not produce 500 lines a second. A
//! [`DropCounter`] counts each drop by reason ([`DropKind`]) and by sender, and hands out a
//! [`DropSummary`] at most once per interval ("412 dropped in the last 5 s: 400 blocked, 12
//! rate-limited; most from 0x1234…: 400").
//!
//! Bounds: the counts by reason are a fixed array; at most [`MAX_SENDERS_PER_WINDOW`] senders
//! are counted by name per interval (the rest are added up as "other senders"), each name cut to
//! [`MAX_SENDER_BYTES`] bytes. So a counter holds under 10 KiB whatever arrives, and it is
//! emptied with each summary.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use crate::display;
use crate::filter::Rejected;

/// Senders counted by name in one interval.
pub const MAX_SENDERS_PER_WINDOW: usize = 64;
/// The longest sender name kept (a wallet address is 42 bytes).
pub const MAX_SENDER_BYTES: usize = 64;
/// The default interval between two summaries.
pub const DEFAULT_SUMMARY_INTERVAL: Duration = Duration::from_secs(5);

/// Why a packet was dropped, grouped for a summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropKind {
    /// Not a private message to me (no topic, or another recipient's topic).
    NotForMe,
    /// The sender's identity is not an address.
    BadSender,
    /// My own packet.
    Own,
    /// From a user I blocked or who blocked me.
    Blocked,
    /// From a non-friend while I accept only friends.
    NotAFriend,
    /// The sender is over the rate limit.
    RateLimited,
    /// A reaction already received, or a message already shown (resent: it is confirmed again).
    Duplicate,
    /// Not a packet we accept (undecodable, wrong version, empty, too long, bad reaction).
    Malformed,
}

impl DropKind {
    const ALL: [DropKind; 8] = [
        DropKind::Blocked,
        DropKind::RateLimited,
        DropKind::NotAFriend,
        DropKind::Duplicate,
        DropKind::Malformed,
        DropKind::BadSender,
        DropKind::NotForMe,
        DropKind::Own,
    ];

    fn slot(self) -> usize {
        self as usize
    }

    /// The words used in a summary.
    pub fn label(self) -> &'static str {
        match self {
            DropKind::NotForMe => "not for me",
            DropKind::BadSender => "bad sender",
            DropKind::Own => "own",
            DropKind::Blocked => "blocked",
            DropKind::NotAFriend => "not friends",
            DropKind::RateLimited => "rate-limited",
            DropKind::Duplicate => "duplicate",
            DropKind::Malformed => "malformed",
        }
    }
}

impl From<&Rejected> for DropKind {
    fn from(d: &Rejected) -> Self {
        match d {
            Rejected::EmptyTopic | Rejected::NotForMe => DropKind::NotForMe,
            Rejected::BadSender => DropKind::BadSender,
            Rejected::OwnMessage => DropKind::Own,
            Rejected::BlockedByMe | Rejected::BlocksMe => DropKind::Blocked,
            Rejected::NotAFriend => DropKind::NotAFriend,
            Rejected::RateLimited => DropKind::RateLimited,
            Rejected::DuplicateReaction | Rejected::DuplicateMessage { .. } => DropKind::Duplicate,
            Rejected::Packet(_) => DropKind::Malformed,
        }
    }
}

/// The drops of one interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropSummary {
    pub total: u64,
    /// How long the counting ran.
    pub window: Duration,
    /// By reason, most first (only reasons that occurred).
    pub by_kind: Vec<(DropKind, u64)>,
    /// By sender, most first (at most [`MAX_SENDERS_PER_WINDOW`]; names as received, cut).
    pub by_sender: Vec<(String, u64)>,
    /// Drops from senders beyond those counted by name.
    pub other_senders: u64,
}

impl fmt::Display for DropSummary {
    /// One line, safe to print: "412 dropped in the last 5 s: 400 blocked, 12 rate-limited;
    /// most from 0x…: 400".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.window.as_secs_f64().round().max(1.0);
        write!(f, "{} dropped in the last {secs} s:", self.total)?;
        for (i, (kind, n)) in self.by_kind.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            write!(f, "{sep}{n} {}", kind.label())?;
        }
        if let Some((who, n)) = self.by_sender.first() {
            write!(
                f,
                "; most from {}: {n}",
                display::one_line_truncated(who, 48)
            )?;
        }
        Ok(())
    }
}

/// Counts drops and yields a [`DropSummary`] at most once per interval.
#[derive(Debug)]
pub struct DropCounter {
    interval: Duration,
    /// When the current counting began (the first drop after the last summary).
    started: Option<Instant>,
    /// When the last summary was handed out.
    last_summary: Option<Instant>,
    total: u64,
    by_kind: [u64; DropKind::ALL.len()],
    by_sender: HashMap<String, u64>,
    other_senders: u64,
}

impl Default for DropCounter {
    fn default() -> Self {
        DropCounter::new(DEFAULT_SUMMARY_INTERVAL)
    }
}

impl DropCounter {
    /// A counter that summarises at most once per `interval`.
    pub fn new(interval: Duration) -> Self {
        DropCounter {
            interval,
            started: None,
            last_summary: None,
            total: 0,
            by_kind: [0; DropKind::ALL.len()],
            by_sender: HashMap::new(),
            other_senders: 0,
        }
    }

    /// Drops counted since the last summary.
    pub fn pending(&self) -> u64 {
        self.total
    }

    /// Counts one drop, and returns a summary if one is due (see [`DropCounter::poll`]).
    pub fn record(&mut self, reason: &Rejected, sender: &str, now: Instant) -> Option<DropSummary> {
        self.started.get_or_insert(now);
        self.total += 1;
        self.by_kind[DropKind::from(reason).slot()] += 1;
        let name = cut(sender);
        if let Some(n) = self.by_sender.get_mut(name) {
            *n += 1;
        } else if self.by_sender.len() < MAX_SENDERS_PER_WINDOW {
            self.by_sender.insert(name.to_owned(), 1);
        } else {
            self.other_senders += 1;
        }
        self.poll(now)
    }

    /// The summary of what was counted, if there is any and the interval has passed since the
    /// last summary (the first one waits one interval from the first drop). Call it on a timer
    /// too, so that the end of a burst is reported.
    pub fn poll(&mut self, now: Instant) -> Option<DropSummary> {
        let started = self.started?;
        let since = self.last_summary.unwrap_or(started);
        if now.saturating_duration_since(since) < self.interval {
            return None;
        }
        let mut by_kind: Vec<(DropKind, u64)> = DropKind::ALL
            .iter()
            .map(|k| (*k, self.by_kind[k.slot()]))
            .filter(|(_, n)| *n > 0)
            .collect();
        // Stable: equal counts keep the order of ALL.
        by_kind.sort_by_key(|k| std::cmp::Reverse(k.1));
        let mut by_sender: Vec<(String, u64)> = self.by_sender.drain().collect();
        by_sender.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let summary = DropSummary {
            total: self.total,
            window: now.saturating_duration_since(started),
            by_kind,
            by_sender,
            other_senders: self.other_senders,
        };
        self.started = None;
        self.last_summary = Some(now);
        self.total = 0;
        self.by_kind = [0; DropKind::ALL.len()];
        self.other_senders = 0;
        Some(summary)
    }
}

/// At most [`MAX_SENDER_BYTES`] of `s`, on a character boundary.
fn cut(s: &str) -> &str {
    if s.len() <= MAX_SENDER_BYTES {
        return s;
    }
    let mut end = MAX_SENDER_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::PacketError;

    const BLOCKED: &str = "0x4444444444444444444444444444444444444444";
    const NOISY: &str = "0x5555555555555555555555555555555555555555";

    #[test]
    fn a_flood_gives_one_summary_per_interval() {
        let mut c = DropCounter::new(Duration::from_secs(5));
        let t0 = Instant::now();
        let mut summaries = Vec::new();
        // 500 a second for 10 s from a blocked user, plus some rate-limited ones.
        for i in 0..5_000u64 {
            let t = t0 + Duration::from_millis(i * 2);
            let (reason, who) = if i % 100 == 0 {
                (Rejected::RateLimited, NOISY)
            } else {
                (Rejected::BlockedByMe, BLOCKED)
            };
            summaries.extend(c.record(&reason, who, t));
        }
        summaries.extend(c.poll(t0 + Duration::from_secs(11)));
        assert_eq!(summaries.len(), 2, "{summaries:?}");
        assert_eq!(summaries.iter().map(|s| s.total).sum::<u64>(), 5_000);
        let first = &summaries[0];
        assert_eq!(first.total, 2_501);
        assert_eq!(
            first.by_kind,
            vec![(DropKind::Blocked, 2_475), (DropKind::RateLimited, 26)]
        );
        assert_eq!(first.by_sender[0], (BLOCKED.to_owned(), 2_475));
        assert_eq!(
            first.to_string(),
            format!(
                "2501 dropped in the last 5 s: 2475 blocked, 26 rate-limited; most from {BLOCKED}: 2475"
            )
        );
        // Nothing more to say.
        assert_eq!(c.poll(t0 + Duration::from_secs(60)), None);
    }

    #[test]
    fn nothing_is_said_before_the_interval() {
        let mut c = DropCounter::new(Duration::from_secs(5));
        let t0 = Instant::now();
        assert_eq!(c.poll(t0), None);
        assert_eq!(c.record(&Rejected::NotAFriend, NOISY, t0), None);
        assert_eq!(c.poll(t0 + Duration::from_secs(4)), None);
        let s = c.poll(t0 + Duration::from_secs(5)).expect("due");
        assert_eq!(
            s.to_string(),
            format!("1 dropped in the last 5 s: 1 not friends; most from {NOISY}: 1")
        );
        // The next summary waits a full interval after this one.
        assert_eq!(
            c.record(&Rejected::BlocksMe, NOISY, t0 + Duration::from_secs(6)),
            None
        );
        assert_eq!(c.poll(t0 + Duration::from_secs(9)), None);
        assert_eq!(
            c.poll(t0 + Duration::from_secs(10)).map(|s| s.total),
            Some(1)
        );
    }

    #[test]
    fn senders_are_bounded_and_printed_safely() {
        let mut c = DropCounter::new(Duration::from_secs(1));
        let t = Instant::now();
        for i in 0..1_000 {
            let who = format!("\x1b]0;evil{i}\x07{}", "x".repeat(200));
            c.record(&Rejected::BadSender, &who, t);
            assert!(c.by_sender.len() <= MAX_SENDERS_PER_WINDOW);
            assert!(c.by_sender.keys().all(|k| k.len() <= MAX_SENDER_BYTES));
        }
        c.record(
            &Rejected::Packet(PacketError::NotChat),
            "ü".repeat(100).as_str(),
            t,
        );
        let s = c.poll(t + Duration::from_secs(1)).expect("due");
        assert_eq!(s.total, 1_001);
        assert_eq!(s.by_sender.len(), MAX_SENDERS_PER_WINDOW);
        assert_eq!(s.other_senders, 1_001 - MAX_SENDERS_PER_WINDOW as u64);
        let line = s.to_string();
        assert!(line.bytes().all(|b| b >= 0x20 && b != 0x7f), "{line:?}");
        assert!(line.starts_with("1001 dropped in the last 1 s: 1000 bad sender, 1 malformed"));
    }

    #[test]
    fn every_drop_has_a_kind() {
        let table = [
            (Rejected::EmptyTopic, DropKind::NotForMe),
            (Rejected::NotForMe, DropKind::NotForMe),
            (Rejected::BadSender, DropKind::BadSender),
            (Rejected::OwnMessage, DropKind::Own),
            (Rejected::BlockedByMe, DropKind::Blocked),
            (Rejected::BlocksMe, DropKind::Blocked),
            (Rejected::NotAFriend, DropKind::NotAFriend),
            (Rejected::RateLimited, DropKind::RateLimited),
            (Rejected::DuplicateReaction, DropKind::Duplicate),
            (Rejected::Packet(PacketError::Empty), DropKind::Malformed),
        ];
        for (d, k) in table {
            assert_eq!(DropKind::from(&d), k, "{d}");
        }
    }
}
