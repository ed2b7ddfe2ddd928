//! `PrivateChat` benchmarks on the real system (livekit-server, our social service on SQLite or
//! on PostgreSQL when `PCHAT_TEST_DATABASE_URL` is set, our gatekeeper), all on loopback.
//!
//! `cargo bench -p e2e-tests --bench sdk [-- privacy|latency|memory]`
//!
//! - privacy: Bob's UpsertSocialSettings until Carol's SDK emits Bob's new state (social
//!   service → gatekeeper → LiveKit metadata → Carol's room → her event), 200 changes.
//! - latency: send → the receiver's message event (filter on), 500 messages one at a time,
//!   with 2 clients, then again with 200 other participants idle in the room.
//! - memory: resident memory per connected `PrivateChat` (room + social), 50 of them.
//!
//! Every loop is bounded in count and time.

use std::time::{Duration, Instant};

use chat_core::RecipientState;
use e2e_tests::swarm::percentile;
use e2e_tests::{Player, System};
use pchat_client::private_chat::ChatEvent;
use pchat_core::Privacy;

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{what}: n={} p50={:.2} ms p99={:.2} ms max={:.2} ms",
        samples.len(),
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

async fn privacy(system: &System) {
    let bob = system.player().await;
    let mut carol = system.player().await;
    carol
        .expect_state(&bob.address, RecipientState::Connected)
        .await;
    carol
        .chat
        .open_conversation(&bob.address)
        .await
        .expect("open");
    let mut samples = Vec::new();
    for i in 0..200 {
        let (setting, expected) = if i % 2 == 0 {
            (Privacy::OnlyFriends, RecipientState::PrivateMessagesBlocked)
        } else {
            (Privacy::All, RecipientState::Connected)
        };
        let started = Instant::now();
        bob.chat.set_privacy(setting).await.expect("set privacy");
        let b = bob.address.clone();
        carol
            .expect("the new state", |e| {
                matches!(e, ChatEvent::RecipientState { address, state } if *address == b && *state == expected)
            })
            .await;
        samples.push(started.elapsed());
    }
    report("privacy propagation (200 changes)", samples);
}

async fn latency_once(system: &System, label: &str) {
    let mut config = system.config();
    config.rate_limit = None;
    let (alice, mut bob) = system.two_players(config).await;
    let mut samples = Vec::new();
    for i in 0..500 {
        let text = format!("m{i}");
        let started = Instant::now();
        alice.chat.send(&bob.address, &text).await.expect("send");
        bob.expect_message(&alice.address, &text).await;
        samples.push(started.elapsed());
    }
    report(&format!("message latency, {label}"), samples);
    alice.chat.close().await;
    bob.chat.close().await;
}

async fn latency(system: &System) {
    latency_once(system, "2 clients").await;
    let mut idle = Vec::new();
    for _ in 0..200 {
        let identity = authchain::Identity::new(
            &authchain::Wallet::random(),
            chrono::Utc::now() + chrono::Duration::hours(1),
        );
        let tokens = pchat_client::GatekeeperTokens::new(&system.gatekeeper, identity);
        let opts = livekit_participant::Options {
            connect_timeout: Duration::from_secs(120),
            ..Default::default()
        };
        idle.push(tokio::spawn(async move {
            livekit_participant::Participant::connect(tokens, opts).await
        }));
    }
    let mut joined = Vec::new();
    for t in idle {
        if let Ok(Ok(p)) = t.await {
            joined.push(p);
        }
    }
    latency_once(system, &format!("{} idle participants", joined.len())).await;
    for (p, _) in joined {
        p.leave().await;
    }
}

async fn memory(system: &System) {
    const N: usize = 50;
    // One first, so that one-time allocations are not counted.
    let first: Player = system.player().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = testkit::rss_kib();
    let mut players = Vec::new();
    for _ in 0..N {
        players.push(system.player().await);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = testkit::rss_kib();
    println!(
        "memory: {} KiB per connected PrivateChat ({N} clients: {before} → {after} KiB; includes \
         the in-process social service's and gatekeeper's per-connection state)",
        (after.saturating_sub(before)) / N as u64
    );
    drop(first);
    for p in players {
        p.chat.close().await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let all = which.is_empty();
    let system = System::start().await;
    if all || which.iter().any(|w| w == "privacy") {
        privacy(&system).await;
    }
    if all || which.iter().any(|w| w == "latency") {
        latency(&system).await;
    }
    if all || which.iter().any(|w| w == "memory") {
        memory(&system).await;
    }
}
