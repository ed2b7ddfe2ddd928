//! The dcl-rpc server's frame handling: a real `RpcServer` (axum WebSocket on 127.0.0.1, one
//! server for the whole run) gets one connection per input, driven by a sequence of arbitrary
//! frames. The authenticator accepts any auth frame that starts with `0x`; the module `Test` has
//! unary and server-stream procedures (echo, failing, slow, streams of n items, a failing
//! stream).
//!
//! Input: frames `[flags][len u16 LE][bytes]` (see `split_frames`). The first frame is the auth
//! frame. Flags: bit 0 = send as a text frame, bit 1 = wait briefly for a server message after
//! sending. After the last frame the client closes.
//!
//! Checked: the server never panics, closes within a bound after the client closes, sends only
//! decodable server-side frames, and afterwards holds no connection and no stream producer.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use dcl_rpc_server::{
    AuthRefused, Authenticator, Module, Procedure, RpcError, RpcServer, ServerConfig,
};
use dcl_rpc_wire::Frame;
use futures_util::{SinkExt, StreamExt, stream};
use libfuzzer_sys::fuzz_target;
use private_chat_fuzz::split_frames;
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::Message;

struct PrefixAuth;

#[async_trait]
impl Authenticator for PrefixAuth {
    async fn authenticate(&self, frame: &str) -> Result<String, AuthRefused> {
        if frame.starts_with("slow") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        match frame.strip_prefix("slow").unwrap_or(frame) {
            f if f.starts_with("0x") => Ok(f.chars().take(42).collect::<String>().to_lowercase()),
            _ => Err(AuthRefused::new("not an address")),
        }
    }
}

fn module() -> Module {
    let procedures = vec![
        (
            "echo".to_owned(),
            Procedure::unary(|_, p| async move { Ok(p) }),
        ),
        (
            "fail".to_owned(),
            Procedure::unary(|_, _| async move {
                Err(RpcError {
                    code: 7,
                    message: "refused".into(),
                })
            }),
        ),
        (
            "slow".to_owned(),
            Procedure::unary(|_, p| async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok(p)
            }),
        ),
        (
            "items".to_owned(),
            Procedure::server_stream(|_, p: Vec<u8>| async move {
                let n = p.first().copied().unwrap_or(2) % 8;
                let items = (0..n).map(move |i| Ok(vec![i; usize::from(i)]));
                Ok(stream::iter(items).boxed())
            }),
        ),
        (
            "endless".to_owned(),
            Procedure::server_stream(|_, _| async move {
                Ok(stream::repeat_with(|| Ok(b"tick".to_vec())).boxed())
            }),
        ),
        (
            "item_then_error".to_owned(),
            Procedure::server_stream(|_, _| async move {
                let items = vec![Ok(b"one".to_vec()), Err(RpcError::new("broken"))];
                Ok(stream::iter(items).boxed())
            }),
        ),
        (
            "refuse_stream".to_owned(),
            Procedure::server_stream(|_, _| async move { Err(RpcError::new("no stream")) }),
        ),
    ];
    Module {
        name: "Test".into(),
        procedures,
    }
}

struct Harness {
    rt: Runtime,
    server: RpcServer,
    url: String,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let server = RpcServer::builder(
            Arc::new(PrefixAuth),
            ServerConfig {
                auth_timeout: Duration::from_secs(2),
                idle_timeout: Duration::from_secs(5),
                ping_interval: Duration::from_secs(1),
                max_frame_bytes: 1024,
                max_buffered_frames: 8,
                max_connections: 8,
                // Small caps so that inputs reach the refusals.
                max_ports_per_connection: 2,
                max_streams_per_connection: 4,
                max_calls_per_connection: 4,
            },
        )
        .with_module(module())
        .build();
        let s = server.clone();
        let url = rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            let app = axum::Router::new().route(
                "/",
                axum::routing::get(move |ws: axum::extract::ws::WebSocketUpgrade| {
                    let s = s.clone();
                    async move { s.upgrade(ws) }
                }),
            );
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            format!("ws://{addr}/")
        });
        Harness { rt, server, url }
    })
}

/// Checks one message from the server.
fn check_server_message(msg: &Message) {
    if let Message::Binary(b) = msg {
        let frame = Frame::decode(b).expect("the server sent an undecodable frame");
        use dcl_rpc_wire::MessageType as T;
        assert!(
            matches!(
                frame.kind(),
                T::Response
                    | T::StreamMessage
                    | T::CreatePortResponse
                    | T::RequestModuleResponse
                    | T::RemoteErrorResponse
                    | T::ServerReady
            ),
            "the server sent a client-only frame {frame:?}"
        );
    }
}

async fn session(url: &str, frames: Vec<(u8, Vec<u8>)>) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect to the in-process server");
    for (flags, bytes) in frames {
        let msg = if flags & 1 == 1 {
            Message::Text(String::from_utf8_lossy(&bytes).into_owned().into())
        } else {
            Message::Binary(bytes.into())
        };
        if ws.send(msg).await.is_err() {
            break;
        }
        if flags & 2 == 2 {
            if let Ok(Some(Ok(m))) =
                tokio::time::timeout(Duration::from_millis(20), ws.next()).await
            {
                check_server_message(&m);
            }
        }
    }
    let _ = ws.close(None).await;
    // The server must finish the connection soon after the client closed it.
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(m)) = ws.next().await {
            check_server_message(&m);
        }
    })
    .await;
    assert!(
        drained.is_ok(),
        "the server did not close within 10 s of the client"
    );
}

fuzz_target!(
    init: private_chat_fuzz::seeds::write_if_asked("dcl_rpc_server_session"),
    |data: &[u8]| {
    let frames: Vec<(u8, Vec<u8>)> = split_frames(data)
        .into_iter()
        .take(64)
        .map(|(f, b)| (f, b.to_vec()))
        .collect();
    if frames.is_empty() {
        return;
    }
    let h = harness();
    h.rt.block_on(async {
        session(&h.url, frames).await;
        // Everything the connection held is released once it is over.
        let released = tokio::time::timeout(Duration::from_secs(5), async {
            while h.server.connections() != 0 || h.server.active_streams() != 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        assert!(
            released.is_ok(),
            "after the connection: {} connections, {} stream producers",
            h.server.connections(),
            h.server.active_streams()
        );
    });
});
