//! `PrivateChat` against the official LiveKit SDK (`@livekit/rtc-node`) and the official comms
//! codec (`@dcl/protocol`), on the real system: a message sent right after joining is
//! attributed to its sender; reactions go both ways, built and read by the official codec.

use std::time::Duration;

use e2e_tests::{LIMIT, System};
use pchat_client::private_chat::{ChatEvent, DropReason};
use pchat_core::Privacy;
use serde_json::{Value, json};
use testkit::node::{self, NodeProcess};

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad line {line}: {e}"))
}

/// An official-SDK participant with a wallet address as identity and privacy "all".
async fn official(system: &System) -> (NodeProcess, String) {
    let address = authchain::Wallet::random().address().to_lower_hex();
    let token = system.lk.token(
        "private-messages",
        &address,
        &Privacy::All.participant_metadata(),
    );
    let mut sdk =
        NodeProcess::spawn("lk-participant.mjs", &[&system.lk.ws_url(), &token]).expect("node");
    sdk.wait_for("\"connected\"", LIMIT)
        .await
        .expect("sdk connected");
    (sdk, address)
}

async fn official_codec(args: &[&str]) -> String {
    node::run("rfc4.mjs", args, LIMIT)
        .await
        .expect("rfc4.mjs")
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_right_after_joining_reaches_the_official_sdk_with_its_sender() {
    let system = System::start().await;
    let (mut sdk, receiver) = official(&system).await;
    for i in 0..3 {
        // `player` returns as soon as the social view is loaded: well before LiveKit's next
        // 3-second announcement batch.
        let alice = system.player().await;
        let text = format!("right away {i}");
        alice.chat.send(&receiver, &text).await.expect("sent");
        let line = parse(&sdk.wait_for("\"data\"", LIMIT).await.expect("data"));
        assert_eq!(line["from"], json!(alice.address), "{line}");
        assert_eq!(line["topic"], json!(receiver));
        let decoded =
            parse(&official_codec(&["decode", line["payloadHex"].as_str().expect("hex")]).await);
        assert_eq!(decoded["message"], json!(text));
        alice.chat.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_go_both_ways_with_the_official_codec() {
    let system = System::start().await;
    let (mut sdk, official_address) = official(&system).await;
    let mut bob = system.player().await;
    bob.expect_state(&official_address, chat_core::RecipientState::Connected)
        .await;

    // Bob writes; the official side reacts to that message with a packet built by the official
    // codec, twice (the repeat is dropped), then takes it back (~index).
    let sent = bob
        .chat
        .send(&official_address, "react to me")
        .await
        .expect("sent");
    sdk.wait_for("\"data\"", LIMIT)
        .await
        .expect("message arrives");
    let add = official_codec(&["encode-reaction", "42", &sent.id, &official_address]).await;
    let remove = official_codec(&["encode-reaction", "-43", &sent.id, &official_address]).await;
    for hex in [&add, &add, &remove] {
        let cmd = json!({"cmd": "send", "payloadHex": hex, "destinations": [bob.address], "topic": bob.address, "reliable": true});
        sdk.send_line(&cmd.to_string()).await.expect("stdin");
        sdk.wait_for("\"sent\"", LIMIT).await.expect("sent");
    }
    let seen = bob
        .collect_for(Duration::from_secs(3), |e| {
            matches!(e, ChatEvent::Reaction { .. } | ChatEvent::Dropped { .. })
        })
        .await;
    let reactions: Vec<_> = seen
        .iter()
        .filter_map(|e| match e {
            ChatEvent::Reaction { from, reaction, .. } => Some((from.clone(), reaction.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(reactions.len(), 2, "{seen:?}");
    for (from, r) in &reactions {
        assert_eq!(from, &official_address);
        assert_eq!(r.emoji_index, 42);
        assert_eq!(r.message_id, sent.id);
    }
    assert!(
        !reactions[0].1.removal && reactions[1].1.removal,
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|e| matches!(
            e,
            ChatEvent::Dropped {
                reason: DropReason::Filter(chat_core::Rejected::DuplicateReaction),
                ..
            }
        )),
        "{seen:?}"
    );

    // Bob reacts to a message of the official side; the official codec reads it.
    let their_id = chat_core::message_id(&official_address, 46000.5);
    for removal in [false, true] {
        bob.chat
            .react(&official_address, &their_id, 42, removal)
            .await
            .expect("react");
        let line = parse(
            &sdk.wait_for("\"data\"", LIMIT)
                .await
                .expect("reaction arrives"),
        );
        assert_eq!(line["from"], json!(bob.address));
        assert_eq!(line["topic"], json!(official_address));
        let decoded =
            parse(&official_codec(&["decode", line["payloadHex"].as_str().expect("hex")]).await);
        assert_eq!(decoded["case"], json!("chatReaction"), "{decoded}");
        assert_eq!(
            decoded["reaction"]["emojiIndex"],
            json!(if removal { -43 } else { 42 })
        );
        assert_eq!(decoded["reaction"]["messageId"], json!(their_id));
        assert_eq!(decoded["reaction"]["address"], json!(bob.address));
    }
}

/// Our messages ask for a delivery receipt (a field the official codec does not know); the
/// official side still reads the same chat, is sent it once (it never showed that it speaks
/// receipts, so nothing is resent), and our sender is told delivery could not be confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_asking_for_a_receipt_reads_as_the_reference_chat_and_is_sent_once() {
    let system = System::start().await;
    let (mut sdk, receiver) = official(&system).await;
    let mut config = system.config();
    config.delivery.deadline = Duration::from_secs(4);
    config.delivery.resend_interval = Duration::from_secs(1);
    let mut alice = system.player_with(config).await;
    alice
        .expect_state(&receiver, chat_core::RecipientState::Connected)
        .await;
    let sent = alice
        .chat
        .send(&receiver, "confirm me")
        .await
        .expect("sent");
    let line = parse(&sdk.wait_for("\"data\"", LIMIT).await.expect("data"));
    let decoded =
        parse(&official_codec(&["decode", line["payloadHex"].as_str().expect("hex")]).await);
    assert_eq!(decoded["case"], json!("chat"), "{decoded}");
    assert_eq!(decoded["message"], json!("confirm me"));
    // serde_json's default float parsing may miss the last bit: compare to well under 1 ms.
    let timestamp = decoded["timestamp"].as_f64().expect("a timestamp");
    assert!((timestamp - sent.timestamp).abs() < 1e-9, "{decoded}");
    assert_eq!(decoded["protocolVersion"], json!(100));

    let outcome = alice
        .expect("the outcome", |e| {
            matches!(
                e,
                ChatEvent::Delivered { .. } | ChatEvent::NotDelivered { .. }
            )
        })
        .await;
    assert!(
        matches!(&outcome, ChatEvent::NotDelivered { id, reason: chat_core::Unconfirmed::PeerSendsNoReceipts { .. }, .. } if *id == sent.id),
        "{outcome:?}"
    );
    assert!(
        sdk.wait_for("\"data\"", Duration::from_secs(1))
            .await
            .is_err(),
        "sent once"
    );
}
