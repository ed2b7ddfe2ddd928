//! End-to-end encryption (docs/e2ee.md) on the real system: livekit-server, our gatekeeper and
//! social service, `PrivateChat` clients, and the official LiveKit SDK (`@livekit/rtc-node`)
//! with the official comms codec (`@dcl/protocol`) as the eavesdropper, the reference-format
//! peer and the forger.

use std::time::{Duration, SystemTime};

use chat_core::{E2ee, Protection, SessionKey};
use e2e_tests::{LIMIT, Player, System};
use pchat_client::GatekeeperTokens;
use pchat_client::private_chat::{ChatEvent, NotSent};
use pchat_core::chat_key::ChatKey;
use prost::Message as _;
use serde_json::{Value, json};
use testkit::node::{self, NodeProcess};

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad line {line}: {e}"))
}

fn identity(wallet: &authchain::Wallet) -> authchain::Identity {
    authchain::Identity::new(wallet, chrono::Utc::now() + chrono::Duration::hours(1))
}

/// An official-SDK participant joining with a token from our gatekeeper for a fresh wallet,
/// publishing `key` (as our clients do) or none (as the reference client does).
async fn official(system: &System, key: Option<ChatKey>) -> (NodeProcess, String) {
    let wallet = authchain::Wallet::random();
    let mut tokens = GatekeeperTokens::new(&system.gatekeeper, identity(&wallet));
    if let Some(key) = key {
        tokens = tokens.with_chat_key(key);
    }
    let creds = tokens.fetch().await.expect("a token from the gatekeeper");
    let mut sdk =
        NodeProcess::spawn("lk-participant.mjs", &[&creds.url, &creds.token]).expect("node");
    sdk.wait_for("\"connected\"", LIMIT)
        .await
        .expect("sdk connected");
    (sdk, wallet.address().to_lower_hex())
}

/// The official SDK sends `payload` to `to` as the reference client addresses a message.
async fn official_send(sdk: &mut NodeProcess, to: &str, payload: &[u8]) {
    let cmd = json!({"cmd": "send", "payloadHex": hex::encode(payload), "destinations": [to], "topic": to, "reliable": true});
    sdk.send_line(&cmd.to_string()).await.expect("send command");
    sdk.wait_for("\"sent\"", LIMIT).await.expect("sent");
}

async fn official_codec(args: &[&str]) -> Value {
    parse(
        node::run("rfc4.mjs", args, LIMIT)
            .await
            .expect("rfc4.mjs")
            .trim(),
    )
}

fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text).expect("hex")
}

