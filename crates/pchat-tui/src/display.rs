//! Network text is data: every string a peer controls (message text, identities, request
//! messages, error texts from a service) goes through [`one_line`] before it is drawn.
//!
//! The rules are `chat_core::display::one_line`'s, re-exported here so that the CLI and the app
//! share one sanitiser: C0 controls become their control pictures (U+2400–U+241F, e.g. `␛` for ESC, `␍` for CR),
//! DEL becomes `␡`, and C1 controls, the bidi embeddings/overrides/isolates/marks and the line
//! and paragraph separators become the visible text `\u{…}`. The result has no control
//! character and no bidi control, so it is always one inert line.

pub use chat_core::display::{char_width, is_unsafe, one_line, truncate_width, width};

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
