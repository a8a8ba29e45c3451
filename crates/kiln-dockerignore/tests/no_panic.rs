//! Property: no pattern list, path or ignore file makes the crate panic, and the two
//! matching entry points agree.

use kiln_dockerignore::{MatchInfo, PatternMatcher, clean_path, read_ignore_file};
use proptest::prelude::*;

/// Strings built mostly from the characters that matter to patterns.
fn text() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        '*', '?', '[', ']', '^', '-', '\\', '/', '!', '.', ' ', 'a', 'b', 'Z', '0', '(', '$',
        '\u{feff}', '☺', '#', '\n', '\r',
    ]);
    prop_oneof![
        prop::collection::vec(special, 0..24).prop_map(|v| v.into_iter().collect()),
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics(patterns in prop::collection::vec(text(), 0..4), path in text()) {
        let _ = read_ignore_file(patterns.join("\n").as_bytes());
        let Ok(m) = PatternMatcher::new(&patterns) else {
            return Ok(());
        };
        let direct = m.matches_or_parent_matches(&path);
        let (no_info, _) = match m.matches_using_parent_results(&path, &MatchInfo::default()) {
            Ok((b, info)) => (Ok(b), Some(info)),
            Err(e) => (Err(e), None),
        };
        prop_assert_eq!(direct.is_ok(), no_info.is_ok());
        if let (Ok(a), Ok(b)) = (&direct, &no_info) {
            prop_assert_eq!(a, b);
        }
        if clean_path(&path) == "." {
            prop_assert_eq!(direct, Ok(false));
        }
    }

    #[test]
    fn read_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = read_ignore_file(&bytes);
    }
}
