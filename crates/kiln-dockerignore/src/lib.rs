//! Docker .dockerignore reading and matching. (Work in progress.)
