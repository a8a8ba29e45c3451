//! OCI image types kiln needs everywhere: platforms, image references and image configs.
//!
//! (Work in progress: see the issue notes.)

mod platform;

pub use platform::Platform;
