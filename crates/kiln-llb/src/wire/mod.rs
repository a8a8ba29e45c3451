//! The only place that knows the protobuf types: conversion between the domain types of this
//! crate and `bollard_buildkit_proto::pb`, and the byte encoding BuildKit digests.
//!
//! Encoding goes through the private `gopb` module, which reproduces Go's deterministic wire output byte for
//! byte; decoding uses prost, which accepts any valid field order.

mod gopb;

use std::collections::BTreeMap;

use bollard_buildkit_proto::pb;
use kiln_oci::{Digest, Platform};
use prost::Message;

use crate::definition::{
    Definition, Location, OpMetadata, Position, ProgressGroup, Range, Source, SourceInfo,
};
use crate::error::Error;
use crate::ops::*;

/// Encodes an op the way BuildKit marshals it; the sha256 of these bytes is the op's digest.
pub fn encode_op(op: &Operation) -> Vec<u8> {
    gopb::encode_op(&op_to_pb(op))
}

/// Decodes marshalled op bytes.
pub fn decode_op(bytes: &[u8]) -> Result<Operation, Error> {
    let op = pb::Op::decode(bytes).map_err(|e| Error::Decode {
        what: "op".to_string(),
        message: e.to_string(),
    })?;
    op_from_pb(op)
}

/// The digest BuildKit gives `op`: `sha256` of its marshalled bytes.
pub fn op_digest(op: &Operation) -> Digest {
    Digest::of_bytes(&encode_op(op))
}

impl Operation {
    /// Marshals the op (see [`encode_op`]).
    pub fn encode(&self) -> Vec<u8> {
        encode_op(self)
    }

    /// Unmarshals an op (see [`decode_op`]).
    pub fn decode(bytes: &[u8]) -> Result<Operation, Error> {
        decode_op(bytes)
    }

    /// The op's digest (see [`op_digest`]).
    pub fn digest(&self) -> Digest {
        op_digest(self)
    }

    /// Converts to the generated protobuf type.
    pub fn to_pb(&self) -> pb::Op {
        op_to_pb(self)
    }

    /// Converts from the generated protobuf type.
    pub fn from_pb(op: pb::Op) -> Result<Operation, Error> {
        op_from_pb(op)
    }
}

impl Definition {
    /// Converts to the generated protobuf type, for gRPC.
    pub fn to_pb(&self) -> pb::Definition {
        definition_to_pb(self)
    }

    /// Converts from the generated protobuf type; metadata keys must be valid digests.
    pub fn from_pb(def: pb::Definition) -> Result<Definition, Error> {
        definition_from_pb(def)
    }

    /// Marshals the definition (the bytes `buildctl debug dump-llb` reads), with Go's
    /// deterministic field and map order.
    pub fn encode(&self) -> Vec<u8> {
        gopb::encode_definition(&self.to_pb())
    }

    /// Unmarshals a definition.
    pub fn decode(bytes: &[u8]) -> Result<Definition, Error> {
        let def = pb::Definition::decode(bytes).map_err(|e| Error::Decode {
            what: "definition".to_string(),
            message: e.to_string(),
        })?;
        Definition::from_pb(def)
    }
}

impl OpMetadata {
    /// Converts to the generated protobuf type.
    pub fn to_pb(&self) -> pb::OpMetadata {
        metadata_to_pb(self)
    }

    /// Converts from the generated protobuf type.
    pub fn from_pb(md: pb::OpMetadata) -> OpMetadata {
        metadata_from_pb(md)
    }
}

fn parse_digest(what: &str, value: &str) -> Result<Digest, Error> {
    Digest::parse(value).map_err(|reason| {
        let error = Error::InvalidDigest {
            value: value.to_string(),
            reason,
        };
        Error::invalid(what, error.to_string())
    })
}

// ---- platform -------------------------------------------------------------------------------

pub(crate) fn platform_to_pb(p: &Platform) -> pb::Platform {
    pb::Platform {
        architecture: p.architecture.clone(),
        os: p.os.clone(),
        variant: p.variant.clone(),
        os_version: p.os_version.clone(),
        os_features: p.os_features.clone(),
    }
}

fn platform_from_pb(p: pb::Platform) -> Platform {
    Platform {
        os: p.os,
        architecture: p.architecture,
        variant: p.variant,
        os_version: p.os_version,
        os_features: p.os_features,
    }
}

