//! ISO 8601 UTC text for MXAccess Time values, total for any `SystemTime`.
//!
//! System Platform reports a Time attribute that was never set as the FILETIME epoch,
//! 1601-01-01T00:00:00Z: times before 1970 are ordinary values, so the formatting here
//! works on signed nanoseconds from the Unix epoch (proleptic Gregorian calendar) and
//! never fails. Years outside 0000-9999 are written with a sign (`+12345-...`,
//! `-0001-...`), as ISO 8601 expanded years are.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const NANOS_PER_SEC: i128 = 1_000_000_000;
const SECS_PER_DAY: i128 = 86_400;

/// The earliest Time a put may write: the FILETIME epoch, 1601-01-01T00:00:00Z.
pub const EARLIEST_PUT: &str = "1601-01-01T00:00:00Z";
/// The latest Time a put may write (four-digit years).
pub const LATEST_PUT: &str = "9999-12-31T23:59:59.999999999Z";

/// Nanoseconds from 1970-01-01T00:00:00Z, negative before it.
pub fn unix_nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
        Err(e) => i128::try_from(e.duration().as_nanos()).map_or(i128::MIN, |n| -n),
    }
}

/// The `SystemTime` `nanos` from the Unix epoch, when the platform can hold it.
pub fn from_unix_nanos(nanos: i128) -> Option<SystemTime> {
    let secs = u64::try_from(nanos.unsigned_abs() / NANOS_PER_SEC.unsigned_abs()).ok()?;
    let sub = u32::try_from(nanos.unsigned_abs() % NANOS_PER_SEC.unsigned_abs()).ok()?;
    let d = Duration::new(secs, sub);
    if nanos >= 0 {
        UNIX_EPOCH.checked_add(d)
    } else {
        UNIX_EPOCH.checked_sub(d)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `days` after 1970-01-01: (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both in range by construction: day 1..=31, month 1..=12.
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// ISO 8601 UTC with milliseconds, e.g. `2026-11-21T08:15:00.250Z` or
/// `1601-01-01T00:00:00.000Z`; truncated to the millisecond (towards the past).
pub fn iso8601(t: SystemTime) -> String {
    let millis = unix_nanos(t).div_euclid(1_000_000);
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000);
    let days = secs.div_euclid(SECS_PER_DAY);
    let sod = secs.rem_euclid(SECS_PER_DAY);
    // A SystemTime holds at most ~2^64 s: ~2e14 days, well inside i64.
    let (year, month, day) = civil_from_days(i64::try_from(days).unwrap_or(0));
    let year = match year {
        0..=9999 => format!("{year:04}"),
        y if y > 9999 => format!("+{y}"),
        y => format!("-{:04}", y.unsigned_abs()),
    };
    format!(
        "{year}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction][Z|+HH:MM|-HH:MM]` (a space may replace `T`;
/// no zone means UTC) into nanoseconds from the Unix epoch. Years have four digits.
pub fn parse_unix_nanos(text: &str) -> Result<i128, String> {
    let bad = || format!("'{}' is not an ISO 8601 time", abbreviate(text, 40));
    let b = text.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let digits = b.get(r)?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    };
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if b.len() < 19 || !sep(4, b"-") || !sep(7, b"-") || !sep(10, b"Tt ") {
        return Err(bad());
    }
    if !sep(13, b":") || !sep(16, b":") {
        return Err(bad());
    }
    let (Some(year), Some(month), Some(day), Some(hour), Some(min), Some(sec)) = (
        num(0..4),
        num(5..7),
        num(8..10),
        num(11..13),
        num(14..16),
        num(17..19),
    ) else {
        return Err(bad());
    };
    let year = i64::from(year);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || min > 59
        || sec > 59
    {
        return Err(bad());
    }
    let mut i = 19;
    let mut frac: i128 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while let Some(d) = b.get(i).filter(|d| d.is_ascii_digit()) {
            if i - start < 9 {
                frac = frac * 10 + i128::from(d - b'0');
            }
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        for _ in (i - start)..9 {
            frac *= 10;
        }
    }
    let offset_secs: i128 = match b.get(i..) {
        Some([] | [b'Z' | b'z']) => 0,
        Some([sign @ (b'+' | b'-'), _, _, b':', _, _]) => {
            let (Some(h), Some(m)) = (num(i + 1..i + 3), num(i + 4..i + 6)) else {
                return Err(bad());
            };
            if h > 23 || m > 59 {
                return Err(bad());
            }
            let s = i128::from(h * 3600 + m * 60);
            if *sign == b'+' {
                s
            } else {
                -s
            }
        }
        _ => return Err(bad()),
    };
    let days = i128::from(days_from_civil(year, month, day));
    let secs = days * SECS_PER_DAY + i128::from(hour * 3600 + min * 60 + sec) - offset_secs;
    Ok(secs * NANOS_PER_SEC + frac)
}

/// At most `max` characters of `text`, with `...` and the full length when cut.
pub fn abbreviate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}... ({} bytes)", &text[..cut], text.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_before_1970_and_far_away_format() {
        // Issue 10, input 2: this panicked ("all times should be after the epoch").
        let filetime_epoch = UNIX_EPOCH - Duration::from_secs(11_644_473_600);
        assert_eq!(iso8601(filetime_epoch), "1601-01-01T00:00:00.000Z");
        assert_eq!(
            iso8601(UNIX_EPOCH - Duration::from_millis(500)),
            "1969-12-31T23:59:59.500Z"
        );
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            iso8601(UNIX_EPOCH + Duration::from_millis(1_700_000_000_250)),
            "2023-11-14T22:13:20.250Z"
        );
        assert_eq!(
            iso8601(UNIX_EPOCH + Duration::from_secs(253_402_300_800)),
            "+10000-01-01T00:00:00.000Z"
        );
        assert_eq!(
            iso8601(UNIX_EPOCH - Duration::from_secs(62_167_219_200 + 86_400)),
            "-0001-12-31T00:00:00.000Z"
        );
        // The extremes a SystemTime holds.
        for secs in [i64::MAX as u64, u64::MAX / 2] {
            if let Some(t) = UNIX_EPOCH.checked_add(Duration::from_secs(secs)) {
                assert!(iso8601(t).starts_with('+'));
            }
            if let Some(t) = UNIX_EPOCH.checked_sub(Duration::from_secs(secs)) {
                assert!(iso8601(t).starts_with('-'));
            }
        }
    }

    #[test]
    fn parsing_takes_zones_fractions_and_old_dates() {
        let p = |s| parse_unix_nanos(s).unwrap();
        assert_eq!(p("1970-01-01T00:00:00Z"), 0);
        assert_eq!(p("1601-01-01T00:00:00Z"), -11_644_473_600 * NANOS_PER_SEC);
        assert_eq!(p("1970-01-01 01:00:00.5+01:00"), NANOS_PER_SEC / 2);
        assert_eq!(p("2023-11-14T22:13:20.250"), 1_700_000_000_250_000_000);
        assert_eq!(
            p("2024-02-29T00:00:00.123456789123Z") % NANOS_PER_SEC,
            123_456_789
        );
        for bad in [
            "",
            "2023-02-29T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-01-01T24:00:00Z",
            "2023-01-01T00:00:00X",
            "2023-01-01T00:00:00.Z",
            "+2023-01-01T00:00:00Z",
            "２０２３-01-01T00:00:00Z",
        ] {
            assert!(parse_unix_nanos(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formatting_and_parsing_agree_to_the_millisecond() {
        for secs in [-11_644_473_600i128, -1, 0, 1_700_000_000, 253_402_300_799] {
            let nanos = secs * NANOS_PER_SEC + 250_000_000;
            let t = from_unix_nanos(nanos).unwrap();
            assert_eq!(parse_unix_nanos(&iso8601(t)).unwrap(), nanos);
        }
    }
}
