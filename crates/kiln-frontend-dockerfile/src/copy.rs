//! `COPY` and `ADD`: file ops from the build context, other stages, images, URLs, git
//! repositories and heredocs.
//!
//! BuildKit's `dispatchCopy`: every source of the instruction becomes one copy action of a
//! single file op on the stage's filesystem (or, with `--link`, on scratch, merged onto the
//! stage afterwards). Sources are told apart as BuildKit does: a git reference (`ADD` only),
//! an HTTP(S) URL (`ADD` only), a heredoc, or else a path of the build context or of the
//! `--from` state.

use std::collections::BTreeMap;

use kiln_dockerfile::linter::rules::{self, messages};
use kiln_dockerfile::{Command, SourcesAndDest};
use kiln_llb::builder::paths::normalize as normalize_path;
use kiln_llb::{
    Chown, CopyInfo, CopyMode, Digest, FileActions, GitOpts, HttpOpts, MkfileOpts, ProgressGroup,
    State, VertexOpts,
};

use crate::convert::{Ctx, DFCMD_KEY};
use crate::dispatch::clean_path;
use crate::error::ConvertError;
use crate::names;
use crate::run::{INLINE_DOCUMENT_NAME, join_paths};
use crate::stage::StageState;

/// The flags and operands of a `COPY` or an `ADD`, after expansion.
struct CopySpec<'a> {
    is_add: bool,
    params: &'a SourcesAndDest,
    from: &'a str,
    chown: &'a str,
    chmod: &'a str,
    link: bool,
    parents: bool,
    exclude_patterns: &'a [String],
    keep_git_dir: Option<bool>,
    checksum: &'a str,
    unpack: Option<bool>,
    original: &'a str,
    lines: kiln_dockerfile_parser::LineRange,
}

