//! Load and chaos with nothing lost silently (issue #11 item 3), on the real system
//! (livekit-server, our social service on SQLite or on PostgreSQL when
//! `PCHAT_TEST_DATABASE_URL` is set, our gatekeeper), all on loopback, in this one process.
//!
//! `cargo bench -p e2e-tests --bench load [-- steady|livekit-restart|social-restart ...]`
//! (no mode: all three, each on a fresh system).
//!
//! `PCHAT_BENCH_PARTICIPANTS` (default 200) `PrivateChat`s, every one privacy `all` (the
//! default) with the receive rate limit off, each send one private message per second to a
//! random other participant for `PCHAT_BENCH_SECONDS` (default 60) seconds, while reading its
//! events. Then the bench waits for the delivery deadline (10 s, the SDK's default) plus 5 s
//! and counts, for every message whose `send` answered `Ok`: received by the recipient's
//! application (once, or more: duplicates), and its outcome event (`Delivered` or
//! `NotDelivered`). **Lost silently** = sent `Ok`, never shown, and not reported
//! `NotDelivered` (target 0). Latency: the start of `send` to the recipient's `Message` event.
//!
//! - `steady`: nothing breaks.
//! - `livekit-restart`: at a third of the run (20 s by default) the (single) livekit-server is
//!   killed with SIGKILL and started again on the same ports: every room connection breaks and
//!   the room itself is gone; the clients rejoin with fresh gatekeeper tokens by themselves.
//!   (A single node rather than a node of a cluster: killing the only node is the worse case,
//!   nothing can take its place, and what is in flight is lost.)
//! - `social-restart`: at a third of the run the social service is stopped and started again
//!   on its port 2 s later; the clients reconnect by themselves (their filter fails closed
//!   meanwhile, so strangers' messages are dropped and not confirmed, and sends to strangers
//!   are refused at once).
//!
//! Every loop is bounded in count and time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_core::{DeliveryConfig, RecipientState, Unconfirmed};
use e2e_tests::System;
use e2e_tests::swarm::percentile;
use pchat_client::private_chat::{ChatEvent, ChatEvents, PrivateChat, PrivateChatConfig};
use rand::{Rng, SeedableRng};

/// How long joining may take, per participant.
const JOIN_LIMIT: Duration = Duration::from_secs(120);
/// Participants joining at once.
const JOIN_CONCURRENCY: usize = 10;

#[derive(Default)]
struct Tally {
    attempted: u64,
    /// `send` answered `Err`, by reason.
    refused: HashMap<String, u64>,
    /// Sent `Ok`: id → when `send` was called.
    sent: HashMap<String, Instant>,
    /// Shown by the recipient: id → (times, first time).
    received: HashMap<String, (u64, Instant)>,
    delivered: HashMap<String, u64>,
    /// id → (reason, times).
    not_delivered: HashMap<String, (String, u64)>,
    lagged: u64,
    room_reconnections: u64,
    drops: HashMap<String, u64>,
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn reason_kind(reason: &Unconfirmed) -> &'static str {
    match reason {
        Unconfirmed::NoReceipt { .. } => "no-receipt",
        Unconfirmed::PeerSendsNoReceipts { .. } => "peer-sends-no-receipts",
        Unconfirmed::TooManyPending { .. } => "too-many-pending",
        Unconfirmed::TooLongToConfirm => "too-long",
    }
}

fn refusal_kind(e: &pchat_client::private_chat::NotSent) -> String {
    use pchat_client::private_chat::NotSent;
    match e {
        NotSent::Recipient { state, .. } => format!("recipient {state:?}"),
        NotSent::Room(e) => format!("room: {e}"),
        other => other.to_string(),
    }
}

async fn join(config: PrivateChatConfig) -> (PrivateChat, ChatEvents) {
    let identity = authchain::Identity::new(
        &authchain::Wallet::random(),
        chrono::Utc::now() + chrono::Duration::hours(2),
    );
    let (chat, mut events) = PrivateChat::connect(identity, config)
        .await
        .expect("a participant joins");
    let deadline = tokio::time::Instant::now() + JOIN_LIMIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match events.recv_timeout(left).await {
            Some(ChatEvent::ViewChanged) => break,
            Some(_) => {}
            None => panic!("no social view within {JOIN_LIMIT:?}"),
        }
    }
    (chat, events)
}

/// Reads one participant's events into the tally until the chat closes.
async fn read_events(mut events: ChatEvents, tally: Arc<Mutex<Tally>>) {
    while let Some(e) = events.recv().await {
        let now = Instant::now();
        let mut t = tally.lock().expect("tally");
        match e {
            ChatEvent::Message { id, .. } => {
                let entry = t.received.entry(id).or_insert((0, now));
                entry.0 += 1;
            }
            ChatEvent::Delivered { id, .. } => *t.delivered.entry(id).or_default() += 1,
            ChatEvent::NotDelivered { id, reason, .. } => {
                let entry = t
                    .not_delivered
                    .entry(id)
                    .or_insert((reason_kind(&reason).to_owned(), 0));
                entry.1 += 1;
            }
            ChatEvent::Lagged { dropped } => t.lagged += dropped,
            ChatEvent::RoomState(livekit_participant::ConnectionState::Reconnecting) => {
                t.room_reconnections += 1
            }
            ChatEvent::Dropped { reason, .. } => {
                *t.drops.entry(reason.name().to_owned()).or_default() += 1
            }
            _ => {}
        }
    }
}

