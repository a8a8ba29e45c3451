//! One syntax-tree node to one typed instruction, as BuildKit's `instructions/parse.go`
//! does it, with the build checks BuildKit runs at that point.

use std::time::Duration;

use kiln_dockerfile_parser::{LineRange, Node, chomp_heredoc_content};
use kiln_gostd::strconv::quote;

use crate::command::*;
use crate::error::Error;
use crate::flags::FlagSet;
use crate::linter::Linter;
use crate::linter::rules::{self, messages};
use crate::mount::parse_mount;
use crate::suggest;

/// The instruction names BuildKit knows, for "did you mean" suggestions.
const INSTRUCTION_NAMES: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// A build stage: a `FROM` instruction and the instructions that follow it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stage {
    /// The stage name (`FROM image AS name`), lower-cased as BuildKit does.
    pub name: Option<String>,
    /// The stage name as written.
    pub orig_name: Option<String>,
    /// The base: an image reference, another stage's name, or `scratch` (not expanded).
    pub base_name: String,
    /// The `--platform` value as written (not expanded); `None` when absent or empty.
    pub platform: Option<String>,
    /// The `FROM` keyword as written.
    pub keyword: String,
    /// The description from the comment above (`# name description`), or empty.
    pub comment: String,
    /// The `FROM` instruction's text, trimmed.
    pub source: String,
    /// The lines of the `FROM` instruction.
    pub lines: LineRange,
    /// The instructions of the stage, in order.
    pub commands: Vec<Command>,
}

/// The result of parsing one node: a new stage (`FROM`) or a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// A `FROM` instruction.
    Stage(Stage),
    /// Any other instruction.
    Command(Command),
}

/// The keyword of a node as written (the parser lower-cases [`Node::keyword`]).
pub(crate) fn written_keyword(node: &Node) -> String {
    let first = node.original.split_whitespace().next().unwrap_or("");
    if !first.is_empty() && first.to_lowercase() == node.keyword {
        first.to_string()
    } else {
        node.keyword.clone()
    }
}

/// Parses one instruction node, running the checks BuildKit runs while parsing it
/// (`MaintainerDeprecated`, `StageNameCasing`, `FromAsCasing`, `InvalidDefinitionDescription`).
///
/// Errors carry the node's lines but not the `dockerfile parse error on line N: ` prefix,
/// which [`crate::parse`] adds.
pub fn parse_instruction(node: &Node, linter: &mut Linter) -> Result<Instruction, Error> {
    parse_node(node, Some(linter)).map_err(|e| e.with_lines(node.lines))
}

/// Parses one node that must be a command, as BuildKit parses `ONBUILD` triggers: no checks
/// run, and `FROM` is an error.
pub fn parse_command(node: &Node) -> Result<Command, Error> {
    match parse_node(node, None).map_err(|e| e.with_lines(node.lines))? {
        Instruction::Command(c) => Ok(c),
        Instruction::Stage(_) => Err(Error::at(
            node.lines,
            "*instructions.Stage is not a command type",
        )),
    }
}

struct Request<'a> {
    node: &'a Node,
    keyword: String,
    original: String,
}

impl Request<'_> {
    fn args(&self) -> &[String] {
        &self.node.args
    }

    fn flags(&self) -> FlagSet<'_> {
        FlagSet::new(&self.node.flags)
    }

    fn json(&self) -> bool {
        self.node.json
    }

    fn lines(&self) -> LineRange {
        self.node.lines
    }
}

macro_rules! meta {
    ($req:expr, $name:ident { $($field:ident : $value:expr),* $(,)? }) => {
        $name {
            $($field: $value,)*
            keyword: $req.keyword.clone(),
            original: $req.original.clone(),
            lines: $req.lines(),
        }
    };
}

