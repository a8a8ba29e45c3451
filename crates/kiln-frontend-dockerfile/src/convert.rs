//! The conversion: stages, their dependencies, base image resolution, dispatch of every
//! instruction, and the final image config (BuildKit's `toDispatchState`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kiln_dockerfile::linter::checks::{self, WordExpansion};
use kiln_dockerfile::linter::rules::{self, messages};
use kiln_dockerfile::{CheckConfig, Command, LintWarning, Linter, Stage};
use kiln_dockerfile_parser::LineRange;
use kiln_llb::{
    Definition, GitOpts, HttpOpts, ImageOpts, LocalOpts, MarshalOpts, OciLayoutOpts, Range,
    SourceLocation, SourceMap, State, VertexOpts,
};
use kiln_oci::{Image, Platform, Reference};
use kiln_shell::Lexer;

use crate::args::{self, EnvVec, env_get};
use crate::error::ConvertError;
use crate::names;
use crate::options::{ConvertOptions, NamedContext};
use crate::resolver::{ImageResolver, ResolvedImage};
use crate::stage::{StageCommand, StageState};

/// The result of converting a Dockerfile for one platform.
#[derive(Debug, Clone)]
pub struct Converted {
    /// The LLB graph whose result is the target stage's filesystem.
    pub definition: Definition,
    /// The target stage's image config (without `rootfs.diff_ids`, which the exporter fills).
    pub image: Image,
    /// The build-check warnings, in the order they were found.
    pub warnings: Vec<LintWarning>,
    /// The base images the target depends on, as resolved.
    pub base_images: Vec<BaseImage>,
}

/// A base image the build used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseImage {
    /// The reference as written after expansion (`busybox`).
    pub name: String,
    /// The pinned reference (`docker.io/library/busybox:latest@sha256:...`), or the normalized
    /// one when the resolver gave no digest.
    pub reference: String,
    /// The platform it was resolved for.
    pub platform: Platform,
}

/// Converts a Dockerfile to LLB and an image config, resolving base images with `resolver`.
pub async fn convert<R: ImageResolver>(
    dockerfile: &[u8],
    opts: &ConvertOptions,
    resolver: &R,
) -> Result<Converted, ConvertError> {
    if dockerfile.is_empty() {
        return Err(ConvertError::new("the Dockerfile cannot be empty"));
    }
    let df = kiln_dockerfile_parser::parse(dockerfile)
        .map_err(|e| ConvertError::from(e).prefixed_with_line("dockerfile parse error"))?;

    let check_config = match opts.build_args.get("BUILDKIT_DOCKERFILE_CHECK") {
        Some(spec) => CheckConfig::parse(spec).map_err(|e| {
            ConvertError::new(format!(
                "failed to parse check configuration {spec:?}: {}",
                e.message
            ))
        })?,
        None => CheckConfig::from_directives(&df.directives)?,
    };
    let mut linter = Linter::new(check_config);
    let parsed = kiln_dockerfile::parse(&df, &mut linter)?;
    if parsed.stages.is_empty() {
        return Err(ConvertError::new("dockerfile contains no stages to build"));
    }

    let name = if opts.dockerfile_name.is_empty() {
        "Dockerfile"
    } else {
        &opts.dockerfile_name
    };
    let mut ctx = Ctx::new(opts, dockerfile, name, parsed.escape, linter);
    let target = ctx.prepare(&parsed)?;
    ctx.resolve(target, resolver).await?;

    // Two passes: the first finds which paths of the build context (and of local named
    // contexts) the stages read, so that the context source of the second can name them
    // (`local.followpaths`), as BuildKit does with its lazily created context source.
    let resolved = ctx.states.clone();
    let linter = std::mem::replace(
        &mut ctx.linter,
        Linter::new(CheckConfig {
            skip_all: true,
            ..CheckConfig::default()
        }),
    );
    ctx.context = ctx.context_source(&BTreeSet::new());
    ctx.dispatch_all(target)?;
    let ctx_paths = std::mem::take(&mut ctx.ctx_paths);
    let paths: Vec<BTreeSet<String>> = ctx.states.iter().map(|s| s.paths.clone()).collect();
    ctx.states = resolved;
    ctx.linter = linter;
    ctx.context = ctx.context_source(&ctx_paths);
    for (i, p) in paths.iter().enumerate() {
        ctx.rebuild_local_named_context(i, p);
    }
    ctx.dispatch_all(target)?;
    ctx.finish(target)
}

/// Everything the conversion of one Dockerfile holds.
pub(crate) struct Ctx<'o> {
    pub opts: &'o ConvertOptions,
    /// The Dockerfile's lexer (its escape character).
    pub lexer: Lexer,
    /// The Dockerfile, for source locations.
    pub source_map: Arc<SourceMap>,
    pub linter: Linter,
    /// The global arguments: predefined ones and the `ARG`s before the first `FROM`.
    pub global_args: EnvVec,
    /// The names of the `ARG`s declared before the first `FROM`.
    pub meta_arg_names: BTreeSet<String>,
    pub proxy: Option<kiln_llb::ops::ProxyEnv>,
    /// `SOURCE_DATE_EPOCH`, in seconds.
    pub epoch: Option<i64>,
    /// The main build context source.
    pub context: State,
    pub target_platform: Platform,
    pub implicit_target: bool,
    pub build_platforms: Vec<Platform>,
    pub states: Vec<StageState>,
    /// Paths read from the main build context by all stages.
    pub ctx_paths: BTreeSet<String>,
    /// The index of the scratch sentinel state, once created.
    scratch_sentinel: Option<usize>,
    /// The number of stages parsed from the Dockerfile (registered states come first).
    parsed_stages: usize,
}

