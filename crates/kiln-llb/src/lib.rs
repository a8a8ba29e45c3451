//! LLB, BuildKit's build graph, as plain Rust data with a builder and the wire encoding. (Work in progress.)
