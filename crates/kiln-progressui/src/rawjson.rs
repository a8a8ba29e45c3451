//! The rawjson display: one BuildKit `client.SolveStatus` JSON object per line.
//!
//! Field names, their order and their omission when empty follow `client/graph.go` as Go's
//! `encoding/json` writes it: times in RFC 3339 with nanoseconds, log data and warning text in
//! base64, and `<`, `>`, `&`, U+2028 and U+2029 escaped as `\u003c`... in strings.

use base64::Engine as _;
use kiln_progress::Event;
use serde::Serialize;

use crate::format::rfc3339_nano;
use crate::trace::{Snapshot, StatusState};

#[derive(Serialize, Default)]
pub(crate) struct SolveStatus {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    vertexes: Vec<JsonVertex>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    statuses: Vec<JsonStatus>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    logs: Vec<JsonLog>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<JsonWarning>,
}

#[derive(Serialize)]
struct JsonVertex {
    #[serde(skip_serializing_if = "String::is_empty")]
    digest: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    inputs: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    started: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    cached: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    error: String,
}

#[derive(Serialize)]
struct JsonStatus {
    id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    vertex: String,
    #[serde(skip_serializing_if = "is_zero")]
    total: u64,
    current: u64,
    timestamp: String,
    started: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed: Option<String>,
}

#[derive(Serialize)]
struct JsonLog {
    #[serde(skip_serializing_if = "String::is_empty")]
    vertex: String,
    #[serde(skip_serializing_if = "is_zero_u8")]
    stream: u8,
    data: String,
    timestamp: String,
}

#[derive(Serialize)]
struct JsonWarning {
    #[serde(skip_serializing_if = "String::is_empty")]
    vertex: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    short: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_u8(n: &u8) -> bool {
    *n == 0
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

impl SolveStatus {
    pub(crate) fn is_empty(&self) -> bool {
        self.vertexes.is_empty()
            && self.statuses.is_empty()
            && self.logs.is_empty()
            && self.warnings.is_empty()
    }

    pub(crate) fn push_vertex(&mut self, id: &str, snap: &Snapshot) {
        self.vertexes.push(JsonVertex {
            digest: id.to_string(),
            inputs: snap.inputs.clone(),
            name: snap.name.clone(),
            started: snap.started.map(rfc3339_nano),
            completed: snap.completed.map(rfc3339_nano),
            cached: snap.cached,
            error: snap.error.clone().unwrap_or_default(),
        });
    }

    pub(crate) fn push_status(&mut self, s: &StatusState) {
        self.statuses.push(JsonStatus {
            id: s.id.clone(),
            vertex: s.vertex.clone(),
            total: s.total.unwrap_or(0),
            current: s.current,
            timestamp: rfc3339_nano(s.timestamp),
            started: rfc3339_nano(s.started),
            completed: s.completed.map(rfc3339_nano),
        });
    }

    /// Adds what an event carries by itself (logs and warnings).
    pub(crate) fn push_event(&mut self, event: &Event) {
        match event {
            Event::Log {
                id,
                stream,
                data,
                at,
            } => self.logs.push(JsonLog {
                vertex: id.clone(),
                stream: *stream,
                data: b64(data),
                timestamp: rfc3339_nano(*at),
            }),
            Event::Warning { id, message } => self.warnings.push(JsonWarning {
                vertex: id.clone(),
                short: b64(message.as_bytes()),
            }),
            _ => {}
        }
    }

    /// The JSON line, newline included.
    pub(crate) fn to_line(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string());
        let mut line = String::with_capacity(json.len() + 1);
        for c in json.chars() {
            match c {
                '<' => line.push_str("\\u003c"),
                '>' => line.push_str("\\u003e"),
                '&' => line.push_str("\\u0026"),
                '\u{2028}' => line.push_str("\\u2028"),
                '\u{2029}' => line.push_str("\\u2029"),
                c => line.push(c),
            }
        }
        line.push('\n');
        line
    }
}
