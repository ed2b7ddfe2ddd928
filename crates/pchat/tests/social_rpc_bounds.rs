//! `pchat social`, the binary on SQLite, flooded from one dcl-rpc connection: ~5 MB of
//! REQUEST_MODULE frames for the social module on one port and 35,000 stream opens. The
//! process's resident memory (VmRSS, read from /proc) stays within a documented bound during the
//! flood and after the client leaves, the flood gets the same procedure ids every time and a
//! clear refusal beyond 64 streams, and another client is answered meanwhile.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dcl_rpc_wire::{CreatePort, Frame, MessageType, Request, RequestModule, identifier};
use futures_util::{SinkExt, StreamExt};
use testkit::free_tcp_port;
use tokio_tungstenite::tungstenite::Message;

const MODULE: &str = "SocialService";
/// How much the flood may raise the service's resident memory (the README's bound).
const FLOOD_BOUND_MIB: u64 = 64;
const LIMIT: Duration = Duration::from_secs(20);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn rss(pid: u32) -> u64 {
    testkit::proc_status_kib(pid, "VmRSS:").expect("VmRSS")
}

fn auth_frame() -> String {
    let identity = authchain::Identity::new(
        &authchain::Wallet::random(),
        chrono::Utc::now() + chrono::Duration::hours(1),
    );
    let headers = identity.signed_fetch_headers("get", "/", authchain::now_ms(), "{}");
    let map: serde_json::Map<String, serde_json::Value> = headers
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    serde_json::Value::Object(map).to_string()
}

fn create_port(n: u32) -> Frame {
    Frame::CreatePort(CreatePort {
        message_identifier: identifier(MessageType::CreatePort, n),
        port_name: "social".into(),
    })
}

fn request_module(n: u32) -> Frame {
    Frame::RequestModule(RequestModule {
        message_identifier: identifier(MessageType::RequestModule, n),
        port_id: 1,
        module_name: MODULE.into(),
    })
}

fn request(n: u32, procedure: u32) -> Frame {
    Frame::Request(Request {
        message_identifier: identifier(MessageType::Request, n),
        port_id: 1,
        procedure_id: procedure,
        client_stream: 0,
        payload: vec![],
    })
}

async fn next_frame(ws: &mut Ws) -> Frame {
    loop {
        match tokio::time::timeout(LIMIT, ws.next())
            .await
            .expect("a frame in time")
        {
            Some(Ok(Message::Binary(b))) => return Frame::decode(&b).expect("decodes"),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a binary frame, got {other:?}"),
        }
    }
}

/// Connects, authenticates, opens port 1 and loads the social module; returns procedure ids.
async fn ready(url: &str) -> (Ws, Vec<(String, u32)>) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    ws.send(Message::Text(auth_frame().into()))
        .await
        .expect("auth");
    assert!(matches!(
        next_frame(&mut ws).await,
        Frame::ServerReady { .. }
    ));
    ws.send(Message::Binary(create_port(1).encode().into()))
        .await
        .expect("send");
    assert!(matches!(
        next_frame(&mut ws).await,
        Frame::CreatePortResponse(_)
    ));
    ws.send(Message::Binary(request_module(2).encode().into()))
        .await
        .expect("send");
    let ids = match next_frame(&mut ws).await {
        Frame::RequestModuleResponse(r) => r
            .procedures
            .into_iter()
            .map(|p| (p.procedure_name, p.procedure_id))
            .collect(),
        other => panic!("{other:?}"),
    };
    (ws, ids)
}

fn id_of(ids: &[(String, u32)], name: &str) -> u32 {
    ids.iter()
        .find(|(n, _)| n == name)
        .map(|(_, id)| *id)
        .unwrap_or_else(|| panic!("no procedure {name}"))
}

