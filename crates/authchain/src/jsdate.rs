//! The `Expiration:` date of an ephemeral delegation, read the way the reference reads it.
//!
//! The reference verifier (`@dcl/crypto`) hands the text after `Expiration: ` to JavaScript's
//! date parser and compares the result with the clock. Clients write `toISOString()` output
//! (`2026-12-26T06:21:42.915Z`), but any text the parser accepts is signed and honoured, so
//! we accept the whole ECMAScript *date-time string format* (ECMA-262, "Date Time String
//! Format"), with the details V8 (Node.js) adds inside that format, measured with Node 20:
//!
//! - date-only forms `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, always UTC;
//! - each followed optionally by `THH:mm`, `THH:mm:ss` or `THH:mm:ss.s…` (one or more fraction
//!   digits; only the first three count) and then optionally by `Z` or `±HH:mm`;
//! - expanded years `+YYYYYY` / `-YYYYYY` (six digits; `-000000` is invalid);
//! - `24:00`, `24:00:00` and `24:00:00.000` mean the end of that day; other hours run 00–23,
//!   minutes and seconds 00–59, offsets up to `±23:59`;
//! - a day from 01 to 31 that its month does not have rolls over into the next month
//!   (`2099-02-30` is 2 March 2099), as in V8;
//! - results beyond ±8.64e15 ms (JavaScript's `Date` range) are invalid.
//!
//! **Date-time without an offset** is *local time* in JavaScript, so the reference's answer
//! depends on the time zone of the server that verifies. We read it as **UTC**, which is what a
//! reference server running in UTC (the usual container setting) does, and what unity-explorer
//! means when its guest login writes `{expiration:s}` of a UTC time; see `docs/wire.md` §1.
//!
//! **Refused on purpose**: when V8 cannot read the text as this format it falls back to a
//! lenient, implementation-defined parser that also takes `2099/01/01`, `Jan 1 2099`,
//! `2099-01-01 00:00:00Z`, lower-case `t`/`z`, `+0200`, surrounding spaces and more. Those forms
//! are not ISO-8601 as ECMAScript defines it and current clients do not write them (they write
//! `toISOString()` output, or C#'s `{expiration:s}` for unity-explorer guests); we treat them
//! like an unparsable date (401). The vectors record each such case with the reference's own
//! verdict beside ours.
//!
//! Hand-written rather than `chrono`: chrono's parsers do not accept these reduced and expanded
//! forms, and `NaiveDate` stops at year 262 143 while JavaScript dates reach year 275 760, so the
//! calendar arithmetic is the few lines of [`days_from_civil`].

/// JavaScript's `Date` range: ±100,000,000 days around the epoch, in milliseconds.
const JS_MAX_MS: i64 = 8_640_000_000_000_000;

const MS_PER_DAY: i64 = 86_400_000;

