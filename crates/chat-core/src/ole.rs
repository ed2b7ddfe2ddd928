//! OLE Automation dates: fractional days since 1899-12-30 00:00 UTC, the unit of
//! `Chat.timestamp` in the reference client.
//!
//! As .NET computes them (`DateTime.ToOADate` / `FromOADate`): a time is taken to the whole
//! millisecond (truncated) and divided by 86,400,000; a date is read back rounded to the nearest
//! millisecond. So our timestamps are the same doubles the reference client would send for the
//! same instant, and a timestamp read back and written again is the same double.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Days from 1899-12-30 to 1970-01-01.
const UNIX_EPOCH_OLE: f64 = 25_569.0;
const MILLIS_PER_DAY: u64 = 86_400_000;
/// Milliseconds from 1899-12-30 to 1970-01-01.
const UNIX_EPOCH_OLE_MILLIS: u64 = 25_569 * MILLIS_PER_DAY;

/// The OLE date of `t` (times before 1970 are not produced by this system and give the epoch).
pub fn to_ole(t: SystemTime) -> f64 {
    let millis = t
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2))
        .unwrap_or(0);
    // Exact in f64 up to 2^53 ms (year 287,000).
    (millis.saturating_add(UNIX_EPOCH_OLE_MILLIS)) as f64 / MILLIS_PER_DAY as f64
}

/// The time of an OLE date, if it is a finite date between 1970 and the year 9999.
pub fn from_ole(days: f64) -> Option<SystemTime> {
    // 2,958,465 is 9999-12-31, the largest OLE date.
    if !days.is_finite() || !(UNIX_EPOCH_OLE..=2_958_465.999_999).contains(&days) {
        return None;
    }
    // Nearest millisecond, as .NET's FromOADate; the range check keeps this within u64.
    let millis = (days * MILLIS_PER_DAY as f64 + 0.5).floor() as u64;
    UNIX_EPOCH.checked_add(Duration::from_millis(
        millis.saturating_sub(UNIX_EPOCH_OLE_MILLIS),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(to_ole(UNIX_EPOCH), 25_569.0);
        // 2025-01-01T12:00:00Z = 1,735,732,800 s since the epoch = OLE 45,658.5.
        let noon = UNIX_EPOCH + Duration::from_secs(1_735_732_800);
        assert!((to_ole(noon) - 45_658.5).abs() < 1e-9);
        let back = from_ole(45_658.5).expect("date");
        let diff = back.duration_since(noon).unwrap_or_else(|e| e.duration());
        assert!(diff < Duration::from_millis(1));
    }

    #[test]
    fn round_trips_to_the_millisecond() {
        let t = UNIX_EPOCH + Duration::from_millis(1_764_150_000_123);
        let back = from_ole(to_ole(t)).expect("date");
        let diff = back.duration_since(t).unwrap_or_else(|e| e.duration());
        assert!(diff < Duration::from_millis(1), "{diff:?}");
    }

    #[test]
    fn as_dotnet_computes_them() {
        // 2025-11-26T09:40:00.123Z: 3,973,311,600,123 ms after 1899-12-30, / 86,400,000.
        let t = UNIX_EPOCH + Duration::from_micros(1_764_150_000_123_900);
        assert_eq!(
            to_ole(t),
            3_973_311_600_123.0 / 86_400_000.0,
            "sub-ms truncated"
        );
        let back = from_ole(to_ole(t)).expect("date");
        assert_eq!(back, UNIX_EPOCH + Duration::from_millis(1_764_150_000_123));
        assert_eq!(
            to_ole(back),
            to_ole(t),
            "read back and written again: the same double"
        );
    }

    #[test]
    fn nonsense_is_refused() {
        for bad in [f64::NAN, f64::INFINITY, -1.0, 0.0, 25_568.0, 3_000_000.0] {
            assert_eq!(from_ole(bad), None, "{bad}");
        }
    }
}
