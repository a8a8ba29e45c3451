//! The cache-key material of each LLB op: a canonical, versioned byte encoding of exactly the
//! fields that decide an op's result.
//!
//! The solver hashes this material together with the keys (or content digests) of the op's
//! inputs. Nothing here comes from `Debug`, `Hash` or serde output: every field is written
//! explicitly, length-prefixed, in a fixed order, after a schema tag. Changing what a key covers
//! is a deliberate schema change: bump the tag (`kiln.exec.v1` → `v2`), and the golden tests
//! below change with it.
//!
//! Left out on purpose, because they do not change the result: the proxy variables of `RUN`
//! (BuildKit leaves them out too), progress names and descriptions (op metadata), source
//! locations, and the session id of local sources (their key is their content).

use kiln_llb::ops::{
    ChownOpt, ExecOp, FileAction, FileActionKind, FileOp, Mount, MountType, UserOpt,
};
use kiln_oci::Platform;

/// A writer of canonical key material: every value is tagged by its encoding, strings and
/// lists are length-prefixed, integers little-endian.
#[derive(Debug, Default)]
pub struct KeyWriter {
    buf: Vec<u8>,
}

impl KeyWriter {
    /// Starts key material with its schema tag (`kiln.exec.v1`).
    pub fn new(schema: &str) -> KeyWriter {
        let mut w = KeyWriter::default();
        w.str(schema);
        w
    }

    /// A string (length, then UTF-8 bytes).
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    /// Raw bytes (length, then the bytes).
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.push(b's');
        self.buf.extend_from_slice(&(b.len() as u64).to_le_bytes());
        self.buf.extend_from_slice(b);
        self
    }

    /// A signed integer.
    pub fn int(&mut self, v: i64) -> &mut Self {
        self.buf.push(b'i');
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A boolean.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.buf.push(b'b');
        self.buf.push(u8::from(v));
        self
    }

    /// A list: its length, then each item written by `f`.
    pub fn list<T>(&mut self, items: &[T], mut f: impl FnMut(&mut Self, &T)) -> &mut Self {
        self.buf.push(b'l');
        self.buf
            .extend_from_slice(&(items.len() as u64).to_le_bytes());
        for item in items {
            f(self, item);
        }
        self
    }

    /// An optional value: a presence flag, then the value.
    pub fn opt<T>(&mut self, v: Option<&T>, f: impl FnOnce(&mut Self, &T)) -> &mut Self {
        match v {
            None => self.bool(false),
            Some(v) => {
                self.bool(true);
                f(self, v);
                self
            }
        }
    }

    /// The material written so far.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

fn platform(w: &mut KeyWriter, p: Option<&Platform>) {
    w.opt(p, |w, p| {
        w.str(&p.os)
            .str(&p.architecture)
            .str(&p.variant)
            .str(&p.os_version);
        w.list(&p.os_features, |w, f| {
            w.str(f);
        });
    });
}

/// The key material of an image source: what identifies the image (its manifest digest, or the
/// reference when it is not pinned) and the platform it was pulled for.
pub fn image_source(identifier: &str, p: Option<&Platform>) -> Vec<u8> {
    let mut w = KeyWriter::new("kiln.source.image.v2");
    w.str(identifier);
    platform(&mut w, p);
    w.finish()
}

/// The key material of a local source: its name and the digest of its (filtered) content.
pub fn local_source(name: &str, content: &str) -> Vec<u8> {
    let mut w = KeyWriter::new("kiln.source.local.v1");
    w.str(name).str(content);
    w.finish()
}

/// The key material of an exec op: everything that decides what the command sees and does,
/// except the proxy variables.
pub fn exec(op: &ExecOp, p: Option<&Platform>) -> Vec<u8> {
    let mut w = KeyWriter::new("kiln.exec.v1");
    platform(&mut w, p);
    let m = &op.meta;
    w.list(&m.args, |w, a| {
        w.str(a);
    });
    w.list(&m.env, |w, e| {
        w.str(e);
    });
    w.str(&m.cwd)
        .str(&m.user)
        .str(&m.hostname)
        .str(&m.cgroup_parent);
    w.list(&m.extra_hosts, |w, h| {
        w.str(&h.host).str(&h.ip);
    });
    w.list(&m.ulimit, |w, u| {
        w.str(&u.name).int(u.soft).int(u.hard);
    });
    w.bool(m.remove_mount_stubs_recursive);
    w.list(&m.valid_exit_codes, |w, c| {
        w.int(i64::from(*c));
    });
    w.list(&op.mounts, mount);
    w.int(match op.network {
        kiln_llb::ops::NetMode::Sandbox => 0,
        kiln_llb::ops::NetMode::Host => 1,
        kiln_llb::ops::NetMode::None => 2,
    });
    w.int(match op.security {
        kiln_llb::ops::SecurityMode::Sandbox => 0,
        kiln_llb::ops::SecurityMode::Insecure => 1,
    });
    w.list(&op.secretenv, |w, s| {
        w.str(&s.id).str(&s.name).bool(s.optional);
    });
    w.list(&op.cdi_devices, |w, d| {
        w.str(&d.name).bool(d.optional);
    });
    w.finish()
}