fn parse_node(node: &Node, linter: Option<&mut Linter>) -> Result<Instruction, Error> {
    let req = Request {
        node,
        keyword: written_keyword(node),
        original: node.original.trim().to_string(),
    };
    let mut disabled = Linter::default();
    let (lint, lint_enabled) = match linter {
        Some(l) => (l, true),
        None => (&mut disabled, false),
    };
    let command = match node.keyword.as_str() {
        "env" => Command::Env(parse_env(&req)?),
        "maintainer" => {
            if lint_enabled {
                lint.run(
                    &rules::MAINTAINER_DEPRECATED,
                    req.lines(),
                    messages::maintainer_deprecated(),
                );
            }
            Command::Maintainer(parse_maintainer(&req)?)
        }
        "label" => Command::Label(parse_label(&req)?),
        "add" => Command::Add(parse_add(&req)?),
        "copy" => Command::Copy(parse_copy(&req)?),
        "from" => {
            let args = req.args();
            if lint_enabled {
                if let [_, _, name] = args
                    && *name != name.to_lowercase()
                {
                    lint.run(
                        &rules::STAGE_NAME_CASING,
                        req.lines(),
                        messages::stage_name_casing(name),
                    );
                }
                if let [_, as_word, _, ..] = args
                    && !from_matches_as_case(&req.keyword, as_word)
                {
                    lint.run(
                        &rules::FROM_AS_CASING,
                        req.lines(),
                        messages::from_as_casing(&req.keyword, as_word),
                    );
                }
            }
            let stage = parse_from(&req)?;
            if lint_enabled && let Some(name) = &stage.name {
                validate_definition_description("FROM", &[name.as_str()], node, lint);
            }
            return Ok(Instruction::Stage(stage));
        }
        "onbuild" => Command::Onbuild(parse_onbuild(&req)?),
        "workdir" => Command::Workdir(parse_workdir(&req)?),
        "run" => Command::Run(parse_run(&req)?),
        "cmd" => Command::Cmd(parse_cmd(&req)?),
        "healthcheck" => Command::Healthcheck(parse_healthcheck(&req)?),
        "entrypoint" => Command::Entrypoint(parse_entrypoint(&req)?),
        "expose" => Command::Expose(parse_expose(&req)?),
        "user" => Command::User(parse_user(&req)?),
        "volume" => Command::Volume(parse_volume(&req)?),
        "stopsignal" => Command::StopSignal(parse_stopsignal(&req)?),
        "arg" => {
            let arg = parse_arg(&req)?;
            if lint_enabled {
                let keys: Vec<&str> = arg.args.iter().map(|a| a.key.as_str()).collect();
                validate_definition_description("ARG", &keys, node, lint);
            }
            Command::Arg(arg)
        }
        "shell" => Command::Shell(parse_shell(&req)?),
        _ => {
            return Err(Error::new(suggest::wrap(
                format!("unknown instruction: {}", req.keyword),
                &req.keyword,
                INSTRUCTION_NAMES,
                false,
            )));
        }
    };
    Ok(Instruction::Command(command))
}

fn from_matches_as_case(from: &str, as_word: &str) -> bool {
    let from_lower = from == from.to_lowercase();
    let from_upper = from == from.to_uppercase();
    if !from_lower && !from_upper {
        // Inconsistent casing of FROM itself is reported by ConsistentInstructionCasing.
        return true;
    }
    if from_lower {
        as_word == as_word.to_lowercase()
    } else {
        as_word == as_word.to_uppercase()
    }
}

fn validate_definition_description(
    instruction: &str,
    keys: &[&str],
    node: &Node,
    linter: &mut Linter,
) {
    let Some(last) = node.prev_comment.last() else {
        return;
    };
    if keys.is_empty() {
        return;
    }
    let first_word = last.trim().split(' ').next().unwrap_or("");
    if keys.contains(&first_word) {
        return;
    }
    let example = if keys.len() > 1 { "<arg_key>" } else { keys[0] };
    linter.run(
        &rules::INVALID_DEFINITION_DESCRIPTION,
        node.lines,
        messages::invalid_definition_description(instruction, example),
    );
}

/// The description of `name` among the comments above an instruction (`# name text`).
fn comment_for(node: &Node, name: &str) -> String {
    if name.is_empty() {
        return String::new();
    }
    let prefix = format!("{name} ");
    node.prev_comment
        .iter()
        .find_map(|line| line.trim().strip_prefix(&prefix).map(str::to_string))
        .unwrap_or_default()
}

fn err_at_least_one(command: &str) -> Error {
    Error::new(format!("{command} requires at least one argument"))
}

