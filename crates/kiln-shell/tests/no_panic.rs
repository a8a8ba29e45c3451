//! Property: no input makes the lexer panic, in any mode, with either escape character.

use kiln_shell::{KeyValueList, Lexer};
use proptest::prelude::*;

/// Characters that matter to the lexer, plus some that do not, so that random strings hit
/// the interesting paths often.
fn word() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        '$', '{', '}', ':', '-', '+', '?', '#', '%', '/', '*', '\\', '`', '\'', '"', ' ', '\t',
        'a', 'B', '_', '0', '1', '@', '!', '[', ']', '\u{feff}', '한', '\u{93e}', '\n',
    ]);
    prop_oneof![
        prop::collection::vec(special, 0..40).prop_map(|v| v.into_iter().collect()),
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics(
        input in word(),
        backtick in any::<bool>(),
        flags in any::<[bool; 4]>(),
        value in word(),
    ) {
        let mut lexer = Lexer::new(if backtick { '`' } else { '\\' });
        lexer.raw_quotes = flags[0];
        lexer.raw_escapes = flags[1];
        lexer.skip_unset_env = flags[2];
        lexer.skip_process_quotes = flags[3];
        let env = vec![format!("a={value}"), "B=".to_owned(), "_0=x y".to_owned()];
        let env = KeyValueList(&env);
        let single = lexer.process_word(&input, &env);
        let full = lexer.process_word_with_matches(&input, &env);
        let words = lexer.process_words(&input, &env);
        // The three entry points agree with each other.
        prop_assert_eq!(single.clone(), full.clone().map(|r| r.result));
        prop_assert_eq!(words, full.map(|r| r.words));
        if let Err(e) = single {
            prop_assert!(!e.to_string().is_empty());
        }
    }
}
