//! The `kiln` command line: the commands and flags of `docker buildx`.
//!
//! This binary is the composition root of the client side: it parses arguments (clap), wires the
//! libraries together, renders their results and turns every error into one clear message and an
//! exit code, in one place ([`exit`]). Libraries never print; everything the user sees is written
//! here. stdout carries data only (dumps, digests); messages go to stderr.

mod annotations;
mod attrs;
mod build_flags;
mod cli;
mod commands;
mod docker_context;
mod docker_load;
mod engine_ssh;
mod engine_tls;
mod exit;
mod export_image;
mod image_attrs;
mod inputs;
mod metadata;
mod no_output;
mod oci_layout;
mod output_flags;
mod outputs;
mod remote_context;
mod source_context;
mod steps;
mod tar_context;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    exit::run(|| commands::dispatch(cli))
}
