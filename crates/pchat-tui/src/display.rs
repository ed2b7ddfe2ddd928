//! Network text is data: every string a peer controls (message text, identities, request
//! messages, error texts from a service) goes through [`one_line`] before it is drawn.
//!
//! The rules are `chat_core::display::one_line`'s, re-exported here so that the CLI and the app
//! share one sanitiser: C0 controls become their control pictures (U+2400–U+241F, e.g. `␛` for ESC, `␍` for CR),
//! DEL becomes `␡`, and C1 controls, the bidi embeddings/overrides/isolates/marks and the line
//! and paragraph separators become the visible text `\u{…}`. The result has no control
//! character and no bidi control, so it is always one inert line.

pub use chat_core::display::{char_width, is_unsafe, one_line, truncate_width, width};

/// Texts an outside test sent through `pchat chat` to take over the terminal (issue #9):
/// each must come out as one inert line. The offline demo shows them and the screen tests
/// check them.
pub const HOSTILE_TEXTS: &[&str] = &[
    "carriage\rreturn",
    "line\nfeed\n12:00 0x4444444444…4444: I am someone else",
    "\u{1b}[2Jclear screen",
    "\u{1b}]0;window title\u{7}",
    "\u{1b}]8;;http://evil.example/\u{1b}\\link\u{1b}]8;;\u{1b}\\",
    "\u{1b}]52;c;aGVsbG8=\u{7}clipboard",
    "status query \u{1b}[6n",
    "C1 CSI \u{9b}31m red",
    "bidi \u{202e}txt.exe",
    "nul\u{0}byte",
    "del\u{7f}",
];

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    #[test]
    fn controls_and_bidi_become_visible() {
        let nasty = "a\rb\nc\u{1b}[2Jd\u{9b}e\u{202e}f\u{0}g\u{7f}";
        let out = one_line(nasty);
        assert_eq!(out, "a␍b␊c␛[2Jd\\u{9b}e\\u{202e}f␀g␡");
        assert!(!out.chars().any(is_unsafe));
        assert!(matches!(one_line("plain 🙂"), Cow::Borrowed(_)));
    }
}
