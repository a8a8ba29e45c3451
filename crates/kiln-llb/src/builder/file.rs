//! `State::file`: file vertices built from a chain of actions, as `client/llb/fileop.go` builds them.

use std::sync::Arc;

use super::state::{Node, NodeKind, Output, State, VertexOpts};

/// A user or group of a [`Chown`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChownUser {
    /// A name, resolved in the target filesystem.
    Name(String),
    /// A numeric id.
    Id(u32),
}

/// An ownership change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chown {
    /// The owner.
    pub user: Option<ChownUser>,
    /// The group.
    pub group: Option<ChownUser>,
}

impl Chown {
    /// Parses `user[:group]` as BuildKit's `WithUser` does: numbers and `root` become ids,
    /// anything else a name.
    pub fn parse(spec: &str) -> Chown {
        let one = |v: &str| {
            if v == "root" {
                return ChownUser::Id(0);
            }
            match v.parse::<i32>() {
                Ok(id) => ChownUser::Id(id as u32),
                Err(_) => ChownUser::Name(v.to_string()),
            }
        };
        let (user, group) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        Chown {
            user: Some(one(user)),
            group: group.map(one),
        }
    }

    /// Numeric owner and group.
    pub fn ids(uid: u32, gid: u32) -> Chown {
        Chown {
            user: Some(ChownUser::Id(uid)),
            group: Some(ChownUser::Id(gid)),
        }
    }
}

/// The permission override of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyMode {
    /// Octal permission bits.
    Bits(u32),
    /// Symbolic form (`u+x`), which needs the `file.copy.modestring` capability.
    Symbolic(String),
}

/// Options of a copy action (BuildKit's `CopyInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopyInfo {
    /// Permission override.
    pub mode: Option<CopyMode>,
    /// Follow symlinks in the source.
    pub follow_symlinks: bool,
    /// Copy the contents of a source directory rather than the directory itself.
    pub copy_dir_contents_only: bool,
    /// Only copy paths matching one of these patterns.
    pub include_patterns: Vec<String>,
    /// Skip paths matching any of these patterns.
    pub exclude_patterns: Vec<String>,
    /// Paths that must exist when include patterns are used.
    pub required_paths: Vec<String>,
    /// Unpack archives like Docker's `ADD`.
    pub attempt_unpack: bool,
    /// Create missing parents of the destination.
    pub create_dest_path: bool,
    /// Interpret wildcards in the source.
    pub allow_wildcard: bool,
    /// Do not fail when a wildcard matches nothing.
    pub allow_empty_wildcard: bool,
    /// Ownership of the copied files.
    pub chown: Option<Chown>,
    /// Timestamp of the copied files, in Unix nanoseconds.
    pub created_time: Option<i64>,
    /// Replace destination paths of a different type instead of failing.
    pub always_replace_existing_dest_paths: bool,
}

/// Options of a mkdir action.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MkdirOpts {
    /// Create missing parents.
    pub make_parents: bool,
    /// Ownership.
    pub chown: Option<Chown>,
    /// Timestamp in Unix nanoseconds.
    pub created_time: Option<i64>,
}

/// Options of a mkfile action.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MkfileOpts {
    /// Ownership.
    pub chown: Option<Chown>,
    /// Timestamp in Unix nanoseconds.
    pub created_time: Option<i64>,
}

/// Options of an rm action.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RmOpts {
    /// Do not fail when the path is missing.
    pub allow_not_found: bool,
    /// Interpret wildcards in the path.
    pub allow_wildcard: bool,
}

/// Options of a symlink action.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SymlinkOpts {
    /// Ownership of the link.
    pub chown: Option<Chown>,
    /// Timestamp in Unix nanoseconds.
    pub created_time: Option<i64>,
}

#[derive(Clone)]
pub(crate) enum FileStep {
    Copy {
        src: Option<Output>,
        src_dir: String,
        src_path: String,
        dest: String,
        info: CopyInfo,
    },
    Mkdir {
        path: String,
        mode: u32,
        opts: MkdirOpts,
    },
    Mkfile {
        path: String,
        mode: u32,
        data: Vec<u8>,
        opts: MkfileOpts,
    },
    Rm {
        path: String,
        opts: RmOpts,
    },
    Symlink {
        oldpath: String,
        newpath: String,
        opts: SymlinkOpts,
    },
}

