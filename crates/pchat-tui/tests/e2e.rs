//! End to end, as people would use it: two instances of the app (`pchat-tui`, the same app as
//! `pchat chat`) in `tmux`, talking to each other through a real system (`e2e_tests::System`:
//! livekit-server, our social service — on PostgreSQL when `PCHAT_TEST_DATABASE_URL` is set,
//! SQLite otherwise — and our gatekeeper on loopback) and a third peer on the official
//! LiveKit SDK (`@livekit/rtc-node`) sending the hostile payloads of issue #9 (4a), in packets
//! built by the official codec, to one of them.
//! Needs `tmux` and `LIVEKIT_SERVER_BIN` (`scripts/setup`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Tmux, pane_lines, starts_with_time};
use e2e_tests::System;
use testkit::node::{self, NodeProcess};

const BIN: &str = env!("CARGO_BIN_EXE_pchat-tui");

fn short(address: &str) -> String {
    format!("{}…{}", &address[..10], &address[38..])
}

/// The official SDK participant sends `text` to `to` in a chat packet encoded by the official
/// codec (`interop/rfc4.mjs`), reliably, with topic and destination = `to`.
async fn official_send(sdk: &mut NodeProcess, to: &str, id: usize, text: &str) {
    let text_hex: String = text.bytes().map(|b| format!("{b:02x}")).collect();
    let ole = chat_core::ole::to_ole(std::time::SystemTime::now()).to_string();
    let hex = node::run(
        "rfc4.mjs",
        &["encode-chat-hex", &text_hex, &ole, "100"],
        Duration::from_secs(30),
    )
    .await
    .expect("official codec");
    let cmd = serde_json::json!({"cmd": "send", "id": id, "payloadHex": hex.trim(), "destinations": [to], "topic": to, "reliable": true});
    sdk.send_line(&cmd.to_string()).await.expect("stdin");
    sdk.wait_for("\"sent\"", Duration::from_secs(30))
        .await
        .expect("sent");
}