/// Waits until `player` sees `peer`'s published key (and returns it).
async fn peer_key(player: &Player, peer: &str) -> ChatKey {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        if let Some(key) = player
            .chat
            .encryption(peer)
            .await
            .expect("an address")
            .peer_key
        {
            return key;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}: no key for {peer} within {LIMIT:?}",
            player.address
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn expect_text(player: &mut Player, from: &str, text: &str) -> Protection {
    let (f, t) = (from.to_owned(), text.to_owned());
    match player
        .expect(&format!("{text:?} from {from}"), |e| {
            matches!(e, ChatEvent::Message { from, message, .. } if *from == f && message.text == t)
        })
        .await
    {
        ChatEvent::Message { protection, .. } => protection,
        _ => unreachable!("matched a message"),
    }
}

async fn expect_drop(player: &mut Player, from: &str, name: &str) {
    let (f, n) = (from.to_owned(), name.to_owned());
    player
        .expect(&format!("a {name} drop of {from}'s packet"), |e| {
            matches!(e, ChatEvent::Dropped { from, reason, .. } if from.eq_ignore_ascii_case(&f) && reason.name() == n)
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_talk_encrypted_and_an_eavesdropper_in_the_room_sees_only_ciphertext() {
    let system = System::start().await;
    // Eve is a player like any other, with a token for the room from the gatekeeper, on the
    // official SDK. The SFU normally gives her nothing of a conversation between others; here
    // Alice's room connection also addresses every packet to her (`copy_to`), as an SFU that
    // forwards to whoever it likes would: Eve receives exactly the bytes the server forwards.
    let (mut eve, eve_address) = official(&system, Some(SessionKey::generate().public())).await;
    let mut config = system.config();
    config.room.copy_to = vec![eve_address.clone()];
    let mut alice = system.player_with(config).await;
    let mut bob = system.player().await;
    alice
        .expect_state(&bob.address, chat_core::RecipientState::Connected)
        .await;
    bob.expect_state(&alice.address, chat_core::RecipientState::Connected)
        .await;
    assert_eq!(
        peer_key(&alice, &bob.address).await,
        bob.chat.my_key().expect("bob's key")
    );

    const SECRET: &str = "the treasure is under the fountain";
    let sent = alice.chat.send(&bob.address, SECRET).await.expect("sent");
    assert_eq!(sent.protection, Protection::Encrypted);
    assert_eq!(
        expect_text(&mut bob, &alice.address, SECRET).await,
        Protection::Encrypted
    );
    let delivered = alice
        .expect("the receipt", |e| matches!(e, ChatEvent::Delivered { .. }))
        .await;
    assert!(matches!(delivered, ChatEvent::Delivered { id, .. } if id == sent.id));

    // A reaction, the same way: Bob writes, Alice reacts.
    bob.chat
        .send(&alice.address, "nice")
        .await
        .expect("bob sends");
    let id = match alice
        .expect("bob's message", |e| matches!(e, ChatEvent::Message { .. }))
        .await
    {
        ChatEvent::Message { id, protection, .. } => {
            assert_eq!(protection, Protection::Encrypted);
            id
        }
        _ => unreachable!(),
    };
    let heart = chat_core::reaction::emoji_index("❤️").expect("an emoji of the atlas");
    let how = alice
        .chat
        .react(&bob.address, &id, heart, false)
        .await
        .expect("reacted");
    assert_eq!(how, Protection::Encrypted);
    match bob
        .expect("alice's reaction", |e| {
            matches!(e, ChatEvent::Reaction { .. })
        })
        .await
    {
        ChatEvent::Reaction {
            reaction,
            protection,
            ..
        } => {
            assert_eq!(
                (reaction.emoji_index, reaction.message_id.as_str()),
                (heart, id.as_str())
            );
            assert_eq!(protection, Protection::Encrypted);
        }
        _ => unreachable!(),
    }

    // Everything Eve received from Alice: the message, the receipt for Bob's message, the
    // reaction. None says anything readable; the official codec finds no chat and no reaction.
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let line = parse(
            &eve.wait_for("\"data\"", LIMIT)
                .await
                .expect("a copy for eve"),
        );
        assert_eq!(line["from"], json!(alice.address), "{line}");
        seen.push(line);
    }
    let mut sealed = 0;
    for line in &seen {
        let payload = unhex(line["payloadHex"].as_str().expect("hex"));
        assert!(
            !payload
                .windows(8)
                .any(|w| SECRET.as_bytes().windows(8).any(|s| s == w)),
            "plaintext in what the SFU forwarded: {line}"
        );
        let decoded = official_codec(&["decode", &hex::encode(&payload)]).await;
        assert_eq!(decoded["protocolVersion"], json!(100), "{decoded}");
        assert_eq!(decoded["case"], Value::Null, "{decoded}");
        if chat_core::packet::is_encrypted(&payload) {
            sealed += 1;
            // Eve has a key of her own and Alice's public key: still nothing opens.
            let mut her = E2ee::new(SessionKey::generate());
            let alice_key = alice.chat.my_key().expect("alice's key");
            assert!(
                her.open(&alice.address, &eve_address, Some(&alice_key), &payload)
                    .is_err()
            );
            assert!(
                her.open(&alice.address, &bob.address, Some(&alice_key), &payload)
                    .is_err()
            );
        }
    }
    assert_eq!(
        sealed, 2,
        "the message and the reaction are sealed: {seen:?}"
    );
    eve.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_format_peer_still_talks_in_plaintext_and_encryption_can_be_required() {
    let system = System::start().await;
    let (mut reference, reference_address) = official(&system, None).await;
    let mut bob = system.player().await;
    bob.expect_state(&reference_address, chat_core::RecipientState::Connected)
        .await;
    let e = bob
        .chat
        .encryption(&reference_address)
        .await
        .expect("address");
    assert_eq!(e.peer_key, None);
    assert!(!e.active() && e.my_key.is_some() && !e.required);

    // Bob → reference: the reference's own plaintext, read by the official codec.
    let sent = bob
        .chat
        .send(&reference_address, "hello reference")
        .await
        .expect("sent");
    assert_eq!(sent.protection, Protection::Plaintext);
    let line = parse(&reference.wait_for("\"data\"", LIMIT).await.expect("data"));
    let decoded = official_codec(&["decode", line["payloadHex"].as_str().expect("hex")]).await;
    assert_eq!(decoded["case"], json!("chat"), "{decoded}");
    assert_eq!(decoded["message"], json!("hello reference"), "{decoded}");

    // Reference → Bob: shown, marked plaintext (not flagged: they have no key).
    let chat = node::run(
        "rfc4.mjs",
        &["encode-chat", "hi from the explorer", "46000.5", "100"],
        LIMIT,
    )
    .await
    .expect("encode");
    official_send(&mut reference, &bob.address, &unhex(chat.trim())).await;
    assert_eq!(
        expect_text(&mut bob, &reference_address, "hi from the explorer").await,
        Protection::Plaintext
    );

    // Encryption required for this conversation: refused, with the reason, nothing sent.
    assert_eq!(
        bob.chat.require_encryption(&reference_address, true),
        Ok(true)
    );
    let refused = bob.chat.send(&reference_address, "secret").await;
    assert!(
        matches!(&refused, Err(NotSent::EncryptionRequired { to }) if *to == reference_address),
        "{refused:?}"
    );
    let reason = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(reason.contains("no encryption key"), "{reason}");
    assert!(
        reference
            .wait_for("\"data\"", Duration::from_secs(2))
            .await
            .is_err(),
        "a refused message must not leave"
    );
    assert!(
        bob.chat
            .encryption(&reference_address)
            .await
            .expect("a")
            .required
    );
    assert_eq!(
        bob.chat.require_encryption(&reference_address, false),
        Ok(true)
    );
    bob.chat
        .send(&reference_address, "plaintext again")
        .await
        .expect("allowed again");

    // A plaintext message from a peer that publishes a key: shown, flagged.
    let (mut keyed, keyed_address) = official(&system, Some(SessionKey::generate().public())).await;
    bob.expect_state(&keyed_address, chat_core::RecipientState::Connected)
        .await;
    peer_key(&bob, &keyed_address).await;
    official_send(&mut keyed, &bob.address, &unhex(chat.trim())).await;
    assert_eq!(
        expect_text(&mut bob, &keyed_address, "hi from the explorer").await,
        Protection::PlaintextFromKeyedPeer
    );
    reference.kill().await;
    keyed.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_tampering_foreign_keys_and_keyless_senders_are_refused_and_counted() {
    let system = System::start().await;
    // Mallory publishes a key through the gatekeeper and holds its private half here; her
    // packets are built with our codec and sent by the official SDK.
    let mallory_key = SessionKey::generate();
    let (mut mallory, mallory_address) = official(&system, Some(mallory_key.public())).await;
    let mut mallory_e2ee = E2ee::new(mallory_key);
    let mut bob = system.player().await;
    let mut carol = system.player().await;
    let bob_key = bob.chat.my_key().expect("bob's key");
    bob.expect_state(&mallory_address, chat_core::RecipientState::Connected)
        .await;
    carol
        .expect_state(&mallory_address, chat_core::RecipientState::Connected)
        .await;
    peer_key(&bob, &mallory_address).await;
    peer_key(&carol, &mallory_address).await;
    let message = |text: &str| {
        chat_core::packet::encode_message(text, SystemTime::now(), false)
            .expect("encode")
            .0
    };

    // Genuine: sealed with her published key, for Bob.
    let genuine = mallory_e2ee
        .seal(
            &mallory_address,
            &bob.address,
            &bob_key,
            &message("genuine"),
            SystemTime::now(),
        )
        .expect("seal");
    official_send(&mut mallory, &bob.address, &genuine).await;
    assert_eq!(
        expect_text(&mut bob, &mallory_address, "genuine").await,
        Protection::Encrypted
    );

    // The same packet again to Bob: a replay.
    official_send(&mut mallory, &bob.address, &genuine).await;
    expect_drop(&mut bob, &mallory_address, "e2ee-replayed").await;

    // The same packet to Carol: not hers (other key, other recipient in the AAD).
    official_send(&mut mallory, &carol.address, &genuine).await;
    expect_drop(&mut carol, &mallory_address, "e2ee-undecryptable").await;

    // Tampered: one bit of the ciphertext flipped.
    let sealed = mallory_e2ee
        .seal(
            &mallory_address,
            &bob.address,
            &bob_key,
            &message("tampered"),
            SystemTime::now(),
        )
        .expect("seal");
    let mut packet = chat_core::packet::Packet::decode(sealed.as_slice()).expect("decode");
    if let Some(chat_core::packet::PacketMessage::Encrypted(e)) = &mut packet.message {
        e.ciphertext[0] ^= 0x80;
    }
    official_send(&mut mallory, &bob.address, &packet.encode_to_vec()).await;
    expect_drop(&mut bob, &mallory_address, "e2ee-undecryptable").await;

    // Sealed with a key that is not the one her attributes publish.
    let mut other = E2ee::new(SessionKey::generate());
    let foreign = other
        .seal(
            &mallory_address,
            &bob.address,
            &bob_key,
            &message("foreign key"),
            SystemTime::now(),
        )
        .expect("seal");
    official_send(&mut mallory, &bob.address, &foreign).await;
    expect_drop(&mut bob, &mallory_address, "e2ee-undecryptable").await;

    // An encrypted packet from a participant that publishes no key at all.
    let (mut keyless, keyless_address) = official(&system, None).await;
    bob.expect_state(&keyless_address, chat_core::RecipientState::Connected)
        .await;
    let from_keyless = other
        .seal(
            &keyless_address,
            &bob.address,
            &bob_key,
            &message("no key"),
            SystemTime::now(),
        )
        .expect("seal");
    official_send(&mut keyless, &bob.address, &from_keyless).await;
    expect_drop(&mut bob, &keyless_address, "e2ee-no-sender-key").await;

    // Counted per reason; none of them was shown.
    let drops = bob.chat.drops();
    assert_eq!(drops.get("e2ee-replayed"), Some(&1), "{drops:?}");
    assert_eq!(drops.get("e2ee-undecryptable"), Some(&2), "{drops:?}");
    assert_eq!(drops.get("e2ee-no-sender-key"), Some(&1), "{drops:?}");
    assert_eq!(carol.chat.drops().get("e2ee-undecryptable"), Some(&1));
    let shown = bob
        .collect_for(Duration::from_millis(500), |e| {
            matches!(e, ChatEvent::Message { .. })
        })
        .await;
    assert!(shown.is_empty(), "{shown:?}");
    mallory.kill().await;
    keyless.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_peer_brings_a_new_key_and_the_conversation_follows_it() {
    let system = System::start().await;
    let mut alice = system.player().await;
    let bob_wallet = authchain::Wallet::random();
    let mut bob = Player::connect(bob_wallet.clone(), system.config()).await;
    alice
        .expect_state(&bob.address, chat_core::RecipientState::Connected)
        .await;
    let old_key = peer_key(&alice, &bob.address).await;
    assert_eq!(Some(old_key), bob.chat.my_key());
    alice.chat.send(&bob.address, "before").await.expect("sent");
    assert_eq!(
        expect_text(&mut bob, &alice.address, "before").await,
        Protection::Encrypted
    );

    // Bob's app restarts: a new session, a new key, published by his new token.
    bob.chat.close().await;
    let mut bob = Player::connect(bob_wallet, system.config()).await;
    let new_key = bob.chat.my_key().expect("a new key");
    assert_ne!(new_key, old_key);
    let bob_address = bob.address.clone();
    alice
        .expect("bob's new key", |e| {
            matches!(e, ChatEvent::PeerKey { address, key: Some(k) } if *address == bob_address && *k == new_key)
        })
        .await;
    alice
        .expect_state(&bob.address, chat_core::RecipientState::Connected)
        .await;
    let sent = alice.chat.send(&bob.address, "after").await.expect("sent");
    assert_eq!(sent.protection, Protection::Encrypted);
    assert_eq!(
        expect_text(&mut bob, &alice.address, "after").await,
        Protection::Encrypted
    );
    bob.expect_state(&alice.address, chat_core::RecipientState::Connected)
        .await;
    bob.chat
        .send(&alice.address, "and back")
        .await
        .expect("sent");
    assert_eq!(
        expect_text(&mut alice, &bob.address, "and back").await,
        Protection::Encrypted
    );
    let drops = bob.chat.drops();
    assert!(
        drops.keys().all(|k| !k.starts_with("e2ee-")),
        "nothing refused across the reconnect: {drops:?}"
    );
}
