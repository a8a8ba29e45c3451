//! "Did you mean ...?" suggestions, the way BuildKit's `util/suggest` makes them.
//!
//! A candidate is suggested when its Levenshtein distance to the value is below 3; the
//! closest candidate wins, and among equally close candidates the first one in the given
//! order. (BuildKit iterates Go maps here, so its choice between equally close candidates is
//! random; kiln callers pass candidates in a fixed order to stay deterministic.)

/// Finds the candidate closest to `value` (distance below 3), or `None`.
///
/// When a candidate equals `value` exactly, there is nothing to suggest and `None` is
/// returned. With `case_sensitive` false, the comparison ignores case and the suggestion is
/// returned lower-cased when `value` is all lower case, upper-cased when `value` is all upper
/// case, and as written otherwise (lower-cased, as BuildKit does).
pub fn search(value: &str, candidates: &[&str], case_sensitive: bool) -> Option<String> {
    let value_cmp = if case_sensitive {
        value.to_string()
    } else {
        value.to_lowercase()
    };
    let mut best: Option<String> = None;
    let mut min_distance = 3;
    for candidate in candidates {
        let candidate_cmp = if case_sensitive {
            (*candidate).to_string()
        } else {
            candidate.to_lowercase()
        };
        if candidate_cmp == value_cmp {
            return None;
        }
        let distance = levenshtein(&value_cmp, &candidate_cmp);
        if distance < min_distance {
            min_distance = distance;
            best = Some(if case_sensitive {
                candidate_cmp
            } else {
                match_case(&candidate_cmp, value)
            });
        }
    }
    best
}

/// Appends ` (did you mean X?)` to `message` when [`search`] finds a suggestion.
pub fn wrap(message: String, value: &str, candidates: &[&str], case_sensitive: bool) -> String {
    match search(value, candidates, case_sensitive) {
        Some(found) => format!("{message} (did you mean {found}?)"),
        None => message,
    }
}

fn match_case(candidate: &str, original: &str) -> String {
    if original == original.to_lowercase() {
        candidate.to_lowercase()
    } else if original == original.to_uppercase() {
        candidate.to_uppercase()
    } else {
        candidate.to_string()
    }
}

/// The Levenshtein distance between two strings, counted in characters (unit costs).
pub(crate) fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            let insertion = current[j] + 1;
            let deletion = previous[j + 1] + 1;
            current[j + 1] = substitution.min(insertion).min(deletion);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(value: &str, candidates: &[&str], case_sensitive: bool, expected: Option<&str>) {
        assert_eq!(
            search(value, candidates, case_sensitive).as_deref(),
            expected,
            "{value}"
        );
    }

    #[test]
    fn suggestions() {
        let instructions = ["ADD", "ARG", "CMD", "COPY", "FROM", "RUN"];
        check("FNOO", &instructions, false, Some("FROM"));
        check("fnoo", &instructions, false, Some("from"));
        check("Fnoo", &instructions, false, Some("from"));
        check("BADCMD", &instructions, false, None);
        check("copy", &instructions, false, None);
        check("lnk", &["link", "chown"], true, Some("link"));
        check(
            "DIR_ASSET",
            &["DIR_BINARIES", "DIR_ASSETS", "DIR_CONFIG"],
            true,
            Some("DIR_ASSETS"),
        );
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
    }
}
