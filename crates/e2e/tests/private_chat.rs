//! `PrivateChat` on the real system (livekit-server, our social service on PostgreSQL in CI,
//! our gatekeeper): the whole ADR-208 flow, every step through the real services; the social
//! service restarted mid-session; LiveKit restarted.

use std::time::Duration;

use chat_core::{RecipientState, Rejected};
use e2e_tests::{LIMIT, System};
use livekit_participant::{Options, Participant, Reliability};
use pchat_client::GatekeeperTokens;
use pchat_client::private_chat::{ChatEvent, DropReason, NotSent, SocialState};
use pchat_core::Privacy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adr_208_flow_end_to_end() {
    let system = System::start().await;
    let ([mut alice, mut bob, mut carol], [a, b, c]) = system.players().await;

    // Alice and Bob become friends through the social service.
    alice
        .chat
        .social()
        .request_friendship(&b, Some("hi Bob"))
        .await
        .expect("request");
    let request = bob
        .expect(
            "the request",
            |e| matches!(e, ChatEvent::FriendshipRequested { from, .. } if *from == a),
        )
        .await;
    assert_eq!(
        request,
        ChatEvent::FriendshipRequested {
            from: a.clone(),
            message: Some("hi Bob".into())
        }
    );
    bob.chat.social().accept(&a).await.expect("accept");
    alice
        .expect(
            "the acceptance",
            |e| matches!(e, ChatEvent::FriendshipAccepted { by } if *by == b),
        )
        .await;
    alice.expect_state(&b, RecipientState::Connected).await;

    // Carol, a stranger, writes to Bob (whose setting is "all").
    assert_eq!(
        carol.chat.open_conversation(&b).await.expect("open"),
        RecipientState::Connected
    );
    carol.chat.send(&b, "hello from Carol").await.expect("sent");
    bob.expect_message(&c, "hello from Carol").await;

    // Bob switches to only-friends: Carol sees it live, and her send is refused.
    bob.chat
        .set_privacy(Privacy::OnlyFriends)
        .await
        .expect("privacy");
    carol
        .expect_state(&b, RecipientState::PrivateMessagesBlocked)
        .await;
    assert_eq!(
        carol.chat.send(&b, "still there?").await,
        Err(NotSent::Recipient {
            to: b.clone(),
            state: RecipientState::PrivateMessagesBlocked
        })
    );
    // Alice still gets through.
    alice
        .chat
        .send(&b, "friends still talk")
        .await
        .expect("sent");
    bob.expect_message(&a, "friends still talk").await;

    // Bob blocks Alice: both sides see it.
    bob.chat.social().block(&a).await.expect("block");
    bob.expect_state(&a, RecipientState::BlockedByOwnUser).await;
    alice
        .expect(
            "being blocked",
            |e| matches!(e, ChatEvent::BlockedBy { address, blocked: true } if *address == b),
        )
        .await;
    alice.expect_state(&b, RecipientState::Disconnected).await;
    assert!(matches!(
        alice.chat.send(&b, "?").await,
        Err(NotSent::Recipient { .. })
    ));

    // A participant broadcasting with no destination and no topic is filtered by everyone.
    let spammer_identity = authchain::Identity::new(
        &authchain::Wallet::random(),
        chrono::Utc::now() + chrono::Duration::hours(1),
    );
    let (spammer, _spam_events) = Participant::connect(
        GatekeeperTokens::new(&system.gatekeeper, spammer_identity),
        Options::default(),
    )
    .await
    .expect("spammer joins");
    let payload = chat_core::packet::encode("BUY NOW", std::time::SystemTime::now()).expect("e");
    for _ in 0..3 {
        spammer
            .send(&payload, &[], None, Reliability::Reliable)
            .await
            .expect("spam");
    }
    for player in [&mut alice, &mut bob, &mut carol] {
        let seen = player
            .collect_for(Duration::from_secs(3), |e| {
                matches!(e, ChatEvent::Message { .. } | ChatEvent::Dropped { .. })
            })
            .await;
        assert!(
            seen.iter().all(|e| matches!(
                e,
                ChatEvent::Dropped {
                    reason: DropReason::Filter(Rejected::EmptyTopic),
                    ..
                }
            )),
            "{}: {seen:?}",
            player.address
        );
        assert_eq!(seen.len(), 3, "{}: {seen:?}", player.address);
    }
}

/// Bad input to `send` is refused before anything reaches the room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_rules() {
    let system = System::start().await;
    let mut alice = system.player().await;
    let mut bob = system.player().await;
    let b = bob.address.clone();
    // LiveKit announces a participant that publishes nothing in batches (every 3 s).
    alice.expect_state(&b, RecipientState::Connected).await;
    assert!(matches!(
        alice.chat.send("0x123", "hi").await,
        Err(NotSent::BadRecipient(_))
    ));
    assert_eq!(alice.chat.send(&b, "  ").await, Err(NotSent::Empty));
    let long = "é".repeat(156);
    assert!(matches!(
        alice.chat.send(&b, &long).await,
        Err(NotSent::TooLong { limit: 155, .. })
    ));
    let away = authchain::Wallet::random().address().to_lower_hex();
    assert_eq!(
        alice.chat.send(&away, "hi").await,
        Err(NotSent::Recipient {
            to: away.clone(),
            state: RecipientState::Disconnected
        })
    );
    let fits = "é".repeat(155);
    let sent = alice
        .chat
        .send(&b, &fits)
        .await
        .expect("155 characters fit");
    assert!(sent.id.starts_with(&alice.address));
    bob.expect_message(&alice.address, &fits).await;
}

