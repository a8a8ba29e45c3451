//! The typed instructions of a stage, one struct per Dockerfile instruction.
//!
//! Every struct carries the instruction's keyword as written (`keyword`, for example `COPY`
//! or `copy`), its source text (`original`, trimmed) and its `lines`. Values are kept as
//! written: variables are expanded later, by the `expand` methods, which cover exactly the
//! fields BuildKit expands with a single-word expander.

use std::time::Duration;

use kiln_dockerfile_parser::LineRange;

use crate::error::Error;
use crate::mount::{Mount, parse_mount_with};

/// A `key=value` pair of `ENV` or `LABEL`, in source order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyValuePair {
    /// The key (quotes and escapes still in place until expanded).
    pub key: String,
    /// The value (quotes and escapes still in place until expanded).
    pub value: String,
    /// True for the legacy `ENV key value` form, without `=` (see `LegacyKeyValueFormat`).
    pub no_delim: bool,
}

/// A `name[=default]` of `ARG`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyValuePairOptional {
    /// The argument name.
    pub key: String,
    /// The default value, when one is written (`ARG a=` gives `Some("")`).
    pub value: Option<String>,
    /// The description from the comment above the instruction (`# name description`).
    pub comment: String,
}

/// An inline file given as a heredoc source of `COPY` or `ADD` (`COPY <<EOF /dest`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceContent {
    /// The file name (the heredoc terminator word).
    pub path: String,
    /// The content, with leading tabs already removed for `<<-`.
    pub data: String,
    /// Whether variables in the content are expanded (the terminator was not quoted).
    pub expand: bool,
}

/// The sources and destination of `COPY` and `ADD`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourcesAndDest {
    /// The destination (the last argument).
    pub dest_path: String,
    /// The source paths, URLs or Git references, in order.
    pub source_paths: Vec<String>,
    /// The heredoc sources, in order.
    pub source_contents: Vec<SourceContent>,
}

impl SourcesAndDest {
    /// Expands the source paths and the destination.
    pub fn expand<E>(&mut self, f: &mut dyn FnMut(&str) -> Result<String, E>) -> Result<(), E> {
        expand_all(&mut self.source_paths, f)?;
        self.dest_path = f(&self.dest_path)?;
        Ok(())
    }

    /// Expands the content of the heredoc sources whose terminator was not quoted.
    ///
    /// BuildKit does this with a lexer that keeps quotes (`SkipProcessQuotes`), distinct from
    /// the one used by [`SourcesAndDest::expand`].
    pub fn expand_raw<E>(&mut self, f: &mut dyn FnMut(&str) -> Result<String, E>) -> Result<(), E> {
        for content in &mut self.source_contents {
            if content.expand {
                content.data = f(&content.data)?;
            }
        }
        Ok(())
    }
}

/// A heredoc attached to `RUN` (`RUN <<EOF`), kept for the shell or written as a file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShellInlineFile {
    /// The terminator word.
    pub name: String,
    /// The raw body (leading tabs not yet removed).
    pub data: String,
    /// True for `<<-`: leading tabs are removed from every line before use.
    pub chomp: bool,
}

/// A command line that runs through the shell unless it was given in exec (JSON) form.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShellDependantCmdLine {
    /// The command: the JSON array elements, or one element holding the shell-form text.
    /// For `ENTRYPOINT`, empty means "no entrypoint" (BuildKit's nil).
    pub cmd_line: Vec<String>,
    /// The heredocs of a `RUN` instruction, in order.
    pub files: Vec<ShellInlineFile>,
    /// True for the shell form: the configured shell is prepended when the command runs.
    pub prepend_shell: bool,
}

/// The health check configuration of `HEALTHCHECK`, as in the image config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", args...]` (exec form) or `["CMD-SHELL", command]` (shell form).
    pub test: Vec<String>,
    /// `--interval` (zero: the default).
    pub interval: Duration,
    /// `--timeout` (zero: the default).
    pub timeout: Duration,
    /// `--start-period` (zero: the default).
    pub start_period: Duration,
    /// `--start-interval` (zero: the default).
    pub start_interval: Duration,
    /// `--retries` (zero: the default).
    pub retries: i32,
}

/// The network mode of `RUN --network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// The build's default network (`default`, also when the flag is absent).
    #[default]
    Default,
    /// No network (`none`).
    None,
    /// The host's network (`host`; needs the `network.host` entitlement).
    Host,
}

/// The security mode of `RUN --security`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityMode {
    /// The normal sandbox (`sandbox`, also when the flag is absent).
    #[default]
    Sandbox,
    /// All capabilities (`insecure`; needs the `security.insecure` entitlement).
    Insecure,
}

