//! `COPY` and `ADD`: file ops from the build context, other stages, images, URLs, git
//! repositories and heredocs.

use kiln_dockerfile::Command;

use crate::convert::Ctx;
use crate::error::ConvertError;
use crate::stage::StageState;

impl Ctx<'_> {
    /// Dispatches a `COPY` or `ADD` (`sources` holds the `--from` state, if any).
    pub(crate) fn dispatch_copy(
        &mut self,
        _ds: &mut StageState,
        command: &Command,
        _sources: &[usize],
    ) -> Result<(), ConvertError> {
        Err(ConvertError::at(command.lines(), "COPY: not implemented yet"))
    }
}