fn err_exactly_one(command: &str) -> Error {
    Error::new(format!("{command} requires exactly one argument"))
}

fn err_no_destination(command: &str) -> Error {
    Error::new(format!(
        "{command} requires at least two arguments, but only one was provided. Destination could not be determined"
    ))
}

fn parse_kvps(args: &[String], command: &str) -> Result<Vec<KeyValuePair>, Error> {
    if args.is_empty() {
        return Err(err_at_least_one(command));
    }
    if !args.len().is_multiple_of(3) {
        return Err(Error::new(format!(
            "Bad input to {command}, too many arguments"
        )));
    }
    let mut out = Vec::with_capacity(args.len() / 3);
    for triple in args.chunks(3) {
        let [key, value, delim] = triple else {
            return Err(Error::new(format!(
                "Bad input to {command}, too many arguments"
            )));
        };
        if key.is_empty() {
            return Err(Error::new(format!("{command} names can not be blank")));
        }
        out.push(KeyValuePair {
            key: key.clone(),
            value: value.clone(),
            no_delim: delim.is_empty(),
        });
    }
    Ok(out)
}

fn parse_env(req: &Request) -> Result<EnvCommand, Error> {
    req.flags().parse()?;
    let env = parse_kvps(req.args(), "ENV")?;
    Ok(meta!(req, EnvCommand { env: env }))
}

fn parse_maintainer(req: &Request) -> Result<MaintainerCommand, Error> {
    let [maintainer] = req.args() else {
        return Err(err_exactly_one("MAINTAINER"));
    };
    req.flags().parse()?;
    Ok(meta!(
        req,
        MaintainerCommand {
            maintainer: maintainer.clone()
        }
    ))
}

fn parse_label(req: &Request) -> Result<LabelCommand, Error> {
    req.flags().parse()?;
    let labels = parse_kvps(req.args(), "LABEL")?;
    Ok(meta!(req, LabelCommand { labels: labels }))
}

fn heredocs(node: &Node) -> &[kiln_dockerfile_parser::Heredoc] {
    if node.heredocs.is_empty()
        && let Some(sub) = &node.sub
    {
        return &sub.heredocs;
    }
    &node.heredocs
}

/// Upstream's `MustParseHeredoc`: a heredoc word, or `None` (also for malformed ones).
fn parse_heredoc_word(word: &str) -> Option<kiln_dockerfile_parser::Heredoc> {
    kiln_dockerfile_parser::parse_heredoc(word).ok().flatten()
}

fn parse_sources_and_dest(req: &Request, command: &str) -> Result<SourcesAndDest, Error> {
    let Some((dest, sources)) = req.args().split_last() else {
        return Err(err_no_destination(command));
    };
    if parse_heredoc_word(dest).is_some() {
        return Err(Error::new(format!(
            "{command} cannot accept a heredoc as a destination"
        )));
    }
    let mut out = SourcesAndDest {
        dest_path: dest.clone(),
        ..Default::default()
    };
    for src in sources {
        match parse_heredoc_word(src) {
            Some(word) => {
                let body = heredocs(req.node)
                    .iter()
                    .rev()
                    .find(|h| h.name == word.name);
                let mut data = body.map(|h| h.content.clone()).unwrap_or_default();
                if word.chomp {
                    data = chomp_heredoc_content(&data);
                }
                out.source_contents.push(SourceContent {
                    path: word.name,
                    data,
                    expand: word.expand,
                });
            }
            None => out.source_paths.push(src.clone()),
        }
    }
    Ok(out)
}

fn parse_add(req: &Request) -> Result<AddCommand, Error> {
    if req.args().len() < 2 {
        return Err(err_no_destination("ADD"));
    }
    let mut flags = req.flags();
    let exclude = flags.add_strings("exclude");
    let chown = flags.add_string("chown", "");
    let chmod = flags.add_string("chmod", "");
    let link = flags.add_bool("link", false);
    let keep_git_dir = flags.add_bool("keep-git-dir", false);
    let checksum = flags.add_string("checksum", "");
    let unpack = flags.add_bool("unpack", false);
    flags.parse()?;
    let sources = parse_sources_and_dest(req, "ADD")?;
    Ok(meta!(
        req,
        AddCommand {
            sources: sources,
            chown: flags.string(chown),
            chmod: flags.string(chmod),
            link: flags.bool(link),
            keep_git_dir: flags.bool(keep_git_dir),
            checksum: flags.string(checksum),
            unpack: flags.is_used(unpack).then(|| flags.bool(unpack)),
            exclude_patterns: flags.strings(exclude),
        }
    ))
}

