//! `RUN`: the exec op, its mounts, heredocs, network and security modes.

use kiln_dockerfile::RunCommand;

use crate::convert::Ctx;
use crate::error::ConvertError;
use crate::stage::StageState;

impl Ctx<'_> {
    /// Dispatches a `RUN` (`sources` holds the state of each `--mount`).
    pub(crate) fn dispatch_run(
        &mut self,
        _ds: &mut StageState,
        c: &RunCommand,
        _sources: &[usize],
    ) -> Result<(), ConvertError> {
        Err(ConvertError::at(c.lines, "RUN: not implemented yet"))
    }
}
