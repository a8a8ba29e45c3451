//! Protobuf encoding that produces the same bytes as Go's `proto.MarshalOptions{Deterministic: true}`,
//! which is what BuildKit hashes to name a vertex.
//!
//! prost and Go agree on everything LLB uses except two points, handled here by hand:
//!
//! * Go writes the fields of a `oneof` after all other fields ("to preserve compatibility with
//!   historic wire output"), while prost writes them at the position of their lowest tag.
//!   Only `pb.Op` is affected: its `op` oneof (tags 2 to 7) goes after `platform` (10) and
//!   `constraints` (11). `FileAction`'s oneof already has the highest tags, `UserOpt` has nothing else.
//! * Go writes every map entry with both its key and its value, even when one of them is the
//!   default (an empty string, `false`, an empty message), while prost leaves defaults out of
//!   map entries. Maps occur in `SourceOp`, `BuildOp`, `Definition`, `OpMetadata` and `Source`,
//!   which are therefore encoded here field by field.
//!
//! Both implementations sort map keys in deterministic mode, and `BTreeMap` iterates in the same
//! byte order as Go's string comparison.

use std::collections::BTreeMap;

use bollard_buildkit_proto::pb;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint};

fn put_len_delimited(tag: u32, body: &[u8], buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(body.len() as u64, buf);
    buf.extend_from_slice(body);
}

fn put_string(tag: u32, value: &str, buf: &mut Vec<u8>) {
    if !value.is_empty() {
        put_len_delimited(tag, value.as_bytes(), buf);
    }
}

fn put_bytes(tag: u32, value: &[u8], buf: &mut Vec<u8>) {
    if !value.is_empty() {
        put_len_delimited(tag, value, buf);
    }
}

fn put_varint(tag: u32, value: u64, buf: &mut Vec<u8>) {
    if value != 0 {
        encode_key(tag, WireType::Varint, buf);
        encode_varint(value, buf);
    }
}

fn put_message<M: Message>(tag: u32, msg: &M, buf: &mut Vec<u8>) {
    put_len_delimited(tag, &msg.encode_to_vec(), buf);
}

/// A map entry with both key and value always present, as Go writes it.
fn put_map_entry(tag: u32, key: &str, value: &[u8], buf: &mut Vec<u8>) {
    let mut entry = Vec::with_capacity(key.len() + value.len() + 4);
    put_len_delimited(1, key.as_bytes(), &mut entry);
    entry.extend_from_slice(value);
    put_len_delimited(tag, &entry, buf);
}

fn put_string_map(tag: u32, map: &BTreeMap<String, String>, buf: &mut Vec<u8>) {
    for (k, v) in map {
        let mut value = Vec::new();
        put_len_delimited(2, v.as_bytes(), &mut value);
        put_map_entry(tag, k, &value, buf);
    }
}

/// Encodes an op exactly as BuildKit's Go client does.
pub(crate) fn encode_op(op: &pb::Op) -> Vec<u8> {
    let mut buf = Vec::new();
    for input in &op.inputs {
        put_message(1, input, &mut buf);
    }
    if let Some(platform) = &op.platform {
        put_message(10, platform, &mut buf);
    }
    if let Some(constraints) = &op.constraints {
        put_message(11, constraints, &mut buf);
    }
    match &op.op {
        None => {}
        Some(pb::op::Op::Exec(exec)) => put_message(2, exec, &mut buf),
        Some(pb::op::Op::Source(source)) => {
            put_len_delimited(3, &encode_source_op(source), &mut buf)
        }
        Some(pb::op::Op::File(file)) => put_message(4, file, &mut buf),
        Some(pb::op::Op::Build(build)) => put_len_delimited(5, &encode_build_op(build), &mut buf),
        Some(pb::op::Op::Merge(merge)) => put_message(6, merge, &mut buf),
        Some(pb::op::Op::Diff(diff)) => put_message(7, diff, &mut buf),
    }
    buf
}

pub(crate) fn encode_source_op(source: &pb::SourceOp) -> Vec<u8> {
    let mut buf = Vec::new();
    put_string(1, &source.identifier, &mut buf);
    put_string_map(2, &source.attrs, &mut buf);
    buf
}

fn encode_build_op(build: &pb::BuildOp) -> Vec<u8> {
    let mut buf = Vec::new();
    put_varint(1, build.builder as u64, &mut buf);
    for (k, v) in &build.inputs {
        let mut value = Vec::new();
        put_message(2, v, &mut value);
        put_map_entry(2, k, &value, &mut buf);
    }
    if let Some(def) = &build.def {
        put_len_delimited(3, &encode_definition(def), &mut buf);
    }
    put_string_map(4, &build.attrs, &mut buf);
    buf
}

/// Encodes a definition as Go's deterministic marshalling does.
pub(crate) fn encode_definition(def: &pb::Definition) -> Vec<u8> {
    let mut buf = Vec::new();
    for dt in &def.def {
        // Repeated bytes are written even when empty.
        put_len_delimited(1, dt, &mut buf);
    }
    for (k, v) in &def.metadata {
        let mut value = Vec::new();
        put_len_delimited(2, &encode_op_metadata(v), &mut value);
        put_map_entry(2, k, &value, &mut buf);
    }
    if let Some(source) = &def.source {
        put_len_delimited(3, &encode_source(source), &mut buf);
    }
    buf
}

fn encode_op_metadata(md: &pb::OpMetadata) -> Vec<u8> {
    let mut buf = Vec::new();
    put_varint(1, u64::from(md.ignore_cache), &mut buf);
    put_string_map(2, &md.description, &mut buf);
    if let Some(export_cache) = &md.export_cache {
        put_message(4, export_cache, &mut buf);
    }
    for (k, v) in &md.caps {
        let mut value = Vec::new();
        encode_key(2, WireType::Varint, &mut value);
        encode_varint(u64::from(*v), &mut value);
        put_map_entry(5, k, &value, &mut buf);
    }
    if let Some(group) = &md.progress_group {
        put_message(6, group, &mut buf);
    }
    buf
}

fn encode_source(source: &pb::Source) -> Vec<u8> {
    let mut buf = Vec::new();
    for (k, v) in &source.locations {
        let mut value = Vec::new();
        put_message(2, v, &mut value);
        put_map_entry(1, k, &value, &mut buf);
    }
    for info in &source.infos {
        let mut body = Vec::new();
        put_string(1, &info.filename, &mut body);
        put_bytes(2, &info.data, &mut body);
        if let Some(def) = &info.definition {
            put_len_delimited(3, &encode_definition(def), &mut body);
        }
        put_string(4, &info.language, &mut body);
        put_len_delimited(2, &body, &mut buf);
    }
    buf
}
