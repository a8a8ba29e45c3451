//! Times as Go writes them in image documents.

use std::time::SystemTime;

/// A time in RFC 3339 in UTC, as Go formats it: with `nanos`, Go's `RFC3339Nano` (what
/// `time.Time` marshals to in JSON: the fraction without trailing zeros, none when zero),
/// else `RFC3339` (whole seconds, as BuildKit's `org.opencontainers.image.created`).
pub fn format_time(t: SystemTime, nanos: bool) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let frac = if nanos { d.subsec_nanos() } else { 0 };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, day) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if frac != 0 {
        let digits = format!("{frac:09}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_times_as_go_does() {
        let check = |secs: u64, nanos: u32, want: &str| {
            let t = SystemTime::UNIX_EPOCH + Duration::new(secs, nanos);
            assert_eq!(format_time(t, true), want, "{secs}.{nanos}");
        };
        check(0, 0, "1970-01-01T00:00:00Z");
        check(951_782_400, 0, "2000-02-29T00:00:00Z");
        check(1_700_000_000, 120_000_000, "2023-11-14T22:13:20.12Z");
        check(4_102_444_799, 999_999_999, "2099-12-31T23:59:59.999999999Z");
    }

    #[test]
    fn formats_whole_seconds() {
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 120_000_000);
        assert_eq!(format_time(t, false), "2023-11-14T22:13:20Z");
    }
}
