//! The app on a real terminal: `pchat-tui-offline` (the app with an echo peer and no network)
//! in a `tmux` session, driven with `send-keys` and read with `capture-pane`, as a person would.
//! Needs `tmux` (Debian package; `scripts/setup` installs it).

use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pchat-tui-offline");
const PEER: &str = "0x2222222222222222222222222222222222222222";
const STRANGER: &str = "0x6666666666666666666666666666666666666666";

/// A tmux server of its own (`-L`), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(name: &str) -> Tmux {
        Tmux {
            socket: format!("pchat-tui-{name}-{}", std::process::id()),
        }
    }

    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-u")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .env("LANG", "C.UTF-8")
            .env_remove("TMUX")
            .output()
            .expect("tmux runs (install it: apt-get install tmux)")
    }

    fn start(&self, command: &str) {
        let out = self.cmd(&[
            "new-session",
            "-d",
            "-s",
            "app",
            "-x",
            "120",
            "-y",
            "40",
            command,
        ]);
        assert!(
            out.status.success(),
            "tmux: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Keep the pane after the app exits, to see what it left on the terminal.
        self.cmd(&["set-option", "-t", "app", "remain-on-exit", "on"]);
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "app"];
        args.extend_from_slice(keys);
        let out = self.cmd(&args);
        assert!(out.status.success());
    }

    /// Types `text` literally, then Enter.
    fn line(&self, text: &str) {
        let out = self.cmd(&["send-keys", "-t", "app", "-l", text]);
        assert!(out.status.success());
        self.keys(&["Enter"]);
    }

    fn screen(&self) -> String {
        let out = self.cmd(&["capture-pane", "-p", "-t", "app"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_for(&self, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.screen();
            if s.contains(what) {
                return s;
            }
            assert!(Instant::now() < deadline, "no {what:?} on the screen:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn display(&self, format: &str) -> String {
        let out = self.cmd(&["display-message", "-p", "-t", "app", format]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// `HH:MM ` at the start of a line of the conversation pane.
fn starts_with_time(p: &str) -> bool {
    let b = p.as_bytes();
    b.len() > 6 && b[0].is_ascii_digit() && b[1].is_ascii_digit() && b[2] == b':' && b[5] == b' '
}

#[test]
fn chat_in_a_real_terminal_with_hostile_payloads() {
    let t = Tmux::new("offline");
    t.start(&format!("{BIN} --nasty"));
    t.wait_for("Conversations");
    // The stranger's eleven messages arrived and are counted, not shown until opened.
    t.wait_for("0x66666666…6666 (11)");
    t.wait_for("Friend requests (1)");

    t.line(&format!("/to {STRANGER}"));
    let s = t.wait_for("del␡");
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
    assert_ne!(t.display("#{pane_title}"), "window title");
    let buffers = t.cmd(&["list-buffers"]);
    assert!(
        String::from_utf8_lossy(&buffers.stdout).trim().is_empty(),
        "an OSC 52 reached the clipboard: {}",
        String::from_utf8_lossy(&buffers.stdout)
    );
    // Each message is one entry from the stranger; the forged line is inside the text.
    let pane: Vec<&str> = s.lines().filter_map(|l| l.split('│').nth(3)).collect();
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
    t.wait_for("input disabled: 0x66666666…6666 is DISCONNECTED");

    // Talk to the echo peer.
    t.line(&format!("/to {PEER}"));
    t.wait_for(&format!("{PEER} — CONNECTED"));
    t.line("hello there");
    let s = t.wait_for("echo: hello there");
    assert!(s.contains("you: hello there ✓"), "{s}");
    // A failed social action shows its (hostile) error inert.
    t.line(&format!("/block {STRANGER}"));
    let s = t.wait_for("failed: blocked");
    assert!(s.contains("offline: no social service ␛]0;pwned␇"), "{s}");
    assert_ne!(t.display("#{pane_title}"), "pwned");

    // /quit leaves the alternate screen and raw mode.
    t.line("/quit");
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.display("#{pane_dead}") != "1" {
        assert!(Instant::now() < deadline, "did not quit:\n{}", t.screen());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(t.display("#{pane_dead_status}"), "0");
    assert_eq!(t.display("#{alternate_on}"), "0", "alternate screen left");
    let s = t.screen();
    assert!(
        !s.contains("Conversations"),
        "the app's screen is gone:\n{s}"
    );
}
