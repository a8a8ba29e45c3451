//! The resolution walk and its options.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::{Error, InPath};

/// How many symbolic links one resolution may follow in Go's path resolvers (containerd's
/// `fs.RootPath`, `filepath-securejoin`).
pub const GO_MAX_LINKS: usize = 255;

/// How many symbolic links the Linux kernel follows in one path lookup.
pub const LINUX_MAX_LINKS: usize = 40;

/// How a `..` is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DotDot {
    /// Lexically, before anything is looked up: the path is cleaned first, and again each
    /// time a symbolic link is replaced by its target, so `link/..` is the directory holding
    /// `link`, and a target's `a/..` cancels out even when `a` is a link. This is containerd's
    /// `fs.RootPath`, which fsutil's copy and BuildKit's file operations use.
    Lexical,
    /// Where it is met, on the path resolved so far: `link/..` is the parent of what `link`
    /// points to. This is the kernel's reading (and `openat2`'s `RESOLVE_IN_ROOT`), and that of
    /// `filepath-securejoin`, which runc uses for mount destinations.
    Resolved,
}

/// What to do about a component that is not there to descend into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Keep it, and everything after it, as a plain name (later `..` may still climb back
    /// into existing directories).
    Keep,
    /// Stop with an error ([`Error::NotFound`] or [`Error::NotADirectory`]).
    Fail,
}

/// What a `..` at the root does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// It stays at the root, as `/..` does.
    Clamp,
    /// Resolution stops with [`Error::Escape`].
    Fail,
}

/// How a path is resolved. Start from [`Options::continuity`] or [`Options::securejoin`] and
/// change what differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Whether a symbolic link in the last position is followed (links before it always
    /// are). A trailing `/` does not force following.
    pub follow_last: bool,
    /// How `..` is read.
    pub dotdot: DotDot,
    /// How many symbolic links one resolution may follow before it fails with
    /// [`Error::TooManyLinks`].
    pub max_links: usize,
    /// What a missing component does.
    pub missing: Policy,
    /// What a component below something that is neither a directory nor a link to one does.
    pub not_dir: Policy,
    /// What a `..` at the root does.
    pub escape: Escape,
}

impl Options {
    /// containerd's `fs.RootPath`: `..` lexical, the last link followed, missing components
    /// kept, a file in the middle an error, 255 links.
    pub const fn continuity() -> Options {
        Options {
            follow_last: true,
            dotdot: DotDot::Lexical,
            max_links: GO_MAX_LINKS,
            missing: Policy::Keep,
            not_dir: Policy::Fail,
            escape: Escape::Clamp,
        }
    }

    /// `filepath-securejoin`'s `SecureJoin`: `..` where it is met, every link followed,
    /// missing components and components below files kept, 255 links.
    pub const fn securejoin() -> Options {
        Options {
            follow_last: true,
            dotdot: DotDot::Resolved,
            max_links: GO_MAX_LINKS,
            missing: Policy::Keep,
            not_dir: Policy::Keep,
            escape: Escape::Clamp,
        }
    }
}

/// What an [`OnMissing`] hook did about a missing component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fill {
    /// It created a directory there: resolution opens it and goes on.
    Created,
    /// Resolution goes on as if a symbolic link with this target were there (it counts
    /// towards [`Options::max_links`]).
    Link(Vec<u8>),
    /// Nothing: [`Options::missing`] decides.
    Absent,
}

/// Called by [`resolve_dir`] for each missing component, with the descriptor of the
/// directory it is missing from, that directory's path and the missing name. An error stops
/// resolution with [`Error::Missing`].
pub type OnMissing<'a> = dyn FnMut(BorrowedFd<'_>, &InPath, &OsStr) -> io::Result<Fill> + 'a;

/// A directory resolved inside a root, open.
#[derive(Debug)]
pub struct Dir {
    /// An `O_PATH` descriptor of the directory: use it with `*at` calls.
    pub fd: OwnedFd,
    /// Its path inside the root.
    pub path: InPath,
}

