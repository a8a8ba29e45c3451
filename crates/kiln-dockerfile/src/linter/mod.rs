//! Build checks (BuildKit's linter): the rules, their configuration, and the recorder of
//! warnings.
//!
//! The rules that need only the syntax tree run inside [`crate::parse`] (casing, stage
//! names, `MAINTAINER`, descriptions, empty continuations) or are available as functions
//! in [`checks`] for the dispatcher to call when it dispatches a stage, since BuildKit only
//! reports those for the stages it builds. The rules that need variable expansion or the
//! build context (`UndefinedVar`, `UndefinedArgInFrom`, `InvalidDefaultArgInFrom`,
//! `WorkdirRelativePath`, `CopyIgnoredFile`, `InvalidBaseImagePlatform`) are run by the next
//! layer with the constants of [`rules`] and the messages of [`rules::messages`].

pub mod checks;
mod expose;
pub mod rules;

pub use expose::parse_expose_ports;
pub use rules::Rule;

use kiln_dockerfile_parser::{Directive, LineRange};
use kiln_gostd::strconv::quote;

use crate::error::Error;
use crate::mount::parse_go_bool;

/// Which rules run and whether warnings fail the build, from the `# check=` directive or the
/// `BUILDKIT_DOCKERFILE_CHECK` build argument: `skip=A,B|all;error=true;experimental=C|all`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckConfig {
    /// `skip=all`: no non-experimental rule runs.
    pub skip_all: bool,
    /// The rules named in `skip=`.
    pub skip: Vec<String>,
    /// `experimental=all`: every experimental rule runs.
    pub experimental_all: bool,
    /// The experimental rules named in `experimental=`.
    pub experimental: Vec<String>,
    /// `error=true`: any warning makes the build fail.
    pub error: bool,
}

impl CheckConfig {
    /// Parses a check specification (`skip=...;error=...;experimental=...`).
    ///
    /// The messages are BuildKit's (`invalid check option "x"`,
    /// `failed to parse check option "error=x": strconv.ParseBool: parsing "x": invalid syntax`).
    /// Callers add the context BuildKit adds (see [`CheckConfig::from_directives`]).
    pub fn parse(spec: &str) -> Result<Self, Error> {
        let spec = spec.trim();
        let mut config = CheckConfig::default();
        if spec.is_empty() {
            return Ok(config);
        }
        for part in spec.splitn(3, ';') {
            let Some((key, value)) = part.split_once('=') else {
                return Err(Error::new(format!("invalid check option {}", quote(part))));
            };
            let key = key.trim();
            let value = value.trim();
            match key {
                "skip" => {
                    if value == "all" {
                        config.skip_all = true;
                    } else {
                        config.skip = value.split(',').map(|r| r.trim().to_string()).collect();
                    }
                }
                "experimental" => {
                    if value == "all" {
                        config.experimental_all = true;
                    } else {
                        config.experimental =
                            value.split(',').map(|r| r.trim().to_string()).collect();
                    }
                }
                "error" => {
                    config.error = parse_go_bool(value).ok_or_else(|| {
                        Error::new(format!(
                            "failed to parse check option {}: strconv.ParseBool: parsing {}: invalid syntax",
                            quote(part),
                            quote(value)
                        ))
                    })?;
                }
                _ => return Err(Error::new(format!("invalid check option {}", quote(key)))),
            }
        }
        Ok(config)
    }

    /// The configuration of the first `# check=` directive, or the default.
    ///
    /// Errors are prefixed with `failed to parse check options: ` and carry the directive's
    /// line, as BuildKit reports them.
    pub fn from_directives(directives: &[Directive]) -> Result<Self, Error> {
        match directives.iter().find(|d| d.name == "check") {
            None => Ok(CheckConfig::default()),
            Some(d) => Self::parse(&d.value).map_err(|e| Error {
                lines: Some(LineRange {
                    start: d.line,
                    end: d.line,
                }),
                message: format!("failed to parse check options: {}", e.message),
            }),
        }
    }

    /// Whether `rule` runs under this configuration.
    pub fn is_enabled(&self, rule: &Rule) -> bool {
        if rule.deprecated {
            return false;
        }
        if rule.experimental {
            self.experimental_all || self.experimental.iter().any(|r| r == rule.name)
        } else {
            !(self.skip_all || self.skip.iter().any(|r| r == rule.name))
        }
    }
}

/// One build-check warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintWarning {
    /// The rule name.
    pub rule: &'static str,
    /// The rule description.
    pub description: &'static str,
    /// The rule's documentation URL (may be empty).
    pub url: &'static str,
    /// The message about this occurrence.
    pub message: String,
    /// Where it applies.
    pub lines: LineRange,
}

