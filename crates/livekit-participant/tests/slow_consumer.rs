//! Item 10 of issue #8: a reader that stops reading (a terminal under Ctrl-S, a slow pipe) while
//! a flood arrives. Before the fix the event channel was unbounded and the process grew with the
//! flood. Now the queue is bounded (8 MiB / 4,096 events by default), new events are dropped and
//! counted, and the reader is told how many when it resumes.
//!
//! One test in its own binary: it measures this process's resident memory.

mod common;

use std::time::Duration;

use common::*;
use livekit_participant::{Event, Options, Participant, Reliability, StaticToken};
use testkit::LiveKitServer;

/// Growth of resident memory allowed while the reader sleeps: the 8 MiB queue plus the
/// WebRTC buffers of both participants and allocator slack (measured: ~9.5 MiB).
const BOUND: u64 = 20 * MIB;
/// At most this many packets of `SIZE` bytes (~45 MiB) within 45 s...
const FLOOD: u32 = 3_000;
/// ...and at least this many (~27 MiB, beyond the bound) for the test to mean something. A debug
/// build on a busy machine moves ~60 such packets a second.
const MIN_FLOOD: u32 = 1_800;
const SIZE: usize = 15 * 1024;

fn payload(i: u32) -> Vec<u8> {
    let mut v = format!("{i:08}").into_bytes();
    v.resize(SIZE, b'.');
    v
}

fn number(p: &[u8]) -> u32 {
    std::str::from_utf8(&p[..8])
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("numbered payload")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_reader_keeps_memory_bounded_and_is_told_what_it_lost() {
    let lk = LiveKitServer::start().await.expect("livekit");
    let (flooder, _ef) = join(&lk, "flooder").await;
    let (listener, mut el) = Participant::connect(
        StaticToken(credentials(&lk, "listener")),
        Options::default(),
    )
    .await
    .expect("listener joins");
    wait_present(&flooder, "listener").await;
    wait_present(&listener, "flooder").await;
    // Read what joining produced, then stop reading.
    while el.recv_timeout(Duration::from_millis(300)).await.is_some() {}
    let baseline = rss_bytes();
    let mut peak = baseline;

    let started = tokio::time::Instant::now();
    let mut sent = 0;
    while sent < FLOOD && started.elapsed() < Duration::from_secs(45) {
        flooder
            .send(&payload(sent), &[], None, Reliability::Reliable)
            .await
            .expect("send");
        sent += 1;
        if sent % 50 == 0 {
            peak = peak.max(rss_bytes());
            if peak - baseline > BOUND {
                break; // already failed; do not eat the machine's memory
            }
        }
    }
    // Wait until everything sent has arrived (queued or dropped): the drop count settles.
    let mut last = u64::MAX;
    let deadline = tokio::time::Instant::now() + LIMIT;
    while tokio::time::Instant::now() < deadline && peak - baseline <= BOUND {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = peak.max(rss_bytes());
        let now = listener.stats().events_dropped;
        if now == last && now > 0 {
            break;
        }
        last = now;
    }
    let stats = listener.stats();
    eprintln!(
        "sent {sent} in {:?}, resident growth {} KiB (bound {} KiB), {stats:?}",
        started.elapsed(),
        (peak - baseline) / 1024,
        BOUND / 1024
    );
    assert!(
        peak - baseline <= BOUND,
        "a paused reader grew the process by {} MiB (bound {} MiB)",
        (peak - baseline) / MIB,
        BOUND / MIB
    );
    assert!(
        sent >= MIN_FLOOD,
        "only {sent} packets sent: the flood proves nothing"
    );
    assert!(stats.events_dropped > 0, "the overflow is counted");

    // The reader resumes: the events queued before the overflow, in order, then the count.
    let mut data = Vec::new();
    let mut lagged = 0;
    let mut after_lag = false;
    while let Some(e) = el.recv_timeout(Duration::from_secs(2)).await {
        match e {
            Event::Data(p) => {
                assert!(
                    !after_lag,
                    "no data behind the marker: nothing else was sent"
                );
                data.push(number(&p.payload));
            }
            Event::Lagged { dropped } => {
                lagged += dropped;
                after_lag = true;
            }
            _ => {}
        }
    }
    let expected: Vec<u32> = (0..data.len() as u32).collect();
    assert_eq!(data, expected, "the oldest events are kept, in order");
    assert_eq!(
        lagged, stats.events_dropped,
        "the reader is told every drop"
    );
    assert_eq!(
        data.len() as u64 + lagged,
        u64::from(sent),
        "every packet either delivered or counted"
    );
    assert!(
        data.len() * (SIZE + 64) <= 8 * 1024 * 1024,
        "queue within its bytes"
    );

    // Once read, the queue takes new events again.
    flooder
        .send(b"after", &[], None, Reliability::Reliable)
        .await
        .expect("send");
    let e = wait_event(&mut el, "a message after the flood", |e| {
        matches!(e, Event::Data(_))
    })
    .await;
    assert!(matches!(e, Event::Data(p) if p.payload == b"after"));
}