impl<'o> Ctx<'o> {
    fn new(
        opts: &'o ConvertOptions,
        dockerfile: &[u8],
        name: &str,
        escape: char,
        linter: Linter,
    ) -> Ctx<'o> {
        let build_platforms = if !opts.build_platforms.is_empty() {
            opts.build_platforms.clone()
        } else if let Some(t) = &opts.target_platform {
            vec![t.clone()]
        } else {
            vec![Platform::host()]
        };
        let (target_platform, implicit_target) = match &opts.target_platform {
            Some(p) => (p.clone(), false),
            None => (build_platforms[0].clone(), true),
        };
        let mut source_map = SourceMap::new(name, dockerfile.to_vec());
        if let Some(map) = Arc::get_mut(&mut source_map) {
            map.language = "Dockerfile".to_string();
        }
        Ctx {
            opts,
            lexer: Lexer::new(escape),
            source_map,
            linter,
            global_args: Vec::new(),
            meta_arg_names: BTreeSet::new(),
            proxy: args::proxy_env(&opts.build_args),
            epoch: None,
            context: State::scratch(),
            target_platform,
            implicit_target,
            build_platforms,
            states: Vec::new(),
            ctx_paths: BTreeSet::new(),
            scratch_sentinel: None,
            parsed_stages: 0,
        }
    }

    /// The source location of some Dockerfile lines, for vertex metadata.
    pub(crate) fn location(&self, lines: LineRange) -> SourceLocation {
        self.source_map
            .location(vec![Range::lines(lines.start as i32, lines.end as i32)])
    }

    /// Global arguments, stage states, dependencies and the target (everything before images
    /// are resolved). Returns the index of the target state.
    fn prepare(&mut self, parsed: &kiln_dockerfile::Parsed) -> Result<usize, ConvertError> {
        let opts = self.opts;
        let last_name = parsed
            .stages
            .last()
            .and_then(|s| s.name.clone())
            .unwrap_or_default();
        let target_stage = match &opts.target {
            Some(t) if !t.is_empty() => t.clone(),
            _ if !last_name.is_empty() => last_name,
            _ => "default".to_string(),
        };
        let mut global = args::default_args(
            &self.build_platforms[0],
            &self.target_platform,
            &target_stage,
            &opts.build_args,
        );
        self.check_default_args_in_from(parsed, &global);
        for arg in &parsed.meta_args {
            for kv in &arg.args {
                self.meta_arg_names.insert(kv.key.clone());
                let value = match (opts.build_args.get(&kv.key), &kv.value) {
                    (Some(v), _) => Some(v.clone()),
                    (None, Some(default)) => Some(
                        self.lexer
                            .process_word(default, &global)
                            .map_err(|e| ConvertError::at(arg.lines, e.to_string()))?,
                    ),
                    (None, None) => None,
                };
                if let Some(v) = value {
                    args::env_set(&mut global, &kv.key, &v);
                }
            }
        }
        self.global_args = global;
        self.epoch = self.source_date_epoch()?;

        for (i, stage) in parsed.stages.iter().enumerate() {
            let ds = self.stage_state(i, stage)?;
            self.states.push(ds);
        }
        self.parsed_stages = self.states.len();

        // Commands and the stages they read from.
        for i in 0..self.parsed_stages {
            let commands = self.states[i].stage.commands.clone();
            let mut out = Vec::with_capacity(commands.len());
            for command in commands {
                out.push(self.stage_command(i, command, false)?);
            }
            self.states[i].commands = out;
        }
        self.check_cycles()?;
        if self.states.len() == 1 {
            self.states[0].stage_name.clear();
        }

        match &opts.target {
            Some(t) if !t.is_empty() => {
                let lower = t.to_lowercase();
                (0..self.parsed_stages)
                    .find(|&i| self.states[i].name.as_deref() == Some(lower.as_str()))
                    .ok_or_else(|| {
                        let names: Vec<&str> = self
                            .states
                            .iter()
                            .filter_map(|s| s.name.as_deref())
                            .collect();
                        ConvertError::new(kiln_dockerfile::suggest::wrap(
                            format!("target stage {:?} could not be found", t),
                            t,
                            &names,
                            false,
                        ))
                    })
            }
            _ => Ok(self.parsed_stages - 1),
        }
    }

    /// `InvalidDefaultArgInFrom`: the base names, expanded with the defaults of the global
    /// arguments only, must be valid references.
    fn check_default_args_in_from(
        &mut self,
        parsed: &kiln_dockerfile::Parsed,
        predefined: &EnvVec,
    ) {
        let mut env = predefined.clone();
        for arg in &parsed.meta_args {
            for kv in &arg.args {
                if let Some(default) = &kv.value
                    && let Ok(v) = self.lexer.process_word(default, &env)
                {
                    args::env_set(&mut env, &kv.key, &v);
                }
            }
        }
        for stage in &parsed.stages {
            let Ok(expanded) = self.lexer.process_word(&stage.base_name, &env) else {
                continue;
            };
            if expanded == "scratch" {
                continue;
            }
            let is_stage = parsed
                .stages
                .iter()
                .any(|s| s.name.as_deref() == Some(expanded.as_str()));
            if !is_stage && Reference::parse(&expanded).is_err() {
                self.linter.run(
                    &rules::INVALID_DEFAULT_ARG_IN_FROM,
                    stage.lines,
                    messages::invalid_default_arg_in_from(&stage.base_name),
                );
            }
        }
    }

    /// `SOURCE_DATE_EPOCH`, from the build argument or a global `ARG` default.
    fn source_date_epoch(&self) -> Result<Option<i64>, ConvertError> {
        let value = env_get(&self.global_args, "SOURCE_DATE_EPOCH")
            .map(str::to_string)
            .or_else(|| self.opts.build_args.get("SOURCE_DATE_EPOCH").cloned());
        match value.as_deref() {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .map(Some)
                .map_err(|_| ConvertError::new(format!("invalid SOURCE_DATE_EPOCH: {v}"))),
        }
    }

    /// Expands a word of a `FROM` line with the global arguments, reporting
    /// `UndefinedArgInFrom` for the variables that are not declared.
    fn expand_from_word(
        &mut self,
        word: &str,
        lines: LineRange,
    ) -> Result<WordExpansion, ConvertError> {
        let res = self
            .lexer
            .process_word_with_matches(word, &self.global_args)
            .map_err(|e| ConvertError::at(lines, e.to_string()))?;
        for name in &res.unmatched {
            if self.meta_arg_names.contains(name) || is_predefined_arg(name) {
                continue;
            }
            let candidates: Vec<&str> = self
                .meta_arg_names
                .iter()
                .map(String::as_str)
                .chain(PREDEFINED_ARGS.iter().copied())
                .collect();
            let suggestion = kiln_dockerfile::suggest::search(name, &candidates, true);
            self.linter.run(
                &rules::UNDEFINED_ARG_IN_FROM,
                lines,
                messages::undefined_arg_in_from(name, suggestion.as_deref()),
            );
        }
        Ok(WordExpansion {
            result: res.result,
            matched: res.matched.into_iter().collect(),
            unmatched: res.unmatched.into_iter().collect(),
        })
    }

    /// The state of a stage of the Dockerfile, before its base is resolved.
    fn stage_state(&mut self, index: usize, stage: &Stage) -> Result<StageState, ConvertError> {
        let base = self.expand_from_word(&stage.base_name, stage.lines)?;
        if base.result.is_empty() {
            return Err(ConvertError::at(
                stage.lines,
                format!("base name ({}) should not be blank", stage.base_name),
            ));
        }
        let mut ds = StageState {
            stage: stage.clone(),
            base_name: base.result.clone(),
            orig_base_name: base.result.clone(),
            name: stage.name.clone(),
            stage_name: stage
                .name
                .clone()
                .unwrap_or_else(|| format!("stage-{index}")),
            ..StageState::default()
        };
        if let Some(raw) = &stage.platform {
            let expansion = self.expand_from_word(raw, stage.lines)?;
            let target_platform = env_get(&self.global_args, "TARGETPLATFORM").map(str::to_string);
            checks::redundant_target_platform(
                raw,
                &expansion,
                target_platform.as_deref(),
                stage.lines,
                &mut self.linter,
            );
            if expansion.result.is_empty() {
                return Err(ConvertError::at(
                    stage.lines,
                    format!("empty platform value from expression {raw}"),
                ));
            }
            let platform = Platform::parse(&expansion.result).map_err(|e| {
                ConvertError::at(stage.lines, format!("failed to parse platform {raw}: {e}"))
            })?;
            checks::from_platform_flag_const_disallowed(
                stage.name.as_deref().unwrap_or(""),
                &expansion,
                Some((&platform.os, &platform.architecture)),
                stage.lines,
                &mut self.linter,
            );
            ds.platform = Some(platform);
            ds.explicit_platform = true;
        }
        if let Some(name) = &stage.name {
            ds.named_context = self.named_context(name, ds.platform.as_ref());
            if ds.named_context.is_some() {
                ds.base_name = name.clone();
            }
        }
        if ds.named_context.is_none() {
            ds.base = self
                .states
                .iter()
                .position(|s| s.name.as_deref() == Some(ds.base_name.as_str()));
        }
        ds.cmd_total = usize::from(ds.base_name != "scratch" && ds.base.is_none())
            + stage
                .commands
                .iter()
                .filter(|c| {
                    matches!(
                        c,
                        Command::Add(_) | Command::Copy(_) | Command::Run(_) | Command::Workdir(_)
                    )
                })
                .count();
        ds.ignore_cache = self.opts.no_cache.applies_to(&ds.stage_name)
            || matches!(self.opts.no_cache, crate::options::NoCache::All);
        Ok(ds)
    }

    /// The named context for a reference or stage name, if the user gave one
    /// (`--build-context NAME=...`), as BuildKit looks them up.
    pub(crate) fn named_context(
        &self,
        name: &str,
        platform: Option<&Platform>,
    ) -> Option<NamedContext> {
        if self.opts.named_contexts.is_empty() || name == "scratch" || name == "context" {
            return None;
        }
        let key = match Reference::parse(name) {
            Ok(r) => {
                let familiar = r.familiar();
                familiar
                    .strip_suffix(":latest")
                    .map(str::to_string)
                    .unwrap_or(familiar)
            }
            Err(_) => name.to_string(),
        };
        let platform = platform.unwrap_or(&self.target_platform);
        let with_platform = format!("{key}::{}", platform.format_all());
        self.opts
            .named_contexts
            .get(&with_platform)
            .or_else(|| self.opts.named_contexts.get(&key))
            .cloned()
    }

    /// A command with the stages it reads from; creates unregistered states for images and
    /// named contexts.
    pub(crate) fn stage_command(
        &mut self,
        index: usize,
        command: Command,
        on_build: bool,
    ) -> Result<StageCommand, ConvertError> {
        let mut sources = Vec::new();
        match &command {
            Command::Copy(c) if !c.from.is_empty() => {
                let expanded = self
                    .lexer
                    .process_word(&c.from, &self.global_args)
                    .unwrap_or_default();
                if expanded != c.from {
                    return Err(ConvertError::at(
                        c.lines,
                        "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround",
                    ));
                }
                sources.push(self.source_state(&c.from, c.lines)?);
            }
            Command::Run(r) => {
                for spec in &r.mount_specs {
                    let mount = kiln_dockerfile::parse_mount(spec, None)
                        .map_err(|e| ConvertError::from(e).or_at(r.lines))?;
                    let from = if mount.from.is_empty() {
                        "scratch"
                    } else {
                        mount.from.as_str()
                    };
                    sources.push(self.source_state(from, r.lines)?);
                }
            }
            _ => {}
        }
        for &s in &sources {
            self.states[index].deps.insert(s);
        }
        Ok(StageCommand {
            command,
            sources,
            on_build,
        })
    }

    /// The state a `--from` value refers to: a stage index, a stage name, or an image / named
    /// context (an unregistered state, shared by all commands that name it).
    fn source_state(&mut self, from: &str, lines: LineRange) -> Result<usize, ConvertError> {
        if let Ok(n) = from.parse::<i64>() {
            return usize::try_from(n)
                .ok()
                .filter(|&n| n < self.states.len())
                .ok_or_else(|| ConvertError::at(lines, format!("invalid stage index {n}")));
        }
        let lower = from.to_lowercase();
        if let Some(i) = self
            .states
            .iter()
            .position(|s| !s.unregistered && s.name.as_deref() == Some(lower.as_str()))
        {
            return Ok(i);
        }
        if from == "scratch"
            && let Some(i) = self.scratch_sentinel
        {
            return Ok(i);
        }
        if let Some(i) = self
            .states
            .iter()
            .position(|s| s.unregistered && s.base_name == from)
        {
            return Ok(i);
        }
        let named = self.named_context(from, None);
        let ds = StageState {
            stage: Stage {
                base_name: from.to_string(),
                lines,
                ..Stage::default()
            },
            base_name: from.to_string(),
            orig_base_name: from.to_string(),
            unregistered: true,
            named_context: named,
            ..StageState::default()
        };
        self.states.push(ds);
        let i = self.states.len() - 1;
        if from == "scratch" {
            self.scratch_sentinel = Some(i);
        }
        Ok(i)
    }

    /// Fails when stages depend on each other in a cycle.
    fn check_cycles(&self) -> Result<(), ConvertError> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Visiting,
            Done,
        }
        let mut marks = vec![Mark::New; self.states.len()];
        for start in 0..self.states.len() {
            if marks[start] != Mark::New {
                continue;
            }
            // Iterative depth-first search keeping the path, to report the cycle.
            let mut stack: Vec<(usize, Vec<usize>)> = vec![(start, self.edges(start))];
            marks[start] = Mark::Visiting;
            while let Some((node, pending)) = stack.last_mut() {
                let node = *node;
                match pending.pop() {
                    Some(next) => match marks[next] {
                        Mark::New => {
                            marks[next] = Mark::Visiting;
                            stack.push((next, self.edges(next)));
                        }
                        Mark::Visiting => {
                            let lines = stack
                                .iter()
                                .skip_while(|(n, _)| *n != next)
                                .flat_map(|(n, _)| self.dependency_lines(*n))
                                .collect();
                            return Err(ConvertError {
                                message: format!(
                                    "circular dependency detected on stage: {}",
                                    self.states[next].stage_name
                                ),
                                lines,
                            });
                        }
                        Mark::Done => {}
                    },
                    None => {
                        marks[node] = Mark::Done;
                        stack.pop();
                    }
                }
            }
        }
        Ok(())
    }

    fn edges(&self, i: usize) -> Vec<usize> {
        let s = &self.states[i];
        s.deps.iter().copied().chain(s.base).collect()
    }

    fn dependency_lines(&self, i: usize) -> Vec<LineRange> {
        let s = &self.states[i];
        s.commands
            .iter()
            .filter(|c| !c.sources.is_empty())
            .map(|c| c.command.lines())
            .collect()
    }

    /// The states the target needs, through bases and `--from` dependencies.
    fn reachable(&self, target: usize) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![target];
        while let Some(i) = todo.pop() {
            if seen.insert(i) {
                todo.extend(self.edges(i));
            }
        }
        seen
    }

    /// Resolves the base images of the reachable stages (concurrently) and applies `ONBUILD`
    /// triggers, until no trigger adds a dependency.
    async fn resolve<R: ImageResolver>(
        &mut self,
        target: usize,
        resolver: &R,
    ) -> Result<(), ConvertError> {
        loop {
            let reachable = self.reachable(target);
            let mut pending = Vec::new();
            for i in 0..self.states.len() {
                let ds = &self.states[i];
                if ds.base.is_some() || ds.dispatched || ds.resolved {
                    continue;
                }
                let is_reachable = reachable.contains(&i);
                if ds.base_name == "scratch" && ds.named_context.is_none() {
                    let platform = self.target_platform.clone();
                    let ds = &mut self.states[i];
                    ds.resolved = is_reachable;
                    ds.state = State::scratch();
                    ds.image = Image::empty_for(&platform);
                    ds.platform = Some(platform);
                    if ds.unregistered {
                        ds.dispatched = true;
                    }
                    continue;
                }
                self.states[i].resolved = is_reachable;
                pending.push((i, is_reachable));
            }
            let lookups = pending.iter().map(|&(i, is_reachable)| {
                let ds = &self.states[i];
                let platform = ds
                    .platform
                    .clone()
                    .unwrap_or_else(|| self.target_platform.clone());
                let named = ds
                    .named_context
                    .clone()
                    .or_else(|| self.named_context(&ds.base_name, Some(&platform)));
                let base_name = ds.base_name.clone();
                let lines = ds.stage.lines;
                let mode = self.opts.image_resolve_mode;
                async move {
                    // A `docker-image://` named context is resolved like the base it replaces.
                    let base_name = match &named {
                        Some(NamedContext::Image(r)) if r != "scratch" => r.clone(),
                        // An `oci-layout://` one through the resolver's OCI layout store.
                        Some(NamedContext::OciLayout { store, reference }) if is_reachable => {
                            let pinned = oci_layout_reference(&base_name, reference)
                                .map_err(|e| ConvertError::at(lines, e))?;
                            let resolved = resolver
                                .resolve_oci_layout(&base_name, store, &pinned, &platform)
                                .await
                                .map_err(|e| {
                                    ConvertError::at(lines, format!("{base_name}: {}", e.message))
                                })?;
                            return Ok((Some((pinned, resolved)), named));
                        }
                        Some(_) => return Ok((None, named)),
                        None => base_name,
                    };
                    if !is_reachable {
                        return Ok((None, named));
                    }
                    let reference = Reference::parse(&base_name)
                        .map_err(|e| {
                            ConvertError::at(
                                lines,
                                format!("failed to parse stage name {base_name:?}: {e}"),
                            )
                        })?
                        .with_default_tag()
                        .to_string();
                    let resolved = resolver
                        .resolve(&reference, &platform, mode)
                        .await
                        .map_err(|e| {
                            ConvertError::at(lines, format!("{base_name}: {}", e.message))
                        })?;
                    Ok::<_, ConvertError>((Some((reference, resolved)), None))
                }
            });
            let results = futures::future::join_all(lookups).await;
            for (&(i, is_reachable), result) in pending.iter().zip(results) {
                let (resolved, named) = result?;
                self.apply_base(i, is_reachable, resolved, named)?;
            }

            let mut added = false;
            for i in self.reachable(target) {
                added |= self.apply_onbuild(i)?;
            }
            if !added {
                return Ok(());
            }
        }
    }

    /// Sets a stage's base from its resolution.
    fn apply_base(
        &mut self,
        i: usize,
        reachable: bool,
        resolved: Option<(String, ResolvedImage)>,
        named: Option<NamedContext>,
    ) -> Result<(), ConvertError> {
        let platform = self.states[i]
            .platform
            .clone()
            .unwrap_or_else(|| self.target_platform.clone());
        if let Some(named) = named {
            return self.apply_named_context(i, named, platform, resolved);
        }
        let lines = self.states[i].stage.lines;
        let base_name = self.states[i].base_name.clone();
        let Some((reference, resolved)) = resolved else {
            // Not reachable: an image source that is never resolved nor used.
            let reference = Reference::parse(&base_name)
                .map(|r| r.with_default_tag().to_string())
                .unwrap_or(base_name);
            let ds = &mut self.states[i];
            ds.state = State::image(
                &reference,
                ImageOpts {
                    resolve_mode: self.opts.image_resolve_mode,
                    vertex: VertexOpts {
                        platform: Some(platform.clone()),
                        ..VertexOpts::default()
                    },
                    ..ImageOpts::default()
                },
            );
            ds.image = Image::empty_for(&platform);
            ds.platform = Some(platform);
            ds.has_image_base = true;
            if ds.unregistered {
                ds.dispatched = true;
            }
            return Ok(());
        };
        let mut platform = platform;
        let mut image = resolved
            .config
            .clone()
            .unwrap_or_else(|| Image::empty_for(&platform));
        image.created = None;
        if !self.states[i].explicit_platform && self.implicit_target && resolved.config.is_some() {
            platform = self.auto_detect_platform(&image, platform);
        }
        let reference = if resolved.reference.is_empty() {
            reference
        } else {
            resolved.reference.clone()
        };
        let pinned = match (&resolved.digest, Reference::parse(&reference)) {
            (Some(d), Ok(r)) if r.digest().is_none() => format!("{reference}@{d}"),
            _ => reference.clone(),
        };
        let scratch_like = resolved.config.as_ref().is_some_and(|c| {
            c.rootfs.diff_ids.is_empty() && c.history.iter().all(|h| h.empty_layer)
        });
        let multi = self.opts.multi_platform;
        let env = self.global_args.clone();
        let source_line = self.states[i].stage.source.clone();
        let location = self.location(lines);
        let ds = &mut self.states[i];
        ds.base_name = pinned.clone();
        ds.has_image_base = true;
        if scratch_like {
            ds.state = State::scratch();
        } else {
            let name =
                names::prefix_command(ds, &format!("FROM {pinned}"), multi, Some(&platform), &env);
            let mut description = BTreeMap::new();
            description.insert(DFCMD_KEY.to_string(), source_line);
            ds.state = State::image(
                &pinned,
                ImageOpts {
                    resolve_mode: self.opts.image_resolve_mode,
                    vertex: VertexOpts {
                        custom_name: Some(name),
                        description,
                        platform: Some(platform.clone()),
                        locations: vec![location],
                        ..VertexOpts::default()
                    },
                    ..ImageOpts::default()
                },
            );
        }
        if reachable && resolved.config.is_some() {
            let actual = image.platform();
            if actual.os != platform.os || actual.architecture != platform.architecture {
                let orig = ds.orig_base_name.clone();
                self.linter.run(
                    &rules::INVALID_BASE_IMAGE_PLATFORM,
                    lines,
                    messages::invalid_base_image_platform(
                        &orig,
                        &platform.format_all(),
                        &actual.format_all(),
                    ),
                );
            }
        }
        let ds = &mut self.states[i];
        ds.image = image;
        ds.platform = Some(platform);
        if ds.unregistered {
            ds.dispatched = true;
        }
        Ok(())
    }

    /// BuildKit's `autoDetectPlatform`: with an implicit target, a base image built for another
    /// platform than the target keeps its own platform when the build can run it.
    fn auto_detect_platform(&self, image: &Image, target: Platform) -> Platform {
        let actual = image.platform();
        if actual.os == target.os && actual.architecture == target.architecture {
            return target;
        }
        self.build_platforms
            .iter()
            .find(|p| p.os == actual.os && p.architecture == actual.architecture)
            .cloned()
            .unwrap_or(target)
    }

    /// Replaces a stage (or an image it is based on) with a named context.
    fn apply_named_context(
        &mut self,
        i: usize,
        named: NamedContext,
        platform: Platform,
        resolved: Option<(String, ResolvedImage)>,
    ) -> Result<(), ConvertError> {
        let key = self.states[i].base_name.clone();
        let vertex = |name: String| VertexOpts {
            custom_name: Some(name),
            ..VertexOpts::default()
        };
        let (state, image) = match &named {
            NamedContext::Image(r) if r == "scratch" => {
                (State::scratch(), Image::empty_for(&platform))
            }
            NamedContext::Image(r) => {
                let mut reference = Reference::parse(r)
                    .map_err(|e| ConvertError::new(format!("invalid context {key:?}: {e}")))?
                    .with_default_tag()
                    .to_string();
                let mut image = Image::empty_for(&platform);
                if let Some((requested, resolved)) = resolved {
                    let resolved_ref = if resolved.reference.is_empty() {
                        requested
                    } else {
                        resolved.reference
                    };
                    reference = match (&resolved.digest, Reference::parse(&resolved_ref)) {
                        (Some(d), Ok(parsed)) if parsed.digest().is_none() => {
                            format!("{resolved_ref}@{d}")
                        }
                        _ => resolved_ref,
                    };
                    if let Some(mut config) = resolved.config {
                        config.created = None;
                        image = config;
                    }
                }
                let state = State::image(
                    &reference,
                    ImageOpts {
                        resolve_mode: self.opts.image_resolve_mode,
                        vertex: VertexOpts {
                            platform: Some(platform.clone()),
                            ..vertex(format!("[context {key}] {reference}"))
                        },
                        ..ImageOpts::default()
                    },
                );
                (state, image)
            }
            NamedContext::OciLayout { store, reference } => {
                // BuildKit names the image after the context, pinned to the layout's digest
                // (`docker.io/library/NAME@sha256:…`), and keeps the config's `created`.
                let (pinned, image) = match resolved {
                    Some((pinned, resolved)) => (
                        pinned,
                        resolved
                            .config
                            .unwrap_or_else(|| Image::empty_for(&platform)),
                    ),
                    None => (
                        oci_layout_reference(&key, reference)
                            .unwrap_or_else(|_| format!("{key}{reference}")),
                        Image::empty_for(&platform),
                    ),
                };
                let state = State::oci_layout(
                    &pinned,
                    OciLayoutOpts {
                        session_id: Some(self.opts.session_id.clone()),
                        store_id: Some(store.clone()),
                        vertex: VertexOpts {
                            platform: Some(platform.clone()),
                            ..vertex(format!("[context {key}] OCI load from client"))
                        },
                        ..OciLayoutOpts::default()
                    },
                );
                (state, image)
            }
            NamedContext::Local { .. } => (
                self.local_named_context(&key, &named, &BTreeSet::new()),
                Image::empty_for(&platform),
            ),
            NamedContext::Git(url) => {
                let (remote, fragment) = url.split_once('#').unwrap_or((url.as_str(), ""));
                let state = State::git(
                    remote,
                    fragment,
                    GitOpts {
                        vertex: vertex(format!("[context {key}] {url}")),
                        ..GitOpts::default()
                    },
                );
                (state, Image::empty_for(&platform))
            }
            NamedContext::Http(url) => {
                let state = State::http(
                    url,
                    HttpOpts {
                        filename: Some("context".to_string()),
                        vertex: vertex(format!("[context {key}] {url}")),
                        ..HttpOpts::default()
                    },
                );
                (state, Image::empty_for(&platform))
            }
        };
        let ds = &mut self.states[i];
        // A context named like the stage (set when the stage was read) replaces the whole
        // stage: its commands are never dispatched. A context named like the stage's base only
        // replaces the base (`FROM ctx AS build` then `RUN …`), as in BuildKit.
        let replaces_stage = ds.unregistered || ds.named_context.is_some();
        ds.state = state;
        ds.image = image;
        ds.platform = Some(platform);
        ds.named_context = Some(named);
        ds.has_image_base = true;
        if replaces_stage {
            ds.dispatched = true;
        }
        Ok(())
    }

    /// The source of a local named context, following the paths the build reads from it.
    fn local_named_context(
        &self,
        key: &str,
        named: &NamedContext,
        paths: &BTreeSet<String>,
    ) -> State {
        let NamedContext::Local { name, excludes } = named else {
            return State::scratch();
        };
        State::local(
            name,
            LocalOpts {
                session_id: Some(self.opts.session_id.clone()),
                shared_key_hint: Some(format!("context:{key}")),
                exclude_patterns: excludes.clone(),
                follow_paths: follow_paths(paths),
                vertex: VertexOpts::named(format!("[context {key}] load from client")),
                ..LocalOpts::default()
            },
        )
    }

    fn rebuild_local_named_context(&mut self, i: usize, paths: &BTreeSet<String>) {
        let Some(named @ NamedContext::Local { .. }) = self.states[i].named_context.clone() else {
            return;
        };
        let key = self.states[i].base_name.clone();
        self.states[i].state = self.local_named_context(&key, &named, paths);
    }

    /// The main build context source (`local://context`).
    fn context_source(&self, paths: &BTreeSet<String>) -> State {
        State::local(
            "context",
            LocalOpts {
                session_id: Some(self.opts.session_id.clone()),
                shared_key_hint: Some("context".to_string()),
                exclude_patterns: self.opts.context_excludes.clone(),
                follow_paths: follow_paths(paths),
                vertex: VertexOpts::named("[internal] load build context"),
                ..LocalOpts::default()
            },
        )
    }

    /// Prepends a stage's `ONBUILD` triggers (from its base image config, or its base stage's
    /// `ONBUILD` instructions) to its commands. Returns whether they added dependencies.
    fn apply_onbuild(&mut self, i: usize) -> Result<bool, ConvertError> {
        let ds = &self.states[i];
        if ds.initialized || ds.dispatched || ds.unregistered {
            return Ok(false);
        }
        let mut triggers: Vec<String> = Vec::new();
        match ds.base {
            Some(b) => {
                for c in &self.states[b].stage.commands {
                    if let Command::Onbuild(o) = c {
                        triggers.push(o.expression.clone());
                    }
                }
            }
            None => triggers.extend(ds.image.config.on_build.iter().cloned()),
        }
        let lines = ds.stage.lines;
        self.states[i].initialized = true;
        self.states[i].image.config.on_build.clear();
        if triggers.is_empty() {
            return Ok(false);
        }
        let deps_before = self.states[i].deps.len();
        let states_before = self.states.len();
        let mut commands = Vec::with_capacity(triggers.len());
        for trigger in &triggers {
            let df = kiln_dockerfile_parser::parse(trigger.as_bytes())
                .map_err(|e| ConvertError::at(lines, e.message))?;
            let [node] = df.children.as_slice() else {
                return Err(ConvertError::at(
                    lines,
                    "onbuild trigger should be a single expression",
                ));
            };
            let mut command = kiln_dockerfile::parse_command(node)
                .map_err(|e| ConvertError::at(lines, e.message))?;
            set_lines(&mut command, lines);
            commands.push(self.stage_command(i, command, true)?);
        }
        let ds = &mut self.states[i];
        ds.cmd_total += commands
            .iter()
            .filter(|c| {
                matches!(
                    c.command,
                    Command::Add(_) | Command::Copy(_) | Command::Run(_) | Command::Workdir(_)
                )
            })
            .count();
        commands.append(&mut ds.commands);
        ds.commands = commands;
        let added = self.states[i].deps.len() != deps_before || self.states.len() != states_before;
        if added {
            self.check_cycles()?;
        }
        Ok(added)
    }

    /// Converts every reachable stage, in file order.
    fn dispatch_all(&mut self, target: usize) -> Result<(), ConvertError> {
        let reachable = self.reachable(target);
        for i in 0..self.states.len() {
            if !reachable.contains(&i) || self.states[i].dispatched {
                continue;
            }
            self.dispatch_stage(i)?;
        }
        Ok(())
    }

    /// Converts one stage: inherits from its base, applies the base image config, then
    /// dispatches each command.
    fn dispatch_stage(&mut self, i: usize) -> Result<(), ConvertError> {
        if let Some(b) = self.states[i].base
            && !self.states[b].dispatched
        {
            return Err(ConvertError::at(
                self.states[i].stage.lines,
                format!(
                    "stage {:?} must be built before {:?}",
                    self.states[b].stage_name, self.states[i].stage_name
                ),
            ));
        }
        let mut ds = std::mem::take(&mut self.states[i]);
        if let Some(b) = ds.base {
            let base = &self.states[b];
            ds.state = base.state.clone();
            ds.platform = base.platform.clone();
            ds.image = base.image.clone();
            ds.image.config.on_build.clear();
            ds.workdir_set = base.workdir_set;
            let mut args = base.build_args.clone();
            args.append(&mut ds.build_args);
            ds.build_args = args;
            ds.has_image_base = base.has_image_base;
        }
        ds.dispatched = true;
        if ds.platform.is_none() {
            ds.platform = Some(self.target_platform.clone());
        }
        let result = self.dispatch_commands(&mut ds);
        self.states[i] = ds;
        result
    }

    fn dispatch_commands(&mut self, ds: &mut StageState) -> Result<(), ConvertError> {
        let os = ds
            .platform
            .as_ref()
            .map(|p| p.os.clone())
            .unwrap_or_default();
        if os != "windows" && ds.image.config.env_get("PATH").is_none() {
            ds.image
                .config
                .env
                .push(format!("PATH={}", kiln_oci::DEFAULT_PATH_ENV));
        }
        let mut state = ds.state.clone();
        for entry in &ds.image.config.env {
            let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            state = state.add_env(k, v);
        }
        if let Some(h) = &self.opts.hostname {
            state = state.hostname(h);
        }
        if !ds.image.config.working_dir.is_empty() {
            let wd = ds.image.config.working_dir.clone();
            let wd = crate::stage::normalize_workdir("/", &wd);
            ds.image.config.working_dir = wd.clone();
            state = state.dir(&wd);
        }
        if !ds.image.config.user.is_empty() {
            state = state.user(&ds.image.config.user);
        }
        if let Some(n) = self.opts.force_network {
            state = state.network(n);
        }
        ds.state = state;

        let commands = std::mem::take(&mut ds.commands);
        for command in &commands {
            self.dispatch(ds, command)
                .map_err(|e| e.or_at(command.command.lines()))?;
        }
        ds.commands = commands;
        Ok(())
    }

    /// Labels, the build-check verdict, the platform of the image, and the marshalled graph.
    fn finish(mut self, target: usize) -> Result<Converted, ConvertError> {
        let linter = std::mem::replace(&mut self.linter, Linter::new(CheckConfig::default()));
        let warnings = linter.finish()?;
        let base_images = self.base_images(target);
        let ds = &mut self.states[target];
        for (k, v) in &self.opts.labels {
            ds.image.config.labels.insert(k.clone(), v.clone());
        }
        if !self.implicit_target {
            let t = &self.target_platform;
            let changed = ds.image.os != t.os || ds.image.architecture != t.architecture;
            ds.image.os = t.os.clone();
            ds.image.architecture = t.architecture.clone();
            if !t.variant.is_empty() || changed {
                ds.image.variant = t.variant.clone();
            }
            if !t.os_version.is_empty() || changed {
                ds.image.os_version = t.os_version.clone();
            }
            if !t.os_features.is_empty() {
                ds.image.os_features = t.os_features.clone();
            }
        }
        let normalized = ds.image.platform().normalize();
        ds.image.architecture = normalized.architecture;
        ds.image.variant = normalized.variant;
        let definition = ds.state.marshal(&MarshalOpts {
            platform: Some(self.target_platform.clone()),
            ..MarshalOpts::default()
        })?;
        Ok(Converted {
            definition,
            image: ds.image.clone(),
            warnings,
            base_images,
        })
    }

    /// The base images the target needs, each once.
    fn base_images(&self, target: usize) -> Vec<BaseImage> {
        let mut out: Vec<BaseImage> = Vec::new();
        for i in self.reachable(target) {
            let ds = &self.states[i];
            if ds.base.is_some() || !ds.has_image_base || ds.named_context.is_some() {
                continue;
            }
            let image = BaseImage {
                name: ds.orig_base_name.clone(),
                reference: ds.base_name.clone(),
                platform: ds.platform.clone().unwrap_or_default(),
            };
            if !out
                .iter()
                .any(|b| b.reference == image.reference && b.platform == image.platform)
            {
                out.push(image);
            }
        }
        out
    }
}