fn parse_copy(req: &Request) -> Result<CopyCommand, Error> {
    if req.args().len() < 2 {
        return Err(err_no_destination("COPY"));
    }
    let mut flags = req.flags();
    let exclude = flags.add_strings("exclude");
    let parents = flags.add_bool("parents", false);
    let chown = flags.add_string("chown", "");
    let from = flags.add_string("from", "");
    let chmod = flags.add_string("chmod", "");
    let link = flags.add_bool("link", false);
    flags.parse()?;
    let sources = parse_sources_and_dest(req, "COPY")?;
    Ok(meta!(
        req,
        CopyCommand {
            sources: sources,
            from: flags.string(from),
            chown: flags.string(chown),
            chmod: flags.string(chmod),
            link: flags.bool(link),
            parents: flags.bool(parents),
            exclude_patterns: flags.strings(exclude),
        }
    ))
}

fn is_valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

fn parse_from(req: &Request) -> Result<Stage, Error> {
    let args = req.args();
    let (name, orig_name) = match args {
        [_, as_word, name] if as_word.eq_ignore_ascii_case("as") => {
            let lower = name.to_lowercase();
            if !is_valid_stage_name(&lower) {
                return Err(Error::new(format!(
                    "invalid name for build stage: {}, name can't start with a number or contain symbols",
                    quote(name)
                )));
            }
            (Some(lower), Some(name.clone()))
        }
        [_] => (None, None),
        _ => return Err(Error::new("FROM requires either one or three arguments")),
    };
    let mut flags = req.flags();
    let platform = flags.add_string("platform", "");
    flags.parse()?;
    let platform = flags.string(platform);
    let comment = name
        .as_deref()
        .map(|n| comment_for(req.node, n))
        .unwrap_or_default();
    Ok(Stage {
        name,
        orig_name,
        base_name: args[0].clone(),
        platform: (!platform.is_empty()).then_some(platform),
        keyword: req.keyword.clone(),
        comment,
        source: req.original.clone(),
        lines: req.lines(),
        commands: Vec::new(),
    })
}

fn parse_onbuild(req: &Request) -> Result<OnbuildCommand, Error> {
    let Some(sub) = &req.node.sub else {
        return Err(err_at_least_one("ONBUILD"));
    };
    req.flags().parse()?;
    let trigger = written_keyword(sub).trim().to_uppercase();
    match trigger.as_str() {
        "ONBUILD" => {
            return Err(Error::new(
                "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
            ));
        }
        "MAINTAINER" | "FROM" => {
            return Err(Error::new(format!(
                "{trigger} isn't allowed as an ONBUILD trigger"
            )));
        }
        _ => {}
    }
    let mut expression = strip_onbuild_prefix(&req.node.original).to_string();
    for heredoc in heredocs(req.node) {
        expression.push('\n');
        expression.push_str(&heredoc.content);
        expression.push_str(&heredoc.name);
    }
    Ok(meta!(
        req,
        OnbuildCommand {
            expression: expression
        }
    ))
}

/// Removes `^\s*ONBUILD\s*` (case-insensitive), as BuildKit does to get the trigger text.
fn strip_onbuild_prefix(original: &str) -> &str {
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{c}');
    let trimmed = original.trim_start_matches(is_space);
    match trimmed.get(..7) {
        Some(head) if head.eq_ignore_ascii_case("onbuild") => {
            trimmed[7..].trim_start_matches(is_space)
        }
        _ => original,
    }
}

fn parse_workdir(req: &Request) -> Result<WorkdirCommand, Error> {
    let [path] = req.args() else {
        return Err(err_exactly_one("WORKDIR"));
    };
    req.flags().parse()?;
    Ok(meta!(req, WorkdirCommand { path: path.clone() }))
}

