//! The attribute syntax shared by `--output`, `--secret` and the other CSV-valued flags:
//! Go's `encoding/csv` record splitting and Go's `strconv.ParseBool`, as buildx and BuildKit
//! read them. It knows no flag and no output type.

use std::collections::BTreeMap;

/// Go's `strconv.ParseBool`, as BuildKit reads boolean attributes.
pub fn parse_bool(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("non-bool value {v:?} specified for {key}")),
    }
}

/// A boolean attribute of an exporter: absent is `default`, empty is true (as BuildKit reads
/// `push=`).
pub fn flag(
    attrs: &mut BTreeMap<String, String>,
    key: &str,
    default: bool,
) -> Result<bool, String> {
    match attrs.remove(key) {
        None => Ok(default),
        Some(v) if v.is_empty() => Ok(true),
        Some(v) => parse_bool(key, &v),
    }
}

/// Splits a CSV line as Go's `encoding/csv` does for one record: fields separated by commas,
/// double-quoted fields may contain commas and doubled quotes.
pub fn split_csv(s: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let mut in_quotes = false;
    while let Some(c) = chars.next() {
        match (c, in_quotes) {
            ('"', false) if cur.is_empty() || cur.ends_with('=') => in_quotes = true,
            ('"', true) => {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    in_quotes = false;
                }
            }
            (',', false) => fields.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    if in_quotes {
        return Err(format!("invalid output {s:?}: unterminated quote"));
    }
    fields.push(cur);
    Ok(fields)
}
