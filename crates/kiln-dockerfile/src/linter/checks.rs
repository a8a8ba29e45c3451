//! The checks BuildKit runs while it dispatches a stage, in the form of functions the
//! dispatcher calls.
//!
//! BuildKit reports these only for the stages it builds (all stages for `--check`), with
//! expanded values where noted. [`check_stage`] runs the ones that need nothing but the
//! syntax tree over a whole stage, on unexpanded values, for callers that do not dispatch
//! (the check subrequest, tests); a dispatcher calls the individual functions instead.

use kiln_dockerfile_parser::LineRange;

use super::Linter;
use super::expose::parse_expose_ports;
use super::rules::{self, messages};
use crate::command::Command;
use crate::{Parsed, Stage};

/// `LegacyKeyValueFormat`: one warning per `ENV`/`LABEL` pair written as `key value`.
pub fn legacy_key_value_format(command: &Command, linter: &mut Linter) {
    let pairs = match command {
        Command::Env(c) => &c.env,
        Command::Label(c) => &c.labels,
        _ => return,
    };
    for pair in pairs {
        if pair.no_delim {
            linter.run(
                &rules::LEGACY_KEY_VALUE_FORMAT,
                command.lines(),
                messages::legacy_key_value_format(command.keyword()),
            );
        }
    }
}

/// Whether a variable name looks like it holds a secret (`SecretsUsedInArgOrEnv`): one of its
/// `_`-separated words is `apikey`, `auth`, `credential(s)`, `key`, `password`, `pword`,
/// `passwd`, `secret` or `token` (any case), and none is `public`.
pub fn is_secret_key(key: &str) -> bool {
    const DENY: &[&str] = &[
        "apikey",
        "auth",
        "credential",
        "credentials",
        "key",
        "password",
        "pword",
        "passwd",
        "secret",
        "token",
    ];
    let words: Vec<String> = key.split('_').map(str::to_lowercase).collect();
    words.iter().any(|w| DENY.contains(&w.as_str())) && !words.iter().any(|w| w == "public")
}

/// `SecretsUsedInArgOrEnv` for one name: `instruction` is `ARG` or `ENV`. BuildKit checks
/// the expanded `ENV` key and the unexpanded `ARG` name.
pub fn secret_key(instruction: &str, key: &str, lines: LineRange, linter: &mut Linter) {
    if is_secret_key(key) {
        linter.run(
            &rules::SECRETS_USED_IN_ARG_OR_ENV,
            lines,
            messages::secrets_used_in_arg_or_env(instruction, key),
        );
    }
}

/// `MultipleInstructionsDisallowed`: remembers the last `CMD`, `ENTRYPOINT` and
/// `HEALTHCHECK` of a stage, and reports the earlier one when another comes.
#[derive(Debug, Clone, Default)]
pub struct UsedOnce {
    cmd: Option<LineRange>,
    entrypoint: Option<LineRange>,
    healthcheck: Option<LineRange>,
}

impl UsedOnce {
    /// Checks one command of the stage (other instructions are ignored).
    pub fn check(&mut self, command: &Command, linter: &mut Linter) {
        let slot = match command {
            Command::Cmd(_) => &mut self.cmd,
            Command::Entrypoint(_) => &mut self.entrypoint,
            Command::Healthcheck(_) => &mut self.healthcheck,
            _ => return,
        };
        if let Some(previous) = slot.replace(command.lines()) {
            // The earlier instruction is the one that has no effect.
            linter.run(
                &rules::MULTIPLE_INSTRUCTIONS_DISALLOWED,
                previous,
                messages::multiple_instructions_disallowed(command.keyword()),
            );
        }
    }
}

/// `JSONArgsRecommended`: a shell-form `CMD` or `ENTRYPOINT` while no shell is configured
/// (`shell_configured` is true when the image config has a `Shell`, from a `SHELL` in the
/// stage or its ancestors, or from the base image).
pub fn json_args_recommended(command: &Command, shell_configured: bool, linter: &mut Linter) {
    let cmd = match command {
        Command::Cmd(c) => &c.cmd,
        Command::Entrypoint(c) => &c.cmd,
        _ => return,
    };
    if cmd.prepend_shell && !shell_configured {
        linter.run(
            &rules::JSON_ARGS_RECOMMENDED,
            command.lines(),
            messages::json_args_recommended(command.keyword()),
        );
    }
}

/// What the expansion of a word found: its result and the variables it looked up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WordExpansion {
    /// The expanded word.
    pub result: String,
    /// The variables that were looked up and found.
    pub matched: Vec<String>,
    /// The variables that were looked up and not found.
    pub unmatched: Vec<String>,
}

