//! The client SDK against real parts: a real livekit-server, our gatekeeper (tokens by signed
//! fetch), three SDK clients and one official LiveKit SDK participant (@livekit/rtc-node).
//! Messages reach only their recipient; the receiver's filter applies its privacy setting,
//! friendships and blocks; packets interoperate with the official SDK both ways.

use std::collections::HashSet;
use std::time::Duration;

use chat_core::{Filter, Rejected, SocialView};
use pchat_client::{ChatClient, GatekeeperTokens, Inbox, Received, RecipientState};
use pchat_core::Privacy;
use testkit::LiveKitServer;
use testkit::gatekeeper::TestGatekeeper;
use testkit::node::NodeProcess;

const LIMIT: Duration = Duration::from_secs(20);

async fn client(gk: &str, wallet: &authchain::Wallet) -> (ChatClient, Inbox) {
    let identity =
        authchain::Identity::new(wallet, chrono::Utc::now() + chrono::Duration::hours(1));
    ChatClient::connect(
        GatekeeperTokens::new(gk, identity),
        &wallet.address().to_lower_hex(),
        SocialView::default(),
        Filter::unlimited(), // floods from one sender below: no rate limit
    )
    .await
    .expect("joins")
}

async fn expect_message(inbox: &mut Inbox, from: &str, text: &str) {
    match inbox.next_timeout(LIMIT).await {
        Some(Received::Message { from: f, message }) => {
            assert_eq!(f, from);
            assert_eq!(message.text, text);
        }
        other => panic!("expected {text:?} from {from}, got {other:?}"),
    }
}

