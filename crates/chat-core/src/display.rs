//! Text from the network is data: making it safe to print on one terminal line.
//!
//! A message's text, and any other string a peer controls (a LiveKit identity, a topic, a
//! reaction's message id), can hold characters a terminal obeys instead of printing: carriage
//! return and line feed (to overwrite the sender's prefix or start a line that looks like
//! another sender's message), ESC sequences (CSI clear-screen and cursor moves, OSC 0 window
//! title, OSC 8 hyperlinks, OSC 52 clipboard writes, status queries whose answers the terminal
//! types into our input), the same as 8-bit C1 controls, NUL, DEL, and the Unicode bidi
//! controls that reorder what follows on the line.
//!
//! [`one_line`] **makes them visible** rather than removing them, so that the reader sees that
//! something was there and no two different texts look alike:
//!
//! - C0 controls U+0000–U+001F (NUL, TAB, LF, CR, ESC, ...) become their Unicode *control
//!   pictures* U+2400–U+241F (`␀ ␉ ␊ ␍ ␛`), and DEL U+007F becomes `␡` (U+2421): one
//!   printable cell each, as in many editors;
//! - C1 controls U+0080–U+009F, the bidi embeddings/overrides U+202A–U+202E, the bidi isolates
//!   U+2066–U+2069, the bidi marks LRM U+200E, RLM U+200F and ALM U+061C, and the line and
//!   paragraph separators U+2028/U+2029 become the escape text `\u{…}` (lower-case hex, e.g.
//!   `\u{9b}`, `\u{202e}`), as there is no picture for them.
//!
//! Everything else passes unchanged (including emoji, joiners and combining marks). The result
//! contains no byte below 0x20, no 0x7F, no C1 character and no bidi control, so an ESC
//! sequence is inert text and a message is always exactly one line.
//!
//! [`truncate_width`] cuts a line to a number of terminal columns (for a TUI), and
//! [`json_string`] writes a JSON string literal that escapes the same characters as `\uXXXX`.

use std::borrow::Cow;
use std::fmt::Write as _;

use unicode_width::UnicodeWidthChar;

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

/// `text` made safe to print on one line (see the module documentation); borrowed when there is
/// nothing to change.
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

/// The columns one character takes on a terminal (0 for characters without a width, such as
/// controls).
pub fn char_width(c: char) -> usize {
    c.width().unwrap_or(0)
}

/// The columns `text` takes on a terminal (characters without a width, such as controls, count
/// 0; pass text through [`one_line`] first).
pub fn width(text: &str) -> usize {
    text.chars().map(char_width).sum()
}

/// `text` cut to at most `max_cols` terminal columns, ending in `…` when cut (borrowed when it
/// fits). Wide characters (CJK, most emoji) count 2 columns and are never split.
pub fn truncate_width(text: &str, max_cols: usize) -> Cow<'_, str> {
    if width(text) <= max_cols {
        return Cow::Borrowed(text);
    }
    if max_cols == 0 {
        return Cow::Borrowed("");
    }
    let budget = max_cols - 1; // room for the ellipsis
    let mut used = 0;
    let mut end = 0;
    for (i, c) in text.char_indices() {
        let w = char_width(c);
        if used + w > budget {
            break;
        }
        used += w;
        end = i + c.len_utf8();
    }
    let mut out = String::with_capacity(end + 3);
    out.push_str(&text[..end]);
    out.push('…');
    Cow::Owned(out)
}

/// [`one_line`] then [`truncate_width`].
pub fn one_line_truncated(text: &str, max_cols: usize) -> String {
    truncate_width(&one_line(text), max_cols).into_owned()
}

