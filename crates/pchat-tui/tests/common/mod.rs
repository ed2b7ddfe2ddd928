//! A `tmux` server of the test's own, with sessions driven by `send-keys` and read by
//! `capture-pane`, as a person would use the app.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A tmux server of its own (`-L`), killed when dropped.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn new(name: &str) -> Tmux {
        Tmux {
            socket: format!("pchat-tui-{name}-{}", std::process::id()),
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Output {
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

    /// Starts `command` in a new 120×40 session `name`, with `env` set; the pane is kept when
    /// the command exits, to see what it left on the terminal.
    pub fn start(&self, name: &str, command: &str, env: &[(&str, &str)]) {
        let mut args: Vec<String> = ["new-session", "-d", "-s", name, "-x", "120", "-y", "40"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for (k, v) in env {
            args.push("-e".into());
            args.push(format!("{k}={v}"));
        }
        args.push(command.into());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.cmd(&refs);
        assert!(
            out.status.success(),
            "tmux: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.cmd(&["set-option", "-t", name, "remain-on-exit", "on"]);
    }

    pub fn keys(&self, name: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", name];
        args.extend_from_slice(keys);
        assert!(self.cmd(&args).status.success());
    }

    /// Types `text` literally, then Enter.
    pub fn line(&self, name: &str, text: &str) {
        assert!(
            self.cmd(&["send-keys", "-t", name, "-l", text])
                .status
                .success()
        );
        self.keys(name, &["Enter"]);
    }

    pub fn screen(&self, name: &str) -> String {
        let out = self.cmd(&["capture-pane", "-p", "-t", name]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits (at most `secs`) until the screen of `name` shows `what`; returns the screen.
    pub fn wait_for_within(&self, name: &str, what: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen(name);
            if s.contains(what) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: no {what:?} on the screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn wait_for(&self, name: &str, what: &str) -> String {
        self.wait_for_within(name, what, 20)
    }

    pub fn display(&self, name: &str, format: &str) -> String {
        let out = self.cmd(&["display-message", "-p", "-t", name, format]);
        assert!(
            out.status.success(),
            "tmux display-message {format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Starts `program` in session `name` through `sh`, which afterwards writes the program's
    /// exit status and `stty -a` (the terminal modes the program left) into `dir`: tmux's own
    /// `pane_dead_status` is not always known.
    pub fn start_program(
        &self,
        name: &str,
        program: &str,
        env: &[(&str, &str)],
        dir: &Path,
    ) -> Exit {
        let exit = Exit {
            status: dir.join(format!("{name}.status")),
            stty: dir.join(format!("{name}.stty")),
        };
        let command = format!(
            "sh -c '{program}; s=$?; stty -a > {stty}; echo $s > {status}'",
            stty = exit.stty.display(),
            status = exit.status.display(),
        );
        self.start(name, &command, env);
        exit
    }

    /// Waits until the program started with [`Tmux::start_program`] has exited; its status.
    pub fn wait_exit(&self, name: &str, exit: &Exit) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(s) = std::fs::read_to_string(&exit.status)
                && let Ok(code) = s.trim().parse()
            {
                return code;
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not quit:\n{}",
                self.screen(name)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What tmux's paste buffers hold (an OSC 52 that reached the terminal would land there).
    pub fn buffers(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["list-buffers"]).stdout)
            .trim()
            .to_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// Where a program's exit status and terminal modes are written.
pub struct Exit {
    status: PathBuf,
    stty: PathBuf,
}

impl Exit {
    /// Asserts the terminal is out of raw mode (canonical input, echo, signals).
    pub fn assert_cooked(&self) {
        let modes = std::fs::read_to_string(&self.stty).expect("stty -a ran after the program");
        let words: Vec<&str> = modes.split_whitespace().collect();
        for mode in ["icanon", "echo", "isig"] {
            assert!(words.contains(&mode), "{mode} not restored: {modes}");
        }
    }
}

/// `HH:MM ` at the start of a line of the conversation pane.
pub fn starts_with_time(p: &str) -> bool {
    let b = p.as_bytes();
    b.len() > 6 && b[0].is_ascii_digit() && b[1].is_ascii_digit() && b[2] == b':' && b[5] == b' '
}

/// The lines of the conversation pane (right of the list) of a captured screen.
pub fn pane_lines(screen: &str) -> Vec<&str> {
    screen.lines().filter_map(|l| l.split('│').nth(3)).collect()
}
