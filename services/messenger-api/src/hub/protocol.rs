//! The ASP.NET Core SignalR JSON hub protocol, the subset a hub server needs
//! (<https://github.com/dotnet/aspnetcore/blob/main/src/SignalR/docs/specs/HubProtocol.md>).
//!
//! Every message is one JSON object terminated by the record separator 0x1E; one WebSocket
//! frame may carry several. The first message from the client is the handshake
//! `{"protocol":"json","version":1}`, answered with `{}` (or `{"error":"…"}` and a close).
//! Message types: 1 Invocation, 2 StreamItem, 3 Completion, 4 StreamInvocation,
//! 5 CancelInvocation, 6 Ping, 7 Close (8 Ack and 9 Sequence belong to stateful reconnect,
//! which this server does not offer).

use serde::Deserialize;
use serde_json::{Value, json};

/// The record separator that ends every message.
pub const RS: char = '\u{1e}';

/// The handshake request (`{"protocol":"json","version":1}`).
#[derive(Debug, Deserialize)]
pub struct HandshakeRequest {
    /// The protocol name; only `json` is served.
    pub protocol: String,
    /// The protocol version; only 1 is served.
    pub version: u32,
}

/// A message from the client, as far as the server acts on it.
#[derive(Debug, PartialEq)]
pub enum ClientMessage {
    /// Type 1: call `target` with `arguments`; answer with a completion when `invocation_id`
    /// is set (a non-blocking `send` has none).
    Invocation {
        /// `invocationId`, at most 64 bytes; `None` for a non-blocking send.
        invocation_id: Option<String>,
        /// The hub method to call, e.g. `SendMessage`.
        target: String,
        /// The method's arguments, in order (empty when absent).
        arguments: Vec<Value>,
    },
    /// Type 4: the hub has no streaming methods; answered with an error completion.
    StreamInvocation {
        /// `invocationId`, to address the error completion (empty when absent).
        invocation_id: String,
    },
    /// Type 6.
    Ping,
    /// Type 7: the client is leaving.
    Close,
    /// Types 2, 3, 5 (stream items, client results, cancellation) and anything newer: ignored.
    Other,
}

/// Why a client message is a protocol error (the connection is closed with it).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// Not a JSON object of the expected shape (serde_json's message).
    #[error("message is not valid JSON: {0}")]
    Json(String),
    /// The message has no `type`.
    #[error("message has no numeric 'type'")]
    NoType,
    /// An invocation without `target`.
    #[error("invocation has no 'target'")]
    NoTarget,
    /// `invocationId` longer than 64 bytes.
    #[error("invocation id is too long")]
    LongInvocationId,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(rename = "type")]
    kind: Option<u8>,
    invocation_id: Option<String>,
    target: Option<String>,
    #[serde(default)]
    arguments: Vec<Value>,
}

/// Splits a frame's text into its messages (the text after the last separator is an
/// incomplete message, returned as the remainder).
pub fn split_records(text: &str) -> (Vec<&str>, &str) {
    let mut parts: Vec<&str> = text.split(RS).collect();
    let rest = parts.pop().unwrap_or("");
    (parts, rest)
}

/// Parses one message (without its separator).
pub fn parse(record: &str) -> Result<ClientMessage, ProtocolError> {
    let raw: Raw = serde_json::from_str(record).map_err(|e| ProtocolError::Json(e.to_string()))?;
    if raw.invocation_id.as_ref().is_some_and(|id| id.len() > 64) {
        return Err(ProtocolError::LongInvocationId);
    }
    Ok(match raw.kind.ok_or(ProtocolError::NoType)? {
        1 => ClientMessage::Invocation {
            invocation_id: raw.invocation_id,
            target: raw.target.ok_or(ProtocolError::NoTarget)?,
            arguments: raw.arguments,
        },
        4 => ClientMessage::StreamInvocation {
            invocation_id: raw.invocation_id.unwrap_or_default(),
        },
        6 => ClientMessage::Ping,
        7 => ClientMessage::Close,
        _ => ClientMessage::Other,
    })
}

fn frame(v: Value) -> String {
    let mut s = v.to_string();
    s.push(RS);
    s
}

/// The successful handshake response.
pub fn handshake_ok() -> String {
    frame(json!({}))
}