/// Opens the directory at the host path `path` to serve as a root (`O_PATH`; the host path
/// itself may contain symbolic links).
pub fn open_root(path: &Path) -> io::Result<OwnedFd> {
    Ok(rfs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Resolves `path` (`/`-separated; absolute or not, it is read from the root) inside the
/// directory `root` and returns the path it leads to. Every symbolic link on the way is read
/// as if `root` were `/`: an absolute target starts again at the root, and `..` never climbs
/// above it. The returned components were not symbolic links when they were looked at
/// (except the last one when [`Options::follow_last`] is off) and may not exist (with
/// [`Policy::Keep`]).
///
/// Every lookup goes through directory descriptors opened with `O_NOFOLLOW`, so a link
/// swapped in while resolution runs is either seen as a link (and resolved inside the root)
/// or makes resolution fail; it cannot lead it outside. Acting on the result later is another
/// matter: open it component by component with `O_NOFOLLOW` (or use [`resolve_dir`] for the
/// directory to act in) so that a link swapped in afterwards makes the action fail.
pub fn resolve(root: BorrowedFd<'_>, path: &[u8], options: &Options) -> Result<InPath, Error> {
    let walk = Walk {
        root,
        input: path,
        options,
        want_dir: false,
    };
    Ok(walk.run(&mut |_, _, _| Ok(Fill::Absent))?.0)
}

/// Resolves `path` like [`resolve`], to a directory, and returns it open. The last
/// component is always followed, whatever [`Options::follow_last`] says. `on_missing` is
/// asked about every missing component and may create it; a component still missing at the
/// end (kept with [`Policy::Keep`]) makes resolution fail with [`Error::NotFound`], and one
/// that is not a directory with [`Error::NotADirectory`].
pub fn resolve_dir(
    root: BorrowedFd<'_>,
    path: &[u8],
    options: &Options,
    on_missing: &mut OnMissing<'_>,
) -> Result<Dir, Error> {
    let walk = Walk {
        root,
        input: path,
        options,
        want_dir: true,
    };
    let (path, fd) = walk.run(on_missing)?;
    match fd {
        Some(fd) => Ok(Dir { fd, path }),
        None => Err(Error::NotFound { path }),
    }
}

/// One component resolved so far, with its `O_PATH` descriptor when it is a directory that
/// was opened (the last component is only opened when the walk wants a directory).
struct Step {
    name: OsString,
    fd: Option<OwnedFd>,
}

/// One resolution.
struct Walk<'a, 'r> {
    root: BorrowedFd<'r>,
    input: &'a [u8],
    options: &'a Options,
    want_dir: bool,
}

/// The path of the steps so far, plus `name` when given.
fn path_of(done: &[Step], name: Option<&OsStr>) -> InPath {
    done.iter()
        .map(|s| s.name.clone())
        .chain(name.map(OsStr::to_os_string))
        .collect()
}

/// An [`Error::Io`] for the call `op` on `name` below the steps so far.
fn io_err<'a>(
    op: &'static str,
    done: &'a [Step],
    name: &'a OsStr,
) -> impl FnOnce(Errno) -> Error + 'a {
    move |e| Error::Io {
        op,
        path: path_of(done, Some(name)),
        source: e.into(),
    }
}

/// The elements of `path` other than empty ones and `.` (`..` stays).
fn elements(path: &[u8]) -> impl DoubleEndedIterator<Item = OsString> + '_ {
    path.split(|&b| b == b'/')
        .filter(|e| !e.is_empty() && *e != b".")
        .map(|e| OsString::from_vec(e.to_vec()))
}

