//! The table-test helper of this crate's unit tests.

use std::fmt::Debug;

/// Runs `f` (Go's `name`) over every `(input, expected)` row, then fails with the list of the
/// rows whose result differs, so that one run shows every broken case.
pub(crate) fn table<I, O, E>(name: &str, f: impl Fn(I) -> O, cases: &[(I, E)])
where
    I: Copy + Debug,
    O: PartialEq<E> + Debug,
    E: Debug,
{
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(input, expected)| {
            let got = f(*input);
            (got != *expected).then(|| format!("{name}({input:?}) = {got:?}, want {expected:?}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} case(s) failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
