//! `pchat chat`, the binary: one wallet listens, another sends it a message; both get their
//! tokens from our gatekeeper and meet in a real LiveKit room.

use std::process::Stdio;
use std::time::Duration;

use livekit_testkit::LiveKitServer;
use tokio::io::{AsyncBufReadExt, BufReader};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_wallet_writes_to_another_through_the_binary() {
    let lk = LiveKitServer::start().await.expect("livekit-server");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let gk = format!("http://{}", listener.local_addr().expect("addr"));
    let config = gatekeeper::GatekeeperConfig::new(&lk.ws_url(), &lk.api_key, &lk.api_secret, "t");
    let state = gatekeeper::Builder::new(config)
        .build()
        .expect("gatekeeper");
    tokio::spawn(gatekeeper::serve(listener, state, std::future::pending()));

    // Fixed keys: this test has its own LiveKit server, so nobody else uses these identities.
    let bob_key = "11".repeat(32);
    let alice_key = "22".repeat(32);
    let bob = authchain::Wallet::from_hex(&bob_key)
        .expect("key")
        .address()
        .to_lower_hex();
    let alice = authchain::Wallet::from_hex(&alice_key)
        .expect("key")
        .address()
        .to_lower_hex();
    let mut listen = tokio::process::Command::new(env!("CARGO_BIN_EXE_pchat"))
        .args(["chat", "--gatekeeper", &gk, "--listen-seconds", "25"])
        .env_clear()
        .env("PCHAT_PRIVATE_KEY", &bob_key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("pchat chat (listen)");
    let mut lines = BufReader::new(listen.stdout.take().expect("stdout")).lines();
    let joined = tokio::time::timeout(LIMIT, lines.next_line())
        .await
        .expect("in time")
        .expect("read")
        .expect("a line");
    assert_eq!(joined, format!("joined as {bob}"));

    let sent = tokio::time::timeout(
        LIMIT,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_pchat"))
            .args([
                "chat",
                "--gatekeeper",
                &gk,
                "--to",
                &bob,
                "--message",
                "hello from the CLI",
            ])
            .env_clear()
            .env("PCHAT_PRIVATE_KEY", &alice_key)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("in time")
    .expect("pchat chat (send)");
    let out = String::from_utf8_lossy(&sent.stdout);
    assert!(sent.status.success(), "send failed: {out}");
    assert!(out.contains("sent to"), "{out}");

    let line = tokio::time::timeout(LIMIT, lines.next_line())
        .await
        .expect("in time")
        .expect("read")
        .expect("a line");
    assert_eq!(line, format!("{alice}: hello from the CLI"));
}
