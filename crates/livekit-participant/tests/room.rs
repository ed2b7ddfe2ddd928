//! Rust participants against a real livekit-server: addressed and broadcast delivery, presence,
//! metadata changes through RoomService, limits.

mod common;

use std::time::Duration;

use common::*;
use livekit_api::services::room::{RoomClient, UpdateParticipantOptions};
use livekit_participant::{ConnectionState, Event, Reliability, SendError};
use testkit::LiveKitServer;

fn payload(i: u32) -> Vec<u8> {
    let mut v = format!("msg-{i:06}-").into_bytes();
    v.resize(200, b'x');
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_addressed_messages_arrive_once_in_order_and_only_there() {
    let lk = LiveKitServer::start().await.expect("livekit");
    let (alice, _ea) = join(&lk, "alice").await;
    let (bob, mut eb) = join(&lk, "bob").await;
    let (carol, mut ec) = join(&lk, "carol").await;
    for (p, others) in [
        (&alice, ["bob", "carol"]),
        (&bob, ["alice", "carol"]),
        (&carol, ["alice", "bob"]),
    ] {
        for o in others {
            wait_present(p, o).await;
        }
    }

    const N: u32 = 1000;
    let to_bob = vec!["bob".to_owned()];
    for i in 0..N {
        alice
            .send(&payload(i), &to_bob, Some("bob"), Reliability::Reliable)
            .await
            .expect("send");
    }
    // A broadcast after the addressed burst: everyone but the sender gets it.
    alice
        .send(b"to-everyone", &[], Some("all"), Reliability::Reliable)
        .await
        .expect("broadcast");

    let mut next = 0u32;
    loop {
        match eb.recv_timeout(LIMIT).await {
            Some(Event::Data(p)) if p.payload == b"to-everyone" => break,
            Some(Event::Data(p)) => {
                assert_eq!(p.sender, "alice");
                assert_eq!(p.topic.as_deref(), Some("bob"));
                assert_eq!(
                    p.payload,
                    payload(next),
                    "message {next} out of order or corrupted"
                );
                next += 1;
            }
            Some(_) => {}
            None => panic!("bob got {next} of {N} messages and no broadcast"),
        }
    }
    assert_eq!(
        next, N,
        "bob got every addressed message exactly once before the broadcast"
    );
    // Carol got only the broadcast.
    let mut carol_data = Vec::new();
    while let Some(e) = ec.recv_timeout(Duration::from_secs(2)).await {
        if let Event::Data(p) = e {
            carol_data.push(p.payload);
        }
    }
    assert_eq!(
        carol_data,
        vec![b"to-everyone".to_vec()],
        "carol receives none of bob's messages"
    );
    // And nothing arrives twice afterwards at bob.
    while let Some(e) = eb.recv_timeout(Duration::from_secs(1)).await {
        assert!(
            !matches!(e, Event::Data(_)),
            "unexpected extra data at bob: {e:?}"
        );
    }
    assert_eq!(bob.stats().duplicates, 0);
    assert_eq!(carol.stats().bad_packets, 0);
    // The signalling counter counts what arrived (at least the JoinResponse).
    assert!(carol.stats().signal_bytes_received > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_and_metadata_changes_become_roster_events() {
    let lk = LiveKitServer::start().await.expect("livekit");
    let (alice, mut ea) = join(&lk, "alice").await;
    let (bob, _eb) = join(&lk, "bob").await;
    match wait_event(
        &mut ea,
        "bob joined",
        |e| matches!(e, Event::ParticipantJoined(p) if p.identity == "bob"),
    )
    .await
    {
        Event::ParticipantJoined(p) => assert_eq!(p.identity, "bob"),
        _ => unreachable!(),
    }

    let rooms = RoomClient::with_api_key(&lk.http_url(), &lk.api_key, &lk.api_secret);
    let metadata = r#"{"private_messages_privacy":"only_friends"}"#;
    rooms
        .update_participant(
            ROOM,
            "bob",
            UpdateParticipantOptions {
                metadata: metadata.into(),
                ..Default::default()
            },
        )
        .await
        .expect("UpdateParticipant");
    match wait_event(&mut ea, "metadata change", |e| {
        matches!(e, Event::MetadataChanged { .. })
    })
    .await
    {
        Event::MetadataChanged {
            participant,
            previous,
        } => {
            assert_eq!(participant.identity, "bob");
            assert_eq!(participant.metadata, metadata);
            assert_eq!(previous, "");
        }
        _ => unreachable!(),
    }
    assert_eq!(
        alice.participant("bob").await.map(|p| p.metadata),
        Some(metadata.to_owned())
    );

    bob.leave().await;
    wait_event(
        &mut ea,
        "bob left",
        |e| matches!(e, Event::ParticipantLeft(p) if p.identity == "bob"),
    )
    .await;
    assert!(alice.participant("bob").await.is_none());
    assert_eq!(alice.state(), ConnectionState::Connected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_enforced_before_sending() {
    let lk = LiveKitServer::start().await.expect("livekit");
    let (alice, _ea) = join(&lk, "alice").await;
    let err = alice
        .send(&vec![0; 15 * 1024 + 1], &[], None, Reliability::Reliable)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SendError::PayloadTooLarge { max: 15360, .. }),
        "{err}"
    );
    let err = alice
        .send(&vec![0; 1301], &[], None, Reliability::Lossy)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SendError::PayloadTooLarge { max: 1300, .. }),
        "{err}"
    );
    alice
        .send(&vec![0; 15 * 1024], &[], None, Reliability::Reliable)
        .await
        .expect("15 KiB is allowed");
    alice
        .send(&vec![0; 1300], &[], None, Reliability::Lossy)
        .await
        .expect("1300 B lossy is allowed");
    assert_eq!(alice.state(), ConnectionState::Connected, "still connected");
}
