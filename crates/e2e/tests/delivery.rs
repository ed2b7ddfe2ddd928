//! Delivery receipts end to end (real livekit-server, social service and gatekeeper): a message
//! shown is confirmed Delivered, once; a message the receiver's filter drops is reported
//! NotDelivered, never Delivered; a resend is confirmed again but shown once; messages in flight
//! when the LiveKit server is killed and started again either arrive exactly once or are
//! reported NotDelivered, and the clients recover by themselves.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use chat_core::packet::{self, Payload};
use chat_core::{RecipientState, Unconfirmed};
use e2e_tests::{LIMIT, Player, System};
use livekit_participant::{Event, Options, Participant, Reliability};
use pchat_client::private_chat::{ChatEvent, PrivateChatConfig};

fn is_outcome(e: &ChatEvent) -> bool {
    matches!(
        e,
        ChatEvent::Delivered { .. } | ChatEvent::NotDelivered { .. }
    )
}

fn outcome_id(e: &ChatEvent) -> Option<&str> {
    match e {
        ChatEvent::Delivered { id, .. } | ChatEvent::NotDelivered { id, .. } => Some(id),
        _ => None,
    }
}

/// `config` with a short deadline and resend interval, so the tests are quick.
fn quick(mut config: PrivateChatConfig, deadline: Duration) -> PrivateChatConfig {
    config.delivery.deadline = deadline;
    config.delivery.resend_interval = Duration::from_secs(1);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_shown_is_confirmed_delivered_once() {
    let system = System::start().await;
    let config = quick(system.config(), Duration::from_secs(3));
    let (mut alice, mut bob) = system.two_players(config).await;

    delivered(&mut alice, &mut bob, "hello").await;
    assert_eq!(alice.chat.pending_deliveries(), 0);
    // Past the deadline: no second outcome, and Bob showed it once.
    let more = alice.collect_for(Duration::from_secs(4), is_outcome).await;
    assert!(more.is_empty(), "{more:?}");
    let copies = bob
        .collect_for(
            Duration::from_millis(200),
            |e| matches!(e, ChatEvent::Message { message, .. } if message.text == "hello"),
        )
        .await;
    assert!(copies.is_empty(), "{copies:?}");

    // And the other way: Bob's reply is confirmed too.
    delivered(&mut bob, &mut alice, "hi!").await;
}

/// `from` sends `text` to `to`, who shows it; `from` is told it was delivered.
async fn delivered(from: &mut Player, to: &mut Player, text: &str) {
    let sent = from.chat.send(&to.address, text).await.expect("sent");
    to.expect_message(&from.address, text).await;
    let outcome = from.expect("the outcome", is_outcome).await;
    assert_eq!(
        outcome,
        ChatEvent::Delivered {
            id: sent.id,
            to: to.address.clone()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_receivers_filter_drops_is_not_delivered() {
    let system = System::start().await;
    // Alice's social connection goes to an instance with a bus of its own, so she is not told
    // that Bob blocked her and still sends (as when the notification is slow).
    let separate = system.separate_social().await;
    let alice_config = quick(
        PrivateChatConfig::new(&system.gatekeeper, &separate.ws_url()),
        Duration::from_secs(5),
    );
    let mut alice = system.player_with(alice_config).await;
    let mut bob = system.player().await;
    alice
        .expect_state(&bob.address, RecipientState::Connected)
        .await;
    delivered(&mut alice, &mut bob, "before").await;

    bob.chat
        .social()
        .block(&alice.address)
        .await
        .expect("block");
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !bob
        .chat
        .view()
        .is_some_and(|v| v.blocked.contains(&alice.address))
    {
        assert!(tokio::time::Instant::now() < deadline, "Bob's view");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        alice.chat.recipient_state(&bob.address).await,
        Ok(RecipientState::Connected),
        "Alice was not told"
    );

    let second = alice.chat.send(&bob.address, "after").await.expect("sent");
    let outcome = alice.expect("the second outcome", is_outcome).await;
    match outcome {
        ChatEvent::NotDelivered {
            id,
            to,
            reason: Unconfirmed::NoReceipt { resends, .. },
        } => {
            assert_eq!((id, to), (second.id, bob.address.clone()));
            assert!(resends >= 1, "Bob speaks receipts, so it was sent again");
        }
        other => panic!("{other:?}"),
    }
    let shown = bob
        .collect_for(
            Duration::from_millis(300),
            |e| matches!(e, ChatEvent::Message { message, .. } if message.text == "after"),
        )
        .await;
    assert!(shown.is_empty(), "{shown:?}");
    assert!(
        bob.chat.drops().get("blocked-by-me").copied().unwrap_or(0) >= 2,
        "every copy was dropped: {:?}",
        bob.chat.drops()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_message_is_confirmed_again_but_shown_once() {
    let system = System::start().await;
    let mut bob = system.player().await;
    // Carol speaks the extension by hand with a bare LiveKit participant, and resends.
    let identity = authchain::Identity::new(
        &authchain::Wallet::random(),
        chrono::Utc::now() + chrono::Duration::hours(1),
    );
    let carol_address = identity.address().to_lower_hex();
    let tokens = pchat_client::GatekeeperTokens::new(&system.gatekeeper, identity);
    let (carol, mut carol_events) = Participant::connect(tokens, Options::default())
        .await
        .expect("carol joins");
    bob.expect_state(&carol_address, RecipientState::Connected)
        .await;
    let at = SystemTime::now();
    let (payload, asked) = packet::encode_message("once", at, true).expect("encode");
    assert!(asked);
    let id = chat_core::message_id(&carol_address, chat_core::ole::to_ole(at));
    for _ in 0..3 {
        carol
            .send(
                &payload,
                std::slice::from_ref(&bob.address),
                Some(&bob.address),
                Reliability::Reliable,
            )
            .await
            .expect("carol sends");
    }
    bob.expect_message(&carol_address, "once").await;

    // A receipt for each copy, all for the same id, to Carol.
    let deadline = tokio::time::Instant::now() + LIMIT;
    let mut receipts = 0;
    while receipts < 3 {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match carol_events.recv_timeout(left).await {
            Some(Event::Data(p)) => {
                assert_eq!(p.sender, bob.address);
                assert_eq!(p.topic.as_deref(), Some(carol_address.as_str()));
                assert_eq!(
                    packet::decode_payload(&p.payload),
                    Ok(Payload::Receipt(id.clone()))
                );
                receipts += 1;
            }
            Some(_) => {}
            None => panic!("{receipts} receipts of 3 within {LIMIT:?}"),
        }
    }
    let again = bob
        .collect_for(Duration::from_secs(1), |e| {
            matches!(e, ChatEvent::Message { .. })
        })
        .await;
    assert!(again.is_empty(), "shown once: {again:?}");
    assert_eq!(bob.chat.drops().get("duplicate-message"), Some(&2));
    carol.leave().await;
}

/// Alice sends a message every 200 ms to Bob while the LiveKit server is frozen (SIGSTOP) for
/// a second, so that what she sends meanwhile is in flight, then killed (SIGKILL) and started
/// again: the room and everything in it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_in_flight_when_livekit_dies_arrive_once_or_are_reported() {
    let mut system = System::start().await;
    let mut config = quick(system.config(), Duration::from_secs(15));
    config.delivery.max_resends = 10;
    config.rate_limit = None;
    let (mut alice, mut bob) = system.two_players(config).await;
    // Bob is known to speak receipts from here on.
    delivered(&mut alice, &mut bob, "warm-up").await;

    let mut sent: HashMap<String, String> = HashMap::new(); // id → text
    let mut sent_at: Vec<std::time::Instant> = Vec::new();
    let mut frozen: Option<(std::time::Instant, std::time::Instant)> = None;
    let mut refused = 0;
    {
        let lk = &mut system.lk;
        let alice_chat = &alice.chat;
        let bob_address = bob.address.clone();
        let sending = async {
            for i in 0..25 {
                let text = format!("m{i}");
                match alice_chat.send(&bob_address, &text).await {
                    Ok(s) => {
                        sent.insert(s.id, text);
                        sent_at.push(std::time::Instant::now());
                    }
                    Err(_) => refused += 1,
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        let chaos = async {
            tokio::time::sleep(Duration::from_millis(900)).await;
            lk.pause().expect("freeze");
            let from = std::time::Instant::now();
            tokio::time::sleep(Duration::from_secs(1)).await;
            frozen = Some((from, std::time::Instant::now()));
            lk.restart().await.expect("livekit-server restarts");
        };
        tokio::join!(sending, chaos);
    }
    let (from, to) = frozen.expect("the chaos ran");
    let in_flight = sent_at.iter().filter(|t| **t > from && **t < to).count();
    assert!(in_flight > 0, "some were sent while the server was frozen");

    // Every message sent gets exactly one outcome; Bob shows each at most once.
    let wait = Duration::from_secs(15) + Duration::from_secs(10);
    let (outcomes, shown) = tokio::join!(
        alice.collect_for(wait, is_outcome),
        bob.collect_for(
            wait,
            |e| matches!(e, ChatEvent::Message { message, .. } if message.text.starts_with('m'))
        ),
    );
    let mut outcome_of: HashMap<String, ChatEvent> = HashMap::new();
    for o in outcomes {
        let id = outcome_id(&o).expect("an outcome").to_owned();
        assert!(
            sent.contains_key(&id),
            "an outcome for a message not sent: {o:?}"
        );
        assert!(
            outcome_of.insert(id, o.clone()).is_none(),
            "two outcomes: {o:?}"
        );
    }
    let mut shown_count: HashMap<String, usize> = HashMap::new();
    for m in shown {
        if let ChatEvent::Message { id, .. } = m {
            *shown_count.entry(id).or_default() += 1;
        }
    }
    let (mut delivered, mut reported) = (0, 0);
    for (id, text) in &sent {
        let copies = shown_count.get(id).copied().unwrap_or(0);
        assert!(copies <= 1, "{text} shown {copies} times");
        match outcome_of.get(id) {
            Some(ChatEvent::Delivered { .. }) => {
                assert_eq!(copies, 1, "{text} confirmed but not shown");
                delivered += 1;
            }
            Some(ChatEvent::NotDelivered { .. }) => reported += 1,
            _ => panic!("{text} was sent and never confirmed nor reported: lost silently"),
        }
    }
    eprintln!(
        "{} sent ({in_flight} while frozen; {delivered} delivered, {reported} reported not \
         delivered), {refused} refused",
        sent.len()
    );

    // Both recovered by themselves: a new message is confirmed.
    recovered(&mut alice, &mut bob).await;
}

async fn recovered(alice: &mut Player, bob: &mut Player) {
    alice
        .expect_state(&bob.address, RecipientState::Connected)
        .await;
    delivered(alice, bob, "after").await;
}