/// A failed handshake response.
pub fn handshake_error(error: &str) -> String {
    frame(json!({ "error": error }))
}

/// Type 1, server to client, non-blocking: `connection.on(target, …)` on the client.
pub fn invocation(target: &str, arguments: &[Value]) -> String {
    frame(json!({ "type": 1, "target": target, "arguments": arguments }))
}

/// Type 3 with a result (`null` for void methods is omitted, as ASP.NET does).
pub fn completion(invocation_id: &str, result: Option<Value>) -> String {
    match result {
        Some(r) if !r.is_null() => {
            frame(json!({ "type": 3, "invocationId": invocation_id, "result": r }))
        }
        _ => frame(json!({ "type": 3, "invocationId": invocation_id })),
    }
}

/// Type 3 with an error.
pub fn completion_error(invocation_id: &str, error: &str) -> String {
    frame(json!({ "type": 3, "invocationId": invocation_id, "error": error }))
}

/// Type 6.
pub fn ping() -> &'static str {
    "{\"type\":6}\u{1e}"
}

/// Type 7; `allowReconnect` tells clients with automatic reconnect to come back.
pub fn close(error: Option<&str>, allow_reconnect: bool) -> String {
    let mut v = json!({ "type": 7 });
    if let Some(e) = error {
        v["error"] = e.into();
    }
    if allow_reconnect {
        v["allowReconnect"] = true.into();
    }
    frame(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_split_on_the_separator() {
        let (msgs, rest) = split_records("{\"type\":6}\u{1e}{\"type\":7}\u{1e}{\"ty");
        assert_eq!(msgs, vec!["{\"type\":6}", "{\"type\":7}"]);
        assert_eq!(rest, "{\"ty");
        let (msgs, rest) = split_records("{}\u{1e}");
        assert_eq!(msgs, vec!["{}"]);
        assert_eq!(rest, "");
    }

    #[test]
    fn client_messages_parse() {
        assert_eq!(
            parse(r#"{"type":1,"invocationId":"0","target":"SendMessage","arguments":["c","hi"]}"#),
            Ok(ClientMessage::Invocation {
                invocation_id: Some("0".into()),
                target: "SendMessage".into(),
                arguments: vec![json!("c"), json!("hi")],
            })
        );
        assert_eq!(
            parse(r#"{"type":1,"target":"Typing","arguments":["c"],"headers":{"a":"b"}}"#),
            Ok(ClientMessage::Invocation {
                invocation_id: None,
                target: "Typing".into(),
                arguments: vec![json!("c")],
            })
        );
        assert_eq!(parse(r#"{"type":6}"#), Ok(ClientMessage::Ping));
        assert_eq!(parse(r#"{"type":7,"error":"x"}"#), Ok(ClientMessage::Close));
        assert_eq!(
            parse(r#"{"type":5,"invocationId":"1"}"#),
            Ok(ClientMessage::Other)
        );
        assert_eq!(
            parse(r#"{"type":1,"arguments":[]}"#),
            Err(ProtocolError::NoTarget)
        );
        assert_eq!(parse(r#"{"x":1}"#), Err(ProtocolError::NoType));
        assert!(matches!(parse("nope"), Err(ProtocolError::Json(_))));
    }

    #[test]
    fn server_messages_are_framed() {
        assert_eq!(handshake_ok(), "{}\u{1e}");
        assert_eq!(ping(), "{\"type\":6}\u{1e}");
        let c: Value = serde_json::from_str(completion("7", None).trim_end_matches(RS)).unwrap();
        assert_eq!(c, json!({"type":3,"invocationId":"7"}));
        let c: Value =
            serde_json::from_str(completion("8", Some(json!({"id":1}))).trim_end_matches(RS))
                .unwrap();
        assert_eq!(c, json!({"type":3,"invocationId":"8","result":{"id":1}}));
        assert!(completion_error("9", "no").ends_with(RS));
        let inv: Value =
            serde_json::from_str(invocation("UserConnected", &[json!("u1")]).trim_end_matches(RS))
                .unwrap();
        assert_eq!(
            inv,
            json!({"type":1,"target":"UserConnected","arguments":["u1"]})
        );
        let c: Value = serde_json::from_str(close(Some("bye"), true).trim_end_matches(RS)).unwrap();
        assert_eq!(c, json!({"type":7,"error":"bye","allowReconnect":true}));
    }
}