/// The image reference of an `oci-layout://` named context, as BuildKit makes it: the context's
/// name, normalized, with the digest the client resolved in the layout
/// (`docker.io/library/NAME@sha256:…`). `reference` is the part of the context value after the
/// store (`:TAG@sha256:…` or `@sha256:…`).
fn oci_layout_reference(name: &str, reference: &str) -> Result<String, String> {
    let digest = reference
        .rsplit_once('@')
        .and_then(|(_, d)| kiln_oci::Digest::parse(d).ok())
        .ok_or_else(|| {
            format!(
                "oci-layout reference {:?} has no digest",
                format!("{name}{reference}")
            )
        })?;
    let named = Reference::parse(name)
        .map_err(|e| format!("could not parse oci-layout reference {name:?}: {e}"))?;
    Ok(named.with_digest(digest).to_string())
}

/// The metadata key of the Dockerfile command that made a vertex.
pub(crate) const DFCMD_KEY: &str = "com.docker.dockerfile.v1.command";

/// The predefined global arguments (usable in `FROM` without declaration).
const PREDEFINED_ARGS: &[&str] = &[
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDOSVERSION",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETOSVERSION",
    "TARGETARCH",
    "TARGETVARIANT",
    "TARGETSTAGE",
];

fn is_predefined_arg(name: &str) -> bool {
    PREDEFINED_ARGS.contains(&name)
}

