//! Interop with the official LiveKit SDK (`@livekit/rtc-node`), both directions, with
//! destination identities and topics.

mod common;

use common::*;
use livekit_participant::{Event, Reliability};
use serde_json::{Value, json};
use testkit::LiveKitServer;
use testkit::node::NodeProcess;

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad line {line}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_and_the_official_sdk_exchange_addressed_messages() {
    let lk = LiveKitServer::start().await.expect("livekit");
    let (rust, mut events) = join(&lk, "0xrust").await;
    // A second Rust participant that must see none of the addressed traffic.
    let (bystander, mut bystander_events) = join(&lk, "0xbystander").await;
    let mut sdk = NodeProcess::spawn(
        "lk-participant.mjs",
        &[&lk.ws_url(), &token(&lk, "0xsdk", "")],
    )
    .expect("node");
    let connected = parse(
        &sdk.wait_for("\"connected\"", LIMIT)
            .await
            .expect("sdk connected"),
    );
    assert_eq!(connected["identity"], json!("0xsdk"));
    wait_present(&rust, "0xsdk").await;

    // Rust → SDK, addressed, with a topic; several messages, reliable and lossy.
    for i in 0..20 {
        let text = format!("from rust {i}");
        rust.send(
            text.as_bytes(),
            &["0xsdk".to_owned()],
            Some("0xsdk"),
            Reliability::Reliable,
        )
        .await
        .expect("send");
    }
    for i in 0..20 {
        let line = parse(&sdk.wait_for("\"data\"", LIMIT).await.expect("sdk data"));
        assert_eq!(line["from"], json!("0xrust"));
        assert_eq!(line["topic"], json!("0xsdk"));
        assert_eq!(line["payload"], json!(format!("from rust {i}")));
    }
    rust.send(
        b"lossy hello",
        &["0xsdk".to_owned()],
        Some("0xsdk"),
        Reliability::Lossy,
    )
    .await
    .expect("lossy");
    let line = parse(
        &sdk.wait_for("\"data\"", LIMIT)
            .await
            .expect("sdk lossy data"),
    );
    assert_eq!(line["payload"], json!("lossy hello"));

    // SDK → Rust, addressed, with a topic.
    for i in 0..20 {
        let cmd = json!({"cmd": "send", "id": i, "payload": format!("from sdk {i}"), "destinations": ["0xrust"], "topic": "0xrust", "reliable": true});
        sdk.send_line(&cmd.to_string()).await.expect("stdin");
    }
    for i in 0..20 {
        match wait_event(&mut events, "data from the SDK", |e| {
            matches!(e, Event::Data(_))
        })
        .await
        {
            Event::Data(p) => {
                assert_eq!(p.sender, "0xsdk");
                assert_eq!(p.topic.as_deref(), Some("0xrust"));
                assert_eq!(p.payload, format!("from sdk {i}").into_bytes());
                assert_eq!(p.reliability, Reliability::Reliable);
            }
            _ => unreachable!(),
        }
    }

    // A broadcast from the SDK reaches both Rust participants.
    sdk.send_line(&json!({"cmd": "send", "payload": "hello all", "topic": "all"}).to_string())
        .await
        .expect("stdin");
    for ev in [&mut events, &mut bystander_events] {
        match wait_event(ev, "broadcast", |e| matches!(e, Event::Data(_))).await {
            Event::Data(p) => assert_eq!(p.payload, b"hello all"),
            _ => unreachable!(),
        }
    }
    // The bystander saw nothing else.
    while let Some(e) = bystander_events
        .recv_timeout(std::time::Duration::from_secs(1))
        .await
    {
        assert!(!matches!(e, Event::Data(_)), "bystander got {e:?}");
    }
    assert_eq!(bystander.stats().bad_packets, 0);
    sdk.kill().await;
}

/// LiveKit announces participants that publish no tracks to the rest of the room in batches
/// (every 3 s); a packet that arrives before its sender was announced reaches the official SDK
/// with no sender. `send` holds packets until the server has announced us, so even a packet sent
/// the instant `connect` returns is attributed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packet_sent_right_after_joining_reaches_the_official_sdk_with_its_sender() {
    let lk = LiveKitServer::start().await.expect("livekit");
    let mut sdk = NodeProcess::spawn(
        "lk-participant.mjs",
        &[&lk.ws_url(), &token(&lk, "0xreceiver", "")],
    )
    .expect("node");
    sdk.wait_for("\"connected\"", LIMIT)
        .await
        .expect("sdk connected");

    const SENDERS: usize = 6;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..SENDERS {
        let creds = credentials(&lk, &format!("0xsender{i}"));
        tasks.spawn(async move {
            let (p, _events) = livekit_participant::Participant::connect(
                livekit_participant::StaticToken(creds),
                livekit_participant::Options::default(),
            )
            .await
            .expect("join");
            p.send(
                format!("hello {i}").as_bytes(),
                &["0xreceiver".to_owned()],
                Some("0xreceiver"),
                Reliability::Reliable,
            )
            .await
            .expect("send");
            // Stay until the receiver has had time to read it.
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            p.leave().await;
        });
    }
    let mut seen = Vec::new();
    for _ in 0..SENDERS {
        let line = parse(&sdk.wait_for("\"data\"", LIMIT).await.expect("sdk data"));
        seen.push((line["payload"].clone(), line["from"].clone()));
    }
    while tasks.join_next().await.is_some() {}
    for (payload, from) in &seen {
        let i = payload
            .as_str()
            .and_then(|p| p.strip_prefix("hello "))
            .expect("payload");
        assert_eq!(
            from,
            &json!(format!("0xsender{i}")),
            "a packet without its sender: {seen:?}"
        );
    }
}