impl<'a> CopySpec<'a> {
    fn of(command: &'a Command) -> Option<CopySpec<'a>> {
        match command {
            Command::Copy(c) => Some(CopySpec {
                is_add: false,
                params: &c.sources,
                from: &c.from,
                chown: &c.chown,
                chmod: &c.chmod,
                link: c.link,
                parents: c.parents,
                exclude_patterns: &c.exclude_patterns,
                keep_git_dir: None,
                checksum: "",
                unpack: None,
                original: &c.original,
                lines: c.lines,
            }),
            Command::Add(c) => Some(CopySpec {
                is_add: true,
                params: &c.sources,
                from: "",
                chown: &c.chown,
                chmod: &c.chmod,
                link: c.link,
                parents: false,
                exclude_patterns: &c.exclude_patterns,
                // `--keep-git-dir=false` cannot be told apart from no flag here.
                keep_git_dir: c.keep_git_dir.then_some(true),
                checksum: &c.checksum,
                unpack: c.unpack,
                original: &c.original,
                lines: c.lines,
            }),
            _ => None,
        }
    }
}

impl Ctx<'_> {
    /// Dispatches a `COPY` or `ADD` (`sources` holds the `--from` state, if any).
    pub(crate) fn dispatch_copy(
        &mut self,
        ds: &mut StageState,
        command: &Command,
        sources: &[usize],
    ) -> Result<(), ConvertError> {
        let Some(spec) = CopySpec::of(command) else {
            return Err(ConvertError::at(
                command.lines(),
                "not a COPY or ADD instruction",
            ));
        };
        let err = |message: String| ConvertError::at(spec.lines, message);

        // The state the paths are read from: another stage or image, or the build context.
        let mut from_index = None;
        let source_state = if spec.from.is_empty() {
            self.context.clone()
        } else {
            let index = sources
                .first()
                .copied()
                .filter(|&i| i < self.states.len())
                .ok_or_else(|| {
                    err(format!(
                        "invalid stage {}",
                        kiln_dockerfile::go_quote(spec.from)
                    ))
                })?;
            if !self.states[index].dispatched {
                return Err(err(format!(
                    "cannot copy from stage {}, it needs to be defined before current stage {}",
                    kiln_dockerfile::go_quote(spec.from),
                    kiln_dockerfile::go_quote(&ds.stage_name)
                )));
            }
            from_index = Some(index);
            self.states[index].state.clone()
        };

        let dest = path_relative_to_working_dir(ds.state.get_dir(), &spec.params.dest_path);
        let chown = (!spec.chown.is_empty()).then(|| Chown::parse(spec.chown));
        let created_time = self.epoch.map(|s| s.saturating_mul(1_000_000_000));
        let mode = parse_chmod(spec.chmod).map_err(err)?;

        if !spec.checksum.is_empty() {
            if !spec.is_add {
                return Err(err("checksum can't be specified for COPY".to_string()));
            }
            let [only] = spec.params.source_paths.as_slice() else {
                return Err(err(
                    "checksum can't be specified for multiple sources".to_string()
                ));
            };
            if !is_http_source(only) && !is_git_source(only) {
                return Err(err("checksum requires HTTP(S) or Git sources".to_string()));
            }
        }

        let mut message = String::from(if spec.is_add { "ADD" } else { "COPY" });
        if spec.parents {
            message.push_str(" --parents");
        }
        if !spec.chown.is_empty() {
            message.push_str(&format!(" --chown={}", spec.chown));
        }
        if !spec.chmod.is_empty() {
            message.push_str(&format!(" --chmod={}", spec.chmod));
        }

        let platform = ds
            .platform
            .clone()
            .unwrap_or_else(|| self.target_platform.clone());
        let env = ds.state.env().to_vec();
        let display = names::uppercase_command(
            &self
                .lexer
                .process_word(spec.original, &env)
                .unwrap_or_else(|_| spec.original.to_string()),
        );
        let pg_name = names::prefix_command(
            ds,
            &display,
            self.opts.multi_platform,
            Some(&platform),
            &env,
        );

        // Options every copy action of the instruction gets.
        let common = |info: CopyInfo| CopyInfo {
            mode: mode.clone(),
            chown: chown.clone(),
            exclude_patterns: spec.exclude_patterns.to_vec(),
            created_time,
            ..info
        };
        let mut actions = FileActions::new();
        let mut keep_git_dir = spec.keep_git_dir;
        let mut checksum = spec.checksum.to_string();
        for src in &spec.params.source_paths {
            message.push(' ');
            message.push_str(src);
            match parse_git_ref(src) {
                GitParse::Invalid(e) => return Err(err(e)),
                GitParse::Git(git) => {
                    if !spec.is_add {
                        return Err(err("source can't be a git ref for COPY".to_string()));
                    }
                    if let (Some(flag), Some(query)) = (keep_git_dir, git.keep_git_dir)
                        && flag != query
                    {
                        return Err(err("inconsistent keep-git-dir configuration".to_string()));
                    }
                    if git.keep_git_dir.is_some() {
                        keep_git_dir = git.keep_git_dir;
                    }
                    if !checksum.is_empty() && !git.checksum.is_empty() && checksum != git.checksum
                    {
                        return Err(err(format!(
                            "checksum mismatch {} != {}",
                            kiln_dockerfile::go_quote(&checksum),
                            kiln_dockerfile::go_quote(&git.checksum)
                        )));
                    }
                    if !git.checksum.is_empty() {
                        checksum.clone_from(&git.checksum);
                    }
                    let repo = State::git(
                        &git.remote,
                        "",
                        GitOpts {
                            git_ref: Some(git.git_ref.clone()),
                            subdir: (!git.subdir.is_empty()).then(|| git.subdir.clone()),
                            keep_git_dir: keep_git_dir == Some(true),
                            checksum: (!checksum.is_empty()).then(|| checksum.clone()),
                            skip_submodules: git.submodules == Some(false),
                            vertex: VertexOpts::named(pg_name.clone()),
                            ..GitOpts::default()
                        },
                    );
                    actions = actions.copy(
                        &repo,
                        "/",
                        &dest,
                        common(CopyInfo {
                            create_dest_path: true,
                            ..CopyInfo::default()
                        }),
                    );
                }
                GitParse::NotGit if is_http_url(src) => {
                    if !spec.is_add {
                        return Err(err("source can't be a URL for COPY".to_string()));
                    }
                    let filename = url_filename(src);
                    let digest = if checksum.is_empty() {
                        None
                    } else {
                        Some(parse_checksum(&checksum).map_err(err)?)
                    };
                    let mut description = BTreeMap::new();
                    description.insert(DFCMD_KEY.to_string(), String::new());
                    let download = State::http(
                        src,
                        HttpOpts {
                            checksum: digest,
                            filename: Some(filename.clone()),
                            vertex: VertexOpts {
                                custom_name: Some(pg_name.clone()),
                                description,
                                ..VertexOpts::default()
                            },
                            ..HttpOpts::default()
                        },
                    );
                    actions = actions.copy(
                        &download,
                        &filename,
                        &dest,
                        common(CopyInfo {
                            create_dest_path: true,
                            attempt_unpack: spec.unpack == Some(true),
                            ..CopyInfo::default()
                        }),
                    );
                }
                GitParse::NotGit => {
                    if from_index.is_none() {
                        self.check_ignored_source(spec.is_add, src, spec.lines);
                    }
                    let mut path = src.clone();
                    let mut include_patterns = Vec::new();
                    let mut required_paths = Vec::new();
                    if spec.parents {
                        // An optional `/./` marks where the kept parents start.
                        let (parent, pattern) = match src.split_once("/./") {
                            Some((parent, pattern)) => (parent.to_string(), pattern.to_string()),
                            None => ("/".to_string(), src.clone()),
                        };
                        let pattern = normalize_path("/", &pattern, false);
                        include_patterns.push(pattern.trim_start_matches('/').to_string());
                        if !contains_wildcards(&parent) && !contains_wildcards(&pattern) {
                            required_paths.push(normalize_path(
                                "/",
                                &join_paths(&[&parent, &pattern]),
                                false,
                            ));
                        }
                        path = parent;
                    }
                    let path = normalize_path("/", &path, false);
                    actions = actions.copy(
                        &source_state,
                        &path,
                        &dest,
                        common(CopyInfo {
                            follow_symlinks: true,
                            copy_dir_contents_only: true,
                            include_patterns,
                            required_paths,
                            attempt_unpack: spec.unpack.unwrap_or(spec.is_add),
                            create_dest_path: true,
                            allow_wildcard: true,
                            allow_empty_wildcard: true,
                            ..CopyInfo::default()
                        }),
                    );
                }
            }
        }

        for content in &spec.params.source_contents {
            message.push_str(" <<");
            message.push_str(&content.path);
            let document = State::scratch().file(
                FileActions::new().mkfile(
                    &content.path,
                    0o644,
                    content.data.clone(),
                    MkfileOpts::default(),
                ),
                VertexOpts {
                    custom_name: Some(INLINE_DOCUMENT_NAME.to_string()),
                    platform: ds.platform.clone(),
                    ..VertexOpts::default()
                },
            );
            actions = actions.copy(
                &document,
                &content.path,
                &dest,
                common(CopyInfo {
                    create_dest_path: true,
                    ..CopyInfo::default()
                }),
            );
        }
        message.push(' ');
        message.push_str(&spec.params.dest_path);

        let vertex = VertexOpts {
            custom_name: Some(pg_name.clone()),
            ignore_cache: ds.ignore_cache,
            locations: vec![self.location(spec.lines)],
            ..VertexOpts::default()
        };
        if actions.is_empty() {
            return Err(err(format!(
                "{} requires at least one source",
                if spec.is_add { "ADD" } else { "COPY" }
            )));
        }
        if spec.link && spec.chmod.is_empty() {
            // The files are copied onto an empty filesystem and the result stacked onto the
            // stage, so that the copy does not depend on what the stage contains.
            let group_id = self.progress_group_id(&pg_name);
            ds.cmd_index = ds.cmd_index.saturating_sub(1);
            let pg_name = names::prefix_command(
                ds,
                &display,
                self.opts.multi_platform,
                Some(&platform),
                &env,
            );
            let layer = State::scratch().file(
                actions,
                VertexOpts {
                    platform: Some(platform.clone()),
                    progress_group: Some(ProgressGroup {
                        id: group_id.clone(),
                        name: pg_name.clone(),
                        weak: true,
                    }),
                    ..vertex.clone()
                },
            );
            ds.cmd_index = ds.cmd_index.saturating_sub(1);
            let link_name = names::prefix_command(
                ds,
                &format!("LINK {display}"),
                self.opts.multi_platform,
                Some(&platform),
                &env,
            );
            let merged = State::merge(
                &[ds.state.clone(), layer],
                VertexOpts {
                    custom_name: Some(link_name),
                    progress_group: Some(ProgressGroup {
                        id: group_id,
                        name: pg_name,
                        weak: false,
                    }),
                    ..vertex
                },
            );
            // The stage keeps its settings; only its filesystem changes.
            let dir = ds.state.get_dir().to_string();
            ds.state = merged.reset(&ds.state).dir(&dir);
        } else {
            ds.state = ds.state.file(actions, vertex);
        }

        // The paths read, for the follow paths of the build context and of named contexts.
        for src in &spec.params.source_paths {
            if spec.is_add && is_http_url(src) {
                continue;
            }
            let path = join_paths(&["/", src]);
            match from_index {
                None => self.mark_context_path(ds, &path),
                Some(index) => self.mark_stage_path(index, &path),
            }
        }
        self.commit(ds, message, true, true);
        Ok(())
    }

