//! Sharded private-messages rooms end to end (issue #11 item 4, docs/sharded-rooms.md): a
//! two-node LiveKit cluster, our gatekeeper with K = 4 rooms, our social service, and the SDK.
//! Players in different home rooms exchange messages both ways (the writer joins the reader's
//! room; the answer comes back through it); a reference client (one room only: room 0, with the
//! reference's token request) reaches a player homed elsewhere once that player has written to
//! it (and from the start when the player keeps room 0); a privacy change reaches the player's
//! metadata in every room it is in; an idle room is left after the idle period.

use std::time::{Duration, Instant};

use chat_core::RecipientState;
use e2e_tests::{LIMIT, Player, ShardedSystem};
use livekit_participant::{Event, Options, Participant, Reliability};
use pchat_client::GatekeeperTokens;
use pchat_client::private_chat::PrivateChatConfig;
use pchat_core::Privacy;
use pchat_core::rooms::home_room;

const K: u32 = 4;

/// A wallet whose home room (of K) satisfies `want`.
fn wallet_homed(want: impl Fn(u32) -> bool) -> authchain::Wallet {
    loop {
        let w = authchain::Wallet::random();
        if want(home_room(&w.address().to_lower_hex(), K)) {
            return w;
        }
    }
}

async fn player_homed(
    sys: &ShardedSystem,
    config: PrivateChatConfig,
    want: impl Fn(u32) -> bool,
) -> Player {
    let p = Player::connect(wallet_homed(want), config).await;
    assert_eq!(p.chat.rooms().count(), K);
    assert_eq!(p.chat.rooms().home_index(), home_room(&p.address, K));
    assert_eq!(p.chat.rooms().joined(), [home_room(&p.address, K)]);
    let _ = sys;
    p
}

