//! Shell-word expansion and splitting for Dockerfile instructions. (Work in progress.)