// ---- op -------------------------------------------------------------------------------------

fn op_to_pb(op: &Operation) -> pb::Op {
    pb::Op {
        inputs: op.inputs.iter().map(input_to_pb).collect(),
        platform: op.platform.as_ref().map(platform_to_pb),
        constraints: op.constraints.as_ref().map(|c| pb::WorkerConstraints {
            filter: c.filter.clone(),
        }),
        op: op.op.as_ref().map(|body| match body {
            Op::Exec(e) => pb::op::Op::Exec(exec_to_pb(e)),
            Op::Source(s) => pb::op::Op::Source(pb::SourceOp {
                identifier: s.identifier.clone(),
                attrs: s.attrs.clone(),
            }),
            Op::File(f) => pb::op::Op::File(pb::FileOp {
                actions: f.actions.iter().map(file_action_to_pb).collect(),
            }),
            Op::Build(b) => pb::op::Op::Build(pb::BuildOp {
                builder: b.builder,
                inputs: b
                    .inputs
                    .iter()
                    .map(|(k, v)| (k.clone(), pb::BuildInput { input: *v }))
                    .collect(),
                def: b.def.as_deref().map(definition_to_pb),
                attrs: b.attrs.clone(),
            }),
            Op::Merge(m) => pb::op::Op::Merge(pb::MergeOp {
                inputs: m
                    .inputs
                    .iter()
                    .map(|i| pb::MergeInput { input: *i })
                    .collect(),
            }),
            Op::Diff(d) => pb::op::Op::Diff(pb::DiffOp {
                lower: d.lower.map(|input| pb::LowerDiffInput { input }),
                upper: d.upper.map(|input| pb::UpperDiffInput { input }),
            }),
        }),
    }
}

