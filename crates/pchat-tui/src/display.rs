//! Network text is data: every string a peer controls (message text, identities, request
//! messages, error texts from a service) goes through [`one_line`] before it is drawn.
//!
//! Same rules as `chat_core::display::one_line` (being added to `chat-core` by another change;
//! when it is on main this module re-exports it and the rest of the crate is unchanged):
//! C0 controls become their control pictures (U+2400–U+241F, e.g. `␛` for ESC, `␍` for CR),
//! DEL becomes `␡`, and C1 controls, the bidi embeddings/overrides/isolates/marks and the line
//! and paragraph separators become the visible text `\u{…}`. The result has no control
//! character and no bidi control, so it is always one inert line.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` is changed by [`one_line`].
pub fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{61c}'
        | '\u{200e}' | '\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}')
}

/// `text` made safe to print on one line (borrowed when nothing changes).
pub fn one_line(text: &str) -> Cow<'_, str> {
    let Some(first) = text.find(is_unsafe) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 16);
    out.push_str(&text[..first]);
    for c in text[first..].chars() {
        match c {
            '\u{0}'..='\u{1f}' => out.push(char::from_u32(0x2400 + c as u32).unwrap_or('?')),
            '\u{7f}' => out.push('\u{2421}'),
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
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
