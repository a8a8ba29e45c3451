//! Number formatting shared by the displays, in the look of Go's `fmt` and of the `units`
//! package BuildKit uses.

use std::time::SystemTime;

/// Seconds from `from` to `to`, negative when `to` is earlier.
pub(crate) fn secs_between(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// A byte count as BuildKit prints it (`%.2f` of `units.Bytes`): `512B`, `1.05MB`, `3.20GB`.
/// Decimal units: kB, MB, GB, TB, PB, EB.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut base: u64 = 1;
    let mut unit = 0;
    while unit + 1 < UNITS.len() {
        let Some(next) = base.checked_mul(1000) else {
            break;
        };
        if n < next {
            break;
        }
        base = next;
        unit += 1;
    }
    match UNITS.get(unit) {
        Some(name) if unit > 0 => format!("{:.2}{name}", n as f64 / base as f64),
        _ => format!("{n}B"),
    }
}

/// The time offset of a log line: three decimals under 10 s, two under 100 s, one above.
pub(crate) fn log_offset(secs: f64) -> String {
    if secs < 10.0 {
        format!("{secs:.3}")
    } else if secs < 100.0 {
        format!("{secs:.2}")
    } else {
        format!("{secs:.1}")
    }
}

/// Nanoseconds since the Unix epoch, negative before it; used to key intervals.
pub(crate) fn unix_nanos(t: SystemTime) -> i128 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// A time as Go's `time.Time` marshals to JSON (RFC 3339 with nanoseconds, trailing zeros
/// of the fraction dropped), in UTC.
pub(crate) fn rfc3339_nano(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    let base = dt.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = chrono::Timelike::nanosecond(&dt) % 1_000_000_000;
    if nanos == 0 {
        format!("{base}Z")
    } else {
        let frac = format!("{nanos:09}");
        format!("{base}.{}Z", frac.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bytes_like_units() {
        let cases = [
            (0, "0B"),
            (2, "2B"),
            (999, "999B"),
            (1000, "1.00kB"),
            (1150, "1.15kB"),
            (1_050_000, "1.05MB"),
            (3_200_000, "3.20MB"),
            (13_160_000, "13.16MB"),
            (4_500_000_000, "4.50GB"),
            (u64::MAX, "18.45EB"),
        ];
        let failures: Vec<String> = cases
            .iter()
            .filter(|(n, want)| bytes(*n) != *want)
            .map(|(n, want)| format!("{n}: got {}, want {want}", bytes(*n)))
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn log_offsets_and_times() {
        assert_eq!(log_offset(0.1234), "0.123");
        assert_eq!(log_offset(12.345), "12.35");
        assert_eq!(log_offset(246.44), "246.4");
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 120_000_000);
        assert_eq!(rfc3339_nano(t), "2023-11-14T22:13:20.12Z");
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 0);
        assert_eq!(rfc3339_nano(t), "2023-11-14T22:13:20Z");
        assert_eq!(format!("{:.1}", 0.25f64), "0.2");
    }
}