/// One unary call on a ready connection; returns how long the answer took.
async fn call(ws: &mut Ws, number: u32, procedure: u32) -> Duration {
    let started = Instant::now();
    ws.send(Message::Binary(request(number, procedure).encode().into()))
        .await
        .expect("send");
    loop {
        let f = next_frame(ws).await;
        if f.number() == number {
            assert!(matches!(f, Frame::Response(_)), "{f:?}");
            return started.elapsed();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_connection_keeps_memory_bounded_and_others_served() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_tcp_port().expect("port");
    let social = tokio::process::Command::new(env!("CARGO_BIN_EXE_pchat"))
        .arg("social")
        .current_dir(dir.path())
        .env_clear()
        .env("HTTP_SERVER_HOST", "127.0.0.1")
        .env("HTTP_SERVER_PORT", port.to_string())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("pchat social");
    let pid = social.id().expect("pid");
    let started = Instant::now();
    while reqwest::get(format!("http://127.0.0.1:{port}/ping"))
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "pchat social did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = format!("ws://127.0.0.1:{port}/");

    // The other client, served before, during and after the flood.
    let (mut other, other_ids) = ready(&url).await;
    let settings = id_of(&other_ids, "GetSocialSettings");
    call(&mut other, 10, settings).await;
    let baseline = rss(pid);

    // Sample the service's resident memory while the flood runs.
    let peak = Arc::new(AtomicU64::new(baseline));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let (flood, ids) = ready(&url).await;
    let mut expected: Vec<(String, u32)> = ids.clone();
    expected.sort();
    let stream_id = id_of(&ids, "SubscribeToFriendshipUpdates");
    let (mut tx, mut rx) = flood.split();
    // 200,000 REQUEST_MODULE frames of 25 bytes ≈ 5 MB (the unbounded server grew by ~45 bytes
    // of resident memory per byte of them), then 35,000 stream opens among them.
    const MODULE_FRAMES: u32 = 200_000;
    const STREAM_OPENS: u32 = 35_000;
    let reader = tokio::spawn(async move {
        let (mut modules, mut other_ids, mut opened, mut refused) = (0u32, 0u32, 0u32, 0u32);
        let mut other_errors = Vec::new();
        while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(5), rx.next()).await {
            let Ok(Message::Binary(b)) = msg else {
                continue;
            };
            match Frame::decode(&b).expect("decodes") {
                Frame::RequestModuleResponse(r) => {
                    let mut got: Vec<(String, u32)> = r
                        .procedures
                        .into_iter()
                        .map(|p| (p.procedure_name, p.procedure_id))
                        .collect();
                    got.sort();
                    if got == expected {
                        modules += 1;
                    } else {
                        other_ids += 1;
                    }
                }
                Frame::StreamMessage(_) => opened += 1,
                Frame::RemoteError(e)
                    if e.error_message == "Too many open streams on this connection (limit 64)" =>
                {
                    refused += 1
                }
                Frame::RemoteError(e) => other_errors.push(e.error_message),
                _ => {}
            }
            if opened + refused == STREAM_OPENS && modules == MODULE_FRAMES {
                break;
            }
        }
        (modules, other_ids, opened, refused, other_errors)
    });
    let flood_started = Instant::now();
    let mut n = 100u32;
    for i in 0..MODULE_FRAMES {
        n += 1;
        tx.feed(Message::Binary(request_module(n).encode().into()))
            .await
            .expect("feed");
        if i % 4 == 0 && i / 4 < STREAM_OPENS {
            n += 1;
            tx.feed(Message::Binary(request(n, stream_id).encode().into()))
                .await
                .expect("feed");
        }
        if i % 1000 == 0 {
            tx.flush().await.expect("flush");
        }
    }
    tx.flush().await.expect("flush");
    // Answered while the server still works through the flood.
    let during = call(&mut other, 11, settings).await;
    let (modules, other_ids, opened, refused, other_errors) = reader.await.expect("reader");
    let flood_secs = flood_started.elapsed().as_secs_f64();
    let peak_kib = peak.load(Ordering::Relaxed);

    // The flooder leaves.
    drop(tx);
    tokio::time::sleep(Duration::from_secs(2)).await;
    sampler.abort();
    let after = rss(pid);
    let after_call = call(&mut other, 12, settings).await;
    eprintln!(
        "RSS baseline {baseline} KiB, peak {peak_kib} KiB, after {after} KiB; flood {flood_secs:.1} s; \
         {modules} module answers with the first ids, {other_ids} with others, {opened} streams \
         opened, {refused} refused; \
         other client answered in {during:?} and {after_call:?}"
    );
    assert!(
        other_errors.is_empty(),
        "unexpected errors: {other_errors:?}"
    );
    assert_eq!(other_ids, 0, "a repeat answers the same procedure ids");
    assert_eq!(modules, MODULE_FRAMES, "every REQUEST_MODULE is answered");
    assert_eq!(opened, 64, "64 streams open at most");
    assert_eq!(refused, STREAM_OPENS - 64, "the rest refused clearly");
    assert!(
        peak_kib <= baseline + FLOOD_BOUND_MIB * 1024,
        "resident memory rose from {baseline} KiB to {peak_kib} KiB during the flood"
    );
    assert!(
        after <= baseline + FLOOD_BOUND_MIB * 1024,
        "resident memory stayed at {after} KiB (from {baseline} KiB) after the client left"
    );
    let status: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/status"))
        .await
        .expect("status")
        .json()
        .await
        .expect("JSON");
    assert_eq!(status["connections"], 1, "the flooder's connection is gone");
    assert_eq!(status["streams"], 0, "its streams are gone");
}

#[test]
fn help_lists_the_connection_bounds_with_their_defaults() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pchat"))
        .args(["social", "--help"])
        .env_clear()
        .output()
        .expect("pchat social --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for (var, default) in [
        ("WS_MAX_CONNECTIONS", "[default: 10000]"),
        ("WS_MAX_PORTS_PER_CONNECTION", "[default: 16]"),
        ("WS_MAX_STREAMS_PER_CONNECTION", "[default: 64]"),
        ("WS_MAX_CALLS_PER_CONNECTION", "[default: 256]"),
    ] {
        let line = help
            .lines()
            .skip_while(|l| !l.contains(var))
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            line.contains(default),
            "--help lacks {var} {default}:\n{help}"
        );
    }
}
