//! Typed Dockerfile instructions and BuildKit's build checks.
//!
//! This crate is the second stage of the Dockerfile frontend. It takes the syntax tree of
//! `kiln-dockerfile-parser` and turns it into build stages ([`Stage`]) holding typed
//! instructions ([`Command`]), with every flag BuildKit accepts parsed and validated
//! (`COPY --from`, `RUN --mount`, `HEALTHCHECK --interval`, ...). It also implements the
//! build checks ("linter"): the rules, their configuration (`# check=...`), and the checks
//! that need nothing but the syntax tree.
//!
//! What it deliberately does not know: variable values, build arguments, the build context,
//! images and platforms. Values stay as written; each instruction that BuildKit expands
//! offers an `expand` method taking the expander, so that the next layer (the converter to
//! LLB) decides when and with which environment to expand, exactly where BuildKit does. The
//! checks that need that knowledge are run by the next layer, with the rules and message
//! helpers of [`linter`].
//!
//! Why: BuildKit splits its frontend the same way (`instructions` versus `dockerfile2llb`),
//! and following the split keeps each error and warning at the moment BuildKit produces it,
//! with the same text, so that kiln's output matches `docker buildx build` word for word.

mod command;
mod error;
mod flags;
mod instructions;
pub mod linter;
mod mount;
pub mod suggest;

pub use command::*;
pub use error::Error;
pub use instructions::{Instruction, Stage, parse_command, parse_instruction};
pub use kiln_gostd::strconv::quote as go_quote;
pub use linter::{CheckConfig, LintWarning, Linter, Rule};
pub use mount::{Expander, Mount, MountType, ShareMode, parse_mount};

use kiln_dockerfile_parser::Dockerfile;

use linter::rules::{self, messages};

/// A Dockerfile as build stages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed {
    /// The stages, in order.
    pub stages: Vec<Stage>,
    /// The `ARG` instructions before the first `FROM` (the global arguments).
    pub meta_args: Vec<ArgCommand>,
    /// The escape character in effect.
    pub escape: char,
}

/// Turns a parsed Dockerfile into stages, running the checks BuildKit runs at that point.
///
/// Those are `NoEmptyContinuation` (from the parser's warnings), the checks made while
/// parsing each instruction (`MaintainerDeprecated`, `StageNameCasing`, `FromAsCasing`,
/// `InvalidDefinitionDescription`), then `ReservedStageName`, `DuplicateStageName` and
/// `ConsistentInstructionCasing` over the whole file. Warnings recorded before an error stay
/// in the linter, as in BuildKit.
///
/// Errors about an instruction read `dockerfile parse error on line N: ...` and carry its
/// lines. A Dockerfile without any `FROM` is not an error here (the converter reports it).
///
/// The linter's configuration is the caller's to choose: the `BUILDKIT_DOCKERFILE_CHECK`
/// build argument when given ([`CheckConfig::parse`]), else the `# check=` directive
/// ([`CheckConfig::from_directives`]). The dispatch-time checks are in [`linter::checks`].
pub fn parse(df: &Dockerfile, linter: &mut Linter) -> Result<Parsed, Error> {
    for warning in &df.warnings {
        let is_empty_continuation = warning.rule.as_deref()
            == Some(rules::NO_EMPTY_CONTINUATION.name)
            || warning.url.as_deref() == Some(rules::NO_EMPTY_CONTINUATION.url);
        if is_empty_continuation {
            linter.run(
                &rules::NO_EMPTY_CONTINUATION,
                warning.lines,
                messages::no_empty_continuation(),
            );
        }
    }

    let mut parsed = Parsed {
        escape: df.escape,
        ..Default::default()
    };
    for node in &df.children {
        let instruction = parse_instruction(node, linter).map_err(|e| {
            Error::at(
                node.lines,
                format!(
                    "dockerfile parse error on line {}: {}",
                    node.lines.start, e.message
                ),
            )
        })?;
        match instruction {
            Instruction::Stage(stage) => parsed.stages.push(stage),
            Instruction::Command(Command::Arg(arg)) if parsed.stages.is_empty() => {
                parsed.meta_args.push(arg);
            }
            Instruction::Command(command) => match parsed.stages.last_mut() {
                Some(stage) => stage.commands.push(command),
                None => return Err(Error::at(node.lines, "no build stage in current context")),
            },
        }
    }

    validate_stage_names(&parsed.stages, linter);
    validate_command_casing(&parsed.stages, linter);
    Ok(parsed)
}

/// `ReservedStageName` and `DuplicateStageName`.
fn validate_stage_names(stages: &[Stage], linter: &mut Linter) {
    let mut seen: Vec<&str> = Vec::new();
    for stage in stages {
        let Some(name) = stage.name.as_deref() else {
            continue;
        };
        if name == "context" || name == "scratch" {
            linter.run(
                &rules::RESERVED_STAGE_NAME,
                stage.lines,
                messages::reserved_stage_name(name),
            );
        }
        if seen.contains(&name) {
            linter.run(
                &rules::DUPLICATE_STAGE_NAME,
                stage.lines,
                messages::duplicate_stage_name(name),
            );
        }
        seen.push(name);
    }
}

fn is_self_consistent(keyword: &str) -> bool {
    keyword == keyword.to_lowercase() || keyword == keyword.to_uppercase()
}

/// `ConsistentInstructionCasing`: every keyword (of the stages, not of the global `ARG`s)
/// should have the casing of the majority (upper case on a tie).
fn validate_command_casing(stages: &[Stage], linter: &mut Linter) {
    let keywords = stages.iter().flat_map(|s| {
        std::iter::once((s.keyword.as_str(), s.lines))
            .chain(s.commands.iter().map(|c| (c.keyword(), c.lines())))
    });
    let (mut lower, mut upper) = (0usize, 0usize);
    for (keyword, _) in keywords.clone() {
        if is_self_consistent(keyword) {
            if keyword == keyword.to_lowercase() {
                lower += 1;
            } else {
                upper += 1;
            }
        }
    }
    let majority_lower = lower > upper;
    for (keyword, lines) in keywords {
        let correct = if majority_lower && keyword != keyword.to_lowercase() {
            "lowercase"
        } else if !majority_lower && keyword != keyword.to_uppercase() {
            "uppercase"
        } else {
            continue;
        };
        linter.run(
            &rules::CONSISTENT_INSTRUCTION_CASING,
            lines,
            messages::consistent_instruction_casing(keyword, correct),
        );
    }
}