/// Opens directory `name` in `at` without following a link.
fn open_dir(at: BorrowedFd<'_>, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    rfs::openat(
        at,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

impl Walk<'_, '_> {
    fn shown_input(&self) -> String {
        String::from_utf8_lossy(self.input).into_owned()
    }

    /// Fails with [`Error::Escape`] when a `..` `climbed` above the root and the options
    /// forbid it.
    fn check_escape(&self, climbed: bool) -> Result<(), Error> {
        if climbed && self.options.escape == Escape::Fail {
            return Err(Error::Escape {
                path: self.shown_input(),
            });
        }
        Ok(())
    }

    /// Resolves the path: the components, and the descriptor of the last one when the walk
    /// wants a directory and it is one.
    fn run(&self, on_missing: &mut OnMissing<'_>) -> Result<(InPath, Option<OwnedFd>), Error> {
        let mut done: Vec<Step> = Vec::new();
        let mut queue: VecDeque<OsString> = match self.options.dotdot {
            DotDot::Resolved => elements(self.input).collect(),
            DotDot::Lexical => {
                let (clean, climbed) = InPath::lexical_checked(self.input);
                self.check_escape(climbed)?;
                clean.into_components().into()
            }
        };
        let mut links = 0usize;
        while let Some(name) = queue.pop_front() {
            if name.as_bytes() == b".." {
                self.check_escape(done.pop().is_none())?;
                continue;
            }
            let last = queue.is_empty();
            let at = match done.last() {
                None => self.root,
                Some(Step { fd: Some(fd), .. }) => fd.as_fd(),
                Some(Step { fd: None, .. }) => {
                    // Below something kept as a name (missing, or not a directory): there is
                    // nothing to look at, and the rules that kept it keep this too.
                    done.push(Step { name, fd: None });
                    continue;
                }
            };
            let kind = match rfs::statat(at, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => FileType::from_raw_mode(st.st_mode),
                Err(Errno::NOENT) => {
                    let fill = on_missing(at, &path_of(&done, None), &name).map_err(|source| {
                        Error::Missing {
                            path: path_of(&done, Some(&name)),
                            source,
                        }
                    })?;
                    match fill {
                        Fill::Created => {
                            let fd = open_dir(at, &name).map_err(io_err("open", &done, &name))?;
                            done.push(Step { name, fd: Some(fd) });
                        }
                        Fill::Link(target) => {
                            self.follow(&target, &mut links, &mut done, &mut queue)?;
                        }
                        Fill::Absent => match self.options.missing {
                            Policy::Keep => done.push(Step { name, fd: None }),
                            Policy::Fail => {
                                return Err(Error::NotFound {
                                    path: path_of(&done, Some(&name)),
                                });
                            }
                        },
                    }
                    continue;
                }
                Err(e) => return Err(io_err("lstat", &done, &name)(e)),
            };
            match kind {
                FileType::Symlink if !last || self.options.follow_last || self.want_dir => {
                    let target = rfs::readlinkat(at, name.as_os_str(), Vec::new())
                        .map_err(io_err("readlink", &done, &name))?
                        .into_bytes();
                    self.follow(&target, &mut links, &mut done, &mut queue)?;
                }
                FileType::Directory if !last || self.want_dir => {
                    let fd = open_dir(at, &name).map_err(io_err("open", &done, &name))?;
                    done.push(Step { name, fd: Some(fd) });
                }
                FileType::Directory => done.push(Step { name, fd: None }),
                _ if last && !self.want_dir => done.push(Step { name, fd: None }),
                _ if last => {
                    return Err(Error::NotADirectory {
                        path: path_of(&done, Some(&name)),
                        next: None,
                    });
                }
                _ => match self.options.not_dir {
                    Policy::Keep => done.push(Step { name, fd: None }),
                    Policy::Fail => {
                        return Err(Error::NotADirectory {
                            path: path_of(&done, Some(&name)),
                            next: queue.front().cloned(),
                        });
                    }
                },
            }
        }
        let fd = if self.want_dir {
            match done.last_mut() {
                None => Some(open_dir(self.root, OsStr::new(".")).map_err(|e| Error::Io {
                    op: "open",
                    path: InPath::root(),
                    source: e.into(),
                })?),
                Some(step) => step.fd.take(),
            }
        } else {
            None
        };
        Ok((done.into_iter().map(|s| s.name).collect(), fd))
    }

    /// Replaces the link just met by its `target`.
    fn follow(
        &self,
        target: &[u8],
        links: &mut usize,
        done: &mut Vec<Step>,
        queue: &mut VecDeque<OsString>,
    ) -> Result<(), Error> {
        *links += 1;
        if *links > self.options.max_links {
            return Err(Error::TooManyLinks {
                path: self.shown_input(),
            });
        }
        let absolute = target.first() == Some(&b'/');
        match self.options.dotdot {
            DotDot::Resolved => {
                if absolute {
                    done.clear();
                }
                for element in elements(target).rev() {
                    queue.push_front(element);
                }
            }
            DotDot::Lexical => {
                // Clean what is resolved so far (unless the target is absolute), the target
                // and the rest together, then keep the steps that are still a prefix.
                let mut text: Vec<u8> = Vec::new();
                if !absolute {
                    for step in done.iter() {
                        text.push(b'/');
                        text.extend_from_slice(step.name.as_bytes());
                    }
                }
                text.push(b'/');
                text.extend_from_slice(target);
                for rest in queue.iter() {
                    text.push(b'/');
                    text.extend_from_slice(rest.as_bytes());
                }
                let (clean, climbed) = InPath::lexical_checked(&text);
                self.check_escape(climbed)?;
                let clean = clean.into_components();
                let kept = done
                    .iter()
                    .zip(&clean)
                    .take_while(|(step, name)| step.name == **name)
                    .count();
                done.truncate(kept);
                *queue = clean.into_iter().skip(kept).collect();
            }
        }
        Ok(())
    }
}