macro_rules! command_structs {
    ($( $(#[$doc:meta])* $name:ident { $( $(#[$fdoc:meta])* $field:ident : $ty:ty ),* $(,)? } )*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, PartialEq, Eq, Default)]
            pub struct $name {
                $( $(#[$fdoc])* pub $field: $ty, )*
                /// The keyword as written (`RUN`, `run`, ...).
                pub keyword: String,
                /// The instruction's source text, continuations joined, trimmed.
                pub original: String,
                /// The lines the instruction spans.
                pub lines: LineRange,
            }
        )*
    };
}

command_structs! {
    /// `ENV key=value ...` (or the legacy `ENV key value`).
    EnvCommand {
        /// The variables, in order.
        env: Vec<KeyValuePair>,
    }
    /// `MAINTAINER name` (deprecated).
    MaintainerCommand {
        /// The maintainer text.
        maintainer: String,
    }
    /// `LABEL key=value ...`.
    LabelCommand {
        /// The labels, in order.
        labels: Vec<KeyValuePair>,
    }
    /// `ADD [flags] src... dest`.
    AddCommand {
        /// The sources and destination.
        sources: SourcesAndDest,
        /// `--chown=user[:group]` (empty: not given).
        chown: String,
        /// `--chmod=mode` (empty: not given).
        chmod: String,
        /// `--link`.
        link: bool,
        /// `--keep-git-dir`.
        keep_git_dir: bool,
        /// `--checksum=digest` (empty: not given).
        checksum: String,
        /// `--unpack[=bool]`; `None` when not given (archives from the context are unpacked,
        /// remote ones are not).
        unpack: Option<bool>,
        /// `--exclude=pattern`, repeatable.
        exclude_patterns: Vec<String>,
    }
    /// `COPY [flags] src... dest`.
    CopyCommand {
        /// The sources and destination.
        sources: SourcesAndDest,
        /// `--from=stage|image|index` (empty: the build context). Not expanded.
        from: String,
        /// `--chown=user[:group]` (empty: not given).
        chown: String,
        /// `--chmod=mode` (empty: not given).
        chmod: String,
        /// `--link`.
        link: bool,
        /// `--parents`.
        parents: bool,
        /// `--exclude=pattern`, repeatable.
        exclude_patterns: Vec<String>,
    }
    /// `ONBUILD instruction`.
    OnbuildCommand {
        /// The trigger instruction's text (everything after `ONBUILD`, plus heredoc bodies).
        expression: String,
    }
    /// `WORKDIR path`.
    WorkdirCommand {
        /// The path.
        path: String,
    }
    /// `RUN [flags] command`.
    RunCommand {
        /// The command.
        cmd: ShellDependantCmdLine,
        /// The `--mount` values as written, in order.
        mount_specs: Vec<String>,
        /// The parsed mounts: empty until [`RunCommand::expand`] parses
        /// [`RunCommand::mount_specs`] (at parse time only the checks BuildKit makes without
        /// expansion run, see [`crate::parse_mount`]).
        mounts: Vec<Mount>,
        /// `--network`.
        network: NetworkMode,
        /// `--security`.
        security: SecurityMode,
        /// The names of the flags that were given, in order of first use.
        flags_used: Vec<String>,
    }
    /// `CMD command`.
    CmdCommand {
        /// The command.
        cmd: ShellDependantCmdLine,
    }
    /// `HEALTHCHECK [flags] CMD command` or `HEALTHCHECK NONE`.
    HealthcheckCommand {
        /// The configuration.
        health: HealthConfig,
    }
    /// `ENTRYPOINT command`.
    EntrypointCommand {
        /// The command.
        cmd: ShellDependantCmdLine,
    }
    /// `EXPOSE port[/proto] ...`.
    ExposeCommand {
        /// The port specifications as written, sorted (byte order) as BuildKit sorts them.
        ports: Vec<String>,
    }
    /// `USER user[:group]`.
    UserCommand {
        /// The user.
        user: String,
    }
    /// `VOLUME path...` or the JSON form.
    VolumeCommand {
        /// The paths, trimmed.
        volumes: Vec<String>,
    }
    /// `STOPSIGNAL signal`.
    StopSignalCommand {
        /// The signal name or number.
        signal: String,
    }
    /// `ARG name[=default] ...`.
    ArgCommand {
        /// The arguments, in order.
        args: Vec<KeyValuePairOptional>,
    }
    /// `SHELL ["executable", "parameters"]`.
    ShellCommand {
        /// The shell command line.
        shell: Vec<String>,
    }
}

/// One instruction of a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `ENV`.
    Env(EnvCommand),
    /// `MAINTAINER`.
    Maintainer(MaintainerCommand),
    /// `LABEL`.
    Label(LabelCommand),
    /// `ADD`.
    Add(AddCommand),
    /// `COPY`.
    Copy(CopyCommand),
    /// `ONBUILD`.
    Onbuild(OnbuildCommand),
    /// `WORKDIR`.
    Workdir(WorkdirCommand),
    /// `RUN`.
    Run(RunCommand),
    /// `CMD`.
    Cmd(CmdCommand),
    /// `HEALTHCHECK`.
    Healthcheck(HealthcheckCommand),
    /// `ENTRYPOINT`.
    Entrypoint(EntrypointCommand),
    /// `EXPOSE`.
    Expose(ExposeCommand),
    /// `USER`.
    User(UserCommand),
    /// `VOLUME`.
    Volume(VolumeCommand),
    /// `STOPSIGNAL`.
    StopSignal(StopSignalCommand),
    /// `ARG`.
    Arg(ArgCommand),
    /// `SHELL`.
    Shell(ShellCommand),
}

macro_rules! each_command {
    ($self:expr, $c:ident => $body:expr) => {
        match $self {
            Command::Env($c) => $body,
            Command::Maintainer($c) => $body,
            Command::Label($c) => $body,
            Command::Add($c) => $body,
            Command::Copy($c) => $body,
            Command::Onbuild($c) => $body,
            Command::Workdir($c) => $body,
            Command::Run($c) => $body,
            Command::Cmd($c) => $body,
            Command::Healthcheck($c) => $body,
            Command::Entrypoint($c) => $body,
            Command::Expose($c) => $body,
            Command::User($c) => $body,
            Command::Volume($c) => $body,
            Command::StopSignal($c) => $body,
            Command::Arg($c) => $body,
            Command::Shell($c) => $body,
        }
    };
}

impl Command {
    /// The keyword as written (BuildKit's `Name()`), for example `COPY` or `copy`.
    pub fn keyword(&self) -> &str {
        each_command!(self, c => &c.keyword)
    }

    /// The instruction's source text, trimmed.
    pub fn original(&self) -> &str {
        each_command!(self, c => &c.original)
    }

    /// The lines the instruction spans.
    pub fn lines(&self) -> LineRange {
        each_command!(self, c => c.lines)
    }

    /// Expands variables in the fields BuildKit expands with a single-word expander: `ENV`
    /// and `LABEL` keys and values, `ADD`/`COPY` sources, destination, `--chown`, `--chmod`,
    /// `--exclude` (and `ADD --checksum`), `WORKDIR`, `USER`, `VOLUME`, `STOPSIGNAL`, `ARG`
    /// names and defaults, and the `RUN --mount` values (which are then fully parsed).
    ///
    /// The other instructions are left alone (`EXPOSE` is expanded with word splitting, see
    /// [`ExposeCommand::expand_words`]). Note that BuildKit's dispatcher does not call this
    /// for `ARG`: it expands only the default value, itself.
    pub fn expand<E: From<Error>>(
        &mut self,
        f: &mut dyn FnMut(&str) -> Result<String, E>,
    ) -> Result<(), E> {
        match self {
            Command::Env(c) => c.expand(f),
            Command::Label(c) => c.expand(f),
            Command::Add(c) => c.expand(f),
            Command::Copy(c) => c.expand(f),
            Command::Workdir(c) => c.expand(f),
            Command::Run(c) => c.expand(f),
            Command::User(c) => c.expand(f),
            Command::Volume(c) => c.expand(f),
            Command::StopSignal(c) => c.expand(f),
            Command::Arg(c) => c.expand(f),
            Command::Maintainer(_)
            | Command::Onbuild(_)
            | Command::Cmd(_)
            | Command::Healthcheck(_)
            | Command::Entrypoint(_)
            | Command::Expose(_)
            | Command::Shell(_) => Ok(()),
        }
    }

    /// Expands the content of `COPY`/`ADD` heredoc sources (see
    /// [`SourcesAndDest::expand_raw`]); does nothing for other instructions.
    pub fn expand_raw<E>(&mut self, f: &mut dyn FnMut(&str) -> Result<String, E>) -> Result<(), E> {
        match self {
            Command::Add(c) => c.sources.expand_raw(f),
            Command::Copy(c) => c.sources.expand_raw(f),
            _ => Ok(()),
        }
    }
}

fn expand_all<E>(
    values: &mut [String],
    f: &mut dyn FnMut(&str) -> Result<String, E>,
) -> Result<(), E> {
    for v in values {
        *v = f(v)?;
    }
    Ok(())
}

fn expand_pairs<E>(
    pairs: &mut [KeyValuePair],
    f: &mut dyn FnMut(&str) -> Result<String, E>,
) -> Result<(), E> {
    for pair in pairs {
        pair.key = f(&pair.key)?;
        pair.value = f(&pair.value)?;
    }
    Ok(())
}

impl EnvCommand {
    /// Expands the keys and values.
    pub fn expand<E>(&mut self, f: &mut dyn FnMut(&str) -> Result<String, E>) -> Result<(), E> {
        expand_pairs(&mut self.env, f)
    }
}

impl LabelCommand {
    /// Expands the keys and values.
    pub fn expand<E>(&mut self, f: &mut dyn FnMut(&str) -> Result<String, E>) -> Result<(), E> {
        expand_pairs(&mut self.labels, f)
    }
}

impl AddCommand {
    /// Expands `--chown`, `--chmod`, `--checksum`, `--exclude`, the sources and the
    /// destination.
    pub fn expand<E>(&mut self, f: &mut dyn FnMut(&str) -> Result<String, E>) -> Result<(), E> {
        self.chown = f(&self.chown)?;
        self.chmod = f(&self.chmod)?;
        self.checksum = f(&self.checksum)?;
        expand_all(&mut self.exclude_patterns, f)?;
        self.sources.expand(f)
    }
}

impl CopyCommand {
    /// Expands `--chown`, `--chmod`, `--exclude`, the sources and the destination (not
    /// `--from`, which BuildKit resolves before expansion).
    pub fn expand<E>(&mut self, f: &mut dyn FnMut(&str) -> Result<String, E>) -> Result<(), E> {
        self.chown = f(&self.chown)?;
        self.chmod = f(&self.chmod)?;
        expand_all(&mut self.exclude_patterns, f)?;
        self.sources.expand(f)
    }
}

impl WorkdirCommand {
    /// Expands the path.
    pub fn expand<E>(&mut self, f: &mut dyn FnMut(&str) -> Result<String, E>) -> Result<(), E> {
        self.path = f(&self.path)?;
        Ok(())
    }
}

impl RunCommand {
    /// Expands the `--mount` values and parses them fully into [`RunCommand::mounts`].
    pub fn expand<E: From<Error>>(
        &mut self,
        f: &mut dyn FnMut(&str) -> Result<String, E>,
    ) -> Result<(), E> {
        let mut mounts = Vec::with_capacity(self.mount_specs.len());
        for spec in &self.mount_specs {
            mounts.push(parse_mount_with(spec, Some(&mut *f))?);
        }
        self.mounts = mounts;
        Ok(())
    }
}

impl UserCommand {
    /// Expands the user.
    pub fn expand<E>(&mut self, f: &mut dyn FnMut(&str) -> Result<String, E>) -> Result<(), E> {
        self.user = f(&self.user)?;
        Ok(())
    }
}

impl VolumeCommand {
    /// Expands every path.
    pub fn expand<E>(&mut self, f: &mut dyn FnMut(&str) -> Result<String, E>) -> Result<(), E> {
        expand_all(&mut self.volumes, f)
    }
}

impl StopSignalCommand {
    /// Expands the signal.
    pub fn expand<E>(&mut self, f: &mut dyn FnMut(&str) -> Result<String, E>) -> Result<(), E> {
        self.signal = f(&self.signal)?;
        Ok(())
    }
}

impl ArgCommand {
    /// Expands the names and the default values.
    pub fn expand<E>(&mut self, f: &mut dyn FnMut(&str) -> Result<String, E>) -> Result<(), E> {
        for arg in &mut self.args {
            arg.key = f(&arg.key)?;
            if let Some(value) = &arg.value {
                arg.value = Some(f(value)?);
            }
        }
        Ok(())
    }
}

impl ExposeCommand {
    /// Expands the ports with an expander that may split a word into several (BuildKit uses
    /// `ProcessWords` here), replacing [`ExposeCommand::ports`] with the result.
    pub fn expand_words<E>(
        &mut self,
        f: &mut dyn FnMut(&str) -> Result<Vec<String>, E>,
    ) -> Result<(), E> {
        let mut ports = Vec::with_capacity(self.ports.len());
        for port in &self.ports {
            ports.extend(f(port)?);
        }
        self.ports = ports;
        Ok(())
    }
}
