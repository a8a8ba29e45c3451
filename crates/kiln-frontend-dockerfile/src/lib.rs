//! The Dockerfile frontend: Dockerfile to LLB and image config. (Work in progress.)