fn mount(w: &mut KeyWriter, m: &Mount) {
    w.int(m.input)
        .str(&m.selector)
        .str(&m.dest)
        .int(m.output)
        .bool(m.readonly);
    w.int(match m.mount_type {
        MountType::Bind => 0,
        MountType::Secret => 1,
        MountType::Ssh => 2,
        MountType::Cache => 3,
        MountType::Tmpfs => 4,
    });
    w.opt(m.tmpfs_opt.as_ref(), |w, t| {
        w.int(t.size);
    });
    w.opt(m.cache_opt.as_ref(), |w, c| {
        w.str(&c.id).int(c.sharing as i64);
    });
    w.opt(m.secret_opt.as_ref(), |w, s| {
        w.str(&s.id)
            .int(i64::from(s.uid))
            .int(i64::from(s.gid))
            .int(i64::from(s.mode))
            .bool(s.optional);
    });
    w.opt(m.ssh_opt.as_ref(), |w, s| {
        w.str(&s.id)
            .int(i64::from(s.uid))
            .int(i64::from(s.gid))
            .int(i64::from(s.mode))
            .bool(s.optional);
    });
}

fn chown(w: &mut KeyWriter, c: Option<&ChownOpt>) {
    fn user(w: &mut KeyWriter, u: Option<&UserOpt>) {
        w.opt(u, |w, u| match u {
            UserOpt::ById(id) => {
                w.int(0).int(i64::from(*id));
            }
            UserOpt::ByName { name, input } => {
                w.int(1).str(name).int(*input);
            }
        });
    }
    w.opt(c, |w, c| {
        user(w, c.user.as_ref());
        user(w, c.group.as_ref());
    });
}

/// The key material of a file op: every action with every field.
pub fn file(op: &FileOp) -> Vec<u8> {
    let mut w = KeyWriter::new("kiln.file.v1");
    w.list(&op.actions, action);
    w.finish()
}