/// `text` as a JSON string literal (with the quotes) that is also safe on a terminal: besides
/// what JSON requires (`"`, `\`, U+0000–U+001F), DEL, C1 controls, bidi controls and U+2028/9
/// are written as `\uXXXX`, so the line holds only printable characters and reads back to
/// exactly `text`. Hand-written because `serde_json` cannot be told to escape those.
pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a hostile peer sends.
    const PAYLOADS: &[&str] = &[
        "\r0x1111111111111111111111111111111111111111: fake",
        "hi\n0x2222222222222222222222222222222222222222: a forged line",
        "a\r\nb",
        "tab\there",
        "\x1b]0;pwned title\x07",
        "\x1b]0;pwned title\x1b\\",
        "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\",
        "\x1b]52;c;ZXZpbA==\x07",
        "\x1b[2J\x1b[H",
        "\x1b[3J\x1bc",
        "\x1b[6n",
        "\x1b[c",
        "\x1b[>c",
        "\x1bP$q\"p\x1b\\",
        "\x1b[1A\x1b[2K",
        "nul\0byte",
        "del\x7f",
        "\u{9b}2J",
        "\u{9d}0;title\u{9c}",
        "\u{85}next line",
        "\u{90}dcs\u{9c}",
        "user\u{202e}gnp.exe",
        "\u{202a}\u{202b}\u{202c}\u{202d}\u{202e}",
        "\u{2066}\u{2067}\u{2068}\u{2069}",
        "\u{200e}\u{200f}\u{61c}",
        "line\u{2028}separator\u{2029}paragraph",
        "\x07bell\x08backspace\x0bvt\x0cff",
    ];

    fn assert_safe(out: &str, input: &str) {
        for b in out.bytes() {
            assert!(
                b >= 0x20 && b != 0x7f,
                "byte {b:#x} in {out:?} (from {input:?})"
            );
        }
        for c in out.chars() {
            assert!(
                !is_unsafe(c),
                "char {:#x} in {out:?} (from {input:?})",
                c as u32
            );
        }
    }

    #[test]
    fn hostile_payloads_come_out_inert_and_on_one_line() {
        for p in PAYLOADS {
            let out = one_line(p);
            assert_safe(&out, p);
            assert!(!out.contains('\x1b'));
            assert!(!out.contains('\n') && !out.contains('\r'));
            assert!(matches!(out, Cow::Owned(_)), "{p:?} needed changes");
        }
    }

    #[test]
    fn controls_are_made_visible() {
        assert_eq!(one_line("a\r\nb"), "a␍␊b");
        assert_eq!(one_line("\x1b[2J"), "␛[2J");
        assert_eq!(one_line("\x1b]0;t\x07"), "␛]0;t␇");
        assert_eq!(one_line("x\0y\x7f"), "x␀y␡");
        assert_eq!(one_line("\t"), "␉");
        assert_eq!(one_line("\u{9b}2J"), "\\u{9b}2J");
        assert_eq!(one_line("a\u{202e}b"), "a\\u{202e}b");
        assert_eq!(one_line("\u{2028}"), "\\u{2028}");
    }

    #[test]
    fn ordinary_text_is_untouched() {
        for s in [
            "",
            "hello",
            "hola 👋 ¿qué tal?",
            "👨‍👩‍👧 family (joiners)",
            "e\u{301} combining",
            "日本語",
            "שלום עולם",
            "مرحبا",
            "🇦🇷",
            "\u{a0}no-break space, \u{ad}soft hyphen",
        ] {
            assert!(matches!(one_line(s), Cow::Borrowed(_)), "{s:?}");
        }
    }

    #[test]
    fn every_character_comes_out_safe() {
        // All of Unicode, one character at a time, and all of it in one string.
        let mut all = String::new();
        for c in (0..=0x10_ffffu32).filter_map(char::from_u32) {
            let s = c.to_string();
            let out = one_line(&s);
            if is_unsafe(c) {
                assert_ne!(out, s);
            } else {
                assert_eq!(out, s);
            }
            if c < '\u{3000}' {
                all.push(c);
            }
        }
        assert_safe(&one_line(&all), "U+0000..U+2FFF");
    }

    #[test]
    fn truncation_respects_columns() {
        assert_eq!(truncate_width("hello", 5), "hello");
        assert_eq!(truncate_width("hello", 4), "hel…");
        assert_eq!(truncate_width("hello", 1), "…");
        assert_eq!(truncate_width("hello", 0), "");
        assert_eq!(truncate_width("日本語", 6), "日本語");
        assert_eq!(truncate_width("日本語", 5), "日本…");
        assert_eq!(truncate_width("日本語", 4), "日…");
        assert_eq!(truncate_width("👋👋", 3), "👋…");
        assert_eq!(width("a日👋"), 5);
        assert_eq!(one_line_truncated("a\nb\nc\nd", 4), "a␊b…");
        let long = format!("\x1b[2J{}", "x".repeat(1000));
        let out = one_line_truncated(&long, 40);
        assert!(width(&out) <= 40);
        assert_safe(&out, &long);
    }

    #[test]
    fn json_strings_escape_controls_and_read_back() {
        for p in PAYLOADS
            .iter()
            .copied()
            .chain(["plain", "quote \" and \\ back", "👋"])
        {
            let j = json_string(p);
            assert_safe(&j, p);
            let back: String = serde_json::from_str(&j).expect("valid JSON");
            assert_eq!(back, p);
        }
        assert_eq!(json_string("a\u{1b}b"), r#""a\u001bb""#);
        assert_eq!(json_string("\u{202e}"), r#""\u202e""#);
    }
}