/// The social service goes away mid-session: the client says so, fails closed (a stranger's
/// message is dropped even though Bob accepts everyone; a friend's still arrives), reconnects
/// by itself when the service is back, reloads the view (with a change made meanwhile) and
/// goes back to Bob's own setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_social_service_restarted_mid_session() {
    let mut system = System::start().await;
    let ([mut alice, mut bob, mut carol, dave], [a, b, c, _]) = system.players().await;
    alice
        .chat
        .social()
        .request_friendship(&b, None)
        .await
        .expect("request");
    bob.expect("the request", |e| {
        matches!(e, ChatEvent::FriendshipRequested { .. })
    })
    .await;
    bob.chat.social().accept(&a).await.expect("accept");
    alice.expect_state(&b, RecipientState::Connected).await;
    carol.chat.open_conversation(&b).await.expect("open");
    // A stranger's raw participant (Carol's own SDK fails closed during the outage too, so it
    // would not send to a non-friend).
    let stranger_identity = authchain::Identity::new(
        &authchain::Wallet::random(),
        chrono::Utc::now() + chrono::Duration::hours(1),
    );
    let stranger_address = stranger_identity.address().to_lower_hex();
    let (stranger, _stranger_events) = Participant::connect(
        GatekeeperTokens::new(&system.gatekeeper, stranger_identity),
        Options::default(),
    )
    .await
    .expect("stranger joins");

    system.stop_social().await;
    bob.expect("the social service lost", |e| {
        matches!(e, ChatEvent::SocialState(SocialState::Reconnecting { .. }))
    })
    .await;
    bob.expect("failing closed", |e| {
        matches!(e, ChatEvent::FilterFailClosed(true))
    })
    .await;
    // Carol's SDK fails closed too (once it has noticed): she is a stranger to Bob.
    carol
        .expect("failing closed", |e| {
            matches!(e, ChatEvent::FilterFailClosed(true))
        })
        .await;
    assert!(matches!(
        carol.chat.send(&b, "can you hear me").await,
        Err(NotSent::Recipient {
            state: RecipientState::PrivateMessagesBlockedByOwnUser,
            ..
        })
    ));
    let payload =
        chat_core::packet::encode("can you hear me", std::time::SystemTime::now()).expect("encode");
    stranger
        .send(
            &payload,
            std::slice::from_ref(&b),
            Some(&b),
            Reliability::Reliable,
        )
        .await
        .expect("stranger sends");
    alice.chat.send(&b, "I can").await.expect("sent");
    let seen = bob
        .collect_for(Duration::from_secs(3), |e| {
            matches!(e, ChatEvent::Message { .. } | ChatEvent::Dropped { .. })
        })
        .await;
    assert!(
        seen.iter()
            .any(|e| matches!(e, ChatEvent::Message { from, .. } if *from == a)),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|e| matches!(e, ChatEvent::Dropped { from, reason: DropReason::Filter(Rejected::NotAFriend), .. } if *from == stranger_address)),
        "{seen:?}"
    );
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, ChatEvent::Message { from, .. } if *from == stranger_address)),
        "{seen:?}"
    );

    system.start_social().await;
    // Meanwhile Dave asks Bob to be friends (Dave's session reconnects too).
    let deadline = tokio::time::Instant::now() + LIMIT;
    while dave
        .chat
        .social()
        .request_friendship(&b, None)
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "dave never reconnected"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bob.expect("back to its own setting", |e| {
        matches!(e, ChatEvent::FilterFailClosed(false))
    })
    .await;
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !bob
        .chat
        .view()
        .is_some_and(|v| v.pending_in.contains_key(&dave.address))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "dave's request never seen"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A stranger gets through again once Carol's session is back too (and after the rate-limit
    // window).
    carol
        .expect("back to her own setting", |e| {
            matches!(e, ChatEvent::FilterFailClosed(false))
        })
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    carol.chat.send(&b, "and now?").await.expect("sent");
    bob.expect_message(&c, "and now?").await;
}

/// LiveKit restarts: both clients say so, rejoin by themselves, and talk again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livekit_restarted_mid_session() {
    let mut system = System::start().await;
    let mut alice = system.player().await;
    let mut bob = system.player().await;
    let b = bob.address.clone();
    alice.expect_state(&b, RecipientState::Connected).await;
    system.lk.restart().await.expect("restart");
    alice
        .expect("reconnecting", |e| {
            matches!(
                e,
                ChatEvent::RoomState(livekit_participant::ConnectionState::Reconnecting)
            )
        })
        .await;
    alice
        .expect("connected again", |e| {
            matches!(
                e,
                ChatEvent::RoomState(livekit_participant::ConnectionState::Connected)
            )
        })
        .await;
    alice.expect_state(&b, RecipientState::Connected).await;
    alice.chat.send(&b, "still here").await.expect("sent");
    bob.expect_message(&alice.address, "still here").await;
}
