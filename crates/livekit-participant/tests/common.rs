//! Shared helpers: tokens minted with the API key, and connecting participants.
#![allow(dead_code)]

use std::time::Duration;

use livekit_participant::{Credentials, Event, Events, Options, Participant, StaticToken};
use testkit::LiveKitServer;

pub const ROOM: &str = "private-messages";
pub const LIMIT: Duration = Duration::from_secs(30);

/// A token like the gatekeeper's: join, subscribe, publish data only.
pub fn token(lk: &LiveKitServer, identity: &str, metadata: &str) -> String {
    lk.token(ROOM, identity, metadata)
}

pub fn credentials(lk: &LiveKitServer, identity: &str) -> Credentials {
    Credentials {
        url: lk.ws_url(),
        token: token(lk, identity, ""),
    }
}

pub async fn join(lk: &LiveKitServer, identity: &str) -> (Participant, Events) {
    Participant::connect(StaticToken(credentials(lk, identity)), Options::default())
        .await
        .unwrap_or_else(|e| panic!("{identity} cannot join: {e}\n{}", lk.log()))
}

/// Waits for an event matching `pred`, skipping others.
pub async fn wait_event(
    events: &mut Events,
    what: &str,
    mut pred: impl FnMut(&Event) -> bool,
) -> Event {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match events.recv_timeout(left).await {
            Some(e) if pred(&e) => return e,
            Some(_) => {}
            None => panic!("no {what} within {LIMIT:?}"),
        }
    }
}

/// Waits until `identity` is in `p`'s roster.
pub async fn wait_present(p: &Participant, identity: &str) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while p.participant(identity).await.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{identity} never appeared"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// This process's resident memory in bytes (`VmRSS` in /proc/self/status).
pub fn rss_bytes() -> u64 {
    testkit::proc_status_kib(std::process::id(), "VmRSS:").expect("VmRSS in /proc/self/status")
        * 1024
}

pub const MIB: u64 = 1024 * 1024;
