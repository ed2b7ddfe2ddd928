//! The participant on a LiveKit cluster (issue #11): three livekit-server nodes sharing one
//! Redis. Each player signals through a different node; the room lives on one of them, so at
//! least two players' signalling is relayed over Redis to the room's node while their WebRTC
//! transport goes straight to it. They must see each other and exchange addressed packets, with
//! the right sender, exactly as in one node's room.

mod common;

use std::time::Duration;

use common::{ROOM, wait_event, wait_present};
use livekit_participant::{
    Credentials, Event, Events, Options, Participant, Reliability, StaticToken,
};
use testkit::{LiveKitCluster, LiveKitServer};

async fn join_via(
    cluster: &LiveKitCluster,
    node: &LiveKitServer,
    identity: &str,
) -> (Participant, Events) {
    let credentials = Credentials {
        url: node.ws_url(),
        token: cluster.token(ROOM, identity, ""),
    };
    Participant::connect(StaticToken(credentials), Options::default())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{identity} cannot join via {}: {e}\n{}",
                node.ws_url(),
                node.log()
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_signalling_through_different_nodes_share_the_room_and_exchange_packets() {
    let cluster = LiveKitCluster::start(3).await.expect("cluster");
    let names = ["alice", "bob", "carol"];
    let mut players = Vec::new();
    for (name, node) in names.iter().zip(&cluster.nodes) {
        players.push(join_via(&cluster, node, name).await);
    }
    for (p, _) in &players {
        for other in names {
            if other != p.identity().as_str() {
                wait_present(p, other).await;
            }
        }
    }

    // Each player writes to the next one; only the addressee gets it, from the right sender.
    for (i, (p, _)) in players.iter().enumerate() {
        let to = names[(i + 1) % names.len()];
        let text = format!("{} to {to}", names[i]);
        p.send(
            text.as_bytes(),
            &[to.to_owned()],
            Some(to),
            Reliability::Reliable,
        )
        .await
        .expect("send");
    }
    for (i, (_, events)) in players.iter_mut().enumerate() {
        let from = names[(i + names.len() - 1) % names.len()];
        let Event::Data(packet) =
            wait_event(events, "a packet", |e| matches!(e, Event::Data(_))).await
        else {
            unreachable!("wait_event returns what matched")
        };
        let (sender, topic, payload) = (packet.sender, packet.topic, packet.payload);
        assert_eq!(sender, from);
        assert_eq!(topic.as_deref(), Some(names[i]));
        assert_eq!(payload, format!("{from} to {}", names[i]).into_bytes());
        // Nothing else arrives: the packet addressed to the others did not come here.
        while let Some(e) = events.recv_timeout(Duration::from_millis(500)).await {
            assert!(
                !matches!(e, Event::Data(_)),
                "{}: unexpected {e:?}",
                names[i]
            );
        }
    }
    for (p, _) in &players {
        assert_eq!(p.stats().duplicates, 0);
    }
}