    /// `CopyIgnoredFile`: a source of the build context that `.dockerignore` excludes.
    fn check_ignored_source(
        &mut self,
        is_add: bool,
        src: &str,
        lines: kiln_dockerfile_parser::LineRange,
    ) {
        if self.opts.context_excludes.is_empty() {
            return;
        }
        let Ok(matcher) = kiln_dockerignore::PatternMatcher::new(&self.opts.context_excludes)
        else {
            return;
        };
        let src = clean_path(src);
        let is_root = src == "." || src == "/";
        if is_root {
            // The root itself only counts as excluded by a pattern that excludes everything.
            let root_ignored = matcher
                .patterns()
                .iter()
                .any(|p| !p.exclusion() && matches!(p.as_str(), "*" | "**" | "**/*"));
            if !root_ignored {
                return;
            }
        }
        if source_negated(&matcher, &src) {
            return;
        }
        let excluded = is_root || matcher.matches_or_parent_matches(&src).unwrap_or(false);
        if excluded {
            let command = if is_add { "Add" } else { "Copy" };
            self.linter.run(
                &rules::COPY_IGNORED_FILE,
                lines,
                messages::copy_ignored_file(command, &src),
            );
        }
    }

    /// A progress group id for a `COPY --link`, stable for the same build (BuildKit draws a
    /// random one; kiln derives it from the session and the progress name so that a
    /// conversion stays a pure function of its inputs).
    fn progress_group_id(&self, name: &str) -> String {
        let digest = Digest::of_bytes(format!("{}\n{name}", self.opts.session_id).as_bytes());
        digest.encoded().chars().take(25).collect()
    }
}

/// Whether a dockerignore exclusion (`!pattern`) could include again something at or below
/// `src` (BuildKit's `copySourceNegated`): the check is then skipped.
fn source_negated(matcher: &kiln_dockerignore::PatternMatcher, src: &str) -> bool {
    let src = src.trim_start_matches('/');
    let src = if src == "." { "" } else { src };
    matcher
        .patterns()
        .iter()
        .filter(|p| p.exclusion())
        .any(|p| {
            let (prefix, wildcard) = literal_prefix(p.as_str());
            at_or_below(&prefix, src) || (wildcard && at_or_below(src, &prefix))
        })
}

/// The elements of a pattern before the first one with a wildcard, and whether there is one.
fn literal_prefix(pattern: &str) -> (String, bool) {
    let elems: Vec<&str> = pattern.split('/').collect();
    match elems.iter().position(|e| e.contains(['*', '?', '['])) {
        Some(i) => (elems[..i].join("/"), true),
        None => (pattern.to_string(), false),
    }
}

/// Whether `path` is `base` or inside it; an empty base is the root.
fn at_or_below(path: &str, base: &str) -> bool {
    base.is_empty()
        || path == base
        || path
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The destination of a copy (BuildKit's `pathRelativeToWorkingDir`): absolute paths as they
/// are, `.` and the empty path as the working directory itself (`dir/`), other relative paths
/// joined onto it; a trailing `/` (or `/.`) is kept.
fn path_relative_to_working_dir(dir: &str, p: &str) -> String {
    if p.starts_with('/') {
        return normalize_path("/", p, true);
    }
    let p = if p.is_empty() || p == "." { "./" } else { p };
    normalize_path(dir, p, true)
}

/// Whether a path has glob characters (`*`, `?`, `[`) that are not escaped with `\`.
fn contains_wildcards(name: &str) -> bool {
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' | '?' | '[' => return true,
            '\\' => {
                chars.next();
            }
            _ => {}
        }
    }
    false
}

/// `--chmod`: octal bits up to `07777`, or a symbolic mode as chmod(1) writes it (`u+x`,
/// `go=rx`); empty means no change.
fn parse_chmod(chmod: &str) -> Result<Option<CopyMode>, String> {
    if chmod.is_empty() {
        return Ok(None);
    }
    let non_octal = || {
        format!(
            "invalid chmod parameter: '{chmod}'. it should be octal string and between 0 and 07777"
        )
    };
    if let Some(bits) = parse_go_octal(chmod) {
        return if bits > 0o7777 {
            Err(non_octal())
        } else {
            Ok(Some(CopyMode::Bits(bits)))
        };
    }
    // A value starting with a digit is read as a number by the symbolic parser too, and fails
    // there the same way.
    if chmod.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(non_octal());
    }
    if !valid_symbolic_mode(chmod) {
        return Err("invalid syntax".to_string());
    }
    Ok(Some(CopyMode::Symbolic(chmod.to_string())))
}

