//! The player commands as a person (or a script) uses them: `pchat send`, `listen`, `friends`,
//! `block`, `privacy`, `demo`, by their exit codes and output, against the real system
//! (livekit-server, our social service and gatekeeper, in-process here). What an official-SDK
//! peer sends with control characters reaches stdout only escaped; a flood from a blocked user
//! is summarised on stderr, not printed line by line.

use std::process::Stdio;
use std::time::Duration;

use e2e_tests::{LIMIT, System};
use pchat_core::Privacy;
use testkit::node::{self, NodeProcess};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

const ALICE: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";
const BOB: &str = "0x2222222222222222222222222222222222222222222222222222222222222222";

fn address(key: &str) -> String {
    authchain::Wallet::from_hex(key)
        .expect("key")
        .address()
        .to_lower_hex()
}

fn pchat(system: &System, key: &str, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_pchat"));
    c.args(args)
        .env_clear()
        .env("PCHAT_PRIVATE_KEY", key)
        .env("PCHAT_GATEKEEPER_URL", &system.gatekeeper)
        .env("PCHAT_SOCIAL_URL", &system.social_ws)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

async fn run(system: &System, key: &str, args: &[&str]) -> std::process::Output {
    tokio::time::timeout(LIMIT, pchat(system, key, args).output())
        .await
        .unwrap_or_else(|_| panic!("pchat {args:?} in time"))
        .expect("pchat runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn friends_privacy_send_and_listen() {
    let system = System::start().await;
    let (alice, bob) = (address(ALICE), address(BOB));

    // Bob listens.
    let mut listen = pchat(&system, BOB, &["listen", "--seconds", "40"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("listen");
    let mut out = BufReader::new(listen.stdout.take().expect("stdout")).lines();
    let mut err = BufReader::new(listen.stderr.take().expect("stderr")).lines();
    let first = tokio::time::timeout(LIMIT, err.next_line())
        .await
        .expect("in time")
        .expect("read")
        .expect("a line");
    assert_eq!(first, format!("listening as {bob}"));

    // Alice and Bob become friends; the lists say so as JSON lines.
    let r = run(
        &system,
        ALICE,
        &["friends", "request", &bob, "--message", "hi"],
    )
    .await;
    assert!(r.status.success(), "{}", text(&r.stderr));
    let r = run(&system, BOB, &["friends", "requests"]).await;
    assert!(r.status.success(), "{}", text(&r.stderr));
    let line: serde_json::Value = serde_json::from_slice(&r.stdout).expect("one JSON line");
    assert_eq!(line["direction"], "incoming");
    assert_eq!(line["address"], alice.as_str());
    assert_eq!(line["message"], "hi");
    let r = run(&system, BOB, &["friends", "accept", &alice]).await;
    assert!(r.status.success(), "{}", text(&r.stderr));
    let r = run(&system, ALICE, &["friends", "list"]).await;
    assert_eq!(text(&r.stdout), format!("{{\"address\":\"{bob}\"}}\n"));

    // Bob: only friends. Alice (a friend) still gets through.
    let r = run(&system, BOB, &["privacy", "only-friends"]).await;
    assert_eq!(text(&r.stdout), "{\"privacy\":\"only-friends\"}\n");
    let r = run(&system, BOB, &["privacy"]).await;
    assert_eq!(text(&r.stdout), "{\"privacy\":\"only-friends\"}\n");
    let r = run(&system, ALICE, &["send", &bob, "hello from the CLI"]).await;
    assert!(r.status.success(), "{}", text(&r.stderr));
    let sent: serde_json::Value = serde_json::from_slice(&r.stdout).expect("JSON");
    assert_eq!(sent["sent"], true);
    let got: serde_json::Value = loop {
        let line = tokio::time::timeout(LIMIT, out.next_line())
            .await
            .expect("in time")
            .expect("read")
            .expect("a line");
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        if v["type"] == "message" {
            break v;
        }
        // Before it: Alice's friendship request, as a JSON line too.
        assert_eq!(v["type"], "friendship_request", "{v}");
    };
    assert_eq!(got["from"], alice.as_str());
    assert_eq!(got["text"], "hello from the CLI");
    assert_eq!(got["id"], sent["id"]);

    // A stranger is refused with the state named, exit 1, nothing sent.
    let stranger = "0x3333333333333333333333333333333333333333333333333333333333333333";
    // A user who is not in the room changes their setting: the gatekeeper answers "Participant
    // is not connected to the room" and the social service takes that as done.
    for setting in ["only-friends", "all"] {
        let r = run(&system, stranger, &["privacy", setting]).await;
        assert!(r.status.success(), "{}", text(&r.stderr));
        assert_eq!(text(&r.stdout), format!("{{\"privacy\":\"{setting}\"}}\n"));
    }
    let r = run(&system, stranger, &["send", &bob, "hi?", "--wait", "2"]).await;
    assert_eq!(r.status.code(), Some(1), "{}", text(&r.stderr));
    assert!(
        text(&r.stderr).contains("PRIVATE_MESSAGES_BLOCKED"),
        "{}",
        text(&r.stderr)
    );

    // Bob blocks Alice: her next send is refused.
    let r = run(&system, BOB, &["block", &alice]).await;
    assert!(r.status.success(), "{}", text(&r.stderr));
    let r = run(&system, ALICE, &["send", &bob, "?", "--wait", "2"]).await;
    assert_eq!(r.status.code(), Some(1), "{}", text(&r.stderr));
    let _ = listen.start_kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_one_line_and_exit_2_before_connecting() {
    // Nothing listens on these ports: bad input must be found before any connection.
    let dead = [
        ("PCHAT_GATEKEEPER_URL", "http://127.0.0.1:9"),
        ("PCHAT_SOCIAL_URL", "ws://127.0.0.1:9/"),
    ];
    let long = "x".repeat(156);
    let cases: Vec<(Vec<&str>, Option<&str>)> = vec![
        (vec!["send", "0x1234", "hi"], Some(BOB)),
        (
            vec!["send", "0x1111111111111111111111111111111111111111", "  "],
            Some(BOB),
        ),
        (
            vec!["send", "0x1111111111111111111111111111111111111111", &long],
            Some(BOB),
        ),
        (vec!["block", "not-an-address"], Some(BOB)),
        (vec!["friends", "accept", "0xzz"], Some(BOB)),
        (vec!["privacy", "friends"], Some(BOB)),
        (vec!["listen"], Some("0x12")),
        (vec!["listen"], None),
    ];
    for (args, key) in cases {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_pchat"));
        c.args(&args).env_clear().envs(dead).stdin(Stdio::null());
        if let Some(k) = key {
            c.env("PCHAT_PRIVATE_KEY", k);
        }
        let r = tokio::time::timeout(LIMIT, c.output())
            .await
            .expect("in time")
            .expect("runs");
        let err = text(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(r.stdout.is_empty(), "{args:?}");
    }
    // A service that cannot be reached: exit 3.
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_pchat"));
    c.args(["friends", "list"])
        .env_clear()
        .envs(dead)
        .env("PCHAT_PRIVATE_KEY", BOB)
        .stdin(Stdio::null());
    let r = tokio::time::timeout(LIMIT, c.output())
        .await
        .expect("in time")
        .expect("runs");
    assert_eq!(r.status.code(), Some(3), "{}", text(&r.stderr));
}

/// Issue #9 item 4a: a peer on the official SDK sends messages made of terminal escapes; `pchat
/// listen` writes them only escaped (no control byte, no C1, no bidi control on stdout), each
/// on its own line with the sender from the LiveKit identity; a blocked user's flood is a few
/// summary lines on stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_text_never_reaches_the_terminal_raw_and_floods_are_summarised() {
    let system = System::start().await;
    let bob = address(BOB);
    let official = authchain::Wallet::random().address().to_lower_hex();
    let token = system.lk.token(
        "private-messages",
        &official,
        &Privacy::All.participant_metadata(),
    );
    let mut sdk =
        NodeProcess::spawn("lk-participant.mjs", &[&system.lk.ws_url(), &token]).expect("node");
    sdk.wait_for("\"connected\"", LIMIT).await.expect("sdk");

    // Bob blocked a user (before listening: the listener loads it with its view).
    let flooder = authchain::Identity::new(
        &authchain::Wallet::random(),
        chrono::Utc::now() + chrono::Duration::hours(1),
    );
    let flooder_address = flooder.address().to_lower_hex();
    let r = run(&system, BOB, &["block", &flooder_address]).await;
    assert!(r.status.success(), "{}", text(&r.stderr));

    let mut listen = pchat(&system, BOB, &["listen", "--seconds", "25"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("listen");
    let mut stdout = listen.stdout.take().expect("stdout");
    let mut stderr = listen.stderr.take().expect("stderr");
    // Wait until Bob is in the official participant's room view (announced in batches).
    sdk.wait_for(&format!("\"joined\",\"identity\":\"{bob}\""), LIMIT)
        .await
        .expect("bob announced");

    let nasty = [
        "line one\r0xdeadbeef: forged line",
        "two\nlines",
        "\u{1b}[2J\u{1b}[Hcleared",
        "\u{1b}]0;owned title\u{7}",
        "\u{1b}]8;;http://evil.example\u{1b}\\link\u{1b}]8;;\u{1b}\\",
        "\u{1b}]52;c;cGFzdGU=\u{7}clipboard",
        "status\u{1b}[6n\u{1b}[c",
        "c1\u{9b}31mred\u{85}next",
        "bidi \u{202e}gnp.exe\u{2066}x\u{2069}",
        "nul\u{0}del\u{7f}",
    ];
    let ole = "46000.5";
    for (i, t) in nasty.iter().enumerate() {
        let text_hex: String = t.bytes().map(|b| format!("{b:02x}")).collect();
        let hex = node::run(
            "rfc4.mjs",
            &["encode-chat-hex", &text_hex, ole, "100"],
            LIMIT,
        )
        .await
        .expect("codec");
        let cmd = serde_json::json!({"cmd": "send", "id": i, "payloadHex": hex.trim(), "destinations": [bob], "topic": bob, "reliable": true});
        sdk.send_line(&cmd.to_string()).await.expect("stdin");
        // Past the receiver's rate limit (a burst of 3, then 1/s).
        tokio::time::sleep(Duration::from_millis(1_100)).await;
    }

    // A blocked user floods Bob: ~1,000 packets in 2 s.
    let (flood, _e) = livekit_participant::Participant::connect(
        pchat_client::GatekeeperTokens::new(&system.gatekeeper, flooder),
        livekit_participant::Options::default(),
    )
    .await
    .expect("flooder joins");
    let payload = chat_core::packet::encode("spam", std::time::SystemTime::now()).expect("e");
    for _ in 0..1000 {
        flood
            .send(
                &payload,
                std::slice::from_ref(&bob),
                Some(&bob),
                livekit_participant::Reliability::Reliable,
            )
            .await
            .expect("flood");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut out = Vec::new();
    let mut err = Vec::new();
    let status = tokio::time::timeout(Duration::from_secs(40), async {
        let (a, b) = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        a.expect("stdout");
        b.expect("stderr");
        listen.wait().await
    })
    .await
    .expect("listen ends")
    .expect("status");
    assert!(status.success());

    // No byte a terminal would act on.
    let out_text = String::from_utf8(out.clone()).expect("UTF-8");
    for c in out_text.chars() {
        assert!(
            c == '\n' || !chat_core::display::is_unsafe(c),
            "raw {:?} on stdout: {out_text}",
            c
        );
    }
    let lines: Vec<serde_json::Value> = out_text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let texts: Vec<&str> = lines.iter().filter_map(|l| l["text"].as_str()).collect();
    assert_eq!(texts, nasty, "every message once, on its own line, intact");
    assert!(lines.iter().all(|l| l["from"] == official.as_str()));

    // The flood: a few summary lines, not one per packet.
    let err_text = String::from_utf8_lossy(&err);
    let err_lines = err_text.lines().count();
    assert!(err_lines <= 12, "{err_lines} lines on stderr:\n{err_text}");
    assert!(err_text.contains("blocked"), "{err_text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_alone_and_passes() {
    let r = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_pchat"))
            .arg("demo")
            .env_remove("PCHAT_GATEKEEPER_URL")
            .env_remove("PCHAT_SOCIAL_URL")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("in time")
    .expect("runs");
    let out = text(&r.stdout);
    assert!(r.status.success(), "{out}\n{}", text(&r.stderr));
    assert!(
        out.contains("carol  sees bob as PRIVATE_MESSAGES_BLOCKED"),
        "{out}"
    );
    assert!(out.contains("private chat works"), "{out}");
}
