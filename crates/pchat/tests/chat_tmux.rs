//! `pchat chat`, the product's terminal app, as a person uses it: two windows in tmux (key
//! files made with `pchat identity new`), talking through the real system, encrypted end to end
//! (the title and every line say so); then `/quit`.
//! (The app's screens, hostile payloads and the rest are tested in `crates/pchat-tui`.)

#[path = "../../pchat-tui/tests/common/mod.rs"]
mod tmux;

use std::sync::Arc;

use e2e_tests::System;
use tmux::Tmux;

fn short(address: &str) -> String {
    format!("{}…{}", &address[..10], &address[38..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pchat_chat_windows_talk() {
    let system = System::start().await;
    let home = tempfile::tempdir().expect("tmp");
    let bin = env!("CARGO_BIN_EXE_pchat");
    let mut addresses = Vec::new();
    for name in ["alice", "bob"] {
        let key = home.path().join(format!("{name}.key"));
        let out = std::process::Command::new(bin)
            .args(["identity", "new", "--out"])
            .arg(&key)
            .output()
            .expect("pchat identity new");
        assert!(out.status.success());
        addresses.push(String::from_utf8_lossy(&out.stdout).trim().to_owned());
    }
    let (a, b) = (addresses[0].clone(), addresses[1].clone());
    let t = Arc::new(Tmux::new("pchat-chat"));
    let mut exits = Vec::new();
    for name in ["alice", "bob"] {
        let key = home.path().join(format!("{name}.key"));
        let data = home.path().join(format!("{name}-data"));
        let program = format!("{bin} chat --identity {}", key.display());
        exits.push(t.start_program(
            name,
            &program,
            &[
                ("PCHAT_GATEKEEPER_URL", &system.gatekeeper),
                ("PCHAT_SOCIAL_URL", &system.social_ws),
                ("XDG_DATA_HOME", data.to_str().expect("utf-8")),
            ],
            home.path(),
        ));
    }
    let (ta, a2, b2) = (t.clone(), a.clone(), b.clone());
    tokio::task::spawn_blocking(move || {
        for name in ["alice", "bob"] {
            ta.wait_for_within(name, "room: connected · social: connected", 40);
        }
        ta.line("alice", &format!("/to {b2}"));
        ta.wait_for_within("alice", &format!("{b2} — CONNECTED"), 30);
        ta.wait_for_within("alice", "— 🔒 encrypted (their key ", 30);
        ta.line("alice", "hello bob");
        // ✓✓: Bob's app confirmed that it showed it.
        ta.wait_for("alice", "you: hello bob ✓✓ 🔒");
        ta.wait_for("bob", &format!("{} (1)", short(&a2)));
        ta.line("bob", &format!("/to {a2}"));
        ta.wait_for("bob", &format!("{}: hello bob 🔒", short(&a2)));
        ta.line("bob", "hi alice");
        ta.wait_for("alice", &format!("{}: hi alice 🔒", short(&b2)));
        for name in ["alice", "bob"] {
            ta.line(name, "/quit");
        }
    })
    .await
    .expect("tmux steps");
    for (name, exit) in ["alice", "bob"].iter().zip(&exits) {
        assert_eq!(t.wait_exit(name, exit), 0, "{name}");
        exit.assert_cooked();
    }
    // Each wallet's encrypted history file is where the crate docs say.
    for (name, address) in [("alice", &a), ("bob", &b)] {
        let file = home
            .path()
            .join(format!("{name}-data"))
            .join("pchat")
            .join(address)
            .join("history.sqlite");
        assert!(file.exists(), "{}", file.display());
    }
}