/// Go's `strconv.ParseUint(s, 8, 32)`: octal digits only, no sign, no prefix.
fn parse_go_octal(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(s, 8).ok()
}

/// Whether a symbolic mode parses as BSD `setmode` (and the Go port BuildKit uses) parses it:
/// clauses `[ugoa]*([+-=][rwxXstugo]*)+` separated by commas.
fn valid_symbolic_mode(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    loop {
        while i < bytes.len() && matches!(bytes[i], b'a' | b'u' | b'g' | b'o') {
            i += 1;
        }
        // One or more operations, each followed by its permissions.
        loop {
            if i >= bytes.len() || !matches!(bytes[i], b'+' | b'-' | b'=') {
                return false;
            }
            i += 1;
            while i < bytes.len()
                && matches!(
                    bytes[i],
                    b'r' | b's' | b't' | b'w' | b'X' | b'x' | b'u' | b'g' | b'o'
                )
            {
                i += 1;
            }
            if i >= bytes.len() {
                return true;
            }
            if bytes[i] == b',' {
                i += 1;
                break;
            }
        }
        if i >= bytes.len() {
            // A trailing comma leaves an empty clause.
            return false;
        }
    }
}

/// `--checksum` of an HTTP source, validated as `go-digest` does.
fn parse_checksum(s: &str) -> Result<Digest, String> {
    let invalid_format = || "invalid checksum digest format".to_string();
    let Some((algorithm, encoded)) = s.split_once(':') else {
        return Err(invalid_format());
    };
    if algorithm.is_empty() || encoded.is_empty() {
        return Err(invalid_format());
    }
    let len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => {
            let well_formed = algorithm.split(['+', '.', '_', '-']).all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            }) && encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'));
            return Err(if well_formed {
                "unsupported digest algorithm".to_string()
            } else {
                invalid_format()
            });
        }
    };
    if encoded.len() != len {
        return Err("invalid checksum digest length".to_string());
    }
    if !encoded
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(invalid_format());
    }
    Digest::parse(s).map_err(|e| e.to_string())
}

/// Whether a source starts like an HTTP(S) URL.
fn is_http_url(src: &str) -> bool {
    src.starts_with("http://") || src.starts_with("https://")
}

/// An HTTP(S) source that is not a git repository.
fn is_http_source(src: &str) -> bool {
    is_http_url(src) && !is_git_source(src)
}

/// A source that names a git repository.
fn is_git_source(src: &str) -> bool {
    matches!(parse_git_ref(src), GitParse::Git(_))
}

/// The file name of a download: the last element of the URL's path, `__unnamed__` when there
/// is none.
fn url_filename(url: &str) -> String {
    const UNNAMED: &str = "__unnamed__";
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split('#').next().unwrap_or_default();
    let rest = rest.split('?').next().unwrap_or_default();
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    let Some(path) = percent_decode(path) else {
        return UNNAMED.to_string();
    };
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return UNNAMED.to_string();
    }
    let base = trimmed.rsplit('/').next().unwrap_or_default();
    if base.is_empty() || base == "." {
        UNNAMED.to_string()
    } else {
        base.to_string()
    }
}

/// Decodes `%XX` escapes; `None` for a malformed escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A git reference of an `ADD` source (BuildKit's `dfgitutil.GitRef`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct GitRef {
    /// The repository, without fragment and query.
    remote: String,
    /// The ref to check out (branch, tag or commit); empty for the default branch.
    git_ref: String,
    /// The commit the ref must resolve to.
    checksum: String,
    /// The directory of the repository to copy.
    subdir: String,
    /// `?keep-git-dir=`.
    keep_git_dir: Option<bool>,
    /// `?submodules=`.
    submodules: Option<bool>,
}

/// What a source is, as git references go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum GitParse {
    /// Not a git reference (a path or a plain URL).
    NotGit,
    /// A git reference.
    Git(GitRef),
    /// A git reference with invalid options.
    Invalid(String),
}