impl LintWarning {
    /// The one-line form BuildKit shows in progress output: `Rule: message (line N)`.
    pub fn short(&self) -> String {
        if self.lines.start > 0 {
            format!(
                "{}: {} (line {})",
                self.rule, self.message, self.lines.start
            )
        } else {
            format!("{}: {}", self.rule, self.message)
        }
    }
}

/// Records build-check warnings, applying a [`CheckConfig`].
#[derive(Debug, Clone, Default)]
pub struct Linter {
    config: CheckConfig,
    warnings: Vec<LintWarning>,
}

impl Linter {
    /// A linter with the given configuration.
    pub fn new(config: CheckConfig) -> Self {
        Self {
            config,
            warnings: Vec::new(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &CheckConfig {
        &self.config
    }

    /// Records a warning for `rule` at `lines`, unless the configuration disables the rule.
    pub fn run(&mut self, rule: &'static Rule, lines: LineRange, message: impl Into<String>) {
        if !self.config.is_enabled(rule) {
            return;
        }
        self.warnings.push(LintWarning {
            rule: rule.name,
            description: rule.description,
            url: rule.url,
            message: message.into(),
            lines,
        });
    }

    /// The warnings recorded so far, in order.
    pub fn warnings(&self) -> &[LintWarning] {
        &self.warnings
    }

    /// The error BuildKit returns at the end of the conversion when `error=true` and there
    /// are warnings: `lint violation found for rules: A, B` (rules in order of first
    /// occurrence).
    pub fn error(&self) -> Option<Error> {
        if !self.config.error || self.warnings.is_empty() {
            return None;
        }
        let mut names: Vec<&str> = Vec::new();
        for w in &self.warnings {
            if !names.contains(&w.rule) {
                names.push(w.rule);
            }
        }
        Some(Error::new(format!(
            "lint violation found for rules: {}",
            names.join(", ")
        )))
    }

    /// Ends linting: the warnings, or the error of [`Linter::error`].
    pub fn finish(self) -> Result<Vec<LintWarning>, Error> {
        match self.error() {
            Some(e) => Err(e),
            None => Ok(self.warnings),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(spec: &str, expected: Result<CheckConfig, &str>) {
        let got = CheckConfig::parse(spec).map_err(|e| e.message);
        assert_eq!(got, expected.map_err(str::to_string), "{spec:?}");
    }

    #[test]
    fn check_options() {
        let rules = |list: &[&str]| list.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
        check("", Ok(CheckConfig::default()));
        check(
            "skip=all",
            Ok(CheckConfig {
                skip_all: true,
                ..Default::default()
            }),
        );
        check(
            " skip = A , B ;error=true",
            Ok(CheckConfig {
                skip: rules(&["A", "B"]),
                error: true,
                ..Default::default()
            }),
        );
        check(
            "experimental=all;error=1",
            Ok(CheckConfig {
                experimental_all: true,
                error: true,
                ..Default::default()
            }),
        );
        check(
            "skip=all;experimental=CopyIgnoredFile",
            Ok(CheckConfig {
                skip_all: true,
                experimental: rules(&["CopyIgnoredFile"]),
                ..Default::default()
            }),
        );
        check("foo", Err("invalid check option \"foo\""));
        check("foo=bar", Err("invalid check option \"foo\""));
        check(
            "error=maybe",
            Err(
                "failed to parse check option \"error=maybe\": strconv.ParseBool: parsing \"maybe\": invalid syntax",
            ),
        );
        // Only the first two `;` split; the rest belongs to the third option.
        check(
            "error=false;skip=A;experimental=B;skip=C",
            Ok(CheckConfig {
                skip: rules(&["A"]),
                experimental: rules(&["B;skip=C"]),
                ..Default::default()
            }),
        );
    }

    #[test]
    fn linter_records_and_fails() {
        let lines = LineRange { start: 2, end: 2 };
        let mut linter = Linter::new(CheckConfig::parse("skip=FromAsCasing;error=true").unwrap());
        linter.run(&rules::FROM_AS_CASING, lines, "x");
        linter.run(
            &rules::COPY_IGNORED_FILE,
            lines,
            "experimental, not enabled",
        );
        assert!(linter.warnings().is_empty());
        assert_eq!(linter.clone().finish(), Ok(vec![]));
        linter.run(
            &rules::STAGE_NAME_CASING,
            lines,
            rules::messages::stage_name_casing("A"),
        );
        linter.run(&rules::MAINTAINER_DEPRECATED, lines, "m");
        linter.run(&rules::STAGE_NAME_CASING, lines, "again");
        assert_eq!(
            linter.warnings()[0].short(),
            "StageNameCasing: Stage name 'A' should be lowercase (line 2)"
        );
        assert_eq!(
            linter.finish().unwrap_err().message,
            "lint violation found for rules: StageNameCasing, MaintainerDeprecated"
        );
    }
}
