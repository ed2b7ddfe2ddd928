//! Losing the server: participants notice, fetch fresh tokens and rejoin by themselves.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use livekit_participant::{
    ConnectionState, Credentials, Event, Events, FnTokenSource, Options, Participant, Reliability,
};
use testkit::LiveKitServer;

/// Joins with a token source that mints a new token on every call and counts the calls.
async fn join_counting(
    lk: &LiveKitServer,
    identity: &str,
) -> (Participant, Events, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let (url, key, secret, id, c) = (
        lk.ws_url(),
        lk.api_key.clone(),
        lk.api_secret.clone(),
        identity.to_owned(),
        calls.clone(),
    );
    let source = FnTokenSource(move || {
        c.fetch_add(1, Ordering::SeqCst);
        let (url, key, secret, id) = (url.clone(), key.clone(), secret.clone(), id.clone());
        async move {
            let token =
                testkit::participant_token(&key, &secret, ROOM, &id, "", Duration::from_secs(300));
            Ok(Credentials { url, token })
        }
    });
    let (p, e) = Participant::connect(source, Options::default())
        .await
        .expect("join");
    (p, e, calls)
}

/// Sends `text` (tagged with the attempt number) until one copy arrives; returns every payload
/// received meanwhile. Right after a rejoin the other side may still be joining, hence retries.
async fn exchange(from: &Participant, to: &str, events: &mut Events, text: &str) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + LIMIT;
    let mut received = Vec::new();
    for attempt in 0.. {
        let tagged = format!("{text} #{attempt}");
        from.send(
            tagged.as_bytes(),
            &[to.to_owned()],
            Some(to),
            Reliability::Reliable,
        )
        .await
        .ok();
        let wait_until = Instant::now() + Duration::from_millis(500);
        while let Some(e) = events
            .recv_timeout(wait_until.saturating_duration_since(Instant::now()))
            .await
        {
            if let Event::Data(p) = e {
                let done = p.payload.starts_with(text.as_bytes());
                received.push(p.payload);
                if done {
                    return received;
                }
            }
        }
        assert!(Instant::now() < deadline, "{text:?} never arrived");
    }
    received
}

/// Drains `events` for a second and checks that no payload was delivered twice.
async fn assert_no_duplicates(events: &mut Events, mut received: Vec<Vec<u8>>) {
    while let Some(e) = events.recv_timeout(Duration::from_secs(1)).await {
        if let Event::Data(p) = e {
            received.push(p.payload);
        }
    }
    let mut seen = std::collections::HashSet::new();
    for r in &received {
        assert!(
            seen.insert(r.clone()),
            "delivered twice: {:?}",
            String::from_utf8_lossy(r)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_rejoin_by_themselves_after_a_server_restart() {
    let mut lk = LiveKitServer::start().await.expect("livekit");
    let (alice, mut ea, alice_calls) = join_counting(&lk, "alice").await;
    let (bob, mut eb, bob_calls) = join_counting(&lk, "bob").await;
    wait_present(&alice, "bob").await;
    let mut at_bob = exchange(&alice, "bob", &mut eb, "before").await;

    lk.restart().await.expect("restart");
    let t = Instant::now();
    wait_event(&mut ea, "reconnecting", |e| {
        *e == Event::ConnectionStateChanged(ConnectionState::Reconnecting)
    })
    .await;
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "loss detected in {:?}",
        t.elapsed()
    );
    assert!(
        alice
            .wait_for_state(ConnectionState::Connected, LIMIT)
            .await,
        "alice rejoined"
    );
    assert!(
        bob.wait_for_state(ConnectionState::Connected, LIMIT).await,
        "bob rejoined"
    );
    wait_present(&alice, "bob").await;
    wait_present(&bob, "alice").await;

    at_bob.extend(exchange(&alice, "bob", &mut eb, "after restart, to bob").await);
    exchange(&bob, "alice", &mut ea, "after restart, to alice").await;
    assert!(
        alice_calls.load(Ordering::SeqCst) >= 2,
        "a fresh token was asked for"
    );
    assert!(bob_calls.load(Ordering::SeqCst) >= 2);
    assert!(alice.stats().reconnects >= 1);
    assert_no_duplicates(&mut eb, at_bob).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_is_detected_within_15_seconds() {
    let lk = LiveKitServer::start().await.expect("livekit");
    let (alice, mut ea, _) = join_counting(&lk, "alice").await;
    let (bob, mut eb, _) = join_counting(&lk, "bob").await;
    wait_present(&alice, "bob").await;

    lk.pause().expect("SIGSTOP");
    let t = Instant::now();
    wait_event(&mut ea, "reconnecting", |e| {
        *e == Event::ConnectionStateChanged(ConnectionState::Reconnecting)
    })
    .await;
    let detected = t.elapsed();
    lk.resume().expect("SIGCONT");
    assert!(
        detected <= Duration::from_secs(15),
        "a silent server was noticed after {detected:?}"
    );

    assert!(
        alice
            .wait_for_state(ConnectionState::Connected, LIMIT)
            .await,
        "alice rejoined"
    );
    assert!(
        bob.wait_for_state(ConnectionState::Connected, LIMIT).await,
        "bob rejoined"
    );
    wait_present(&alice, "bob").await;
    exchange(&alice, "bob", &mut eb, "after the freeze").await;
    let _ = &mut ea;
}