/// Parses a source as BuildKit's `dfgitutil.ParseGitRef` does: `git@host:path`, `ssh://`,
/// `git://`, and `http(s)://` URLs whose path ends in `.git`, with an optional `#ref[:dir]`
/// fragment and query options (`ref`, `tag`, `branch`, `checksum`/`commit`, `subdir`,
/// `keep-git-dir`, `submodules`). Paths starting with `./`, `../` or `github.com/` are local.
fn parse_git_ref(src: &str) -> GitParse {
    if src.starts_with("./") || src.starts_with("../") || src.starts_with("github.com/") {
        return GitParse::NotGit;
    }
    let (without_fragment, fragment) = match src.split_once('#') {
        Some((a, f)) => (a, f),
        None => (src, ""),
    };
    let (base, query) = match without_fragment.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (without_fragment, None),
    };
    let remote = if let Some((scheme, rest)) = base.split_once("://")
        && !scheme.is_empty()
        && scheme.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        let scheme = scheme.to_ascii_lowercase();
        if !matches!(scheme.as_str(), "http" | "https" | "ssh" | "git") {
            return GitParse::NotGit;
        }
        let path = rest.find('/').map_or("", |i| &rest[i..]);
        if matches!(scheme.as_str(), "http" | "https") && !path.ends_with(".git") {
            return GitParse::NotGit;
        }
        format!("{scheme}://{rest}")
    } else if is_scp_like(base) {
        base.to_string()
    } else {
        return GitParse::NotGit;
    };
    let mut git = GitRef {
        remote,
        ..GitRef::default()
    };
    if !fragment.is_empty() {
        let (r, dir) = fragment.split_once(':').unwrap_or((fragment, ""));
        git.git_ref = r.to_string();
        git.subdir = dir.to_string();
    }
    if let Some(query) = query
        && let Err(e) = load_git_query(&mut git, query)
    {
        return GitParse::Invalid(e);
    }
    GitParse::Git(git)
}

/// `user@host:path`, the SCP-like form of SSH remotes.
fn is_scp_like(s: &str) -> bool {
    let Some((user, rest)) = s.split_once('@') else {
        return false;
    };
    let Some((host, _path)) = rest.split_once(':') else {
        return false;
    };
    !user.is_empty()
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Applies the query options of a git reference.
fn load_git_query(git: &mut GitRef, query: &str) -> Result<(), String> {
    let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(k), Some(v)) = (query_unescape(k), query_unescape(v)) else {
            continue;
        };
        values.entry(k).or_default().push(v);
    }
    let flag = |k: &str, v: Option<&String>| -> Result<bool, String> {
        match v {
            None => Ok(true),
            Some(v) => parse_go_bool(v)
                .ok_or_else(|| format!("invalid {k} value: {}", kiln_dockerfile::go_quote(v))),
        }
    };
    let (mut tag, mut branch) = (String::new(), String::new());
    for (k, v) in &values {
        let value = match v.as_slice() {
            [one] if !one.is_empty() => Some(one),
            [] | [_] if matches!(k.as_str(), "submodules" | "keep-git-dir") => None,
            [] | [_] => {
                return Err(format!(
                    "query {} has no value",
                    kiln_dockerfile::go_quote(k)
                ));
            }
            _ => {
                return Err(format!(
                    "query {} has multiple values",
                    kiln_dockerfile::go_quote(k)
                ));
            }
        };
        let text = value.cloned().unwrap_or_default();
        match k.as_str() {
            "ref" => {
                if !git.git_ref.is_empty() && git.git_ref != text {
                    return Err(format!(
                        "ref conflicts: {} vs {}",
                        kiln_dockerfile::go_quote(&git.git_ref),
                        kiln_dockerfile::go_quote(&text)
                    ));
                }
                git.git_ref = text;
            }
            "tag" => tag = text,
            "branch" => branch = text,
            "subdir" => {
                if !git.subdir.is_empty() && git.subdir != text {
                    return Err(format!(
                        "subdir conflicts: {} vs {}",
                        kiln_dockerfile::go_quote(&git.subdir),
                        kiln_dockerfile::go_quote(&text)
                    ));
                }
                git.subdir = text;
            }
            "checksum" | "commit" => git.checksum = text,
            "keep-git-dir" => git.keep_git_dir = Some(flag("keep-git-dir", value)?),
            "submodules" => git.submodules = Some(flag("submodules", value)?),
            _ => return Err(format!("unexpected query {}", kiln_dockerfile::go_quote(k))),
        }
    }
    if !tag.is_empty() {
        if !tag.starts_with("refs/tags/") {
            tag = format!("refs/tags/{tag}");
        }
        if !git.git_ref.is_empty() && git.git_ref != tag {
            return Err(format!(
                "ref conflicts: {} vs {}",
                kiln_dockerfile::go_quote(&git.git_ref),
                kiln_dockerfile::go_quote(&tag)
            ));
        }
        git.git_ref = tag.clone();
    }
    if !branch.is_empty() {
        if !tag.is_empty() {
            return Err("branch conflicts with tag".to_string());
        }
        if !branch.starts_with("refs/heads/") {
            branch = format!("refs/heads/{branch}");
        }
        if !git.git_ref.is_empty() && git.git_ref != branch {
            return Err(format!(
                "ref conflicts: {} vs {}",
                kiln_dockerfile::go_quote(&git.git_ref),
                kiln_dockerfile::go_quote(&branch)
            ));
        }
        git.git_ref = branch;
    }
    if !git.checksum.is_empty() && git.git_ref.is_empty() {
        git.git_ref.clone_from(&git.checksum);
    }
    Ok(())
}

