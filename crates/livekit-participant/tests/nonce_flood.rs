//! Item 10 of issue #8: a flood of 1-byte packets with 60,000-byte nonces (LiveKit forwards
//! them unchanged) must not grow the receiver. Before the fix the de-duplicator kept every
//! (sender, nonce) twice, ~120 KB a packet, up to 16,384 of them (1.9 GiB).
//!
//! One test in its own binary: it measures this process's resident memory.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use livekit_participant::{Event, Reliability};
use livekit_protocol::{DataPacket, UserPacket, data_packet};
use prost::Message;
use testkit::LiveKitServer;

/// Growth of resident memory allowed over the flood (the whole process: sender, receiver and
/// their WebRTC buffers; measured: ~3 MiB). The old de-duplicator passed it after ~200 packets.
const BOUND: u64 = 24 * MIB;
/// Packets that must arrive for the test to mean something (the old code would have held
/// ~35 MB for them). A debug build on a busy machine moves ~20 such packets a second.
const MIN_DELIVERED: u64 = 300;
const FLOOD: u64 = 3_000;
/// Sends in flight at once.
const WINDOW: u64 = 8;
const NONCE: usize = 60_000;

fn huge_nonce_packet(i: u64) -> Vec<u8> {
    let mut nonce = vec![0x5a; NONCE];
    nonce[..8].copy_from_slice(&i.to_le_bytes());
    #[allow(deprecated)]
    let packet = DataPacket {
        kind: data_packet::Kind::Reliable as i32,
        value: Some(data_packet::Value::User(UserPacket {
            payload: vec![b'x'],
            nonce,
            ..Default::default()
        })),
        ..Default::default()
    };
    packet.encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_huge_nonces_keeps_the_receiver_within_its_bound() {
    let lk = LiveKitServer::start().await.expect("livekit");
    let (flooder, _ef) = join(&lk, "flooder").await;
    let (listener, mut el) = join(&lk, "listener").await;
    wait_present(&flooder, "listener").await;
    wait_present(&listener, "flooder").await;

    // The listener reads everything as it comes (a live `pchat chat`).
    let delivered = Arc::new(AtomicU64::new(0));
    let counter = delivered.clone();
    let reader = tokio::spawn(async move {
        while let Some(e) = el.recv().await {
            if let Event::Data(p) = e {
                assert_eq!(p.payload, b"x");
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    // Warm up the paths with a few packets, then take the baseline.
    for i in 0..20 {
        flooder
            .send_raw(huge_nonce_packet(u64::MAX - i), Reliability::Reliable)
            .await
            .expect("send");
    }
    let deadline = tokio::time::Instant::now() + LIMIT;
    while delivered.load(Ordering::Relaxed) < 20 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(delivered.load(Ordering::Relaxed), 20, "warm-up packets");
    delivered.store(0, Ordering::Relaxed);
    let baseline = rss_bytes();
    let mut peak = baseline;

    // Broadcast (no destination), as in the report: every listener gets it.
    let started = tokio::time::Instant::now();
    let mut sent = 0;
    while sent < FLOOD && started.elapsed() < Duration::from_secs(40) {
        let batch = (sent..sent + WINDOW)
            .map(|i| flooder.send_raw(huge_nonce_packet(i), Reliability::Reliable));
        for r in futures_util::future::join_all(batch).await {
            r.expect("send");
        }
        sent += WINDOW;
        if sent % (4 * WINDOW) == 0 {
            peak = peak.max(rss_bytes());
            if peak - baseline > BOUND {
                break; // already failed; do not eat the machine's memory
            }
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while delivered.load(Ordering::Relaxed) < sent
        && tokio::time::Instant::now() < deadline
        && peak - baseline <= BOUND
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        peak = peak.max(rss_bytes());
    }
    let got = delivered.load(Ordering::Relaxed);
    let stats = listener.stats();
    eprintln!(
        "sent {sent} in {:?}, delivered {got}, resident growth {} KiB (bound {} KiB), {stats:?}",
        started.elapsed(),
        (peak - baseline) / 1024,
        BOUND / 1024
    );
    assert!(
        peak - baseline <= BOUND,
        "the listener grew by {} MiB over {got} packets with {NONCE}-byte nonces (bound {} MiB)",
        (peak - baseline) / MIB,
        BOUND / MIB
    );
    assert!(
        got >= MIN_DELIVERED,
        "only {got} of {sent} packets arrived: the flood proves nothing"
    );
    assert_eq!(got, sent, "each packet (distinct nonce) delivered once");
    assert_eq!(stats.duplicates, 0);
    assert_eq!(stats.events_dropped, 0, "a live reader loses nothing");
    reader.abort();
}
