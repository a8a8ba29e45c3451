//! Parsers never panic, whatever the input: random strings built from the characters that
//! matter to each grammar, and arbitrary Unicode.

use kiln_oci::{Digest, Image, Matcher, Platform, Reference};
use proptest::prelude::*;

/// Strings made mostly of the characters the grammars give meaning to.
fn grammar_soup() -> impl Strategy<Value = String> {
    proptest::string::string_regex(r"[a-zA-Z0-9/:@._+%()\-\[\]*, ]{0,80}").expect("valid regex")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn platform_parsing_never_panics(input in prop_oneof![grammar_soup(), any::<String>()]) {
        if let Ok(platform) = Platform::parse(&input) {
            // The `os/arch[/variant]` form parses back to the same OS, architecture and variant.
            // (The OS options are left out: containerd's `FormatAll` does not encode every
            // character, so a decoded `%20` does not survive a round trip, upstream either.)
            // Components `.` and `..` are accepted by the parser (containerd's specifier
            // pattern allows them) but `Format` joins with Go's `path.Join`, which cleans them
            // away, so such platforms do not round-trip, upstream either (found by this test in
            // CI: `_/.`).
            let cleaned_away = [&platform.os, &platform.architecture, &platform.variant]
                .iter()
                .any(|c| c.as_str() == "." || c.as_str() == "..");
            if !cleaned_away {
                let reparsed = Platform::parse(&platform.to_string()).map(|p| p.to_string());
                prop_assert_eq!(reparsed.ok(), Some(platform.to_string()));
            }
            let _ = platform.format_all();
            let matcher = Matcher::only(&platform);
            prop_assert!(matcher.matches(&platform));
        }
        let _ = Platform::parse_unnormalized(&input);
        let _ = Platform::parse_list(&input);
    }

    #[test]
    fn reference_parsing_never_panics(input in prop_oneof![grammar_soup(), any::<String>()]) {
        if let Ok(reference) = Reference::parse(&input) {
            // The full form is canonical: it parses back to the same reference.
            prop_assert_eq!(Reference::parse(&reference.to_string()).ok(), Some(reference.clone()));
            let _ = reference.familiar();
        }
        let _ = Reference::parse_raw(&input);
        let _ = Reference::parse_docker_ref(&input);
        let _ = Digest::parse(&input);
    }

    #[test]
    fn image_reading_never_panics(input in any::<String>()) {
        let _ = serde_json::from_str::<Image>(&input);
    }
}
