//! Go's `time.ParseDuration` and `time.Duration.String`.
//!
//! A Go `Duration` is a signed count of nanoseconds in an `i64`; both functions work on that
//! representation, so the whole range (negative durations included) round-trips as in Go.
//!
//! The accepted syntax is an optional sign, then one or more decimal numbers, each with an
//! optional fraction and followed by a unit (`ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`), as
//! in `1h30m` or `-1.5s`; `0` alone needs no unit.

use std::fmt::Write as _;

/// The units `time.ParseDuration` accepts, in nanoseconds. Both the micro sign (U+00B5) and the
/// Greek small letter mu (U+03BC) spell microseconds.
const UNITS: &[(&str, u64)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// One more than the largest positive duration: the magnitude of the most negative one.
const LIMIT: u64 = 1 << 63;

/// Why a duration was rejected; the messages are Go's, word for word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text does not follow the syntax, or the value does not fit in an `i64`.
    #[error("time: invalid duration {}", time_quote(.input))]
    Invalid {
        /// The whole input.
        input: String,
    },
    /// A number is not followed by a unit.
    #[error("time: missing unit in duration {}", time_quote(.input))]
    MissingUnit {
        /// The whole input.
        input: String,
    },
    /// A number is followed by something that is not a unit.
    #[error("time: unknown unit {} in duration {}", time_quote(.unit), time_quote(.input))]
    UnknownUnit {
        /// The text in the place of the unit.
        unit: String,
        /// The whole input.
        input: String,
    },
}

/// Go's `time.ParseDuration`: the duration `input` spells, in nanoseconds.
///
/// ```
/// use kiln_gostd::time::parse_duration;
/// assert_eq!(parse_duration("1h30m"), Ok(5_400_000_000_000));
/// assert_eq!(parse_duration("-1.5s"), Ok(-1_500_000_000));
/// assert_eq!(
///     parse_duration("10").unwrap_err().to_string(),
///     "time: missing unit in duration \"10\""
/// );
/// ```
pub fn parse_duration(input: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError::Invalid {
        input: input.to_owned(),
    };
    let mut s = input.as_bytes();
    let mut negative = false;
    if let Some((&c, rest)) = s.split_first()
        && (c == b'-' || c == b'+')
    {
        negative = c == b'-';
        s = rest;
    }
    if s == b"0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while let Some(&first) = s.first() {
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }
        // The integer part.
        let digits = leading_digits(s);
        let mut value: u64 = 0;
        for &c in &s[..digits] {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(c - b'0')))
                .filter(|v| *v <= LIMIT)
                .ok_or_else(invalid)?;
        }
        let had_integer = digits > 0;
        s = &s[digits..];
        // The fraction: digits past what fits are ignored, as in Go.
        let mut fraction: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut had_fraction = false;
        if let Some(rest) = s.strip_prefix(b".") {
            let digits = leading_digits(rest);
            let mut overflow = false;
            for &c in &rest[..digits] {
                let next = fraction
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(c - b'0')))
                    .filter(|v| *v <= LIMIT);
                match next {
                    Some(next) if !overflow => {
                        fraction = next;
                        scale *= 10.0;
                    }
                    _ => overflow = true,
                }
            }
            had_fraction = digits > 0;
            s = &rest[digits..];
        }
        if !had_integer && !had_fraction {
            return Err(invalid());
        }
        // The unit: everything up to the next number.
        let unit_len = s
            .iter()
            .take_while(|c| !(**c == b'.' || c.is_ascii_digit()))
            .count();
        if unit_len == 0 {
            return Err(DurationError::MissingUnit {
                input: input.to_owned(),
            });
        }
        let (unit_bytes, rest) = s.split_at(unit_len);
        s = rest;
        let Some(&(_, unit)) = UNITS.iter().find(|(name, _)| name.as_bytes() == unit_bytes) else {
            return Err(DurationError::UnknownUnit {
                unit: String::from_utf8_lossy(unit_bytes).into_owned(),
                input: input.to_owned(),
            });
        };
        value = value
            .checked_mul(unit)
            .filter(|v| *v <= LIMIT)
            .ok_or_else(invalid)?;
        if fraction > 0 {
            // Go computes the fraction's share in floating point and truncates it.
            let extra = (fraction as f64) * (unit as f64 / scale);
            value = value.saturating_add(extra as u64);
            if value > LIMIT {
                return Err(invalid());
            }
        }
        total = total.saturating_add(value);
        if total > LIMIT {
            return Err(invalid());
        }
    }
    if negative {
        // total <= 2^63, so its negation fits in an i64.
        return Ok(0i64.saturating_sub_unsigned(total));
    }
    i64::try_from(total).map_err(|_| invalid())
}

/// How many ASCII digits `s` starts with.
fn leading_digits(s: &[u8]) -> usize {
    s.iter().take_while(|c| c.is_ascii_digit()).count()
}