async fn expect_dropped(inbox: &mut Inbox, reason: Rejected) {
    match inbox.next_timeout(LIMIT).await {
        Some(Received::Dropped { reason: r, .. }) => assert_eq!(r, reason),
        other => panic!("expected a drop ({reason}), got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_messages_between_sdk_clients_and_the_official_sdk() {
    let lk = LiveKitServer::start().await.expect("livekit-server");
    let config = testkit::gatekeeper::config_for(&lk);
    let room = config.room.clone();
    let server = TestGatekeeper::start(gatekeeper::Builder::new(config))
        .await
        .expect("gatekeeper");
    let gk = server.base_url();

    let (aw, bw, cw) = (
        authchain::Wallet::random(),
        authchain::Wallet::random(),
        authchain::Wallet::random(),
    );
    let (a, _a_in) = client(&gk, &aw).await;
    let (b, mut b_in) = client(&gk, &bw).await;
    let (c, mut c_in) = client(&gk, &cw).await;
    let (av, bv) = (a.address().to_owned(), b.address().to_owned());

    // A sees B in the room with privacy "all" (the gatekeeper's metadata).
    let deadline = tokio::time::Instant::now() + LIMIT;
    while a.recipient_state(&bv).await != RecipientState::Connected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "B never became reachable"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let nobody = authchain::Wallet::random().address().to_lower_hex();
    assert_eq!(
        a.recipient_state(&nobody).await,
        RecipientState::Disconnected
    );

    // Only the recipient gets a message.
    a.send(&bv, "hello B").await.expect("send");
    expect_message(&mut b_in, &av, "hello B").await;
    assert!(
        c_in.next_timeout(Duration::from_millis(500))
            .await
            .is_none(),
        "C gets nothing"
    );

    // B accepts only friends: A's message is dropped until A is a friend.
    b.set_social_view(SocialView {
        privacy: Privacy::OnlyFriends,
        ..SocialView::default()
    });
    a.send(&bv, "still there?").await.expect("send");
    expect_dropped(&mut b_in, Rejected::NotAFriend).await;
    b.set_social_view(SocialView {
        privacy: Privacy::OnlyFriends,
        friends: HashSet::from([av.clone()]),
        ..SocialView::default()
    });
    a.send(&bv, "friends now").await.expect("send");
    expect_message(&mut b_in, &av, "friends now").await;

    // B blocks A.
    b.set_social_view(SocialView {
        blocked: HashSet::from([av.clone()]),
        ..SocialView::default()
    });
    a.send(&bv, "blocked?").await.expect("send");
    expect_dropped(&mut b_in, Rejected::BlockedByMe).await;
    a.set_social_view(SocialView {
        blocked: HashSet::from([c.address().to_owned()]),
        ..SocialView::default()
    });
    assert_eq!(
        a.recipient_state(c.address()).await,
        RecipientState::BlockedByOwnUser
    );
    b.set_social_view(SocialView::default());

    // The official SDK: D sends B a packet built as the reference client does; B answers.
    let dv = authchain::Wallet::random().address().to_lower_hex();
    let token = lk.token(&room, &dv, r#"{"private_messages_privacy":"all"}"#);
    let mut d = NodeProcess::spawn("lk-participant.mjs", &[&lk.ws_url(), &token]).expect("node");
    d.wait_for("\"connected\"", LIMIT)
        .await
        .expect("D connected");
    let packet =
        chat_core::packet::encode("hi from the official SDK", std::time::SystemTime::now())
            .expect("encode");
    let hex: String = packet.iter().map(|b| format!("{b:02x}")).collect();
    d.send_line(
        &serde_json::json!({"cmd": "send", "id": 1, "payloadHex": hex, "destinations": [bv], "topic": bv, "reliable": true})
            .to_string(),
    )
    .await
    .expect("command");
    expect_message(&mut b_in, &dv, "hi from the official SDK").await;

    b.send(&dv, "hi back").await.expect("send");
    let line = d.wait_for("\"data\"", LIMIT).await.expect("D receives");
    let v: serde_json::Value = serde_json::from_str(&line).expect("json");
    assert_eq!(v["from"], serde_json::Value::from(bv.clone()));
    assert_eq!(v["topic"], serde_json::Value::from(dv.clone()));
    let bytes: Vec<u8> = (0..v["payloadHex"].as_str().expect("hex").len() / 2)
        .map(|i| {
            u8::from_str_radix(
                &v["payloadHex"].as_str().expect("hex")[2 * i..2 * i + 2],
                16,
            )
            .expect("hex")
        })
        .collect();
    assert_eq!(
        chat_core::packet::decode(&bytes)
            .expect("a chat packet")
            .text,
        "hi back"
    );

    drop(d);
    for client in [a, b, c] {
        client.leave().await;
    }
}

/// Issue #8 item 10: an inbox nobody reads (a paused terminal) holds at most 4,096 events; the
/// rest are dropped, counted, and reported as `Received::Lagged` when reading resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_inbox_drops_new_messages_and_says_how_many() {
    let lk = LiveKitServer::start().await.expect("livekit-server");
    let server = TestGatekeeper::for_livekit(&lk).await.expect("gatekeeper");
    let gk = server.base_url();
    let (aw, bw) = (authchain::Wallet::random(), authchain::Wallet::random());
    let (a, _a_in) = client(&gk, &aw).await;
    let (b, mut b_in) = client(&gk, &bw).await;
    let (av, bv) = (a.address().to_owned(), b.address().to_owned());
    let deadline = tokio::time::Instant::now() + LIMIT;
    while a.recipient_state(&bv).await != RecipientState::Connected {
        assert!(tokio::time::Instant::now() < deadline, "B never reachable");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // B reads nothing while A sends more than the queue holds.
    const N: u32 = 5_000;
    for i in 0..N {
        a.send(&bv, &format!("{i}")).await.expect("send");
    }
    let deadline = tokio::time::Instant::now() + LIMIT;
    while b.events_dropped() < u64::from(N) - 4_096 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} dropped",
            b.events_dropped()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // What B reads: the oldest messages in order, then a marker counting exactly the messages
    // that were dropped at that point; messages still arriving once B reads again come after
    // the marker and continue from where the gap ended.
    let mut next = 0u64;
    let mut lagged = 0;
    let mut kept = 0u64;
    while let Some(r) = b_in.next_timeout(Duration::from_secs(2)).await {
        match r {
            Received::Message { from, message } => {
                assert_eq!(from, av);
                assert_eq!(message.text, next.to_string(), "in order, the gaps as told");
                next += 1;
                kept += 1;
                if lagged == 0 {
                    assert!(kept <= 4_096, "the queue holds at most 4,096 events");
                }
            }
            Received::Lagged { dropped } => {
                assert!(kept > 0, "the oldest messages are kept");
                lagged += dropped;
                next += dropped;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(lagged > 0, "an overflow was reported");
    assert_eq!(lagged, b.events_dropped(), "told every drop");
    assert_eq!(next, u64::from(N), "none unaccounted");
    // Reading again works.
    a.send(&bv, "after").await.expect("send");
    expect_message(&mut b_in, &av, "after").await;
}