/// Polls `cond` every 50 ms until it holds; panics with `what` after [`LIMIT`].
async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + LIMIT;
    while !cond().await {
        assert!(Instant::now() < deadline, "{what} within {LIMIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_in_different_home_rooms_write_both_ways_and_the_idle_room_is_left() {
    let sys = ShardedSystem::start(2, K).await;
    let mut quick = sys.config();
    quick.rooms.idle = Duration::from_secs(3);
    quick.rooms.sweep_every = Duration::from_millis(100);
    let mut a = player_homed(&sys, sys.config(), |h| h != 0).await;
    let (ha, a_addr) = (home_room(&a.address, K), a.address.clone());
    let mut b = player_homed(&sys, quick, |h| h != 0 && h != ha).await;
    let (hb, b_addr) = (home_room(&b.address, K), b.address.clone());

    // B opens the conversation: it joins A's home room, where A is reachable.
    b.expect_state(&a_addr, RecipientState::Connected).await;
    assert_eq!(b.chat.rooms().joined(), {
        let mut r = vec![hb, ha];
        r[1..].sort_unstable();
        r
    });
    b.chat
        .send(&a_addr, "hello from another room")
        .await
        .expect("sent");
    a.expect_message(&b_addr, "hello from another room").await;

    // A answers through its own room (B is there now), joining nothing.
    eventually("A sees B", || async {
        a.chat.recipient_state(&b_addr).await.ok() == Some(RecipientState::Connected)
    })
    .await;
    a.chat.send(&b_addr, "and back").await.expect("sent");
    b.expect_message(&a_addr, "and back").await;
    assert_eq!(a.chat.rooms().joined(), [ha]);
    let rooms: Vec<Option<usize>> = nodes_of(&sys, &[ha, hb]).await;
    eprintln!("rooms {ha} and {hb} are on nodes {rooms:?}");

    // B closes the conversation: after the idle period (3 s here) it leaves A's room, and A
    // sees B go.
    let closed = Instant::now();
    b.chat.close_conversation(&a_addr);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(
        b.chat.rooms().joined().len(),
        2,
        "left before the idle period"
    );
    eventually("B leaves A's room", || async {
        b.chat.rooms().joined() == [hb]
    })
    .await;
    let after = closed.elapsed();
    assert!(after >= Duration::from_secs(3), "left after {after:?}");
    eventually("A no longer sees B", || async {
        a.chat.recipient_state(&b_addr).await.ok() == Some(RecipientState::Disconnected)
    })
    .await;

    // Writing again joins again.
    b.chat.send(&a_addr, "back again").await.expect("sent");
    a.expect_message(&b_addr, "back again").await;
}

/// The nodes hosting rooms `rooms` (for the log).
async fn nodes_of(sys: &ShardedSystem, rooms: &[u32]) -> Vec<Option<usize>> {
    let mut out = Vec::new();
    for r in rooms {
        let name = pchat_core::rooms::room_name("private-messages", *r);
        out.push(sys.cluster.room_node(&name).await.ok().flatten());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_client_reaches_a_player_homed_elsewhere_once_it_has_written() {
    let sys = ShardedSystem::start(2, K).await;
    let mut p = player_homed(&sys, sys.config(), |h| h != 0).await;
    let p_addr = p.address.clone();

    // The reference client: the reference's token request (room 0 whatever its address), one
    // room. Its address is homed in neither room 0 nor P's room.
    let hp = home_room(&p_addr, K);
    let wallet = wallet_homed(|h| h != 0 && h != hp);
    let identity =
        authchain::Identity::new(&wallet, chrono::Utc::now() + chrono::Duration::hours(1));
    let tokens = GatekeeperTokens::new(&sys.services.gatekeeper, identity);
    let (reference, mut reference_events) = Participant::connect(tokens, Options::default())
        .await
        .expect("the reference client joins room 0");
    let r_addr = reference.identity();

    // P is not in room 0: the reference client cannot see it, and P cannot see the reference
    // client without looking for it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(reference.participant(&p_addr).await.is_none());
    assert_eq!(
        p.chat.recipient_state(&r_addr).await.expect("state"),
        RecipientState::Disconnected
    );

    // P writes: it looks in the peer's home room (not there), then joins room 0 and finds it.
    let sent = p
        .chat
        .send(&r_addr, "hello, reference")
        .await
        .expect("sent");
    assert_eq!(sent.to, r_addr);
    let mut joined = p.chat.rooms().joined();
    joined.sort_unstable();
    assert!(joined.contains(&0), "{joined:?}");
    let deadline = Instant::now() + LIMIT;
    let packet = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match reference_events.recv_timeout(left).await {
            Some(Event::Data(packet)) => break packet,
            Some(_) => {}
            None => panic!("the reference client got nothing"),
        }
    };
    assert_eq!(packet.sender, p_addr);
    assert_eq!(packet.topic.as_deref(), Some(r_addr.as_str()));
    let message = chat_core::packet::decode(&packet.payload).expect("a chat packet");
    assert_eq!(message.text, "hello, reference");

    // Now the reference client sees P in room 0 and answers as the reference client does.
    eventually("the reference client sees P", || async {
        reference.participant(&p_addr).await.is_some()
    })
    .await;
    let payload =
        chat_core::packet::encode("hi back", std::time::SystemTime::now()).expect("packet");
    reference
        .send(
            &payload,
            std::slice::from_ref(&p_addr),
            Some(&p_addr),
            Reliability::Reliable,
        )
        .await
        .expect("sent");
    p.expect_message(&r_addr, "hi back").await;

    // The knob: a player that keeps room 0 is there from the start, so the reference client sees
    // it without being written to.
    let mut keep = sys.config();
    keep.rooms.stay_in_legacy = true;
    let kept = Player::connect(wallet_homed(|h| h != 0), keep).await;
    let hk = home_room(&kept.address, K);
    assert_eq!(kept.chat.rooms().joined(), [hk, 0]);
    eventually(
        "the reference client sees the player that keeps room 0",
        || async { reference.participant(&kept.address).await.is_some() },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_privacy_change_reaches_every_room_the_player_is_in() {
    let sys = ShardedSystem::start(2, K).await;
    let mut p = player_homed(&sys, sys.config(), |h| h != 0).await;
    let (hp, p_addr) = (home_room(&p.address, K), p.address.clone());
    // S shares P's home room; Q lives elsewhere, and P joins Q's room to write to it.
    let mut s = player_homed(&sys, sys.config(), |h| h == hp).await;
    let q = player_homed(&sys, sys.config(), |h| h != hp).await;
    let (hq, q_addr) = (home_room(&q.address, K), q.address.clone());
    p.expect_state(&q_addr, RecipientState::Connected).await;
    assert!(p.chat.rooms().joined().contains(&hq));
    s.expect_state(&p_addr, RecipientState::Connected).await;
    eventually("Q sees P in its room", || async {
        q.chat.recipient_state(&p_addr).await.ok() == Some(RecipientState::Connected)
    })
    .await;

    // P switches to only-friends: social service → gatekeeper → LiveKit, in both rooms.
    p.chat.set_privacy(Privacy::OnlyFriends).await.expect("set");
    s.expect_state(&p_addr, RecipientState::PrivateMessagesBlocked)
        .await;
    eventually("Q sees P's new metadata in Q's room", || async {
        q.chat.recipient_state(&p_addr).await.ok() == Some(RecipientState::PrivateMessagesBlocked)
    })
    .await;
    // Q saw it in its own room, not in P's (which Q never joined).
    assert_eq!(q.chat.rooms().joined(), [hq]);
}