/// Go's `time.Duration.String`: `0s`, `1.5s`, `1m30s`, `2h0m0s`, `500ms`, `1.5µs`, `-3ns`.
///
/// Durations below one second use the largest of `ns`, `µs` and `ms` that keeps an integer
/// part; longer ones are written in hours, minutes and seconds, leaving out leading zero
/// units. Fractions have no trailing zeros.
///
/// ```
/// use kiln_gostd::time::format_duration;
/// assert_eq!(format_duration(90_000_000_000), "1m30s");
/// assert_eq!(format_duration(1_500_000), "1.5ms");
/// ```
pub fn format_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_owned();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let magnitude = nanos.unsigned_abs();
    if magnitude < 1_000 {
        return format!("{sign}{magnitude}ns");
    }
    if magnitude < 1_000_000 {
        return format!("{sign}{}µs", decimal(magnitude, 3));
    }
    if magnitude < 1_000_000_000 {
        return format!("{sign}{}ms", decimal(magnitude, 6));
    }
    let seconds = decimal(magnitude % 60_000_000_000, 9);
    let minutes_total = magnitude / 60_000_000_000;
    let (hours, minutes) = (minutes_total / 60, minutes_total % 60);
    let mut out = String::from(sign);
    // Writing to a String cannot fail.
    let _ = match (hours, minutes_total) {
        (0, 0) => write!(out, "{seconds}s"),
        (0, _) => write!(out, "{minutes}m{seconds}s"),
        _ => write!(out, "{hours}h{minutes}m{seconds}s"),
    };
    out
}

/// `value / 10^places` in decimal, with the fraction's trailing zeros (and a bare point) left
/// out.
fn decimal(value: u64, places: u32) -> String {
    let scale = 10u64.pow(places);
    let (whole, fraction) = (value / scale, value % scale);
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:0width$}", width = places as usize);
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// The `quote` of Go's `time` package, used in its error messages: printable ASCII as
/// `strconv.Quote` writes it, but every byte of a control or non-ASCII character as `\xNN`.
fn time_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        } else if c == '\u{7f}' {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::table;

    /// The value, or the error message.
    fn parse(input: &str) -> Result<i64, String> {
        parse_duration(input).map_err(|e| e.to_string())
    }

    /// Go's `parseDurationTests` and `parseDurationErrorTests`, and a few more.
    #[test]
    fn parses_like_go() {
        let ok = |nanos: i64| -> Result<i64, String> { Ok(nanos) };
        let err = |message: &str| -> Result<i64, String> { Err(message.to_owned()) };
        table(
            "parse_duration",
            parse,
            &[
                ("0", ok(0)),
                ("-0", ok(0)),
                ("+0", ok(0)),
                ("1s", ok(1_000_000_000)),
                ("+5s", ok(5_000_000_000)),
                ("1h30m", ok(5_400_000_000_000)),
                ("1.5s", ok(1_500_000_000)),
                ("1.s", ok(1_000_000_000)),
                (".5ms", ok(500_000)),
                ("-2us", ok(-2_000)),
                ("3µs", ok(3_000)),
                ("3μs", ok(3_000)),
                ("100ns", ok(100)),
                ("1h1m1s1ms", ok(3_661_001_000_000)),
                ("0.3333333333333333333h", ok(1_200_000_000_000)),
                ("9223372036854775807ns", ok(i64::MAX)),
                ("-9223372036854775808ns", ok(i64::MIN)),
                ("9223372036.854775807s", ok(i64::MAX)),
                ("", err("time: invalid duration \"\"")),
                ("-", err("time: invalid duration \"-\"")),
                ("abc", err("time: invalid duration \"abc\"")),
                ("10", err("time: missing unit in duration \"10\"")),
                ("10x", err("time: unknown unit \"x\" in duration \"10x\"")),
                (".s", err("time: invalid duration \".s\"")),
                ("1s.", err("time: invalid duration \"1s.\"")),
                (
                    "9223372036854775808ns",
                    err("time: invalid duration \"9223372036854775808ns\""),
                ),
                ("3000000h", err("time: invalid duration \"3000000h\"")),
                (
                    "3é",
                    err("time: unknown unit \"\\xc3\\xa9\" in duration \"3\\xc3\\xa9\""),
                ),
                ("\"1\"s", err("time: invalid duration \"\\\"1\\\"s\"")),
                (
                    "1\ts",
                    err("time: unknown unit \"\\x09s\" in duration \"1\\x09s\""),
                ),
            ],
        );
    }

    /// Go's `durationTests` from `time/time_test.go`, and a few more.
    #[test]
    fn formats_like_go() {
        table(
            "format_duration",
            format_duration,
            &[
                (0, "0s"),
                (1, "1ns"),
                (1_100, "1.1µs"),
                (2_200_000, "2.2ms"),
                (3_300_000_000, "3.3s"),
                (-(4 * 60_000_000_000 + 5_000_000_000), "-4m5s"),
                (4 * 60_000_000_000 + 5_001_000_000, "4m5.001s"),
                (
                    5 * 3_600_000_000_000 + 6 * 60_000_000_000 + 7_001_000_000,
                    "5h6m7.001s",
                ),
                (8 * 60_000_000_000 + 1, "8m0.000000001s"),
                (i64::MAX, "2562047h47m16.854775807s"),
                (i64::MIN, "-2562047h47m16.854775808s"),
                (30_000_000_000, "30s"),
                (90_000_000_000, "1m30s"),
                (7_200_000_000_000, "2h0m0s"),
                (500_000_000, "500ms"),
                (1_000, "1µs"),
                (3_661_000_000_000, "1h1m1s"),
                (-999, "-999ns"),
                (1_500, "1.5µs"),
                (1_500_000_000, "1.5s"),
            ],
        );
    }

    /// Whatever `format_duration` prints, `parse_duration` reads back.
    #[test]
    fn format_and_parse_round_trip() {
        let round_trip = |nanos: i64| parse_duration(&format_duration(nanos));
        table(
            "parse_duration(format_duration(_))",
            round_trip,
            &[
                1,
                999,
                1_500,
                2_000_000_001,
                3_600_000_000_000,
                -42,
                i64::MAX,
                i64::MIN,
            ]
            .map(|nanos| (nanos, Ok(nanos))),
        );
    }
}