fn action(w: &mut KeyWriter, a: &FileAction) {
    w.int(a.input).int(a.secondary_input).int(a.output);
    match &a.action {
        FileActionKind::Copy(c) => {
            w.str("copy").str(&c.src).str(&c.dest);
            chown(w, c.owner.as_ref());
            w.int(i64::from(c.mode)).str(&c.mode_str);
            w.bool(c.follow_symlink)
                .bool(c.dir_copy_contents)
                .bool(c.attempt_unpack_docker_compatibility)
                .bool(c.create_dest_path)
                .bool(c.allow_wildcard)
                .bool(c.allow_empty_wildcard)
                .bool(c.always_replace_existing_dest_paths);
            w.int(c.timestamp);
            for list in [&c.include_patterns, &c.exclude_patterns, &c.required_paths] {
                w.list(list, |w, p| {
                    w.str(p);
                });
            }
        }
        FileActionKind::Mkfile(m) => {
            w.str("mkfile")
                .str(&m.path)
                .int(i64::from(m.mode))
                .bytes(&m.data);
            chown(w, m.owner.as_ref());
            w.int(m.timestamp);
        }
        FileActionKind::Mkdir(m) => {
            w.str("mkdir")
                .str(&m.path)
                .int(i64::from(m.mode))
                .bool(m.make_parents);
            chown(w, m.owner.as_ref());
            w.int(m.timestamp);
        }
        FileActionKind::Rm(r) => {
            w.str("rm")
                .str(&r.path)
                .bool(r.allow_not_found)
                .bool(r.allow_wildcard);
        }
        FileActionKind::Symlink(s) => {
            w.str("symlink").str(&s.oldpath).str(&s.newpath);
            chown(w, s.owner.as_ref());
            w.int(s.timestamp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_llb::ops::{CacheOpt, FileActionCopy, FileActionMkDir, Meta, ProxyEnv};
    use sha2::{Digest as _, Sha256};

    fn hex(b: &[u8]) -> String {
        hex::encode(Sha256::digest(b))
    }

    fn sample_exec() -> ExecOp {
        ExecOp {
            meta: Meta {
                args: vec!["/bin/sh".into(), "-c".into(), "make".into()],
                env: vec!["PATH=/usr/bin:/bin".into()],
                cwd: "/src".into(),
                remove_mount_stubs_recursive: true,
                ..Meta::default()
            },
            mounts: vec![
                Mount {
                    input: 0,
                    dest: "/".into(),
                    output: 0,
                    ..Mount::default()
                },
                Mount {
                    input: -1,
                    dest: "/root/.cache".into(),
                    output: -1,
                    mount_type: MountType::Cache,
                    cache_opt: Some(CacheOpt {
                        id: "go".into(),
                        ..CacheOpt::default()
                    }),
                    ..Mount::default()
                },
            ],
            ..ExecOp::default()
        }
    }

    /// Golden keys: these change only with a deliberate schema change.
    #[test]
    fn golden_keys() {
        let amd64 = Platform::new("linux", "amd64", "");
        let got = [
            hex(&image_source(
                "sha256:1111111111111111111111111111111111111111111111111111111111111111",
                Some(&amd64),
            )),
            hex(&local_source(
                "context",
                "sha256:2222222222222222222222222222222222222222222222222222222222222222",
            )),
            hex(&exec(&sample_exec(), Some(&amd64))),
            hex(&file(&FileOp {
                actions: vec![FileAction {
                    input: 0,
                    secondary_input: -1,
                    output: 0,
                    action: FileActionKind::Mkdir(FileActionMkDir {
                        path: "/app".into(),
                        mode: 0o755,
                        make_parents: true,
                        owner: None,
                        timestamp: -1,
                    }),
                }],
            })),
        ];
        let want = [
            "b5ae23479ad856a29b692bb026cc497fbdd082253344038fb423328908f6a90d",
            "434d391ec45cd84484901165d4e4a464060b74db41626e419ae3bb5e8a83614d",
            "f25156e7ce0f8bf297bd3ca09dad21f459090a9eb2943d5d58e80f3d39a06051",
            "c1ca4494fdbf12280ef77e11c9c0b2eec289036a060e1be74d97330a53a36d66",
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn proxy_env_does_not_change_the_key() {
        let a = sample_exec();
        let mut b = a.clone();
        b.meta.proxy_env = Some(ProxyEnv {
            http_proxy: "http://proxy:3128".into(),
            ..ProxyEnv::default()
        });
        assert_eq!(exec(&a, None), exec(&b, None));
    }

    #[test]
    fn every_field_changes_the_key() {
        let a = sample_exec();
        let base = exec(&a, None);
        let mut variants = Vec::new();
        let mut b = a.clone();
        b.meta.args.push("x".into());
        variants.push(b);
        let mut b = a.clone();
        b.meta.cwd = "/other".into();
        variants.push(b);
        let mut b = a.clone();
        b.meta.user = "1000".into();
        variants.push(b);
        let mut b = a.clone();
        b.mounts[1].cache_opt = Some(CacheOpt {
            id: "other".into(),
            ..CacheOpt::default()
        });
        variants.push(b);
        let mut b = a.clone();
        b.network = kiln_llb::ops::NetMode::None;
        variants.push(b);
        for v in variants {
            assert_ne!(exec(&v, None), base, "{v:?}");
        }
        // Field boundaries are unambiguous: moving a character between two strings changes it.
        let c1 = FileOp {
            actions: vec![FileAction {
                input: 0,
                secondary_input: 1,
                output: 0,
                action: FileActionKind::Copy(FileActionCopy {
                    src: "/ab".into(),
                    dest: "/c".into(),
                    ..Default::default()
                }),
            }],
        };
        let mut c2 = c1.clone();
        if let FileActionKind::Copy(c) = &mut c2.actions[0].action {
            c.src = "/a".into();
            c.dest = "b/c".into();
        }
        assert_ne!(file(&c1), file(&c2));
    }
}
