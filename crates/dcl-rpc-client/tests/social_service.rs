//! The client against the real dcl-rpc server: the social service in process, on SQLite, on
//! 127.0.0.1.

use std::time::Duration;

use dcl_rpc_client::{ClientConfig, RpcClient, RpcError};
use social_proto::v2;

struct Service {
    url: String,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn service() -> Service {
    let dir = tempfile::tempdir().expect("tmp");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("ws://{}/", listener.local_addr().expect("addr"));
    let app = social::App::build(&social::SocialConfig::new(&format!(
        "sqlite://{}",
        dir.path().join("s.sqlite").display()
    )))
    .await
    .expect("social");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(social::serve(listener, app, async move {
        let _ = stopped.await;
    }));
    Service {
        url,
        _dir: dir,
        stop: Some(stop),
    }
}

fn identity(wallet: &authchain::Wallet) -> authchain::Identity {
    authchain::Identity::new(wallet, chrono::Utc::now() + chrono::Duration::hours(1))
}

async fn module(url: &str, wallet: &authchain::Wallet) -> dcl_rpc_client::Module {
    RpcClient::connect_as(url, &identity(wallet), ClientConfig::default())
        .await
        .expect("connects")
        .module("test", "SocialService")
        .await
        .expect("module")
}

fn request(to: &str) -> v2::UpsertFriendshipPayload {
    v2::UpsertFriendshipPayload {
        action: Some(v2::upsert_friendship_payload::Action::Request(
            v2::upsert_friendship_payload::RequestPayload {
                user: Some(v2::User {
                    address: to.to_owned(),
                }),
                message: Some("hello".into()),
            },
        )),
    }
}

#[tokio::test]
async fn unary_calls_and_an_acknowledged_stream() {
    let s = service().await;
    let (xw, yw) = (authchain::Wallet::random(), authchain::Wallet::random());
    let x = module(&s.url, &xw).await;
    let y = module(&s.url, &yw).await;
    assert!(x.procedures().any(|p| p == "GetFriends"));

    let mut updates: dcl_rpc_client::ServerStream<v2::FriendshipUpdate> = y
        .server_stream("SubscribeToFriendshipUpdates", &())
        .await
        .expect("stream");
    let settings: v2::GetSocialSettingsResponse =
        x.call("GetSocialSettings", &()).await.expect("call");
    assert!(settings.response.is_some());

    // Three requests in a row; each update arrives in order, one per acknowledgement.
    let mut others = Vec::new();
    for _ in 0..3 {
        let w = authchain::Wallet::random();
        let m = module(&s.url, &w).await;
        let r: v2::UpsertFriendshipResponse = m
            .call("UpsertFriendship", &request(&yw.address().to_lower_hex()))
            .await
            .expect("call");
        assert!(matches!(
            r.response,
            Some(v2::upsert_friendship_response::Response::Accepted(_))
        ));
        others.push((w.address().to_lower_hex(), m));
    }
    for (address, _) in &others {
        let u = tokio::time::timeout(Duration::from_secs(10), updates.next())
            .await
            .expect("in time")
            .expect("no error")
            .expect("an item");
        match u.update {
            Some(v2::friendship_update::Update::Request(r)) => {
                assert_eq!(
                    r.friend.map(|f| f.address).as_deref(),
                    Some(address.as_str())
                );
                assert_eq!(r.message.as_deref(), Some("hello"));
            }
            other => panic!("{other:?}"),
        }
    }

    // Bad input: an unknown procedure is a typed error, the connection stays up.
    let e = x
        .call::<(), ()>("NoSuchProcedure", &())
        .await
        .expect_err("unknown");
    assert!(matches!(e, RpcError::NoSuchProcedure(_)), "{e:?}");
    let _: v2::GetBlockingStatusResponse = x.call("GetBlockingStatus", &()).await.expect("call");
}

#[tokio::test]
async fn a_refused_auth_frame_is_closed_with_its_code() {
    let s = service().await;
    let e = RpcClient::connect(&s.url, "not an auth chain", ClientConfig::default())
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(
            e,
            RpcError::Closed {
                code: Some(3003),
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error_with_its_source() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("ws://{}/", listener.local_addr().expect("addr"));
    drop(listener);
    let e = RpcClient::connect(&url, "{}", ClientConfig::default())
        .await
        .err()
        .expect("refused");
    assert!(matches!(e, RpcError::Connect { .. }), "{e:?}");
    assert!(std::error::Error::source(&e).is_some());
}

#[tokio::test]
async fn a_server_that_stops_ends_calls_and_streams_with_closed() {
    let mut s = service().await;
    let w = authchain::Wallet::random();
    let m = module(&s.url, &w).await;
    let mut stream: dcl_rpc_client::ServerStream<v2::BlockUpdate> = m
        .server_stream("SubscribeToBlockUpdates", &())
        .await
        .expect("stream");
    if let Some(stop) = s.stop.take() {
        let _ = stop.send(());
    }
    let e = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("ends in time")
        .expect_err("closed");
    assert!(
        matches!(
            e,
            RpcError::Closed {
                code: Some(1001),
                ..
            }
        ),
        "{e:?}"
    );
    let e = m
        .call::<(), v2::GetBlockingStatusResponse>("GetBlockingStatus", &())
        .await
        .expect_err("closed");
    assert!(matches!(e, RpcError::Closed { .. }), "{e:?}");
    assert!(m.client().closed().is_some());
}

#[tokio::test]
async fn a_dropped_stream_is_cancelled_and_frees_its_place() {
    let s = service().await;
    let w = authchain::Wallet::random();
    let config = ClientConfig {
        max_pending: 2,
        ..ClientConfig::default()
    };
    let m = RpcClient::connect_as(&s.url, &identity(&w), config)
        .await
        .expect("connects")
        .module("test", "SocialService")
        .await
        .expect("module");
    let a: dcl_rpc_client::ServerStream<v2::BlockUpdate> = m
        .server_stream("SubscribeToBlockUpdates", &())
        .await
        .expect("stream");
    let b: dcl_rpc_client::ServerStream<v2::FriendshipUpdate> = m
        .server_stream("SubscribeToFriendshipUpdates", &())
        .await
        .expect("stream");
    // Two waiting: one more is refused here, without being sent.
    let e = m
        .call::<(), v2::GetBlockingStatusResponse>("GetBlockingStatus", &())
        .await
        .expect_err("over the bound");
    assert!(matches!(e, RpcError::TooManyPending(2)), "{e:?}");
    drop((a, b));
    let _: v2::GetBlockingStatusResponse =
        m.call("GetBlockingStatus", &()).await.expect("room again");
}
