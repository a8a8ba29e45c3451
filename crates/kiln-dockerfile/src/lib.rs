//! Typed Dockerfile instructions and build checks. (Work in progress.)