fn handle_json_args(args: &[String], json: bool) -> Vec<String> {
    if args.is_empty() {
        return Vec::new();
    }
    if json {
        return args.to_vec();
    }
    vec![args.join(" ")]
}

fn shell_dependant(req: &Request) -> ShellDependantCmdLine {
    let files = heredocs(req.node)
        .iter()
        .map(|h| ShellInlineFile {
            name: h.name.clone(),
            data: h.content.clone(),
            chomp: h.chomp,
        })
        .collect();
    ShellDependantCmdLine {
        cmd_line: handle_json_args(req.args(), req.json()),
        files,
        prepend_shell: !req.json(),
    }
}

fn parse_run(req: &Request) -> Result<RunCommand, Error> {
    let mut flags = req.flags();
    let mount = flags.add_strings("mount");
    let network = flags.add_string("network", "default");
    let security = flags.add_string("security", "sandbox");
    flags.parse()?;
    let flags_used = flags.used();
    let cmd = shell_dependant(req);

    // The validation pass BuildKit runs at parse time; the mounts themselves are parsed when
    // the instruction is expanded.
    let mount_specs = flags.strings(mount);
    for spec in &mount_specs {
        parse_mount(spec, None)?;
    }
    let network = match flags.string(network).as_str() {
        "default" => NetworkMode::Default,
        "none" => NetworkMode::None,
        "host" => NetworkMode::Host,
        other => return Err(Error::new(format!("invalid network mode {}", quote(other)))),
    };
    let security = match flags.string(security).as_str() {
        "sandbox" => SecurityMode::Sandbox,
        "insecure" => SecurityMode::Insecure,
        other => {
            return Err(Error::new(format!(
                "security {} is not valid",
                quote(other)
            )));
        }
    };
    Ok(meta!(
        req,
        RunCommand {
            cmd: cmd,
            mount_specs: mount_specs,
            mounts: Vec::new(),
            network: network,
            security: security,
            flags_used: flags_used,
        }
    ))
}

fn parse_cmd(req: &Request) -> Result<CmdCommand, Error> {
    req.flags().parse()?;
    Ok(meta!(
        req,
        CmdCommand {
            cmd: shell_dependant(req)
        }
    ))
}

fn parse_entrypoint(req: &Request) -> Result<EntrypointCommand, Error> {
    req.flags().parse()?;
    Ok(meta!(
        req,
        EntrypointCommand {
            cmd: shell_dependant(req)
        }
    ))
}

/// A `HEALTHCHECK` duration flag: empty or zero is "default"; otherwise at least 1ms.
fn parse_interval(name: &str, value: &str) -> Result<Duration, Error> {
    if value.is_empty() {
        return Ok(Duration::ZERO);
    }
    let nanos = kiln_gostd::time::parse_duration(value).map_err(|e| Error::new(e.to_string()))?;
    if nanos == 0 {
        return Ok(Duration::ZERO);
    }
    if nanos < 1_000_000 {
        return Err(Error::new(format!(
            "Interval {} cannot be less than 1ms",
            quote(name)
        )));
    }
    Ok(Duration::from_nanos(nanos.unsigned_abs()))
}

/// Go's `strconv.ParseInt(s, 10, 32)`, with its error text.
fn parse_go_int32(s: &str) -> Result<i32, Error> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::new(format!(
            "strconv.ParseInt: parsing {}: invalid syntax",
            quote(s)
        )));
    }
    s.parse::<i32>().map_err(|_| {
        Error::new(format!(
            "strconv.ParseInt: parsing {}: value out of range",
            quote(s)
        ))
    })
}