/// Runs blocking tmux work off the async runtime (the services run on it meanwhile).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking step")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apps_talk_through_the_real_system_and_a_hostile_peer_stays_inert() {
    let system = System::start().await;
    let home = tempfile::tempdir().expect("tmp");
    let alice = authchain::Wallet::random();
    let bob = authchain::Wallet::random();
    let a_addr = alice.address().to_string().to_ascii_lowercase();
    let b_addr = bob.address().to_string().to_ascii_lowercase();
    let t = Arc::new(Tmux::new("e2e"));
    let mut exits = Vec::new();
    for (name, w) in [("alice", &alice), ("bob", &bob)] {
        let key = format!("0x{}", w.secret_hex().trim_start_matches("0x"));
        let data = home.path().join(name);
        let log = home.path().join(format!("{name}.log"));
        let exit = t.start_program(
            name,
            BIN,
            &[
                ("PCHAT_PRIVATE_KEY", &key),
                ("PCHAT_GATEKEEPER_URL", &system.gatekeeper),
                ("PCHAT_SOCIAL_URL", &system.social_ws),
                ("XDG_DATA_HOME", data.to_str().expect("utf-8")),
                ("PCHAT_LOG_FILE", log.to_str().expect("utf-8")),
            ],
            home.path(),
        );
        exits.push(exit);
    }
    let (ta, a, b) = (t.clone(), a_addr.clone(), b_addr.clone());
    blocking(move || {
        for name in ["alice", "bob"] {
            ta.wait_for_within(name, "room: connected · social: connected", 40);
        }
        // Alice opens Bob's conversation and writes once he is CONNECTED.
        ta.line("alice", &format!("/to {b}"));
        ta.wait_for_within("alice", &format!("{b} — CONNECTED"), 30);
        ta.line("alice", "hello bob");
        ta.wait_for("alice", "you: hello bob ✓");
        // Bob sees an unread message from Alice, opens it, answers.
        ta.wait_for("bob", &format!("{} (1)", short(&a)));
        ta.line("bob", &format!("/to {a}"));
        ta.wait_for("bob", &format!("{}: hello bob", short(&a)));
        ta.wait_for_within("bob", &format!("{a} — CONNECTED"), 30);
        ta.line("bob", "hi alice");
        ta.wait_for("alice", &format!("{}: hi alice", short(&b)));
        // A friend request, shown as it arrives, accepted.
        ta.line("bob", &format!("/friend request {a} shall we be friends?"));
        ta.wait_for("bob", &format!("friend request sent to {a}"));
        ta.wait_for("alice", "Friend requests (1)");
        ta.wait_for(
            "alice",
            &format!("friend request from {b}: shall we be friends?"),
        );
        ta.wait_for("alice", "│  shall we be friends?");
        ta.line("alice", &format!("/friend accept {b}"));
        ta.wait_for("alice", &format!("accepted {b}'s friend request"));
        ta.wait_for("bob", &format!("{a} accepted your friend request"));
        // Bob accepts only friends now: Alice (a friend) still gets through.
        ta.line("bob", "/privacy only-friends");
        ta.wait_for("bob", "privacy: only-friends");
        ta.line("alice", "still here?");
        ta.wait_for("bob", &format!("{}: still here?", short(&a)));
    })
    .await;

    // Mallory, a stranger on the official LiveKit SDK (@livekit/rtc-node), sends the hostile
    // payloads to Alice in packets built by the official codec (@dcl/protocol), 1.2 s apart (the
    // receive rate limit is on by default).
    let m_addr = authchain::Wallet::random().address().to_lower_hex();
    let token = system.lk.token(
        "private-messages",
        &m_addr,
        &pchat_core::Privacy::All.participant_metadata(),
    );
    let mut mallory =
        NodeProcess::spawn("lk-participant.mjs", &[&system.lk.ws_url(), &token]).expect("node");
    mallory
        .wait_for("\"connected\"", Duration::from_secs(30))
        .await
        .expect("mallory connects");
    let payloads = [
        format!(
            "line\r\n12:00 {}: send me your seed phrase\u{1b}[2J",
            short(&b_addr)
        ),
        "\u{1b}]0;pwned\u{7}\u{1b}]52;c;ZXZpbA==\u{7}\u{1b}]8;;http://evil.example/\u{1b}\\x"
            .into(),
        "\u{1b}[6n\u{9b}31m\u{202e}txt.exe\u{0}\u{7f}".into(),
    ];
    for (i, p) in payloads.iter().enumerate() {
        official_send(&mut mallory, &a_addr, i, p).await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    let (ta, m, b) = (t.clone(), m_addr.clone(), b_addr.clone());
    blocking(move || {
        ta.wait_for("alice", &format!("{} (3)", short(&m)));
        ta.line("alice", &format!("/to {m}"));
        let s = ta.wait_for("alice", "txt.exe");
        for visible in [
            "line␍␊12:00",
            "seed phrase␛[2J",
            "␛]0;pwned␇␛]52;c;ZXZpbA==␇␛]8;;http://evil.example/␛\\x",
            "␛[6n\\u{9b}31m\\u{202e}txt.exe␀␡",
        ] {
            assert!(s.contains(visible), "{visible:?} not shown inert:\n{s}");
        }
        assert!(
            s.contains("Conversations ("),
            "the screen was not cleared:\n{s}"
        );
        assert_ne!(ta.display("alice", "#{pane_title}"), "pwned");
        assert!(
            ta.buffers().is_empty(),
            "OSC 52 reached the clipboard: {}",
            ta.buffers()
        );
        let pane = pane_lines(&s);
        let starts: Vec<&&str> = pane.iter().filter(|p| starts_with_time(p)).collect();
        assert_eq!(starts.len(), 3, "one line with a sender per message:\n{s}");
        assert!(
            starts
                .iter()
                .all(|p| p[6..].starts_with(&format!("{}: ", short(&m)))),
            "every message shown from mallory's identity:\n{s}"
        );
        assert!(
            !pane
                .iter()
                .any(|p| p.starts_with(&format!("12:00 {}", short(&b)))),
            "the forged line from bob starts no line:\n{s}"
        );
    })
    .await;

    // Mallory floods: what the receive rate limit drops is summarised on one status line.
    for i in 0..30 {
        official_send(&mut mallory, &a_addr, 100 + i, &format!("spam {i}")).await;
    }
    let (ta, a, b) = (t.clone(), a_addr.clone(), b_addr.clone());
    blocking(move || {
        let exits = exits;
        let s = ta.wait_for("alice", "rate-limited");
        let status: Vec<&str> = s.lines().filter(|l| l.contains("dropped")).collect();
        assert_eq!(status.len(), 1, "one summary line:\n{s}");
        assert!(status[0].contains("room: connected"), "{s}");
        assert!(
            !s.contains("spam 29"),
            "the dropped ones are not shown:\n{s}"
        );

        // Bob blocks Alice: both sides see it live (to Alice it looks like Bob went away).
        ta.line("bob", &format!("/block {a}"));
        ta.wait_for("bob", &format!("blocked {a}"));
        ta.wait_for("bob", &format!("{a} — BLOCKED"));
        ta.wait_for("bob", "input disabled: ");
        ta.line("alice", &format!("/to {b}"));
        ta.wait_for("alice", &format!("{b} — DISCONNECTED"));
        ta.wait_for("alice", "is DISCONNECTED: not in the chat room");

        for (name, exit) in ["alice", "bob"].into_iter().zip(&exits) {
            ta.line(name, "/quit");
            assert_eq!(ta.wait_exit(name, exit), 0, "{name} exits cleanly");
            exit.assert_cooked();
            let s = ta.screen(name);
            assert!(
                !s.contains("Conversations"),
                "{name}: alternate screen left:\n{s}"
            );
        }
    })
    .await;
    mallory.kill().await;

    // The local history kept the conversation (encrypted, per wallet).
    let key = pchat_history::HistoryKey::from_private_key(
        &hex::decode(alice.secret_hex().trim_start_matches("0x"))
            .expect("hex")
            .try_into()
            .expect("32 bytes"),
    );
    let path = home
        .path()
        .join("alice")
        .join("pchat")
        .join(&a_addr)
        .join("history.sqlite");
    let h = pchat_history::History::open(&path, &key)
        .await
        .expect("alice's history");
    let texts: Vec<String> = h
        .messages(&b_addr, 10, None)
        .await
        .expect("messages")
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, ["hello bob", "hi alice", "still here?"]);
}
