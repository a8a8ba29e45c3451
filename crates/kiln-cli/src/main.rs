//! The `kiln` command line. (Work in progress.)

fn main() {}
