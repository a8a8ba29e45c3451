//! One function per command.

mod build;
pub(crate) mod debug;
mod du;
mod images;
mod prune;

use crate::cli::{Cli, Command, DebugCommand};

/// Runs the command the user asked for.
pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Build(args) => build::build(&args),
        Command::Debug(DebugCommand::ParseDockerfile(args)) => debug::parse_dockerfile(&args),
        Command::Debug(DebugCommand::DumpLlb(args)) => debug::dump_llb(&args),
        Command::Du(args) => du::du(&args),
        Command::Prune(args) => prune::prune(&args),
        Command::Images(args) => images::images(&args),
        Command::Version => {
            use std::io::Write;
            writeln!(
                std::io::stdout().lock(),
                "kiln {}",
                env!("CARGO_PKG_VERSION")
            )?;
            Ok(())
        }
    }
}