/// `RedundantTargetPlatform`: `FROM --platform=$TARGETPLATFORM` (or `${TARGETPLATFORM}`),
/// detected as BuildKit does from the expansion of the flag value with the global
/// arguments: only `TARGETPLATFORM` was looked up, and the result is its value.
pub fn redundant_target_platform(
    platform: &str,
    expansion: &WordExpansion,
    target_platform: Option<&str>,
    lines: LineRange,
    linter: &mut Linter,
) {
    if expansion.matched.len() == 1
        && expansion.unmatched.is_empty()
        && expansion.matched[0] == "TARGETPLATFORM"
        && expansion.result == target_platform.unwrap_or("")
    {
        linter.run(
            &rules::REDUNDANT_TARGET_PLATFORM,
            lines,
            messages::redundant_target_platform(platform),
        );
    }
}

/// `FromPlatformFlagConstDisallowed`: a `FROM --platform` value without any variable, unless
/// the stage name mentions the platform's OS or architecture. `os_arch` is the parsed
/// (normalized) platform, `None` when it does not parse (the build fails later then).
pub fn from_platform_flag_const_disallowed(
    stage_name: &str,
    expansion: &WordExpansion,
    os_arch: Option<(&str, &str)>,
    lines: LineRange,
    linter: &mut Linter,
) {
    if !expansion.matched.is_empty() || !expansion.unmatched.is_empty() {
        return;
    }
    let Some((os, arch)) = os_arch else {
        return;
    };
    if stage_name.contains(os) || stage_name.contains(arch) {
        return;
    }
    linter.run(
        &rules::FROM_PLATFORM_FLAG_CONST_DISALLOWED,
        lines,
        messages::from_platform_flag_const_disallowed(&expansion.result),
    );
}

/// Whether a stage, or a stage it is built on (`FROM <earlier stage>`), has a `SHELL`.
fn stage_sets_shell(parsed: &Parsed, index: usize) -> bool {
    let mut current = index;
    // Each step goes to an earlier stage, so this ends.
    loop {
        let Some(stage) = parsed.stages.get(current) else {
            return false;
        };
        if stage
            .commands
            .iter()
            .any(|c| matches!(c, Command::Shell(_)))
        {
            return true;
        }
        match base_stage(parsed, current, stage) {
            Some(base) => current = base,
            None => return false,
        }
    }
}

/// The index of the last stage before `index` named like `stage`'s base.
fn base_stage(parsed: &Parsed, index: usize, stage: &Stage) -> Option<usize> {
    let base = stage.base_name.to_lowercase();
    parsed.stages[..index.min(parsed.stages.len())]
        .iter()
        .rposition(|s| s.name.as_deref() == Some(base.as_str()))
}

/// Runs, over stage `index`, the dispatch-time checks that need only the syntax tree, in
/// BuildKit's dispatch order: `LegacyKeyValueFormat`, `SecretsUsedInArgOrEnv` (on the
/// unexpanded names), `MultipleInstructionsDisallowed`, `JSONArgsRecommended`, and the two
/// `EXPOSE` checks for ports without variables.
///
/// `base_image_shell` says whether the base image's config sets a shell; a `SHELL` in the
/// stage or in an ancestor stage is taken into account here. `ONBUILD` triggers inherited
/// from the base are not.
pub fn check_stage(parsed: &Parsed, index: usize, base_image_shell: bool, linter: &mut Linter) {
    let Some(stage) = parsed.stages.get(index) else {
        return;
    };
    let mut shell_configured = base_image_shell
        || base_stage(parsed, index, stage).is_some_and(|b| stage_sets_shell(parsed, b));
    let mut used_once = UsedOnce::default();
    for command in &stage.commands {
        match command {
            Command::Env(c) => {
                legacy_key_value_format(command, linter);
                for pair in &c.env {
                    secret_key("ENV", &pair.key, c.lines, linter);
                }
            }
            Command::Label(_) => legacy_key_value_format(command, linter),
            Command::Cmd(_) | Command::Entrypoint(_) => {
                used_once.check(command, linter);
                json_args_recommended(command, shell_configured, linter);
            }
            Command::Healthcheck(_) => used_once.check(command, linter),
            Command::Shell(_) => shell_configured = true,
            Command::Arg(c) => {
                for arg in &c.args {
                    secret_key("ARG", &arg.key, c.lines, linter);
                }
            }
            Command::Expose(c) => {
                let literal: Vec<String> = c
                    .ports
                    .iter()
                    .filter(|p| !p.contains('$'))
                    .cloned()
                    .collect();
                // Errors are the dispatcher's to report.
                let _ = parse_expose_ports(&literal, c.lines, linter);
            }
            _ => {}
        }
    }
}
