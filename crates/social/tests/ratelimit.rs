//! The friendship/block rate limits end to end: as the official client (`@dcl/rpc` +
//! `@dcl/protocol`) sees them, shared by two instances through one Redis (and one PostgreSQL),
//! and failing open while Redis is down.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Client;
use social::{App, SocialConfig};
use social_proto::v2;
use testkit::{FreshPostgres, RedisServer, node};

async fn instance(config: &SocialConfig) -> String {
    let app: Arc<App> = App::build(config).await.expect("instance");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("ws://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(social::serve(listener, app, std::future::pending()));
    url
}

fn limited(config: &mut SocialConfig, per_actor: u64, per_pair: u64) {
    config.friendship_rate_limit_window_secs = 600;
    config.friendship_rate_limit_per_actor = per_actor;
    config.friendship_rate_limit_per_pair = per_pair;
}

fn action(
    kind: fn(v2::User) -> v2::upsert_friendship_payload::Action,
    to: &str,
) -> v2::UpsertFriendshipPayload {
    v2::UpsertFriendshipPayload {
        action: Some(kind(v2::User {
            address: to.to_owned(),
        })),
    }
}

fn request(u: v2::User) -> v2::upsert_friendship_payload::Action {
    v2::upsert_friendship_payload::Action::Request(v2::upsert_friendship_payload::RequestPayload {
        user: Some(u),
        message: None,
    })
}

fn cancel(u: v2::User) -> v2::upsert_friendship_payload::Action {
    v2::upsert_friendship_payload::Action::Cancel(v2::upsert_friendship_payload::CancelPayload {
        user: Some(u),
    })
}

fn reject(u: v2::User) -> v2::upsert_friendship_payload::Action {
    v2::upsert_friendship_payload::Action::Reject(v2::upsert_friendship_payload::RejectPayload {
        user: Some(u),
    })
}

fn accept(u: v2::User) -> v2::upsert_friendship_payload::Action {
    v2::upsert_friendship_payload::Action::Accept(v2::upsert_friendship_payload::AcceptPayload {
        user: Some(u),
    })
}

/// "accepted", "limited" (invalidRequest saying so) or the response for the failure message.
async fn upsert(
    c: &mut Client,
    kind: fn(v2::User) -> v2::upsert_friendship_payload::Action,
    to: &str,
) -> String {
    use v2::upsert_friendship_response::Response;
    let resp: v2::UpsertFriendshipResponse = c
        .call("UpsertFriendship", &action(kind, to))
        .await
        .expect("call");
    match resp.response {
        Some(Response::Accepted(_)) => "accepted".into(),
        Some(Response::InvalidRequest(e))
            if e.message.as_deref() == Some(social::ratelimit::LIMITED_MESSAGE) =>
        {
            "limited".into()
        }
        other => format!("{other:?}"),
    }
}

async fn block(c: &mut Client, who: &str) -> String {
    use v2::block_user_response::Response;
    let resp: v2::BlockUserResponse = c
        .call(
            "BlockUser",
            &v2::BlockUserPayload {
                user: Some(v2::User {
                    address: who.to_owned(),
                }),
            },
        )
        .await
        .expect("call");
    match resp.response {
        Some(Response::Ok(_)) => "ok".into(),
        Some(Response::InvalidRequest(e))
            if e.message.as_deref() == Some(social::ratelimit::LIMITED_MESSAGE) =>
        {
            "limited".into()
        }
        other => format!("{other:?}"),
    }
}

/// The value of `metric` in `GET /metrics` of the instance at `ws_url`.
async fn metric(ws_url: &str, metric: &str) -> u64 {
    let url = format!("{}metrics", ws_url.replace("ws://", "http://"));
    let text = reqwest::get(url)
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{metric} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{metric} missing from /metrics:\n{text}"))
}

/// The official client, on SQLite with the counters in memory: the pair limit shared by both
/// users, blocks per direction, the actor limit across targets, the `invalidRequest` answer of
/// UpsertFriendship, BlockUser and UnblockUser (see `interop/social-ratelimit.mjs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_client_is_refused_in_invalid_request_over_the_limits() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut config = SocialConfig::new(&format!(
        "sqlite://{}",
        dir.path().join("social.sqlite").display()
    ));
    limited(&mut config, 4, 2);
    let url = instance(&config).await;
    let out = node::run(
        "social-ratelimit.mjs",
        &[&url, "4", "2"],
        Duration::from_secs(90),
    )
    .await
    .unwrap_or_else(|e| panic!("scenario failed: {e}"));
    assert!(
        out.lines().any(|l| l.contains("\"done\":true")),
        "scenario did not finish:\n{out}"
    );
    assert_eq!(
        metric(&url, "social_friendship_rate_limited_total").await,
        4
    );
}

