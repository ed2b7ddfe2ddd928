//! Players on a LiveKit cluster (issue #11): three livekit-server nodes sharing one Redis, and
//! our gatekeeper handing out the nodes (`LIVEKIT_NODE_URLS`). Two players signal through two
//! different nodes; the node of one of them that does not host the room is killed (SIGKILL):
//! that player is back in the room within 15 s, through a live node with a fresh token from the
//! gatekeeper, and packets flow both ways again.

use std::time::{Duration, Instant};

use livekit_participant::{ConnectionState, Event, Events, Options, Participant, Reliability};
use pchat_client::GatekeeperTokens;
use testkit::LiveKitCluster;
use testkit::gatekeeper::TestGatekeeper;

const ROOM: &str = "private-messages";
const LIMIT: Duration = Duration::from_secs(30);
/// What issue #11 allows for a player of a killed node that does not host the room.
const BACK_WITHIN: Duration = Duration::from_secs(15);

/// A new player whose node, as the gatekeeper hands it out, satisfies `want`; (its tokens, that
/// node's URL).
async fn player_on(gk: &TestGatekeeper, want: impl Fn(&str) -> bool) -> (GatekeeperTokens, String) {
    let expiry = chrono::Utc::now() + chrono::Duration::hours(1);
    for _ in 0..200 {
        let identity = authchain::Identity::new(&authchain::Wallet::random(), expiry);
        let tokens = GatekeeperTokens::new(&gk.base_url(), identity);
        let url = tokens.fetch().await.expect("a token").url;
        if want(&url) {
            return (tokens, url);
        }
    }
    panic!("no identity prefers the wanted node in 200 tries");
}

async fn next_data(events: &mut Events, who: &str) -> (String, Vec<u8>) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match events.recv_timeout(left).await {
            Some(Event::Data(p)) => return (p.sender, p.payload),
            Some(_) => {}
            None => panic!("{who} received no packet within {LIMIT:?}"),
        }
    }
}

/// Sends until `to` receives one (a packet sent while the room is still settling may be lost,
/// which is what the SDK's delivery status is for); returns the attempts it took.
async fn deliver(from: &Participant, to: &str, events: &mut Events, text: &str) -> usize {
    for attempt in 1..=20 {
        from.send(
            text.as_bytes(),
            &[to.to_owned()],
            Some(to),
            Reliability::Reliable,
        )
        .await
        .expect("send");
        match tokio::time::timeout(Duration::from_secs(1), next_data(events, to)).await {
            Ok((sender, payload)) => {
                assert_eq!(sender, from.identity());
                assert_eq!(payload, text.as_bytes());
                return attempt;
            }
            Err(_) => continue,
        }
    }
    panic!("{text:?} never reached {to}");
}

/// Waits (until `deadline`) for `p`'s connection to be lost and made again, as its own events
/// tell it.
async fn back_again(p: &Participant, events: &mut Events, deadline: Instant) {
    let mut lost = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left).await {
            Some(Event::ConnectionStateChanged(ConnectionState::Connected)) if lost => return,
            Some(Event::ConnectionStateChanged(ConnectionState::Disconnected)) => {
                panic!("{} gave up", p.identity())
            }
            Some(Event::ConnectionStateChanged(_)) => lost = true,
            Some(_) => {}
            None => panic!(
                "{} was not back in time (lost: {lost}, state {:?})",
                p.identity(),
                p.state()
            ),
        }
    }
}