fn parse_healthcheck(req: &Request) -> Result<HealthcheckCommand, Error> {
    let Some((typ, rest)) = req.args().split_first() else {
        return Err(err_at_least_one("HEALTHCHECK"));
    };
    let typ = typ.to_uppercase();
    if typ == "NONE" {
        if !rest.is_empty() {
            return Err(Error::new("HEALTHCHECK NONE takes no arguments"));
        }
        let health = HealthConfig {
            test: vec![typ],
            ..Default::default()
        };
        return Ok(meta!(req, HealthcheckCommand { health: health }));
    }
    let mut flags = req.flags();
    let interval = flags.add_string("interval", "");
    let timeout = flags.add_string("timeout", "");
    let start_period = flags.add_string("start-period", "");
    let start_interval = flags.add_string("start-interval", "");
    let retries = flags.add_string("retries", "");
    flags.parse()?;

    let test = match typ.as_str() {
        "CMD" => {
            let cmd = handle_json_args(rest, req.json());
            if cmd.is_empty() {
                return Err(Error::new("Missing command after HEALTHCHECK CMD"));
            }
            let kind = if req.json() {
                "CMD".to_string()
            } else {
                "CMD-SHELL".to_string()
            };
            std::iter::once(kind).chain(cmd).collect()
        }
        _ => {
            return Err(Error::new(format!(
                "Unknown type {} in HEALTHCHECK (try CMD)",
                quote(&typ)
            )));
        }
    };
    let mut health = HealthConfig {
        test,
        interval: parse_interval("interval", &flags.string(interval))?,
        timeout: parse_interval("timeout", &flags.string(timeout))?,
        start_period: parse_interval("start-period", &flags.string(start_period))?,
        start_interval: parse_interval("start-interval", &flags.string(start_interval))?,
        retries: 0,
    };
    let retries = flags.string(retries);
    if !retries.is_empty() {
        let n = parse_go_int32(&retries)?;
        if n < 0 {
            return Err(Error::new(format!("--retries cannot be negative ({n})")));
        }
        health.retries = n;
    }
    Ok(meta!(req, HealthcheckCommand { health: health }))
}

fn parse_expose(req: &Request) -> Result<ExposeCommand, Error> {
    if req.args().is_empty() {
        return Err(err_at_least_one("EXPOSE"));
    }
    req.flags().parse()?;
    let mut ports = req.args().to_vec();
    ports.sort();
    Ok(meta!(req, ExposeCommand { ports: ports }))
}

fn parse_user(req: &Request) -> Result<UserCommand, Error> {
    let [user] = req.args() else {
        return Err(err_exactly_one("USER"));
    };
    req.flags().parse()?;
    Ok(meta!(req, UserCommand { user: user.clone() }))
}

fn parse_volume(req: &Request) -> Result<VolumeCommand, Error> {
    if req.args().is_empty() {
        return Err(err_at_least_one("VOLUME"));
    }
    req.flags().parse()?;
    let mut volumes = Vec::with_capacity(req.args().len());
    for v in req.args() {
        let v = v.trim();
        if v.is_empty() {
            return Err(Error::new("VOLUME specified can not be an empty string"));
        }
        volumes.push(v.to_string());
    }
    Ok(meta!(req, VolumeCommand { volumes: volumes }))
}

fn parse_stopsignal(req: &Request) -> Result<StopSignalCommand, Error> {
    // BuildKit does not parse flags here: they are ignored.
    let [signal] = req.args() else {
        return Err(err_exactly_one("STOPSIGNAL"));
    };
    Ok(meta!(
        req,
        StopSignalCommand {
            signal: signal.clone()
        }
    ))
}

fn parse_arg(req: &Request) -> Result<ArgCommand, Error> {
    // BuildKit does not parse flags here: they are ignored.
    if req.args().is_empty() {
        return Err(err_at_least_one("ARG"));
    }
    let mut args = Vec::with_capacity(req.args().len());
    for word in req.args() {
        let (key, value) = match word.split_once('=') {
            Some((key, value)) => {
                if key.is_empty() {
                    return Err(Error::new("ARG names can not be blank"));
                }
                (key.to_string(), Some(value.to_string()))
            }
            None => (word.clone(), None),
        };
        let comment = comment_for(req.node, &key);
        args.push(KeyValuePairOptional {
            key,
            value,
            comment,
        });
    }
    Ok(meta!(req, ArgCommand { args: args }))
}

fn parse_shell(req: &Request) -> Result<ShellCommand, Error> {
    req.flags().parse()?;
    let shell = handle_json_args(req.args(), req.json());
    if shell.is_empty() {
        return Err(err_at_least_one("SHELL"));
    }
    if !req.json() {
        return Err(Error::new(
            "SHELL requires the arguments to be in JSON form",
        ));
    }
    Ok(meta!(req, ShellCommand { shell: shell }))
}