/// One participant's sending: one message per second to a random other, for `seconds`.
async fn send_loop(
    me: usize,
    chat: Arc<PrivateChat>,
    peers: Arc<Vec<String>>,
    seconds: u64,
    tally: Arc<Mutex<Tally>>,
) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(me as u64);
    // Spread the participants over the second.
    tokio::time::sleep(Duration::from_millis(rng.random_range(0..1_000))).await;
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut n = 0u64;
    loop {
        tick.tick().await;
        if start.elapsed() >= Duration::from_secs(seconds) {
            return;
        }
        let mut to = rng.random_range(0..peers.len() - 1);
        if to >= me {
            to += 1;
        }
        let text = format!("load {me}.{n}");
        n += 1;
        let at = Instant::now();
        let result = chat.send(&peers[to], &text).await;
        let mut t = tally.lock().expect("tally");
        t.attempted += 1;
        match result {
            Ok(sent) => {
                t.sent.insert(sent.id, at);
            }
            Err(e) => *t.refused.entry(refusal_kind(&e)).or_default() += 1,
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

/// The counts of one run, as one row of the table.
struct Row {
    mode: String,
    attempted: u64,
    refused: u64,
    sent_ok: u64,
    delivered: u64,
    not_delivered: u64,
    received: u64,
    duplicates: u64,
    lost_silently: u64,
    arrived_unconfirmed: u64,
    confirmed_not_shown: u64,
    no_outcome: u64,
    two_outcomes: u64,
    p50: Duration,
    p99: Duration,
    max: Duration,
    notes: String,
}

fn count(mode: &str, t: &Tally, notes: String) -> Row {
    let mut row = Row {
        mode: mode.to_owned(),
        attempted: t.attempted,
        refused: t.refused.values().sum(),
        sent_ok: t.sent.len() as u64,
        delivered: 0,
        not_delivered: 0,
        received: 0,
        duplicates: 0,
        lost_silently: 0,
        arrived_unconfirmed: 0,
        confirmed_not_shown: 0,
        no_outcome: 0,
        two_outcomes: 0,
        p50: Duration::ZERO,
        p99: Duration::ZERO,
        max: Duration::ZERO,
        notes,
    };
    let mut latencies = Vec::new();
    for (id, at) in &t.sent {
        let received = t.received.get(id);
        let delivered = t.delivered.get(id).copied().unwrap_or(0);
        let not_delivered = t.not_delivered.get(id).map_or(0, |(_, n)| *n);
        if delivered + not_delivered > 1 {
            row.two_outcomes += 1;
        }
        if delivered > 0 {
            row.delivered += 1;
        } else if not_delivered > 0 {
            row.not_delivered += 1;
        }
        match received {
            Some((times, first)) => {
                row.received += 1;
                row.duplicates += times - 1;
                latencies.push(first.saturating_duration_since(*at));
                if delivered == 0 && not_delivered > 0 {
                    row.arrived_unconfirmed += 1;
                }
                if delivered + not_delivered == 0 {
                    row.no_outcome += 1;
                }
            }
            None => {
                if not_delivered == 0 {
                    row.lost_silently += 1;
                    if delivered > 0 {
                        row.confirmed_not_shown += 1;
                    }
                }
            }
        }
    }
    let received_unsent = t
        .received
        .keys()
        .filter(|id| !t.sent.contains_key(*id))
        .count();
    if received_unsent > 0 {
        row.notes.push_str(&format!(
            "; {received_unsent} shown whose send answered Err"
        ));
    }
    latencies.sort();
    row.p50 = percentile(&latencies, 0.5);
    row.p99 = percentile(&latencies, 0.99);
    row.max = latencies.last().copied().unwrap_or_default();
    row
}

async fn run(mode: &str, participants: usize, seconds: u64) -> Row {
    let mut system = System::start().await;
    let mut config = system.config();
    config.rate_limit = None;
    config.room.connect_timeout = JOIN_LIMIT;
    let delivery = DeliveryConfig::default();
    config.delivery = delivery;

    let joining = Instant::now();
    let mut joined = Vec::with_capacity(participants);
    let mut pending = tokio::task::JoinSet::new();
    let mut next = 0;
    while joined.len() < participants {
        while next < participants && pending.len() < JOIN_CONCURRENCY {
            let c = config.clone();
            pending.spawn(join(c));
            next += 1;
        }
        match pending.join_next().await {
            Some(Ok(p)) => joined.push(p),
            Some(Err(e)) => panic!("a join panicked: {e}"),
            None => break,
        }
    }
    let join_time = joining.elapsed();
    let peers: Arc<Vec<String>> =
        Arc::new(joined.iter().map(|(c, _)| c.address().to_owned()).collect());

    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut chats = Vec::with_capacity(participants);
    let mut readers = Vec::with_capacity(participants);
    for (chat, events) in joined {
        chats.push(Arc::new(chat));
        readers.push(tokio::spawn(read_events(events, tally.clone())));
    }
    // Everyone sees everyone (LiveKit announces joins in batches every 3 s).
    let ready = Instant::now();
    let mut ready_pairs = 0;
    while ready.elapsed() < Duration::from_secs(90) {
        ready_pairs = 0;
        for chat in &chats {
            for peer in peers.iter() {
                if peer != chat.address()
                    && chat.recipient_state(peer).await == Ok(RecipientState::Connected)
                {
                    ready_pairs += 1;
                }
            }
        }
        if ready_pairs == participants * (participants - 1) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    eprintln!(
        "{mode}: {participants} joined in {:.1} s; {ready_pairs} of {} pairs reachable after {:.1} s more",
        join_time.as_secs_f64(),
        participants * (participants - 1),
        ready.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let senders: Vec<_> = chats
        .iter()
        .enumerate()
        .map(|(i, chat)| {
            tokio::spawn(send_loop(
                i,
                chat.clone(),
                peers.clone(),
                seconds,
                tally.clone(),
            ))
        })
        .collect();
    let chaos_at = Duration::from_secs(seconds / 3);
    tokio::time::sleep(chaos_at).await;
    let mut notes = format!("{participants} joined in {:.0} s", join_time.as_secs_f64());
    match mode {
        "livekit-restart" => {
            let t = Instant::now();
            system.lk.restart().await.expect("livekit-server restarts");
            notes.push_str(&format!(
                "; livekit-server killed (SIGKILL) at {:.1} s and serving again {:.1} s later",
                started.elapsed().as_secs_f64() - t.elapsed().as_secs_f64(),
                t.elapsed().as_secs_f64()
            ));
        }
        "social-restart" => {
            let t = Instant::now();
            system.stop_social().await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            system.start_social().await;
            notes.push_str(&format!(
                "; social service stopped at {:.1} s, serving again {:.1} s later",
                started.elapsed().as_secs_f64() - t.elapsed().as_secs_f64(),
                t.elapsed().as_secs_f64()
            ));
        }
        _ => {}
    }
    for s in senders {
        let _ = s.await;
    }
    let drain = delivery.deadline + Duration::from_secs(5);
    tokio::time::sleep(drain).await;
    let pending: usize = chats.iter().map(|c| c.pending_deliveries()).sum();
    let back = chats
        .iter()
        .filter(|c| c.room_state() == livekit_participant::ConnectionState::Connected)
        .count();
    let row = {
        let t = tally.lock().expect("tally");
        notes.push_str(&format!(
            "; after the drain: {back}/{participants} rooms connected, {pending} still waiting for a receipt; \
             refusals {:?}; NotDelivered reasons {:?}; drops {:?}; room reconnections {}; lagged {}",
            t.refused,
            {
                let mut r: HashMap<&str, u64> = HashMap::new();
                for (kind, _) in t.not_delivered.values() {
                    *r.entry(kind.as_str()).or_default() += 1;
                }
                r
            },
            t.drops,
            t.room_reconnections,
            t.lagged
        ));
        count(mode, &t, notes)
    };
    for r in readers {
        r.abort();
    }
    for c in chats {
        if let Ok(c) = Arc::try_unwrap(c) {
            c.close().await;
        }
    }
    row
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let modes: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let modes = if modes.is_empty() {
        vec![
            "steady".to_owned(),
            "livekit-restart".to_owned(),
            "social-restart".to_owned(),
        ]
    } else {
        modes
    };
    for m in &modes {
        assert!(
            ["steady", "livekit-restart", "social-restart"].contains(&m.as_str()),
            "unknown mode {m:?}: steady, livekit-restart or social-restart"
        );
    }
    let participants = env_usize("PCHAT_BENCH_PARTICIPANTS", 200).max(2);
    let seconds = env_usize("PCHAT_BENCH_SECONDS", 60).max(3) as u64;
    let mut rows = Vec::new();
    for m in &modes {
        let row = run(m, participants, seconds).await;
        eprintln!("{m}: {}", row.notes);
        rows.push(row);
    }
    println!(
        "\n{participants} participants, 1 message/s each to a random other, {seconds} s; \
         delivery deadline 10 s, drain 15 s\n"
    );
    println!(
        "| mode | attempted | `Err` at send | sent `Ok` | Delivered | NotDelivered | received (unique) | duplicates shown | **lost silently** | arrived but not confirmed | confirmed, not shown | no outcome | two outcomes | latency p50 / p99 / max (ms) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | **{}** | {} | {} | {} | {} | {} / {} / {} |",
            r.mode,
            r.attempted,
            r.refused,
            r.sent_ok,
            r.delivered,
            r.not_delivered,
            r.received,
            r.duplicates,
            r.lost_silently,
            r.arrived_unconfirmed,
            r.confirmed_not_shown,
            r.no_outcome,
            r.two_outcomes,
            ms(r.p50),
            ms(r.p99),
            ms(r.max)
        );
    }
    println!();
    for r in &rows {
        println!("- {}: {}", r.mode, r.notes);
    }
}
