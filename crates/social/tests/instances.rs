//! Two social service instances on one PostgreSQL database and one Redis: a friendship request
//! made through instance A reaches a subscriber connected to instance B.

mod common;

use std::sync::Arc;

use common::{Client, item};
use social::{App, SocialConfig};
use social_proto::v2;
use testkit::{FreshPostgres, RedisServer};

async fn instance(config: &SocialConfig) -> String {
    let app: Arc<App> = App::build(config).await.expect("instance");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("ws://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(social::serve(listener, app, std::future::pending()));
    url
}

/// A fresh database on the test server, dropped when this goes out of scope (also when a
/// test panics, so failed runs leave nothing behind).
fn fresh_postgres() -> FreshPostgres {
    FreshPostgres::create("m").expect("a fresh PostgreSQL database")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_cross_instances_through_redis() {
    let redis = RedisServer::start().await.expect("redis-server");
    let db = fresh_postgres();
    let mut config = SocialConfig::new(&db.url);
    config.redis_url = Some(redis.url());
    let a = instance(&config).await;
    let b = instance(&config).await;

    let xw = authchain::Wallet::random();
    let yw = authchain::Wallet::random();
    let mut x_on_b = Client::connect(&b, &xw).await;
    let mut stream = x_on_b
        .subscribe::<v2::FriendshipUpdate>("SubscribeToFriendshipUpdates")
        .await;
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

    let update = tokio::time::timeout(std::time::Duration::from_secs(10), item(&mut stream))
        .await
        .expect("update in time");
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
}

fn request_to(address: &str) -> v2::UpsertFriendshipPayload {
    v2::UpsertFriendshipPayload {
        action: Some(v2::upsert_friendship_payload::Action::Request(
            v2::upsert_friendship_payload::RequestPayload {
                user: Some(v2::User {
                    address: address.to_owned(),
                }),
                message: None,
            },
        )),
    }
}

/// `requester` asks `accepter`, who accepts; both answers must be "accepted".
async fn befriend(requester: &mut Client, accepter: &mut Client) {
    let resp: v2::UpsertFriendshipResponse = requester
        .call("UpsertFriendship", &request_to(&accepter.address))
        .await
        .expect("call");
    assert!(
        matches!(
            resp.response,
            Some(v2::upsert_friendship_response::Response::Accepted(_))
        ),
        "{resp:?}"
    );
    let accept = v2::UpsertFriendshipPayload {
        action: Some(v2::upsert_friendship_payload::Action::Accept(
            v2::upsert_friendship_payload::AcceptPayload {
                user: Some(v2::User {
                    address: requester.address.clone(),
                }),
            },
        )),
    };
    let resp: v2::UpsertFriendshipResponse = accepter
        .call("UpsertFriendship", &accept)
        .await
        .expect("call");
    assert!(
        matches!(
            resp.response,
            Some(v2::upsert_friendship_response::Response::Accepted(_))
        ),
        "{resp:?}"
    );
}

/// (privacy, is_friend) of `other` as `c` sees it.
async fn pms(c: &mut Client, other: &str) -> (i32, bool) {
    let resp: v2::GetPrivateMessagesSettingsResponse = c
        .call(
            "GetPrivateMessagesSettings",
            &v2::GetPrivateMessagesSettingsPayload {
                user: vec![v2::User {
                    address: other.to_owned(),
                }],
            },
        )
        .await
        .expect("call");
    match resp.response {
        Some(v2::get_private_messages_settings_response::Response::Ok(ok)) => {
            let s = &ok.settings[0];
            (s.private_messages_privacy, s.is_friend)
        }
        other => panic!("{other:?}"),
    }
}

async fn friend_count(c: &mut Client) -> usize {
    let resp: v2::PaginatedFriendsProfilesResponse = c
        .call("GetFriends", &v2::GetFriendsPayload::default())
        .await
        .expect("call");
    resp.friends.len()
}

/// Instance B caches what it read; changes made through instance A reach B's answers (the
/// invalidation travels over Redis), for the RPC reads and the gatekeeper's HTTP lookup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_reads_follow_changes_made_on_another_instance() {
    use std::time::{Duration, Instant};
    let redis = RedisServer::start().await.expect("redis-server");
    let db = fresh_postgres();
    let mut config = SocialConfig::new(&db.url);
    config.redis_url = Some(redis.url());
    let a = instance(&config).await;
    let b = instance(&config).await;
    let b_http = b.replace("ws://", "http://");

    let mut x_on_a = Client::connect(&a, &authchain::Wallet::random()).await;
    let mut y_on_b = Client::connect(&b, &authchain::Wallet::random()).await;
    let x = x_on_a.address.clone();
    let y = y_on_b.address.clone();
    let all = v2::PrivateMessagePrivacySetting::All as i32;
    let only_friends = v2::PrivateMessagePrivacySetting::OnlyFriends as i32;
    let http_privacy = |address: String| {
        let url = format!("{b_http}v1/users/{address}/privacy-settings");
        async move {
            let v: serde_json::Value = reqwest::get(url)
                .await
                .expect("GET")
                .json()
                .await
                .expect("JSON");
            v["private_messages_privacy"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    };

    // B reads (and caches) X's settings and Y's friends, twice.
    for _ in 0..2 {
        assert_eq!(pms(&mut y_on_b, &x).await, (all, false));
        assert_eq!(friend_count(&mut y_on_b).await, 0);
        assert_eq!(http_privacy(x.clone()).await, "all");
    }

    // Changes through A: X becomes only_friends; Y requests (on B), X accepts (on A).
    let resp: v2::UpsertSocialSettingsResponse = x_on_a
        .call(
            "UpsertSocialSettings",
            &v2::UpsertSocialSettingsPayload {
                private_messages_privacy: Some(only_friends),
                ..Default::default()
            },
        )
        .await
        .expect("call");
    assert!(
        matches!(
            resp.response,
            Some(v2::upsert_social_settings_response::Response::Ok(_))
        ),
        "{resp:?}"
    );
    befriend(&mut y_on_b, &mut x_on_a).await;

    // B's answers change once the invalidation arrives (Redis delivery is asynchronous).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = (
            pms(&mut y_on_b, &x).await,
            friend_count(&mut y_on_b).await,
            http_privacy(x.clone()).await,
        );
        if seen == ((only_friends, true), 1, "only_friends".to_owned()) {
            break;
        }
        assert!(Instant::now() < deadline, "B still answers {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // And back: X deletes the friendship on A.
    let delete = v2::UpsertFriendshipPayload {
        action: Some(v2::upsert_friendship_payload::Action::Delete(
            v2::upsert_friendship_payload::DeletePayload {
                user: Some(v2::User { address: y.clone() }),
            },
        )),
    };
    let _: v2::UpsertFriendshipResponse = x_on_a
        .call("UpsertFriendship", &delete)
        .await
        .expect("call");
    let deadline = Instant::now() + Duration::from_secs(10);
    while pms(&mut y_on_b, &x).await != (only_friends, false)
        || friend_count(&mut y_on_b).await != 0
    {
        assert!(Instant::now() < deadline, "B still sees the friendship");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop((x_on_a, y_on_b));
}

/// (address, status) of a connectivity update.
fn connectivity(u: &v2::FriendConnectivityUpdate) -> (String, i32) {
    (
        u.friend
            .as_ref()
            .map(|f| f.address.clone())
            .unwrap_or_default(),
        u.status,
    )
}

/// Online means "holds a connection to any instance": X connected to A and B stays online to
/// Y when the B connection closes, goes offline when the last one closes, and comes back online
/// through B; a new subscription starts with the friends online now, wherever they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_counts_connections_on_every_instance() {
    use std::time::Duration;
    let redis = RedisServer::start().await.expect("redis-server");
    let db = fresh_postgres();
    let mut config = SocialConfig::new(&db.url);
    config.redis_url = Some(redis.url());
    let a = instance(&config).await;
    let b = instance(&config).await;
    let online = v2::ConnectivityStatus::Online as i32;
    let offline = v2::ConnectivityStatus::Offline as i32;

    let (xw, yw) = (authchain::Wallet::random(), authchain::Wallet::random());
    let mut x_a = Client::connect(&a, &xw).await;
    let mut y_a = Client::connect(&a, &yw).await;
    let x = x_a.address.clone();
    befriend(&mut x_a, &mut y_a).await;
    let mut stream = y_a
        .subscribe::<v2::FriendConnectivityUpdate>("SubscribeToFriendConnectivityUpdates")
        .await;
    // The subscription starts with the friends online now (taking it acknowledges it).
    let snapshot = tokio::time::timeout(Duration::from_secs(10), item(&mut stream))
        .await
        .expect("snapshot in time");
    assert_eq!(connectivity(&snapshot), (x.clone(), online));

    // A second connection on B, then closing it: X never stopped being online.
    let x_b = Client::connect(&b, &xw).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(x_b);
    let quiet = tokio::time::timeout(Duration::from_millis(1500), item(&mut stream)).await;
    assert!(
        quiet.is_err(),
        "no connectivity change expected, got {:?}",
        quiet.map(|i| connectivity(&i))
    );

    // The last connection closes: offline.
    drop(x_a);
    let update = tokio::time::timeout(Duration::from_secs(10), item(&mut stream))
        .await
        .expect("offline in time");
    assert_eq!(connectivity(&update), (x.clone(), offline));

    // Back through instance B: online, delivered to Y on A over Redis.
    let _x_b = Client::connect(&b, &xw).await;
    let update = tokio::time::timeout(Duration::from_secs(10), item(&mut stream))
        .await
        .expect("online in time");
    assert_eq!(connectivity(&update), (x.clone(), online));

    // A new subscription starts with who is online now: X, connected only to B.
    let mut y_a2 = Client::connect(&a, &yw).await;
    let mut stream2 = y_a2
        .subscribe::<v2::FriendConnectivityUpdate>("SubscribeToFriendConnectivityUpdates")
        .await;
    let snapshot = tokio::time::timeout(Duration::from_secs(10), item(&mut stream2))
        .await
        .expect("snapshot in time");
    assert_eq!(connectivity(&snapshot), (x, online));

    drop((stream, stream2, y_a, y_a2));
}

/// An instance on its own runtime and thread; sending on the returned channel kills it as a
/// crash would (its tasks stop where they are: no connection is closed cleanly, no hook runs,
/// its liveness in Redis is no longer refreshed).
fn killable_instance(config: SocialConfig) -> (String, tokio::sync::oneshot::Sender<()>) {
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    let (kill_tx, kill_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let url = instance(&config).await;
            let _ = url_tx.send(url);
            let _ = kill_rx.await;
        });
        rt.shutdown_background();
    });
    let url = url_rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("instance started");
    (url, kill_tx)
}

