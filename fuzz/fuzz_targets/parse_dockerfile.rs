//! Fuzzes the Dockerfile parser: any input must parse or fail cleanly, never panic, and a
//! parsed file must dump without panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(df) = kiln_dockerfile_parser::parse(data) {
        let _ = kiln_dockerfile_parser::dump(&df);
    }
    let _ = kiln_dockerfile_parser::detect_syntax(data);
    let _ = kiln_dockerfile_parser::parse_directive_check(data);
});
