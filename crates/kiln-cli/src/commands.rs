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

/// The state directory a command works on (`--root`, else the default), locked for it, and
/// its storage: for the commands that read or change the cache without building.
fn open_storage(
    root: Option<&std::path::Path>,
) -> anyhow::Result<(kiln_worker::StateLock, kiln_worker::Storage)> {
    use anyhow::Context as _;
    let root = root.map_or_else(build::default_root, std::path::Path::to_path_buf);
    let lock = kiln_worker::StateLock::acquire(&root, |_| {})
        .with_context(|| format!("locking {}", root.display()))?;
    let storage = kiln_worker::Storage::open(&root)?;
    Ok((lock, storage))
}