/// Two instances on one Redis and one PostgreSQL: actions made through either count against
/// the same pair and actor limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_share_the_limits_through_redis() {
    let redis = RedisServer::start().await.expect("redis-server");
    let db = FreshPostgres::create("r").expect("a fresh PostgreSQL database");
    let mut config = SocialConfig::new(&db.url);
    config.redis_url = Some(redis.url());
    limited(&mut config, 5, 3);
    let a = instance(&config).await;
    let b = instance(&config).await;

    let (xw, yw) = (authchain::Wallet::random(), authchain::Wallet::random());
    let mut x_a = Client::connect(&a, &xw).await;
    let mut x_b = Client::connect(&b, &xw).await;
    let mut y_a = Client::connect(&a, &yw).await;
    let mut y_b = Client::connect(&b, &yw).await;
    let (x, y) = (x_a.address.clone(), y_a.address.clone());

    // The pair {X, Y} (limit 3), spent by both users on both instances.
    assert_eq!(upsert(&mut x_a, request, &y).await, "accepted");
    assert_eq!(upsert(&mut y_b, reject, &x).await, "accepted");
    assert_eq!(upsert(&mut x_b, request, &y).await, "accepted");
    assert_eq!(upsert(&mut y_a, accept, &x).await, "limited");
    assert_eq!(upsert(&mut y_b, accept, &x).await, "limited");

    // X's actor counter (limit 5) holds 2; blocks of new users on alternate instances spend it.
    let others: Vec<String> = (0..4)
        .map(|_| authchain::Wallet::random().address().to_lower_hex())
        .collect();
    assert_eq!(block(&mut x_a, &others[0]).await, "ok");
    assert_eq!(block(&mut x_b, &others[1]).await, "ok");
    assert_eq!(block(&mut x_a, &others[2]).await, "ok");
    assert_eq!(block(&mut x_b, &others[3]).await, "limited");

    assert_eq!(metric(&a, "social_friendship_rate_limited_total").await, 1);
    assert_eq!(metric(&b, "social_friendship_rate_limited_total").await, 2);
    drop((x_a, x_b, y_a, y_b));
}

/// A `redis-server` on `port` (so that it can be restarted on the same one), killed on drop.
async fn redis_on(port: u16) -> tokio::process::Child {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut child = tokio::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server");
        // Up once it answers; it exits at once if the port is still taken.
        for _ in 0..40 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return child;
            }
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill().await;
        assert!(Instant::now() < deadline, "redis-server did not start");
    }
}

/// With Redis down, friendship actions and blocks go through (counted as unavailable in
/// `/metrics`); once it is back, the limits apply again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_go_through_while_redis_is_down() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let mut redis = redis_on(port).await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut config = SocialConfig::new(&format!(
        "sqlite://{}",
        dir.path().join("social.sqlite").display()
    ));
    config.redis_url = Some(format!("redis://127.0.0.1:{port}/"));
    limited(&mut config, 100, 2);
    let url = instance(&config).await;
    let mut x = Client::connect(&url, &authchain::Wallet::random()).await;
    let y = authchain::Wallet::random().address().to_lower_hex();

    assert_eq!(upsert(&mut x, request, &y).await, "accepted");
    assert_eq!(upsert(&mut x, cancel, &y).await, "accepted");
    assert_eq!(upsert(&mut x, request, &y).await, "limited");

    redis.kill().await.expect("stop redis-server");
    let started = Instant::now();
    assert_eq!(upsert(&mut x, request, &y).await, "accepted");
    assert_eq!(upsert(&mut x, cancel, &y).await, "accepted");
    assert_eq!(upsert(&mut x, request, &y).await, "accepted");
    assert_eq!(block(&mut x, &y).await, "ok");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "actions waited for Redis: {:?}",
        started.elapsed()
    );
    assert!(metric(&url, "social_friendship_rate_limiter_unavailable_total").await >= 4);

    // Redis back (empty): after the retry pause the counters are shared again.
    let _redis = redis_on(port).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let z = authchain::Wallet::random().address().to_lower_hex();
    assert_eq!(upsert(&mut x, request, &z).await, "accepted");
    assert_eq!(upsert(&mut x, cancel, &z).await, "accepted");
    assert_eq!(upsert(&mut x, request, &z).await, "limited");
    drop(x);
}
