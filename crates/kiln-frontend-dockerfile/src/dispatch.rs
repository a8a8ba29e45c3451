//! Dispatch of each instruction: variable expansion, the instruction's effect on the LLB state
//! and the image config, and its history entry (BuildKit's `dispatch*` functions).

use std::collections::BTreeSet;

use kiln_dockerfile::linter::checks;
use kiln_dockerfile::linter::rules::{self, messages};
use kiln_dockerfile::{Command, ShellDependantCmdLine};
use kiln_gostd::time::format_duration;
use kiln_llb::{Chown, FileActions, MkdirOpts, VertexOpts};
use kiln_oci::{EmptyObject, History};
use kiln_shell::Lexer;

use crate::args::{NON_ENV_ARGS, env_get};
use crate::convert::Ctx;
use crate::error::ConvertError;
use crate::names::{self, go_plain_slice, go_quoted_slice};
use crate::stage::{StageCommand, StageState, normalize_workdir};

/// The comment BuildKit puts on every history entry it writes.
const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

impl Ctx<'_> {
    /// Dispatches one command of a stage.
    pub(crate) fn dispatch(
        &mut self,
        ds: &mut StageState,
        cmd: &StageCommand,
    ) -> Result<(), ConvertError> {
        ds.cmd_is_on_build = cmd.on_build;
        let mut command = cmd.command.clone();
        self.expand(ds, &mut command)?;
        ds.used_once.check(&command, &mut self.linter);
        match &command {
            Command::Env(c) => {
                checks::legacy_key_value_format(&command, &mut self.linter);
                let mut parts = Vec::with_capacity(c.env.len());
                for kv in &c.env {
                    checks::secret_key("ENV", &kv.key, c.lines, &mut self.linter);
                    ds.state = ds.state.add_env(&kv.key, &kv.value);
                    ds.image.config.env_set(&kv.key, &kv.value);
                    parts.push(format!("{}={}", kv.key, kv.value));
                }
                self.commit(ds, format!("ENV {}", parts.join(" ")), false, false);
            }
            Command::Label(c) => {
                checks::legacy_key_value_format(&command, &mut self.linter);
                let mut parts = Vec::with_capacity(c.labels.len());
                for kv in &c.labels {
                    ds.image
                        .config
                        .labels
                        .insert(kv.key.clone(), kv.value.clone());
                    parts.push(format!("{}={}", kv.key, kv.value));
                }
                self.commit(ds, format!("LABEL {}", parts.join(" ")), false, false);
            }
            Command::Maintainer(c) => {
                ds.image.author = c.maintainer.clone();
                self.commit(ds, format!("MAINTAINER {}", c.maintainer), false, false);
            }
            Command::Arg(c) => self.dispatch_arg(ds, c)?,
            Command::Workdir(c) => self.dispatch_workdir(ds, &c.path, &c.original, c.lines)?,
            Command::User(c) => {
                ds.state = ds.state.user(&c.user);
                ds.image.config.user = c.user.clone();
                self.commit(ds, format!("USER {}", c.user), false, false);
            }
            Command::Expose(c) => {
                let env = ds.state.env().to_vec();
                let mut expanded = c.clone();
                let lexer = self.lexer.clone();
                expanded.expand_words(&mut |w: &str| -> Result<Vec<String>, ConvertError> {
                    lexer.process_words(w, &env).map_err(ConvertError::from)
                })?;
                let ports = kiln_dockerfile::linter::parse_expose_ports(
                    &expanded.ports,
                    c.lines,
                    &mut self.linter,
                )
                .map_err(|e| ConvertError::at(c.lines, e.message))?;
                let mut unique: Vec<String> = ports
                    .into_iter()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                for p in &unique {
                    ds.image.config.exposed_ports.insert(p.clone(), EmptyObject);
                }
                unique.sort();
                self.commit(
                    ds,
                    format!("EXPOSE {}", go_plain_slice(&unique)),
                    false,
                    false,
                );
            }
            Command::Volume(c) => {
                for v in &c.volumes {
                    if v.is_empty() {
                        return Err(ConvertError::at(
                            c.lines,
                            "VOLUME specified can not be an empty string",
                        ));
                    }
                    ds.image.config.volumes.insert(v.clone(), EmptyObject);
                }
                self.commit(
                    ds,
                    format!("VOLUME {}", go_plain_slice(&c.volumes)),
                    false,
                    false,
                );
            }
            Command::StopSignal(c) => {
                validate_signal(&c.signal).map_err(|e| ConvertError::at(c.lines, e))?;
                ds.image.config.stop_signal = c.signal.clone();
                self.commit(ds, format!("STOPSIGNAL {}", c.signal), false, false);
            }
            Command::Shell(c) => {
                ds.image.config.shell = c.shell.clone();
                self.commit(
                    ds,
                    format!("SHELL {}", go_plain_slice(&c.shell)),
                    false,
                    false,
                );
            }
            Command::Cmd(c) => {
                checks::json_args_recommended(
                    &command,
                    !ds.image.config.shell.is_empty(),
                    &mut self.linter,
                );
                let args = self.with_shell(ds, &c.cmd);
                ds.image.config.cmd = Some(args.clone());
                ds.image.config.args_escaped = true;
                ds.cmd_set = true;
                self.commit(ds, format!("CMD {}", go_quoted_slice(&args)), false, false);
            }
            Command::Entrypoint(c) => {
                checks::json_args_recommended(
                    &command,
                    !ds.image.config.shell.is_empty(),
                    &mut self.linter,
                );
                let args = self.with_shell(ds, &c.cmd);
                ds.image.config.entrypoint = if args.is_empty() {
                    None
                } else {
                    Some(args.clone())
                };
                if !ds.cmd_set {
                    ds.image.config.cmd = None;
                }
                self.commit(
                    ds,
                    format!("ENTRYPOINT {}", go_quoted_slice(&args)),
                    false,
                    false,
                );
            }
            Command::Healthcheck(c) => {
                let h = &c.health;
                let mut config = kiln_oci::HealthConfig {
                    test: h.test.clone(),
                    interval: duration_nanos(h.interval),
                    timeout: duration_nanos(h.timeout),
                    start_period: duration_nanos(h.start_period),
                    start_interval: duration_nanos(h.start_interval),
                    retries: i64::from(h.retries),
                };
                if config.test.first().map(String::as_str) == Some("NONE") {
                    config = kiln_oci::HealthConfig {
                        test: vec!["NONE".to_string()],
                        ..Default::default()
                    };
                }
                let msg = format!(
                    "HEALTHCHECK {{Test:{} Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
                    go_plain_slice(&config.test),
                    format_duration(duration_nanos(h.interval)),
                    format_duration(duration_nanos(h.timeout)),
                    format_duration(duration_nanos(h.start_period)),
                    format_duration(duration_nanos(h.start_interval)),
                    h.retries
                );
                ds.image.config.healthcheck = Some(config);
                self.commit(ds, msg, false, false);
            }
            Command::Onbuild(c) => {
                ds.image.config.on_build.push(c.expression.clone());
            }
            Command::Run(c) => self.dispatch_run(ds, c, &cmd.sources)?,
            Command::Copy(_) | Command::Add(_) => self.dispatch_copy(ds, &command, &cmd.sources)?,
        }
        Ok(())
    }

    /// Expands the instruction's words with the stage's environment, reporting `UndefinedVar`.
    fn expand(&mut self, ds: &StageState, command: &mut Command) -> Result<(), ConvertError> {
        if matches!(command, Command::Arg(_)) {
            // ARG expands only its default values, when dispatched.
            return Ok(());
        }
        let env = ds.state.env().to_vec();
        let lexer = self.lexer.clone();
        let mut unmatched: Vec<String> = Vec::new();
        command.expand(&mut |word: &str| -> Result<String, ConvertError> {
            let res = lexer
                .process_word_with_matches(word, &env)
                .map_err(ConvertError::from)?;
            unmatched.extend(res.unmatched);
            Ok(res.result)
        })?;
        let raw = Lexer {
            skip_process_quotes: true,
            ..Lexer::new('\\')
        };
        command.expand_raw(&mut |word: &str| -> Result<String, ConvertError> {
            raw.process_word(word, &env).map_err(ConvertError::from)
        })?;
        let declared: BTreeSet<&str> = ds.build_args.iter().map(|(k, _)| k.as_str()).collect();
        let mut reported = BTreeSet::new();
        for name in unmatched {
            if declared.contains(name.as_str())
                || NON_ENV_ARGS.contains(&name.as_str())
                || !reported.insert(name.clone())
            {
                continue;
            }
            let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
            let suggestion = kiln_dockerfile::suggest::search(&name, &keys, true);
            self.linter.run(
                &rules::UNDEFINED_VAR,
                command.lines(),
                messages::undefined_var(
                    &name,
                    suggestion.as_deref().map(|s| format!("${s}")).as_deref(),
                ),
            );
        }
        Ok(())
    }

    /// `ARG name[=default] ...`: the value comes from the build arguments, else the default
    /// (expanded), else a global argument of the same name.
    fn dispatch_arg(
        &mut self,
        ds: &mut StageState,
        c: &kiln_dockerfile::ArgCommand,
    ) -> Result<(), ConvertError> {
        let mut parts = Vec::with_capacity(c.args.len());
        for kv in &c.args {
            checks::secret_key("ARG", &kv.key, c.lines, &mut self.linter);
            let value = if let Some(v) = self.opts.build_args.get(&kv.key) {
                Some(v.clone())
            } else if let Some(default) = &kv.value {
                let env = ds.state.env().to_vec();
                Some(
                    self.lexer
                        .process_word(default, &env)
                        .map_err(|e| ConvertError::at(c.lines, e.to_string()))?,
                )
            } else {
                env_get(&self.global_args, &kv.key).map(str::to_string)
            };
            if let Some(v) = &value
                && !NON_ENV_ARGS.contains(&kv.key.as_str())
            {
                ds.state = ds.state.add_env(&kv.key, v);
            }
            parts.push(match &value {
                Some(v) => format!("{}={v}", kv.key),
                None => kv.key.clone(),
            });
            ds.build_args.push((kv.key.clone(), value));
        }
        self.commit(ds, format!("ARG {}", parts.join(" ")), false, false);
        Ok(())
    }

    /// `WORKDIR path`: sets the working directory and creates it (a file op) when it is not `/`.
    pub(crate) fn dispatch_workdir(
        &mut self,
        ds: &mut StageState,
        path: &str,
        original: &str,
        lines: kiln_dockerfile_parser::LineRange,
    ) -> Result<(), ConvertError> {
        if path.is_empty() {
            return Err(ConvertError::at(lines, "cannot normalize nothing"));
        }
        if !ds.workdir_set && !path.starts_with('/') {
            self.linter.run(
                &rules::WORKDIR_RELATIVE_PATH,
                lines,
                messages::workdir_relative_path(path),
            );
        }
        ds.workdir_set = true;
        let wd = normalize_workdir(&ds.image.config.working_dir, path);
        ds.image.config.working_dir = wd.clone();
        ds.state = ds.state.dir(&wd);
        let with_layer = wd != "/";
        if with_layer {
            let env = ds.state.env().to_vec();
            let display = names::uppercase_command(
                &self
                    .lexer
                    .process_word(original, &env)
                    .unwrap_or_else(|_| original.to_string()),
            );
            let platform = ds.platform.clone();
            let name = names::prefix_command(
                ds,
                &display,
                self.opts.multi_platform,
                platform.as_ref(),
                &env,
            );
            let chown =
                (!ds.image.config.user.is_empty()).then(|| Chown::parse(&ds.image.config.user));
            let actions = FileActions::new().mkdir(
                &wd,
                0o755,
                MkdirOpts {
                    make_parents: true,
                    chown,
                    created_time: self.epoch.map(|s| s * 1_000_000_000),
                },
            );
            ds.state = ds.state.file(
                actions,
                VertexOpts {
                    custom_name: Some(name),
                    locations: vec![self.location(lines)],
                    platform,
                    ..VertexOpts::default()
                },
            );
        }
        self.commit(ds, format!("WORKDIR {wd}"), with_layer, false);
        Ok(())
    }

    /// The arguments of a `RUN`/`CMD`/`ENTRYPOINT`: the exec form as is, the shell form run by
    /// the image's shell (`/bin/sh -c` by default).
    pub(crate) fn with_shell(&self, ds: &StageState, cmd: &ShellDependantCmdLine) -> Vec<String> {
        if !cmd.prepend_shell {
            return cmd.cmd_line.clone();
        }
        let mut args = self.default_shell(ds);
        args.push(cmd.cmd_line.join(" "));
        args
    }

    /// The shell of shell-form commands: the image config's `Shell`, else the platform default.
    pub(crate) fn default_shell(&self, ds: &StageState) -> Vec<String> {
        if !ds.image.config.shell.is_empty() {
            return ds.image.config.shell.clone();
        }
        if ds.platform.as_ref().is_some_and(|p| p.os == "windows") {
            return vec!["cmd".into(), "/S".into(), "/C".into()];
        }
        vec!["/bin/sh".into(), "-c".into()]
    }

    /// Appends a history entry (`created_by`, BuildKit's comment, `empty_layer`), with the
    /// `SOURCE_DATE_EPOCH` time when there is one.
    pub(crate) fn commit(
        &self,
        ds: &mut StageState,
        created_by: String,
        with_layer: bool,
        buildkit_suffix: bool,
    ) {
        let created_by = if buildkit_suffix {
            format!("{created_by} # buildkit")
        } else {
            created_by
        };
        ds.image.history.push(History {
            created: self.epoch.map(rfc3339),
            created_by,
            comment: HISTORY_COMMENT.to_string(),
            empty_layer: !with_layer,
            ..History::default()
        });
    }
}