/// An instance dies with a user connected only to it: once its liveness expires, another
/// instance announces that user offline to their friends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_of_a_dead_instance_go_offline() {
    use std::time::Duration;
    let redis = RedisServer::start().await.expect("redis-server");
    let db = fresh_postgres();
    let mut config = SocialConfig::new(&db.url);
    config.redis_url = Some(redis.url());
    config.presence_ttl_secs = 3;
    let a = instance(&config).await;
    let (b, kill_b) = killable_instance(config.clone());

    let mut x_b = Client::connect(&b, &authchain::Wallet::random()).await;
    let mut y_a = Client::connect(&a, &authchain::Wallet::random()).await;
    let x = x_b.address.clone();
    befriend(&mut x_b, &mut y_a).await;
    let mut stream = y_a
        .subscribe::<v2::FriendConnectivityUpdate>("SubscribeToFriendConnectivityUpdates")
        .await;
    let snapshot = tokio::time::timeout(Duration::from_secs(10), item(&mut stream))
        .await
        .expect("snapshot in time");
    let online = v2::ConnectivityStatus::Online as i32;
    let offline = v2::ConnectivityStatus::Offline as i32;
    assert_eq!(connectivity(&snapshot), (x.clone(), online));

    let _ = kill_b.send(());
    let update = tokio::time::timeout(Duration::from_secs(20), item(&mut stream))
        .await
        .expect("offline once B's liveness expired");
    assert_eq!(connectivity(&update), (x, offline));

    drop((stream, x_b, y_a));
}