/// Go's `url.QueryUnescape`: `+` is a space, `%XX` an escaped byte.
fn query_unescape(s: &str) -> Option<String> {
    percent_decode(&s.replace('+', " "))
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::test_support::{convert_with, error_mismatches, options, render_cases};
    use crate::{ConvertOptions, NamedContext, NoCache};

    /// The default options changed by `f`.
    fn with(f: impl FnOnce(&mut ConvertOptions)) -> ConvertOptions {
        let mut opts = options();
        f(&mut opts);
        opts
    }

    /// Golden examples 9.2 and 9.5 of `docs/dev/dockerfile2llb.md`.
    #[test]
    fn golden_examples() {
        let checksum = format!("sha256:{}", "1".repeat(64));
        let example_9_5 = format!(
            "FROM alpine:3.20\nLABEL org.opencontainers.image.title=\"demo app\"\nENV PORT=8080\nWORKDIR /srv\nADD --checksum={checksum} https://example.com/dl/app.tar.gz /srv/\nCOPY --link --chown=1000:1000 conf/ ./conf/\nUSER 1000\nEXPOSE ${{PORT}}/tcp\nHEALTHCHECK --interval=30s CMD wget -q -O- http://localhost:8080/ || exit 1\nENTRYPOINT [\"/srv/app\"]\nCMD [\"--serve\"]\n"
        );
        insta::assert_json_snapshot!(render_cases(&[
            (
                "9.2 scratch, ENV, WORKDIR, COPY to a relative destination, CMD",
                "FROM scratch\nENV APP=/app\nWORKDIR /app\nCOPY hello.txt .\nCMD [\"/hello\"]\n",
                options(),
            ),
            (
                "9.5 labels, ADD URL with checksum, COPY --link, USER, EXPOSE, HEALTHCHECK",
                &example_9_5,
                with(|o| {
                    o.labels.insert("build.by".to_string(), "kiln".to_string());
                }),
            ),
        ]));
    }

    /// Sources and options of `COPY`.
    #[test]
    fn copy_variants() {
        insta::assert_json_snapshot!(render_cases(&[
            (
                "several sources, one file op",
                "FROM busybox\nWORKDIR /app\nCOPY a.txt dir/ *.go ./\n",
                options(),
            ),
            (
                "chown by name and by id, chmod octal and symbolic",
                "FROM busybox\nCOPY --chown=app:staff a /a\nCOPY --chown=1000 --chmod=0755 b /b\nCOPY --chown=root:0 --chmod=go-w,u+x c /c\n",
                options(),
            ),
            (
                "chown and chmod expanded",
                "FROM busybox\nARG OWNER=app MODE=640\nCOPY --chown=$OWNER --chmod=$MODE a /a\n",
                options(),
            ),
            (
                "link onto an image",
                "FROM busybox\nCOPY --link --chown=app a b /dst/\n",
                options(),
            ),
            (
                "link onto scratch collapses the merge",
                "FROM scratch\nCOPY --link a /a\n",
                options(),
            ),
            (
                "link with chmod is a plain copy",
                "FROM busybox\nCOPY --link --chmod=600 a /a\n",
                options(),
            ),
            (
                "parents with and without a pivot",
                "FROM busybox\nCOPY --parents x/./y/z.txt a/b/*.c /dst/\n",
                options(),
            ),
            (
                "exclude patterns",
                "FROM busybox\nARG EXT=md\nCOPY --exclude=*.$EXT --exclude=tmp/ src/ /app/\n",
                options(),
            ),
            (
                "from a stage, an image and a stage index",
                "FROM busybox AS build\nWORKDIR /src\nRUN make\nFROM scratch\nCOPY --from=build out /out\nCOPY --from=nginx:1.27 /etc/nginx/ /nginx/\nCOPY --from=0 /src /src\n",
                options(),
            ),
            (
                "heredoc sources",
                "FROM busybox\nARG NAME=kiln\nCOPY <<EOF <<'RAW' /etc/\nhello $NAME '$NAME' \"${NAME}\" \\$NAME\nEOF\nraw $NAME\nRAW\nCOPY --chmod=755 <<-EOF /run.sh\n\t#!/bin/sh\n\techo $NAME\n\tEOF\n",
                options(),
            ),
            (
                "SOURCE_DATE_EPOCH timestamps",
                "FROM busybox\nCOPY a /a\nCOPY <<EOF /b\nb\nEOF\n",
                with(|o| {
                    o.build_args
                        .insert("SOURCE_DATE_EPOCH".to_string(), "1700000000".to_string());
                }),
            ),
            (
                "no cache",
                "FROM busybox\nCOPY --link a /a\n",
                with(|o| o.no_cache = NoCache::All),
            ),
            (
                "onbuild copy",
                "FROM busybox AS base\nONBUILD COPY app /app\nFROM base\n",
                options(),
            ),
            (
                "local named context",
                "FROM busybox\nCOPY --from=assets logo.png /srv/\nRUN --mount=from=assets,source=css,target=/css true\n",
                with(|o| {
                    o.named_contexts.insert(
                        "assets".to_string(),
                        NamedContext::Local {
                            name: "assets".to_string(),
                            excludes: Vec::new(),
                        },
                    );
                }),
            ),
        ]));
    }

    /// Sources and options of `ADD`.
    #[test]
    fn add_variants() {
        let checksum = format!("sha256:{}", "2".repeat(64));
        let with_checksum =
            format!("FROM busybox\nADD --checksum={checksum} https://example.com/f /f\n");
        insta::assert_json_snapshot!(render_cases(&[
            (
                "local archive is unpacked",
                "FROM busybox\nADD app.tar.gz /opt/\n",
                options(),
            ),
            (
                "unpack disabled",
                "FROM busybox\nADD --unpack=false app.tar.gz /opt/\n",
                options(),
            ),
            (
                "URL without file name, unpacked on request",
                "FROM busybox\nADD --unpack=true https://example.com/ /dl/\nADD https://example.com/a%20b.tgz?x=1 /dl/\n",
                options(),
            ),
            ("URL with checksum", &with_checksum, options()),
            (
                "git over https with a tag, subdir and kept .git",
                "FROM busybox\nADD --keep-git-dir https://github.com/moby/buildkit.git?tag=v0.20.0&subdir=docs /bk\n",
                options(),
            ),
            (
                "git over ssh with a ref and a subdir",
                "FROM busybox\nADD git@github.com:moby/buildkit.git#main:frontend /src\n",
                options(),
            ),
            (
                "git with a commit checksum and without submodules",
                "FROM busybox\nADD --checksum=0123456789abcdef https://github.com/a/b.git?branch=dev&submodules=false /b\n",
                options(),
            ),
            (
                "git keep-git-dir from the query",
                "FROM busybox\nADD https://github.com/a/b.git?keep-git-dir /b\n",
                options(),
            ),
            (
                "mixed sources",
                "FROM busybox\nADD https://example.com/x.txt local.txt /dst/\n",
                options(),
            ),
        ]));
    }

    #[test]
    fn errors() {
        let sum = format!("sha256:{}", "3".repeat(64));
        let cases: Vec<(String, String, String, usize)> = vec![
            ("COPY of a URL".into(), "FROM busybox\nCOPY https://example.com/f /f\n".into(), "source can't be a URL for COPY".into(), 2),
            ("COPY of a git repository".into(), "FROM busybox\nCOPY git@github.com:a/b.git /b\n".into(), "source can't be a git ref for COPY".into(), 2),
            ("COPY --checksum".into(), "FROM busybox\nCOPY --checksum=sha256:abc a /a\n".into(), "dockerfile parse error on line 2: unknown flag: --checksum".into(), 2),
            ("checksum with several sources".into(), format!("FROM busybox\nADD --checksum={sum} https://a/x https://a/y /d/\n"), "checksum can't be specified for multiple sources".into(), 2),
            ("checksum of a local file".into(), format!("FROM busybox\nADD --checksum={sum} a /a\n"), "checksum requires HTTP(S) or Git sources".into(), 2),
            ("checksum too short".into(), "FROM busybox\nADD --checksum=sha256:abc https://a/x /x\n".into(), "invalid checksum digest length".into(), 2),
            ("checksum without algorithm".into(), "FROM busybox\nADD --checksum=abc https://a/x /x\n".into(), "invalid checksum digest format".into(), 2),
            ("checksum with an unknown algorithm".into(), "FROM busybox\nADD --checksum=md5:abc https://a/x /x\n".into(), "unsupported digest algorithm".into(), 2),
            ("chmod too large".into(), "FROM busybox\nCOPY --chmod=17777 a /a\n".into(), "invalid chmod parameter: '17777'. it should be octal string and between 0 and 07777".into(), 2),
            ("chmod not octal".into(), "FROM busybox\nCOPY --chmod=999 a /a\n".into(), "invalid chmod parameter: '999'. it should be octal string and between 0 and 07777".into(), 2),
            ("chmod symbolic invalid".into(), "FROM busybox\nCOPY --chmod=u+q a /a\n".into(), "invalid syntax".into(), 2),
            (
                "COPY from a later stage".into(),
                "FROM busybox AS first\nCOPY --from=later a /a\nFROM busybox AS later\nFROM first\n".into(),
                "cannot copy from stage \"later\", it needs to be defined before current stage \"first\"".into(),
                2,
            ),
            ("git query without value".into(), "FROM busybox\nADD https://github.com/a/b.git?ref= /b\n".into(), "query \"ref\" has no value".into(), 2),
            ("git query unknown".into(), "FROM busybox\nADD https://github.com/a/b.git?foo=bar /b\n".into(), "unexpected query \"foo\"".into(), 2),
            (
                "git keep-git-dir conflict".into(),
                "FROM busybox\nADD --keep-git-dir https://github.com/a/b.git?keep-git-dir=false /b\n".into(),
                "inconsistent keep-git-dir configuration".into(),
                2,
            ),
            (
                "git checksum conflict".into(),
                "FROM busybox\nADD --checksum=aaaa https://github.com/a/b.git?checksum=bbbb /b\n".into(),
                "checksum mismatch \"aaaa\" != \"bbbb\"".into(),
                2,
            ),
        ];
        let cases: Vec<(&str, &str, &str, usize)> = cases
            .iter()
            .map(|(n, d, m, l)| (n.as_str(), d.as_str(), m.as_str(), *l))
            .collect();
        let failures = error_mismatches(&cases);
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[test]
    fn destinations() {
        let check = |dir: &str, dest: &str, expected: &str| {
            assert_eq!(
                path_relative_to_working_dir(dir, dest),
                expected,
                "{dir} + {dest}"
            );
        };
        check("/", ".", "/");
        check("/app", ".", "/app/");
        check("/app", "", "/app/");
        check("/app", "./", "/app/");
        check("/app", "conf/", "/app/conf/");
        check("/app", "x", "/app/x");
        check("/app", "x/.", "/app/x/.");
        check("/app", "../etc/", "/etc/");
        check("/app", "/abs", "/abs");
        check("/app", "/abs/", "/abs/");
        check("/app", "//a//b/", "/a/b/");
        check("/", "/", "/");
    }

    #[test]
    fn chmod_values() {
        let check = |value: &str, expected: Result<Option<CopyMode>, &str>| {
            assert_eq!(
                parse_chmod(value),
                expected.map_err(str::to_string),
                "{value:?}"
            );
        };
        let bits = |b: u32| Ok(Some(CopyMode::Bits(b)));
        let symbolic = |s: &str| Ok(Some(CopyMode::Symbolic(s.to_string())));
        check("", Ok(None));
        check("755", bits(0o755));
        check("0644", bits(0o644));
        check("7777", bits(0o7777));
        check("0", bits(0));
        check("u+x", symbolic("u+x"));
        check("go-w,a+rX", symbolic("go-w,a+rX"));
        check("=rw", symbolic("=rw"));
        check("u=rwx,g=u-w", symbolic("u=rwx,g=u-w"));
        check("+t", symbolic("+t"));
        let non_octal = |v: &str| {
            format!(
                "invalid chmod parameter: '{v}'. it should be octal string and between 0 and 07777"
            )
        };
        for v in ["10000", "8", "0o755", "1x"] {
            assert_eq!(parse_chmod(v), Err(non_octal(v)), "{v}");
        }
        for v in ["u", "x", "u+x,", "rw", "-0", "a+z", "u+x g+w"] {
            assert_eq!(parse_chmod(v), Err("invalid syntax".to_string()), "{v}");
        }
    }

    #[test]
    fn git_references() {
        let git = |remote: &str, git_ref: &str, subdir: &str| {
            GitParse::Git(GitRef {
                remote: remote.to_string(),
                git_ref: git_ref.to_string(),
                subdir: subdir.to_string(),
                ..GitRef::default()
            })
        };
        let check =
            |src: &str, expected: GitParse| assert_eq!(parse_git_ref(src), expected, "{src}");
        check("src/", GitParse::NotGit);
        check("./x.git", GitParse::NotGit);
        check("github.com/moby/buildkit", GitParse::NotGit);
        check("https://example.com/file.tar.gz", GitParse::NotGit);
        check("https://example.com/repo#main", GitParse::NotGit);
        check("ftp://example.com/x.git", GitParse::NotGit);
        check(
            "https://github.com/moby/buildkit.git",
            git("https://github.com/moby/buildkit.git", "", ""),
        );
        check(
            "HTTPS://github.com/a/b.git#v1:dir",
            git("https://github.com/a/b.git", "v1", "dir"),
        );
        check(
            "git@github.com:moby/buildkit.git#main",
            git("git@github.com:moby/buildkit.git", "main", ""),
        );
        check("ssh://git@host/repo", git("ssh://git@host/repo", "", ""));
        check("git://host/repo#:sub", git("git://host/repo", "", "sub"));
        check(
            "https://github.com/a/b.git?ref=main&subdir=x%2Fy",
            git("https://github.com/a/b.git", "main", "x/y"),
        );
        check(
            "https://github.com/a/b.git?tag=v1",
            git("https://github.com/a/b.git", "refs/tags/v1", ""),
        );
        check(
            "https://github.com/a/b.git?commit=abc",
            GitParse::Git(GitRef {
                remote: "https://github.com/a/b.git".to_string(),
                git_ref: "abc".to_string(),
                checksum: "abc".to_string(),
                ..GitRef::default()
            }),
        );
        check(
            "https://github.com/a/b.git?keep-git-dir=true&submodules=0",
            GitParse::Git(GitRef {
                remote: "https://github.com/a/b.git".to_string(),
                keep_git_dir: Some(true),
                submodules: Some(false),
                ..GitRef::default()
            }),
        );
        check(
            "https://github.com/a/b.git?branch=x&tag=y",
            GitParse::Invalid("branch conflicts with tag".to_string()),
        );
        check(
            "https://github.com/a/b.git?ref=a&ref=b",
            GitParse::Invalid("query \"ref\" has multiple values".to_string()),
        );
        check(
            "https://github.com/a/b.git#x?ref=y",
            git("https://github.com/a/b.git", "x?ref=y", ""),
        );
        check(
            "https://github.com/a/b.git?keep-git-dir=maybe",
            GitParse::Invalid("invalid keep-git-dir value: \"maybe\"".to_string()),
        );
    }

    #[test]
    fn url_file_names() {
        let check = |url: &str, expected: &str| assert_eq!(url_filename(url), expected, "{url}");
        check("https://example.com/dl/app.tar.gz", "app.tar.gz");
        check(
            "https://example.com/dl/app.tar.gz?token=1#frag",
            "app.tar.gz",
        );
        check("https://example.com", "__unnamed__");
        check("https://example.com/", "__unnamed__");
        check("https://example.com/dir/", "dir");
        check("https://example.com/a%20b", "a b");
        check("https://example.com/bad%zz", "__unnamed__");
        check("http://user:pw@example.com/x", "x");
    }

    #[test]
    fn wildcards() {
        let check =
            |name: &str, expected: bool| assert_eq!(contains_wildcards(name), expected, "{name}");
        check("a/b", false);
        check("*.go", true);
        check("a?", true);
        check("[ab]", true);
        check("a\\*b", false);
        check("a\\\\*", true);
    }

    /// `CopyIgnoredFile` (experimental): sources of the build context that `.dockerignore`
    /// excludes.
    #[test]
    fn ignored_sources() {
        let check = |excludes: &[&str], dockerfile: &str, expected: &[&str]| {
            let opts = with(|o| {
                o.context_excludes = excludes.iter().map(|s| s.to_string()).collect();
            });
            let dockerfile = format!("# check=experimental=CopyIgnoredFile\n{dockerfile}");
            let converted = convert_with(&dockerfile, &opts).map_err(|e| e.message);
            let messages: Vec<String> = converted
                .map(|c| c.warnings.into_iter().map(|w| w.message).collect())
                .unwrap_or_else(|e| vec![e]);
            assert_eq!(messages, expected, "{excludes:?} {dockerfile}");
        };
        check(
            &["secret.txt"],
            "FROM busybox\nCOPY secret.txt /\n",
            &["Attempting to Copy file \"secret.txt\" that is excluded by .dockerignore"],
        );
        check(
            &["build"],
            "FROM busybox\nADD build/out/ /\n",
            &["Attempting to Add file \"build/out\" that is excluded by .dockerignore"],
        );
        check(
            &["build"],
            "FROM busybox AS b\nFROM busybox\nCOPY --from=b build /\n",
            &[],
        );
        check(
            &["build", "!build/keep"],
            "FROM busybox\nCOPY build /\n",
            &[],
        );
        check(
            &["build", "!other/keep"],
            "FROM busybox\nCOPY build /\n",
            &["Attempting to Copy file \"build\" that is excluded by .dockerignore"],
        );
        check(&["node_modules"], "FROM busybox\nCOPY . /app\n", &[]);
        check(
            &["*"],
            "FROM busybox\nCOPY . /app\n",
            &["Attempting to Copy file \".\" that is excluded by .dockerignore"],
        );
        check(&["secret.txt"], "FROM busybox\nCOPY public.txt /\n", &[]);
    }
}