/// `local.followpaths`: the paths relative to the root, sorted; none when the whole directory
/// is read.
fn follow_paths(paths: &BTreeSet<String>) -> Vec<String> {
    if paths.is_empty() || paths.iter().any(|p| p == "/" || p.is_empty()) {
        return Vec::new();
    }
    let mut out: Vec<String> = paths
        .iter()
        .map(|p| {
            let rel = p.trim_start_matches('/');
            if rel.is_empty() {
                ".".to_string()
            } else {
                rel.to_string()
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Moves an `ONBUILD` trigger to the lines of the `FROM` that runs it.
fn set_lines(command: &mut Command, lines: LineRange) {
    macro_rules! set {
        ($($v:ident),*) => {
            match command { $(Command::$v(c) => c.lines = lines,)* }
        };
    }
    set!(
        Env,
        Maintainer,
        Label,
        Add,
        Copy,
        Onbuild,
        Workdir,
        Run,
        Cmd,
        Healthcheck,
        Entrypoint,
        Expose,
        User,
        Volume,
        StopSignal,
        Arg,
        Shell
    );
}

impl ConvertError {
    /// `dockerfile parse error on line N: message`, as BuildKit words parser errors.
    fn prefixed_with_line(mut self, prefix: &str) -> ConvertError {
        if let Some(l) = self.lines.first() {
            self.message = format!("{prefix} on line {}: {}", l.start, self.message);
        }
        self
    }
}
