//! Go's `time.ParseDuration`, which BuildKit uses for the `HEALTHCHECK` intervals.
//!
//! The accepted syntax is a sign, then one or more decimal numbers (with an optional
//! fraction) each followed by a unit (`ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`), as in
//! `1h30m` or `-1.5s`; `0` alone needs no unit. Error messages are Go's.

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

const LIMIT: u64 = 1 << 63;

/// Parses a Go duration string into signed nanoseconds.
pub(crate) fn parse_go_duration(input: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", go_time_quote(input));
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
        let mut value: u64 = 0;
        let mut i = 0;
        while let Some(&c) = s.get(i) {
            if !c.is_ascii_digit() {
                break;
            }
            if value > LIMIT / 10 {
                return Err(invalid());
            }
            value = value * 10 + u64::from(c - b'0');
            if value > LIMIT {
                return Err(invalid());
            }
            i += 1;
        }
        let had_integer = i > 0;
        s = &s[i..];
        // The fraction.
        let mut fraction: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut had_fraction = false;
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let mut overflow = false;
            let mut j = 0;
            while let Some(&c) = s.get(j) {
                if !c.is_ascii_digit() {
                    break;
                }
                j += 1;
                if overflow {
                    continue;
                }
                if fraction > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let next = fraction * 10 + u64::from(c - b'0');
                if next > LIMIT {
                    overflow = true;
                    continue;
                }
                fraction = next;
                scale *= 10.0;
            }
            had_fraction = j > 0;
            s = &s[j..];
        }
        if !had_integer && !had_fraction {
            return Err(invalid());
        }
        // The unit.
        let unit_len = s
            .iter()
            .take_while(|c| !(**c == b'.' || c.is_ascii_digit()))
            .count();
        if unit_len == 0 {
            return Err(format!(
                "time: missing unit in duration {}",
                go_time_quote(input)
            ));
        }
        let unit_bytes = &s[..unit_len];
        s = &s[unit_len..];
        let unit = UNITS
            .iter()
            .find(|(name, _)| name.as_bytes() == unit_bytes)
            .map(|u| u.1);
        let Some(unit) = unit else {
            let unit_text = String::from_utf8_lossy(unit_bytes);
            return Err(format!(
                "time: unknown unit {} in duration {}",
                go_time_quote(&unit_text),
                go_time_quote(input)
            ));
        };
        if value > LIMIT / unit {
            return Err(invalid());
        }
        value *= unit;
        if fraction > 0 {
            // Go converts the float product to an integer, truncating.
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
        // total <= 2^63, so the negation fits in an i64.
        return Ok(if total == LIMIT {
            i64::MIN
        } else {
            -(total as i64)
        });
    }
    i64::try_from(total).map_err(|_| invalid())
}

/// The `quote` of Go's `time` package: like `strconv.Quote` for printable ASCII, and `\x..`
/// bytes for everything else.
fn go_time_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if (c as u32) >= 0x80 || (c as u32) < 0x20 {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        } else {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::parse_go_duration;

    fn check(input: &str, expected: Result<i64, &str>) {
        assert_eq!(
            parse_go_duration(input),
            expected.map_err(str::to_string),
            "{input:?}"
        );
    }

    #[test]
    fn durations() {
        check("0", Ok(0));
        check("-0", Ok(0));
        check("1s", Ok(1_000_000_000));
        check("1h30m", Ok(5_400_000_000_000));
        check("1.5s", Ok(1_500_000_000));
        check(".5ms", Ok(500_000));
        check("-2us", Ok(-2_000));
        check("3µs", Ok(3_000));
        check("100ns", Ok(100));
        check("9223372036854775807ns", Ok(i64::MAX));
        check("", Err("time: invalid duration \"\""));
        check("abc", Err("time: invalid duration \"abc\""));
        check("10", Err("time: missing unit in duration \"10\""));
        check("10x", Err("time: unknown unit \"x\" in duration \"10x\""));
        check(".s", Err("time: invalid duration \".s\""));
        check(
            "9223372036854775808ns",
            Err("time: invalid duration \"9223372036854775808ns\""),
        );
        check(
            "3é",
            Err("time: unknown unit \"\\xc3\\xa9\" in duration \"3\\xc3\\xa9\""),
        );
    }
}
