//! OLE Automation dates: fractional days since 1899-12-30 00:00 UTC, the unit of
//! `Chat.timestamp` in the reference client.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Days from 1899-12-30 to 1970-01-01.
const UNIX_EPOCH_OLE: f64 = 25_569.0;
const SECONDS_PER_DAY: f64 = 86_400.0;

/// The OLE date of `t` (times before 1970 are not produced by this system and give the epoch).
pub fn to_ole(t: SystemTime) -> f64 {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    UNIX_EPOCH_OLE + secs / SECONDS_PER_DAY
}

/// The time of an OLE date, if it is a finite date between 1970 and the year 9999.
pub fn from_ole(days: f64) -> Option<SystemTime> {
    // 2,958,465 is 9999-12-31, the largest OLE date.
    if !days.is_finite() || !(UNIX_EPOCH_OLE..=2_958_465.999_999).contains(&days) {
        return None;
    }
    let secs = (days - UNIX_EPOCH_OLE) * SECONDS_PER_DAY;
    UNIX_EPOCH.checked_add(Duration::from_secs_f64(secs))
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
    fn nonsense_is_refused() {
        for bad in [f64::NAN, f64::INFINITY, -1.0, 0.0, 25_568.0, 3_000_000.0] {
            assert_eq!(from_ole(bad), None, "{bad}");
        }
    }
}