/// A chain of file actions run one after the other in one vertex, like
/// `llb.Copy(...).Mkdir(...)`; relative paths resolve against the working directory of the
/// state the chain is applied to.
#[derive(Clone, Default)]
pub struct FileActions {
    pub(crate) steps: Vec<FileStep>,
}

impl FileActions {
    /// An empty chain.
    pub fn new() -> FileActions {
        FileActions::default()
    }

    /// Whether the chain has no action.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Copies `src_path` of `src` (relative to its working directory) to `dest`.
    pub fn copy(mut self, src: &State, src_path: &str, dest: &str, info: CopyInfo) -> FileActions {
        self.steps.push(FileStep::Copy {
            src: src.output.clone(),
            src_dir: src.get_dir().to_string(),
            src_path: src_path.to_string(),
            dest: dest.to_string(),
            info,
        });
        self
    }

    /// Creates a directory with permission bits `mode`.
    pub fn mkdir(mut self, path: &str, mode: u32, opts: MkdirOpts) -> FileActions {
        self.steps.push(FileStep::Mkdir {
            path: path.to_string(),
            mode,
            opts,
        });
        self
    }

    /// Creates a file with permission bits `mode` and content `data`.
    pub fn mkfile(
        mut self,
        path: &str,
        mode: u32,
        data: impl Into<Vec<u8>>,
        opts: MkfileOpts,
    ) -> FileActions {
        self.steps.push(FileStep::Mkfile {
            path: path.to_string(),
            mode,
            data: data.into(),
            opts,
        });
        self
    }

    /// Removes a path.
    pub fn rm(mut self, path: &str, opts: RmOpts) -> FileActions {
        self.steps.push(FileStep::Rm {
            path: path.to_string(),
            opts,
        });
        self
    }

    /// Creates a symlink at `newpath` pointing to `oldpath` (both kept as given, as in BuildKit).
    pub fn symlink(mut self, oldpath: &str, newpath: &str, opts: SymlinkOpts) -> FileActions {
        self.steps.push(FileStep::Symlink {
            oldpath: oldpath.to_string(),
            newpath: newpath.to_string(),
            opts,
        });
        self
    }
}

pub(crate) struct FileNode {
    pub base: Option<Output>,
    pub base_dir: String,
    pub steps: Vec<FileStep>,
}

impl State {
    /// Runs a chain of file actions on this state (BuildKit's `State.File`).
    pub fn file(&self, actions: FileActions, vertex: VertexOpts) -> State {
        let node = Arc::new(Node {
            kind: NodeKind::File(FileNode {
                base: self.output.clone(),
                base_dir: self.get_dir().to_string(),
                steps: actions.steps,
            }),
            constraints: vertex.into_constraints(),
        });
        self.with_output(Some(Output { node, index: Ok(0) }))
    }

    /// Stacks `inputs` on top of each other (BuildKit's `llb.Merge`): scratch inputs are
    /// dropped, and a single remaining input is returned as is.
    pub fn merge(inputs: &[State], vertex: VertexOpts) -> State {
        let kept: Vec<&State> = inputs.iter().filter(|s| !s.is_scratch()).collect();
        match kept.as_slice() {
            [] => State::scratch(),
            [one] => (*one).clone(),
            _ => {
                let mut c = vertex.into_constraints();
                c.add_cap(super::source::caps::MERGE_OP);
                let node = Arc::new(Node {
                    kind: NodeKind::Merge(kept.iter().filter_map(|s| s.output.clone()).collect()),
                    constraints: c,
                });
                State::new(Some(Output { node, index: Ok(0) }))
            }
        }
    }

    /// The changes between `lower` and `upper` (BuildKit's `llb.Diff`), keeping `lower`'s settings.
    pub fn diff(lower: &State, upper: &State, vertex: VertexOpts) -> State {
        if lower.is_scratch() {
            return if upper.is_scratch() {
                State::scratch()
            } else {
                upper.clone()
            };
        }
        let mut c = vertex.into_constraints();
        c.add_cap(super::source::caps::DIFF_OP);
        let node = Arc::new(Node {
            kind: NodeKind::Diff {
                lower: lower.output.clone(),
                upper: upper.output.clone(),
            },
            constraints: c,
        });
        lower.with_output(Some(Output { node, index: Ok(0) }))
    }
}