/// Go's `path.Clean`.
pub(crate) fn clean_path(p: &str) -> String {
    kiln_gostd::path::clean(p)
}

fn duration_nanos(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Checks a `STOPSIGNAL` value as Docker's `signal.ParseSignal` does: a number, or a known
/// signal name with or without the `SIG` prefix.
fn validate_signal(s: &str) -> Result<(), String> {
    const NAMES: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "UNUSED", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU",
        "XFSZ",
    ];
    if let Ok(n) = s.parse::<i64>() {
        return if n > 0 {
            Ok(())
        } else {
            Err(format!("Invalid signal: {s}"))
        };
    }
    let name = s.strip_prefix("SIG").unwrap_or(s);
    let rt = name
        .strip_prefix("RTMIN")
        .or_else(|| name.strip_prefix("RTMAX"))
        .is_some_and(|rest| {
            rest.is_empty()
                || rest
                    .strip_prefix(['+', '-'])
                    .is_some_and(|n| n.parse::<u8>().is_ok())
        });
    if NAMES.contains(&name) || rt {
        Ok(())
    } else {
        Err(format!("Invalid signal: {s}"))
    }
}

/// Seconds since the epoch as RFC 3339 (`2021-01-01T00:00:00Z`), as Go prints a UTC time.
pub(crate) fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workdirs() {
        let check = |cur: &str, req: &str, want: &str| {
            assert_eq!(normalize_workdir(cur, req), want, "{cur} + {req}")
        };
        check("/", "/app", "/app");
        check("/app", "src", "/app/src");
        check("/app", "../x/", "/x");
        check("", "rel", "/rel");
        check("/a", "/b/../c/.", "/c");
    }

    #[test]
    fn times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_609_459_200), "2021-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn signals() {
        for ok in ["SIGTERM", "TERM", "9", "SIGRTMIN+3", "KILL"] {
            assert!(validate_signal(ok).is_ok(), "{ok}");
        }
        for bad in ["SIGFOO", "0", "-1", "term", ""] {
            assert!(validate_signal(bad).is_err(), "{bad}");
        }
    }
}