async fn wait_present(p: &Participant, identity: &str) {
    let deadline = Instant::now() + LIMIT;
    while p.participant(identity).await.is_none() {
        assert!(Instant::now() < deadline, "{identity} never appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_of_a_killed_node_is_back_through_another_within_15_s() {
    let mut cluster = LiveKitCluster::start(3).await.expect("cluster");
    let gk = TestGatekeeper::for_cluster(&cluster)
        .await
        .expect("gatekeeper");

    // An anchor player creates the room; then we know which node hosts it.
    let (anchor_tokens, anchor_url) = player_on(&gk, |_| true).await;
    let (anchor, mut anchor_events) = Participant::connect(anchor_tokens, Options::default())
        .await
        .expect("anchor joins");
    let host = cluster
        .room_node(ROOM)
        .await
        .expect("redis")
        .expect("a node hosts the room");
    // The victim prefers a node that does not host the room (and is not the anchor's, so the
    // anchor stays put).
    let victim_node = (0..3)
        .find(|&i| i != host && cluster.nodes[i].ws_url() != anchor_url)
        .expect("a third node");
    let victim_url = cluster.nodes[victim_node].ws_url();
    let (victim_tokens, _) = player_on(&gk, |u| u == victim_url).await;
    let (victim, mut victim_events) = Participant::connect(victim_tokens, Options::default())
        .await
        .expect("victim joins");
    let (a, v) = (anchor.identity(), victim.identity());
    wait_present(&anchor, &v).await;
    wait_present(&victim, &a).await;
    deliver(&anchor, &v, &mut victim_events, "before").await;
    deliver(&victim, &a, &mut anchor_events, "before, back").await;

    // Kill the victim's node.
    let killed = Instant::now();
    cluster.nodes[victim_node].stop().await.expect("kill -9");
    back_again(&victim, &mut victim_events, killed + BACK_WITHIN).await;
    let back = killed.elapsed();
    wait_present(&victim, &a).await;
    wait_present(&anchor, &v).await;
    deliver(&anchor, &v, &mut victim_events, "after").await;
    deliver(&victim, &a, &mut anchor_events, "after, back").await;
    assert!(back <= BACK_WITHIN, "back after {back:?}");
    eprintln!("the victim was back after {back:?}");
}

/// What this project states for the players of a killed node that hosted the room: LiveKit
/// notices the dead node once its stats in Redis are 5 s old, and a relaying node drops its
/// participants about 7.5 s after their next signal message (their pings, every 5 s), so about
/// 13 s in the worst case; the rest is margin for a loaded machine.
const HOST_BACK_WITHIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_room_s_node_is_killed_every_player_is_back_in_one_room() {
    let mut cluster = LiveKitCluster::start(3).await.expect("cluster");
    let gk = TestGatekeeper::for_cluster(&cluster)
        .await
        .expect("gatekeeper");

    // One player per node.
    let mut players = Vec::new();
    for node in 0..3 {
        let url = cluster.nodes[node].ws_url();
        let (tokens, _) = player_on(&gk, |u| u == url).await;
        players.push(
            Participant::connect(tokens, Options::default())
                .await
                .expect("joins"),
        );
    }
    let ids: Vec<String> = players.iter().map(|(p, _)| p.identity()).collect();
    for (p, _) in &players {
        for id in &ids {
            if *id != p.identity() {
                wait_present(p, id).await;
            }
        }
    }
    let host = cluster
        .room_node(ROOM)
        .await
        .expect("redis")
        .expect("a node hosts the room");

    let killed = Instant::now();
    cluster.nodes[host].stop().await.expect("kill -9");
    // Every player loses its session (the room's node is gone) and gets a new one; then everyone
    // sees everyone again, in one room, and packets flow around the ring.
    let deadline = killed + HOST_BACK_WITHIN;
    for (p, events) in &mut players {
        back_again(p, events, deadline).await;
    }
    for (p, _) in &players {
        for id in &ids {
            if *id != p.identity() {
                while p.participant(id).await.is_none() {
                    assert!(
                        Instant::now() < deadline,
                        "{} does not see {id} {HOST_BACK_WITHIN:?} after the host died",
                        p.identity()
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    let back = killed.elapsed();
    let new_host = cluster.room_node(ROOM).await.expect("redis");
    assert!(
        new_host.is_some_and(|n| n != host),
        "the room is not on a live node: {new_host:?}"
    );
    for i in 0..players.len() {
        let to = ids[(i + 1) % ids.len()].clone();
        let (from, rest) = players.split_at_mut(i + 1);
        let sender = &from[i].0;
        let receiver_events = if i + 1 < ids.len() {
            &mut rest[0].1
        } else {
            &mut from[0].1
        };
        deliver(sender, &to, receiver_events, &format!("after {i}")).await;
    }
    assert!(back <= HOST_BACK_WITHIN, "back after {back:?}");
    eprintln!("every player was back in one room after {back:?}");
}

/// `PROD_LIVEKIT_HOST` (node 0) is dead: the gatekeeper's RoomService calls go to a healthy
/// node, which forwards them to the room's node, so a privacy change still reaches the room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privacy_updates_reach_the_room_when_the_configured_livekit_host_is_dead() {
    let mut cluster = LiveKitCluster::start(3).await.expect("cluster");
    let gk = TestGatekeeper::for_cluster(&cluster)
        .await
        .expect("gatekeeper");

    // Node 0 dies before anyone joins; LiveKit places no room on it once its stats are stale
    // (5 s), and the gatekeeper stops handing it out.
    cluster.nodes[0].stop().await.expect("kill -9");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (tokens, _) = player_on(&gk, |_| true).await;
    let (player, _events) = Participant::connect(tokens, Options::default())
        .await
        .expect("joins");
    let (watcher_tokens, _) = player_on(&gk, |_| true).await;
    let (watcher, _watcher_events) = Participant::connect(watcher_tokens, Options::default())
        .await
        .expect("joins");
    let address = player.identity();
    wait_present(&watcher, &address).await;

    let resp = reqwest::Client::new()
        .patch(gk.url(&format!("/users/{address}/private-messages-privacy")))
        .header("content-type", "application/json")
        .header(
            "authorization",
            format!("Bearer {}", testkit::gatekeeper::AUTH_TOKEN),
        )
        .body(r#"{"private_messages_privacy":"only_friends"}"#)
        .send()
        .await
        .expect("PATCH");
    let status = resp.status().as_u16();
    assert_eq!(status, 204, "{}", resp.text().await.unwrap_or_default());
    // The watcher sees the new metadata.
    let deadline = Instant::now() + LIMIT;
    loop {
        if watcher
            .participant(&address)
            .await
            .is_some_and(|p| p.metadata.contains("only_friends"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "the metadata never changed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
