//! Two social service instances on one PostgreSQL database and one Redis: a friendship request
//! made through instance A reaches a subscriber connected to instance B.

mod common;

use std::sync::Arc;

use common::Client;
use livekit_testkit::RedisServer;
use prost::Message;
use social::{App, SocialConfig};
use social_proto::v2;

async fn instance(config: &SocialConfig) -> String {
    let app: Arc<App> = App::build(config).await.expect("instance");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("ws://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(social::serve(listener, app, std::future::pending()));
    url
}

fn fresh_postgres() -> (String, String, String) {
    let admin = std::env::var("PCHAT_TEST_DATABASE_URL")
        .expect("PCHAT_TEST_DATABASE_URL is not set: run scripts/setup and source .tools/env");
    let name = format!("pchat_m_{:016x}", rand::random::<u64>());
    let ok = std::process::Command::new("psql")
        .arg(&admin)
        .arg("-qc")
        .arg(format!("CREATE DATABASE {name}"))
        .status()
        .expect("psql");
    assert!(ok.success());
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b.to_owned())
        .expect("url");
    (format!("{base}/{name}"), admin, name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_cross_instances_through_redis() {
    let redis = RedisServer::start().await.expect("redis-server");
    let (db, admin, name) = fresh_postgres();
    let mut config = SocialConfig::new(&db);
    config.redis_url = Some(redis.url());
    let a = instance(&config).await;
    let b = instance(&config).await;

    let xw = authchain::Wallet::random();
    let yw = authchain::Wallet::random();
    let mut x_on_b = Client::connect(&b, &xw).await;
    let stream = x_on_b.subscribe("SubscribeToFriendshipUpdates").await;
    let mut y_on_a = Client::connect(&a, &yw).await;

    let request = v2::UpsertFriendshipPayload {
        action: Some(v2::upsert_friendship_payload::Action::Request(
            v2::upsert_friendship_payload::RequestPayload {
                user: Some(v2::User {
                    address: x_on_b.address.clone(),
                }),
                message: Some("across instances".into()),
            },
        )),
    };
    let resp: v2::UpsertFriendshipResponse = y_on_a
        .call("UpsertFriendship", &request)
        .await
        .expect("call");
    assert!(
        matches!(
            resp.response,
            Some(v2::upsert_friendship_response::Response::Accepted(_))
        ),
        "{resp:?}"
    );

    let item = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        x_on_b.next_item(stream, 0),
    )
    .await
    .expect("update in time");
    let update = v2::FriendshipUpdate::decode(item.as_slice()).expect("decodes");
    match update.update {
        Some(v2::friendship_update::Update::Request(r)) => {
            assert_eq!(r.friend.map(|f| f.address), Some(y_on_a.address.clone()));
            assert_eq!(r.message.as_deref(), Some("across instances"));
        }
        other => panic!("{other:?}"),
    }

    // And the store is shared: instance B sees the pending request.
    let pending: v2::PaginatedFriendshipRequestsResponse = x_on_b
        .call(
            "GetPendingFriendshipRequests",
            &v2::GetFriendshipRequestsPayload::default(),
        )
        .await
        .expect("call");
    match pending.response {
        Some(v2::paginated_friendship_requests_response::Response::Requests(r)) => {
            assert_eq!(r.requests.len(), 1)
        }
        other => panic!("{other:?}"),
    }
    drop((x_on_b, y_on_a));
    let _ = std::process::Command::new("psql")
        .arg(&admin)
        .arg("-qc")
        .arg(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .status();
}
