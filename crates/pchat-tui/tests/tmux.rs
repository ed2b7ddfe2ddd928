//! The app on a real terminal: `pchat-tui-offline` (the app with an echo peer and no network)
//! in a `tmux` session, driven with `send-keys` and read with `capture-pane`, as a person would.
//! Needs `tmux` (Debian package; `scripts/setup` installs it).

mod common;

use common::{Tmux, pane_lines, starts_with_time};

const BIN: &str = env!("CARGO_BIN_EXE_pchat-tui-offline");
const PEER: &str = "0x2222222222222222222222222222222222222222";
const STRANGER: &str = "0x6666666666666666666666666666666666666666";

#[test]
fn chat_in_a_real_terminal_with_hostile_payloads() {
    let t = Tmux::new("offline");
    let dir = tempfile::tempdir().expect("tmp");
    let exit = t.start_program("app", &format!("{BIN} --nasty"), &[], dir.path());
    t.wait_for("app", "Conversations");
    // The stranger's eleven messages arrived and are counted, not shown until opened.
    t.wait_for("app", "0x66666666…6666 (11)");
    t.wait_for("app", "Friend requests (1)");

    t.line("app", &format!("/to {STRANGER}"));
    let s = t.wait_for("app", "del␡");
    for visible in [
        "carriage␍return",
        "␛[2Jclear screen",
        "␛]0;window title␇",
        "␛]52;c;aGVsbG8=␇clipboard",
        "status query ␛[6n",
        "\\u{9b}31m red",
        "bidi \\u{202e}txt.exe",
        "nul␀byte",
    ] {
        assert!(s.contains(visible), "{visible:?} not shown inert:\n{s}");
    }
    // The clear-screen did not clear: the frame is whole; the title and clipboard are untouched;
    // the status query was not answered into the input line.
    assert!(s.contains("Conversations (2)"), "{s}");
    assert!(s.contains("room: connected · social: connected"), "{s}");
    assert_ne!(t.display("app", "#{pane_title}"), "window title");
    assert!(
        t.buffers().is_empty(),
        "an OSC 52 reached the clipboard: {}",
        t.buffers()
    );
    // Each message is one entry from the stranger; the forged line is inside the text.
    let pane = pane_lines(&s);
    let starts: Vec<&&str> = pane.iter().filter(|p| starts_with_time(p)).collect();
    assert_eq!(
        starts.len(),
        11,
        "one line starting with a sender per message:\n{s}"
    );
    assert!(
        starts
            .iter()
            .all(|p| p[6..].starts_with("0x66666666…6666: ")),
        "every message is from the stranger's identity:\n{s}"
    );
    for p in &pane {
        assert!(
            starts_with_time(p) || p.starts_with(' ') || p.trim().is_empty(),
            "a line that is neither a message nor indented under one: {p:?}"
        );
    }
    // Input disabled for the stranger (DISCONNECTED in the offline backend).
    t.wait_for("app", "input disabled: 0x66666666…6666 is DISCONNECTED");

    // Talk to the echo peer.
    t.line("app", &format!("/to {PEER}"));
    t.wait_for("app", &format!("{PEER} — CONNECTED"));
    t.line("app", "hello there");
    let s = t.wait_for("app", "echo: hello there");
    assert!(s.contains("you: hello there ✓"), "{s}");
    // A failed social action shows its (hostile) error inert.
    t.line("app", &format!("/block {STRANGER}"));
    let s = t.wait_for("app", "failed: blocked");
    assert!(s.contains("offline: no social service ␛]0;pwned␇"), "{s}");
    assert_ne!(t.display("app", "#{pane_title}"), "pwned");

    // /quit leaves the alternate screen and raw mode.
    t.line("app", "/quit");
    assert_eq!(t.wait_exit("app", &exit), 0);
    let s = t.screen("app");
    assert!(
        !s.contains("Conversations"),
        "the app's screen is gone:\n{s}"
    );
    exit.assert_cooked();
}

#[test]
fn a_panic_restores_the_terminal() {
    let t = Tmux::new("panic");
    let dir = tempfile::tempdir().expect("tmp");
    let exit = t.start_program(
        "app",
        &format!("{BIN} --panic-on-boom"),
        &[("RUST_BACKTRACE", "0")],
        dir.path(),
    );
    t.wait_for("app", "Conversations");
    t.line("app", &format!("/to {PEER}"));
    t.wait_for("app", &format!("{PEER} — CONNECTED"));
    t.line("app", "boom");
    assert_ne!(
        t.wait_exit("app", &exit),
        0,
        "the panic ends the program with an error"
    );
    let s = t.screen("app");
    assert!(
        s.contains("planted panic for the terminal-restore test"),
        "the panic message is readable on the normal screen:\n{s}"
    );
    assert!(!s.contains("Conversations"), "{s}");
    exit.assert_cooked();
}