fn op_from_pb(op: pb::Op) -> Result<Operation, Error> {
    let inputs = op
        .inputs
        .into_iter()
        .enumerate()
        .map(|(i, input)| {
            Ok(Input {
                digest: parse_digest(&format!("op input {i}"), &input.digest)?,
                index: input.index,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let body = match op.op {
        None => None,
        Some(pb::op::Op::Exec(e)) => Some(Op::Exec(exec_from_pb(e)?)),
        Some(pb::op::Op::Source(s)) => Some(Op::Source(SourceOp {
            identifier: s.identifier,
            attrs: s.attrs,
        })),
        Some(pb::op::Op::File(f)) => Some(Op::File(FileOp {
            actions: f
                .actions
                .into_iter()
                .enumerate()
                .map(|(i, a)| file_action_from_pb(i, a))
                .collect::<Result<_, _>>()?,
        })),
        Some(pb::op::Op::Build(b)) => Some(Op::Build(BuildOp {
            builder: b.builder,
            inputs: b.inputs.into_iter().map(|(k, v)| (k, v.input)).collect(),
            def: match b.def {
                Some(def) => Some(Box::new(definition_from_pb(def)?)),
                None => None,
            },
            attrs: b.attrs,
        })),
        Some(pb::op::Op::Merge(m)) => Some(Op::Merge(MergeOp {
            inputs: m.inputs.into_iter().map(|i| i.input).collect(),
        })),
        Some(pb::op::Op::Diff(d)) => Some(Op::Diff(DiffOp {
            lower: d.lower.map(|l| l.input),
            upper: d.upper.map(|u| u.input),
        })),
    };
    Ok(Operation {
        inputs,
        op: body,
        platform: op.platform.map(platform_from_pb),
        constraints: op
            .constraints
            .map(|c| WorkerConstraints { filter: c.filter }),
    })
}

fn input_to_pb(input: &Input) -> pb::Input {
    pb::Input {
        digest: input.digest.to_string(),
        index: input.index,
    }
}

// ---- exec -----------------------------------------------------------------------------------

fn exec_to_pb(e: &ExecOp) -> pb::ExecOp {
    let m = &e.meta;
    pb::ExecOp {
        meta: Some(pb::Meta {
            args: m.args.clone(),
            env: m.env.clone(),
            cwd: m.cwd.clone(),
            user: m.user.clone(),
            proxy_env: m.proxy_env.as_ref().map(|p| pb::ProxyEnv {
                http_proxy: p.http_proxy.clone(),
                https_proxy: p.https_proxy.clone(),
                ftp_proxy: p.ftp_proxy.clone(),
                no_proxy: p.no_proxy.clone(),
                all_proxy: p.all_proxy.clone(),
            }),
            extra_hosts: m
                .extra_hosts
                .iter()
                .map(|h| pb::HostIp {
                    host: h.host.clone(),
                    ip: h.ip.clone(),
                })
                .collect(),
            hostname: m.hostname.clone(),
            ulimit: m
                .ulimit
                .iter()
                .map(|u| pb::Ulimit {
                    name: u.name.clone(),
                    soft: u.soft,
                    hard: u.hard,
                })
                .collect(),
            cgroup_parent: m.cgroup_parent.clone(),
            remove_mount_stubs_recursive: m.remove_mount_stubs_recursive,
            valid_exit_codes: m.valid_exit_codes.clone(),
        }),
        mounts: e.mounts.iter().map(mount_to_pb).collect(),
        network: match e.network {
            NetMode::Sandbox => pb::NetMode::Unset,
            NetMode::Host => pb::NetMode::Host,
            NetMode::None => pb::NetMode::None,
        } as i32,
        security: match e.security {
            SecurityMode::Sandbox => pb::SecurityMode::Sandbox,
            SecurityMode::Insecure => pb::SecurityMode::Insecure,
        } as i32,
        secretenv: e
            .secretenv
            .iter()
            .map(|s| pb::SecretEnv {
                id: s.id.clone(),
                name: s.name.clone(),
                optional: s.optional,
            })
            .collect(),
        cdi_devices: e
            .cdi_devices
            .iter()
            .map(|d| pb::CdiDevice {
                name: d.name.clone(),
                optional: d.optional,
            })
            .collect(),
    }
}

fn enum_value<T>(what: &str, value: i32, f: impl Fn(i32) -> Option<T>) -> Result<T, Error> {
    f(value).ok_or_else(|| Error::invalid(what, format!("unknown value {value}")))
}

fn exec_from_pb(e: pb::ExecOp) -> Result<ExecOp, Error> {
    let m = e.meta.unwrap_or_default();
    Ok(ExecOp {
        meta: Meta {
            args: m.args,
            env: m.env,
            cwd: m.cwd,
            user: m.user,
            proxy_env: m.proxy_env.map(|p| ProxyEnv {
                http_proxy: p.http_proxy,
                https_proxy: p.https_proxy,
                ftp_proxy: p.ftp_proxy,
                no_proxy: p.no_proxy,
                all_proxy: p.all_proxy,
            }),
            extra_hosts: m
                .extra_hosts
                .into_iter()
                .map(|h| HostIp {
                    host: h.host,
                    ip: h.ip,
                })
                .collect(),
            hostname: m.hostname,
            ulimit: m
                .ulimit
                .into_iter()
                .map(|u| Ulimit {
                    name: u.name,
                    soft: u.soft,
                    hard: u.hard,
                })
                .collect(),
            cgroup_parent: m.cgroup_parent,
            remove_mount_stubs_recursive: m.remove_mount_stubs_recursive,
            valid_exit_codes: m.valid_exit_codes,
        },
        mounts: e
            .mounts
            .into_iter()
            .map(mount_from_pb)
            .collect::<Result<_, _>>()?,
        network: enum_value("exec network mode", e.network, |v| match v {
            0 => Some(NetMode::Sandbox),
            1 => Some(NetMode::Host),
            2 => Some(NetMode::None),
            _ => None,
        })?,
        security: enum_value("exec security mode", e.security, |v| match v {
            0 => Some(SecurityMode::Sandbox),
            1 => Some(SecurityMode::Insecure),
            _ => None,
        })?,
        secretenv: e
            .secretenv
            .into_iter()
            .map(|s| SecretEnv {
                id: s.id,
                name: s.name,
                optional: s.optional,
            })
            .collect(),
        cdi_devices: e
            .cdi_devices
            .into_iter()
            .map(|d| CdiDevice {
                name: d.name,
                optional: d.optional,
            })
            .collect(),
    })
}

fn mount_to_pb(m: &Mount) -> pb::Mount {
    pb::Mount {
        input: m.input,
        selector: m.selector.clone(),
        dest: m.dest.clone(),
        output: m.output,
        readonly: m.readonly,
        mount_type: match m.mount_type {
            MountType::Bind => pb::MountType::Bind,
            MountType::Secret => pb::MountType::Secret,
            MountType::Ssh => pb::MountType::Ssh,
            MountType::Cache => pb::MountType::Cache,
            MountType::Tmpfs => pb::MountType::Tmpfs,
        } as i32,
        tmpfs_opt: m.tmpfs_opt.map(|t| pb::TmpfsOpt { size: t.size }),
        cache_opt: m.cache_opt.as_ref().map(|c| pb::CacheOpt {
            id: c.id.clone(),
            sharing: match c.sharing {
                CacheSharing::Shared => pb::CacheSharingOpt::Shared,
                CacheSharing::Private => pb::CacheSharingOpt::Private,
                CacheSharing::Locked => pb::CacheSharingOpt::Locked,
            } as i32,
        }),
        secret_opt: m.secret_opt.as_ref().map(|s| pb::SecretOpt {
            id: s.id.clone(),
            uid: s.uid,
            gid: s.gid,
            mode: s.mode,
            optional: s.optional,
        }),
        ssh_opt: m.ssh_opt.as_ref().map(|s| pb::SshOpt {
            id: s.id.clone(),
            uid: s.uid,
            gid: s.gid,
            mode: s.mode,
            optional: s.optional,
        }),
        result_id: m.result_id.clone(),
        content_cache: match m.content_cache {
            MountContentCache::Default => pb::MountContentCache::Default,
            MountContentCache::On => pb::MountContentCache::On,
            MountContentCache::Off => pb::MountContentCache::Off,
        } as i32,
    }
}

fn mount_from_pb(m: pb::Mount) -> Result<Mount, Error> {
    let what = format!("mount {:?}", m.dest);
    Ok(Mount {
        input: m.input,
        selector: m.selector,
        output: m.output,
        readonly: m.readonly,
        mount_type: enum_value(&format!("{what} type"), m.mount_type, |v| match v {
            0 => Some(MountType::Bind),
            1 => Some(MountType::Secret),
            2 => Some(MountType::Ssh),
            3 => Some(MountType::Cache),
            4 => Some(MountType::Tmpfs),
            _ => None,
        })?,
        tmpfs_opt: m.tmpfs_opt.map(|t| TmpfsOpt { size: t.size }),
        cache_opt: match m.cache_opt {
            Some(c) => Some(CacheOpt {
                id: c.id,
                sharing: enum_value(&format!("{what} cache sharing"), c.sharing, |v| match v {
                    0 => Some(CacheSharing::Shared),
                    1 => Some(CacheSharing::Private),
                    2 => Some(CacheSharing::Locked),
                    _ => None,
                })?,
            }),
            None => None,
        },
        secret_opt: m.secret_opt.map(|s| SecretOpt {
            id: s.id,
            uid: s.uid,
            gid: s.gid,
            mode: s.mode,
            optional: s.optional,
        }),
        ssh_opt: m.ssh_opt.map(|s| SshOpt {
            id: s.id,
            uid: s.uid,
            gid: s.gid,
            mode: s.mode,
            optional: s.optional,
        }),
        result_id: m.result_id,
        content_cache: enum_value(
            &format!("{what} content cache"),
            m.content_cache,
            |v| match v {
                0 => Some(MountContentCache::Default),
                1 => Some(MountContentCache::On),
                2 => Some(MountContentCache::Off),
                _ => None,
            },
        )?,
        dest: m.dest,
    })
}

// ---- file -----------------------------------------------------------------------------------

fn chown_to_pb(c: &ChownOpt) -> pb::ChownOpt {
    let user = |u: &UserOpt| pb::UserOpt {
        user: Some(match u {
            UserOpt::ByName { name, input } => pb::user_opt::User::ByName(pb::NamedUserOpt {
                name: name.clone(),
                input: *input,
            }),
            UserOpt::ById(id) => pb::user_opt::User::ById(*id),
        }),
    };
    pb::ChownOpt {
        user: c.user.as_ref().map(user),
        group: c.group.as_ref().map(user),
    }
}

fn chown_from_pb(c: pb::ChownOpt) -> ChownOpt {
    let user = |u: pb::UserOpt| match u.user {
        Some(pb::user_opt::User::ByName(n)) => Some(UserOpt::ByName {
            name: n.name,
            input: n.input,
        }),
        Some(pb::user_opt::User::ById(id)) => Some(UserOpt::ById(id)),
        None => None,
    };
    ChownOpt {
        user: c.user.and_then(user),
        group: c.group.and_then(user),
    }
}

fn file_action_to_pb(a: &FileAction) -> pb::FileAction {
    use pb::file_action::Action;
    let action = match &a.action {
        FileActionKind::Copy(c) => Action::Copy(pb::FileActionCopy {
            src: c.src.clone(),
            dest: c.dest.clone(),
            owner: c.owner.as_ref().map(chown_to_pb),
            mode: c.mode,
            follow_symlink: c.follow_symlink,
            dir_copy_contents: c.dir_copy_contents,
            attempt_unpack_docker_compatibility: c.attempt_unpack_docker_compatibility,
            create_dest_path: c.create_dest_path,
            allow_wildcard: c.allow_wildcard,
            allow_empty_wildcard: c.allow_empty_wildcard,
            timestamp: c.timestamp,
            include_patterns: c.include_patterns.clone(),
            exclude_patterns: c.exclude_patterns.clone(),
            always_replace_existing_dest_paths: c.always_replace_existing_dest_paths,
            mode_str: c.mode_str.clone(),
            required_paths: c.required_paths.clone(),
        }),
        FileActionKind::Mkfile(m) => Action::Mkfile(pb::FileActionMkFile {
            path: m.path.clone(),
            mode: m.mode,
            data: m.data.clone(),
            owner: m.owner.as_ref().map(chown_to_pb),
            timestamp: m.timestamp,
        }),
        FileActionKind::Mkdir(m) => Action::Mkdir(pb::FileActionMkDir {
            path: m.path.clone(),
            mode: m.mode,
            make_parents: m.make_parents,
            owner: m.owner.as_ref().map(chown_to_pb),
            timestamp: m.timestamp,
        }),
        FileActionKind::Rm(r) => Action::Rm(pb::FileActionRm {
            path: r.path.clone(),
            allow_not_found: r.allow_not_found,
            allow_wildcard: r.allow_wildcard,
        }),
        FileActionKind::Symlink(s) => Action::Symlink(pb::FileActionSymlink {
            oldpath: s.oldpath.clone(),
            newpath: s.newpath.clone(),
            owner: s.owner.as_ref().map(chown_to_pb),
            timestamp: s.timestamp,
        }),
    };
    pb::FileAction {
        input: a.input,
        secondary_input: a.secondary_input,
        output: a.output,
        action: Some(action),
    }
}

fn file_action_from_pb(index: usize, a: pb::FileAction) -> Result<FileAction, Error> {
    use pb::file_action::Action;
    let action = match a.action {
        None => {
            return Err(Error::invalid(
                format!("file action {index}"),
                "no action kind (copy, mkfile, mkdir, rm, symlink) is set",
            ));
        }
        Some(Action::Copy(c)) => FileActionKind::Copy(FileActionCopy {
            src: c.src,
            dest: c.dest,
            owner: c.owner.map(chown_from_pb),
            mode: c.mode,
            follow_symlink: c.follow_symlink,
            dir_copy_contents: c.dir_copy_contents,
            attempt_unpack_docker_compatibility: c.attempt_unpack_docker_compatibility,
            create_dest_path: c.create_dest_path,
            allow_wildcard: c.allow_wildcard,
            allow_empty_wildcard: c.allow_empty_wildcard,
            timestamp: c.timestamp,
            include_patterns: c.include_patterns,
            exclude_patterns: c.exclude_patterns,
            always_replace_existing_dest_paths: c.always_replace_existing_dest_paths,
            mode_str: c.mode_str,
            required_paths: c.required_paths,
        }),
        Some(Action::Mkfile(m)) => FileActionKind::Mkfile(FileActionMkFile {
            path: m.path,
            mode: m.mode,
            data: m.data,
            owner: m.owner.map(chown_from_pb),
            timestamp: m.timestamp,
        }),
        Some(Action::Mkdir(m)) => FileActionKind::Mkdir(FileActionMkDir {
            path: m.path,
            mode: m.mode,
            make_parents: m.make_parents,
            owner: m.owner.map(chown_from_pb),
            timestamp: m.timestamp,
        }),
        Some(Action::Rm(r)) => FileActionKind::Rm(FileActionRm {
            path: r.path,
            allow_not_found: r.allow_not_found,
            allow_wildcard: r.allow_wildcard,
        }),
        Some(Action::Symlink(s)) => FileActionKind::Symlink(FileActionSymlink {
            oldpath: s.oldpath,
            newpath: s.newpath,
            owner: s.owner.map(chown_from_pb),
            timestamp: s.timestamp,
        }),
    };
    Ok(FileAction {
        input: a.input,
        secondary_input: a.secondary_input,
        output: a.output,
        action,
    })
}

// ---- definition and metadata ----------------------------------------------------------------

fn metadata_to_pb(md: &OpMetadata) -> pb::OpMetadata {
    pb::OpMetadata {
        ignore_cache: md.ignore_cache,
        description: md.description.clone(),
        export_cache: md.export_cache.map(|value| pb::ExportCache { value }),
        caps: md.caps.clone(),
        progress_group: md.progress_group.as_ref().map(|g| pb::ProgressGroup {
            id: g.id.clone(),
            name: g.name.clone(),
            weak: g.weak,
        }),
    }
}

fn metadata_from_pb(md: pb::OpMetadata) -> OpMetadata {
    OpMetadata {
        ignore_cache: md.ignore_cache,
        description: md.description,
        export_cache: md.export_cache.map(|e| e.value),
        caps: md.caps,
        progress_group: md.progress_group.map(|g| ProgressGroup {
            id: g.id,
            name: g.name,
            weak: g.weak,
        }),
    }
}

fn definition_to_pb(def: &Definition) -> pb::Definition {
    pb::Definition {
        def: def.def.clone(),
        metadata: def
            .metadata
            .iter()
            .map(|(k, v)| (k.to_string(), metadata_to_pb(v)))
            .collect(),
        source: def.source.as_ref().map(source_to_pb),
    }
}

fn definition_from_pb(def: pb::Definition) -> Result<Definition, Error> {
    let mut metadata = BTreeMap::new();
    for (k, v) in def.metadata {
        let digest = parse_digest("definition metadata key", &k)?;
        metadata.insert(digest, metadata_from_pb(v));
    }
    Ok(Definition {
        def: def.def,
        metadata,
        source: match def.source {
            Some(s) => Some(source_from_pb(s)?),
            None => None,
        },
    })
}

fn range_to_pb(r: &Range) -> pb::Range {
    pb::Range {
        start: Some(pb::Position {
            line: r.start.line,
            character: r.start.character,
        }),
        end: Some(pb::Position {
            line: r.end.line,
            character: r.end.character,
        }),
    }
}

fn range_from_pb(r: pb::Range) -> Range {
    let pos = |p: Option<pb::Position>| {
        let p = p.unwrap_or_default();
        Position {
            line: p.line,
            character: p.character,
        }
    };
    Range {
        start: pos(r.start),
        end: pos(r.end),
    }
}

fn source_to_pb(s: &Source) -> pb::Source {
    pb::Source {
        locations: s
            .locations
            .iter()
            .map(|(k, locs)| {
                (
                    k.to_string(),
                    pb::Locations {
                        locations: locs
                            .iter()
                            .map(|l| pb::Location {
                                source_index: l.source_index,
                                ranges: l.ranges.iter().map(range_to_pb).collect(),
                            })
                            .collect(),
                    },
                )
            })
            .collect(),
        infos: s
            .infos
            .iter()
            .map(|i| pb::SourceInfo {
                filename: i.filename.clone(),
                data: i.data.clone(),
                definition: i.definition.as_ref().map(definition_to_pb),
                language: i.language.clone(),
            })
            .collect(),
    }
}

fn source_from_pb(s: pb::Source) -> Result<Source, Error> {
    let mut locations = BTreeMap::new();
    for (k, locs) in s.locations {
        let digest = parse_digest("source locations key", &k)?;
        locations.insert(
            digest,
            locs.locations
                .into_iter()
                .map(|l| Location {
                    source_index: l.source_index,
                    ranges: l.ranges.into_iter().map(range_from_pb).collect(),
                })
                .collect(),
        );
    }
    let infos = s
        .infos
        .into_iter()
        .map(|i| {
            Ok(SourceInfo {
                filename: i.filename,
                data: i.data,
                definition: match i.definition {
                    Some(d) => Some(definition_from_pb(d)?),
                    None => None,
                },
                language: i.language,
            })
        })
        .collect::<Result<_, Error>>()?;
    Ok(Source { locations, infos })
}