/// Parses `text` as JavaScript's `Date.parse` does for the ECMAScript date-time string format;
/// `None` where JavaScript gives `NaN` (an Invalid Date) or where the text is one of the
/// non-ISO forms we refuse (see the module documentation). Date-times without an offset are
/// read as UTC.
pub fn parse_js_date(text: &str) -> Option<i64> {
    let mut p = Cursor {
        bytes: text.as_bytes(),
        at: 0,
    };
    let year = p.year()?;
    let (mut month, mut day) = (1, 1);
    if p.eat(b'-') {
        month = p.digits(2)?;
        if p.eat(b'-') {
            day = p.digits(2)?;
        }
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut time_ms = 0;
    let mut offset_ms = 0;
    if p.eat(b'T') {
        let hour = p.digits(2)?;
        p.expect(b':')?;
        let minute = p.digits(2)?;
        let (mut second, mut millis, mut fraction_is_zero) = (0, 0, true);
        if p.eat(b':') {
            second = p.digits(2)?;
            if p.eat(b'.') {
                (millis, fraction_is_zero) = p.fraction()?;
            }
        }
        let end_of_day = hour == 24 && minute == 0 && second == 0 && fraction_is_zero;
        if !(hour < 24 || end_of_day) || minute > 59 || second > 59 {
            return None;
        }
        time_ms = ((hour * 60 + minute) * 60 + second) * 1000 + millis;
        if p.eat(b'Z') {
        } else if let Some(sign) = p.sign() {
            let oh = p.digits(2)?;
            p.expect(b':')?;
            let om = p.digits(2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            offset_ms = sign * (oh * 60 + om) * 60_000;
        }
        // No offset: local time in JavaScript; read as UTC here (module documentation).
    }
    if !p.done() {
        return None;
    }
    let days = days_from_civil(year, month, 1) + (day - 1);
    let t = days * MS_PER_DAY + time_ms - offset_ms;
    (t.abs() <= JS_MAX_MS).then_some(t)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn eat(&mut self, b: u8) -> bool {
        if self.bytes.get(self.at) == Some(&b) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        self.eat(b).then_some(())
    }

    fn sign(&mut self) -> Option<i64> {
        if self.eat(b'+') {
            Some(1)
        } else if self.eat(b'-') {
            Some(-1)
        } else {
            None
        }
    }

    /// Exactly `n` ASCII digits.
    fn digits(&mut self, n: usize) -> Option<i64> {
        let slice = self.bytes.get(self.at..self.at + n)?;
        let mut v = 0i64;
        for &b in slice {
            if !b.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(b - b'0');
        }
        self.at += n;
        Some(v)
    }

    /// `YYYY`, or `+YYYYYY` / `-YYYYYY` (not `-000000`).
    fn year(&mut self) -> Option<i64> {
        match self.sign() {
            None => self.digits(4),
            Some(sign) => {
                let y = self.digits(6)?;
                if sign < 0 && y == 0 {
                    return None;
                }
                Some(sign * y)
            }
        }
    }

    /// One or more digits after the decimal point: the milliseconds (first three digits) and
    /// whether every digit is zero.
    fn fraction(&mut self) -> Option<(i64, bool)> {
        let start = self.at;
        let (mut millis, mut all_zero) = (0i64, true);
        while let Some(&b) = self.bytes.get(self.at) {
            if !b.is_ascii_digit() {
                break;
            }
            let n = self.at - start;
            if n < 3 {
                millis += i64::from(b - b'0') * [100, 10, 1][n];
            }
            all_zero &= b == b'0';
            self.at += 1;
        }
        (self.at > start).then_some((millis, all_zero))
    }

    fn done(&self) -> bool {
        self.at == self.bytes.len()
    }
}

/// Days from 1970-01-01 to `year-month-day` in the proleptic Gregorian calendar (the
/// well-known era-based algorithm; `month` 1–12, `day` 1–31).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value here is what `Date.parse` answers in Node 20 with `TZ=UTC`.
    #[test]
    fn iso_forms_parse_like_javascript() {
        let cases: &[(&str, i64)] = &[
            ("2026-12-26T06:21:42.915Z", 1_798_266_102_915),
            ("2099", 4_070_908_800_000),
            ("2099-01", 4_070_908_800_000),
            ("2099-01-01", 4_070_908_800_000),
            ("2099-01-01T00:00", 4_070_908_800_000),
            ("2099-01-01T00:00Z", 4_070_908_800_000),
            ("2099-01-01T00:00:00", 4_070_908_800_000),
            ("2099-01-01T00:00:00.5Z", 4_070_908_800_500),
            ("2099-01-01T00:00:00.123456Z", 4_070_908_800_123),
            ("2099-01-01T00:00:00+02:00", 4_070_901_600_000),
            ("2099-01-01T00:00:00.000-00:00", 4_070_908_800_000),
            ("2099-01-01T00:00:00.000+23:59", 4_070_822_460_000),
            ("2099-01-01T24:00:00Z", 4_070_995_200_000),
            ("2099-01-01T24:00Z", 4_070_995_200_000),
            ("2099-01-01T24:00:00.000Z", 4_070_995_200_000),
            ("2099-02-30", 4_076_092_800_000),
            ("2099-04-31", 4_081_276_800_000),
            ("2099T10:00Z", 4_070_944_800_000),
            ("2099-01T10:00:00Z", 4_070_944_800_000),
            ("+002099-01-01T00:00:00Z", 4_070_908_800_000),
            ("-000001-01-01T00:00:00Z", -62_198_755_200_000),
            ("0000", -62_167_219_200_000),
            ("+275760-09-13T00:00:00.000Z", 8_640_000_000_000_000),
            ("+275760-09-13T01:00:00.000+01:00", 8_640_000_000_000_000),
            ("-271821-04-20T00:00:00.000Z", -8_640_000_000_000_000),
            ("-271821-04-19T23:00:00.000-01:00", -8_640_000_000_000_000),
            ("2026-11-28T12:00:00", 1_795_867_200_000),
        ];
        for (text, ms) in cases {
            assert_eq!(parse_js_date(text), Some(*ms), "{text}");
        }
    }

    /// Texts JavaScript reads as `Invalid Date`.
    #[test]
    fn invalid_dates_are_none() {
        for text in [
            "",
            "soon",
            "2099-01-01T00:00:00.Z",
            "2099-01-01T00:00:00,5Z",
            "2099-01-01T00:00:00+02",
            "2099-01-01T24:00:01Z",
            "2099-01-01T24:00:00.0001Z",
            "2099-13-01",
            "2099-00-01",
            "2099-01-00",
            "2099-01-32",
            "-000000-01-01T00:00:00Z",
            "+275760-09-13T00:00:00.001Z",
            "-271821-04-19T23:59:59.999Z",
            "+275761-01-01",
            "2099-01-01T00:00:00.000+24:00",
            "2099-01-01T10:00:00.000+01:60",
            "2099-01-01T00:60Z",
            "2099-01-01T00:00:60Z",
            "2099-01-01T00Z",
            "2099-01-01T10:0:00Z",
            "2099-01-01T10:00:00.000ZZ",
            "2099-01-01T10:00:00.000Z ",
            "2099-01-01T00:00:00.000Z\r",
        ] {
            assert_eq!(parse_js_date(text), None, "{text:?}");
        }
    }

    /// Forms only V8's lenient fallback parser accepts: refused on purpose (module docs).
    #[test]
    fn non_iso_fallback_forms_are_refused() {
        for text in [
            "2099/01/01",
            "Jan 1 2099",
            "99-01-01",
            "2099-1-1",
            "02099-01-01",
            "+2099-01-01",
            "2099-01-01 00:00:00Z",
            "2099-01-01t00:00:00z",
            "2099-01-01T00:00:00+0200",
            "2099-01-01Z",
            " 2099-01-01",
            "2099-01-01 ",
        ] {
            assert_eq!(parse_js_date(text), None, "{text:?}");
        }
    }

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }
}
