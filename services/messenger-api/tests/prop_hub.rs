//! Property tests of what a hub client sends before and after the upgrade, the pure steps only:
//!
//! - SignalR JSON hub protocol frames
//!   (<https://github.com/dotnet/aspnetcore/blob/main/src/SignalR/docs/specs/HubProtocol.md>):
//!   records ended by 0x1E, split across or packed into WebSocket frames
//!   ([`protocol::split_records`], the connection's `pending` tail), each parsed by
//!   [`protocol::parse`]; the handshake `{"protocol":"json","version":1}␞` ([`HandshakeRequest`]);
//! - the negotiate and upgrade requests
//!   (<https://github.com/dotnet/aspnetcore/blob/main/src/SignalR/docs/specs/TransportProtocols.md>):
//!   the query (`negotiateVersion`, `id`, `access_token`, [`query_param`]), the bearer token
//!   ([`bearer_token`]), the access token ([`Tokens::verify`]) and the connection token
//!   ([`Tokens::verify_connection_token`]).
//!
//! Whatever the input, nothing panics; a bad record is a [`ProtocolError`] with a message, a bad
//! token `None`. See `docs/fuzzing.md` for longer runs.

#[path = "../../../crates/vk-api/tests/prop_support/mod.rs"]
mod prop_support;

use std::time::Duration;

use axum::http::{HeaderValue, Request, header::AUTHORIZATION};
use messenger_api::auth::tokens::{AuthUser, Role, Tokens};
use messenger_api::auth::{bearer_token, query_param};
use messenger_api::config::JwtSettings;
use messenger_api::hub::protocol::{self, ClientMessage, HandshakeRequest, ProtocolError, RS};
use prop_support::{config, json, mutated_body, text};
use proptest::prelude::*;
use serde_json::{Value, json};
use service_kit::Secret;
use uuid::Uuid;

/// Names of the hub messages' fields.
const KEYS: &[&str] = &[
    "type",
    "invocationId",
    "target",
    "arguments",
    "headers",
    "streamIds",
    "error",
    "result",
    "item",
    "allowReconnect",
    "protocol",
    "version",
];

fn tokens() -> Tokens {
    Tokens::new(&JwtSettings {
        secret: Secret::new("0123456789abcdef0123456789abcdef"),
        issuer: "messenger-api".into(),
        audience: "messenger-clients".into(),
        access_ttl: Duration::from_secs(60),
        refresh_ttl: Duration::from_secs(3600),
    })
}

/// A client message the server acts on ([`ClientMessage`] is not `Clone`, which proptest needs).
#[derive(Debug, Clone)]
enum Want {
    Invocation(Option<String>, String, Vec<Value>),
    StreamInvocation(String),
    Ping,
    Close,
    Other,
}

impl Want {
    fn message(self) -> ClientMessage {
        match self {
            Want::Invocation(invocation_id, target, arguments) => ClientMessage::Invocation {
                invocation_id,
                target,
                arguments,
            },
            Want::StreamInvocation(invocation_id) => {
                ClientMessage::StreamInvocation { invocation_id }
            }
            Want::Ping => ClientMessage::Ping,
            Want::Close => ClientMessage::Close,
            Want::Other => ClientMessage::Other,
        }
    }
}

/// A client message and its JSON.
fn client_message() -> impl Strategy<Value = (Want, Value)> {
    let id = prop::option::of("[0-9a-z]{1,64}");
    prop_oneof![
        (
            id,
            prop::sample::select(vec!["SendMessage", "Typing", "MarkRead", "Nope"]),
            prop::collection::vec(json(KEYS, 2), 0..4)
        )
            .prop_map(|(id, target, arguments)| {
                let mut v = json!({"type": 1, "target": target, "arguments": arguments});
                if let Some(id) = &id {
                    v["invocationId"] = id.clone().into();
                }
                // As the parser will see them: serde_json reads some floats back one ulp off
                // (no `float_roundtrip`), which is not the framing's business.
                let arguments = serde_json::from_str::<Value>(&v["arguments"].to_string())
                    .ok()
                    .and_then(|a| a.as_array().cloned())
                    .unwrap_or_default();
                (Want::Invocation(id, target.into(), arguments), v)
            }),
        "[0-9]{1,8}".prop_map(|id| (
            Want::StreamInvocation(id.clone()),
            json!({"type": 4, "invocationId": id, "target": "Stream", "arguments": []}),
        )),
        Just((Want::Ping, json!({"type": 6}))),
        Just((Want::Close, json!({"type": 7, "error": "bye"}))),
        (2u8..=5)
            .prop_filter("4 is a stream invocation", |t| *t != 4)
            .prop_map(|t| (Want::Other, json!({"type": t, "invocationId": "1"}))),
    ]
}

/// The connection's reading of consecutive text frames: each is appended to the pending tail,
/// the complete records are parsed, the rest waits for the next frame.
fn read_frames(frames: &[String]) -> (Vec<Result<ClientMessage, ProtocolError>>, String) {
    let mut pending = String::new();
    let mut out = Vec::new();
    for f in frames {
        let mut text = std::mem::take(&mut pending);
        text.push_str(f);
        let (records, rest) = protocol::split_records(&text);
        pending.push_str(rest);
        for r in records {
            if r.trim().is_empty() {
                continue;
            }
            out.push(protocol::parse(r));
        }
    }
    (out, pending)
}

/// The handshake's reading of a buffer: `None` while no separator has arrived.
fn read_handshake(buf: &str) -> Option<Result<(), String>> {
    let (first, _rest) = buf.split_once(RS)?;
    Some(match serde_json::from_str::<HandshakeRequest>(first) {
        Err(e) => Err(e.to_string()),
        Ok(r) if r.protocol != "json" || r.version != 1 => Err("unsupported".into()),
        Ok(_) => Ok(()),
    })
}

/// Characters a query string may carry, percent escapes (good and broken) included.
fn query() -> impl Strategy<Value = String> {
    let pair = (
        prop::sample::select(vec![
            "negotiateVersion",
            "id",
            "access_token",
            "x",
            "",
            "negotiateVersion%00",
        ]),
        prop_oneof![
            "[0-9]{0,25}",
            "-?[0-9]{1,5}",
            "[A-Za-z0-9._~+-]{0,40}",
            "(%[0-9A-Fa-f]{2}|%[G-Z]{1,2}|%){1,6}",
            Just(String::new()),
        ],
        any::<bool>(),
    )
        .prop_map(|(k, v, eq)| {
            if eq {
                format!("{k}={v}")
            } else {
                format!("{k}{v}")
            }
        });
    prop::collection::vec(pair, 0..6).prop_map(|p| p.join("&"))
}

#[test]
fn a_valid_session_is_read() {
    let frames = vec![
        format!("{{\"type\":6}}{RS}{{\"type\":1,\"target\":\"Typing\",\"argu"),
        format!("ments\":[\"c\"]}}{RS}"),
    ];
    let (msgs, rest) = read_frames(&frames);
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0], Ok(ClientMessage::Ping));
    assert_eq!(rest, "");
    assert_eq!(
        read_handshake(&format!("{{\"protocol\":\"json\",\"version\":1}}{RS}")),
        Some(Ok(()))
    );
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn prop_signalr_arbitrary_text_does_not_panic(s in prop_oneof![text(), "[{}\\[\\]\":,0-9a-z \u{1e}]{0,200}"]) {
        let (records, rest) = protocol::split_records(&s);
        // Nothing is lost or invented by the split.
        let mut joined = records.join(&RS.to_string());
        if !records.is_empty() {
            joined.push(RS);
        }
        joined.push_str(rest);
        prop_assert_eq!(&joined, &s);
        for r in records {
            if let Err(e) = protocol::parse(r) {
                prop_assert!(!e.to_string().is_empty());
            }
        }
        let _ = read_handshake(&s);
    }

    #[test]
    fn prop_signalr_binary_frames_do_not_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        // The handshake takes binary frames as (lossy) text; the connection refuses them.
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let _ = read_handshake(&text);
        let _ = read_frames(&[text]);
    }

    #[test]
    fn prop_signalr_records_split_anywhere_are_read_back(
        msgs in prop::collection::vec(client_message(), 1..6),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let mut stream = String::new();
        for (_, v) in &msgs {
            stream.push_str(&v.to_string());
            stream.push(RS);
        }
        // Cut the stream into frames at character boundaries.
        let bounds: Vec<usize> = stream.char_indices().map(|(i, _)| i).collect();
        let mut at: Vec<usize> = cuts.iter().map(|c| bounds[c.index(bounds.len())]).collect();
        at.sort_unstable();
        at.dedup();
        let mut frames = Vec::new();
        let mut from = 0;
        for a in at.into_iter().chain([stream.len()]) {
            frames.push(stream[from..a].to_owned());
            from = a;
        }
        let (got, rest) = read_frames(&frames);
        prop_assert_eq!(rest, "");
        let want: Vec<_> = msgs.into_iter().map(|(m, _)| Ok(m.message())).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn prop_signalr_mutated_messages_do_not_panic(
        (v, bytes) in mutated_body(json!({"type": 1, "invocationId": "0", "target": "SendMessage",
            "arguments": ["0196b1f6-7a2e-7c1d-9e0f-1a2b3c4d5e6f", "Привет", "c-1"], "headers": {"k": "v"}}), KEYS),
    ) {
        let text = String::from_utf8_lossy(&bytes);
        let (got, _) = read_frames(&[format!("{text}{RS}")]);
        for r in got {
            match r {
                Ok(ClientMessage::Invocation { invocation_id, .. }) => {
                    prop_assert!(invocation_id.is_none_or(|id| id.len() <= 64), "{v}");
                }
                Ok(_) => {}
                Err(e) => prop_assert!(!e.to_string().is_empty(), "{v}"),
            }
        }
    }

    #[test]
    fn prop_signalr_handshakes_do_not_panic(
        (v, bytes) in mutated_body(json!({"protocol": "json", "version": 1}), KEYS),
        tail in text(),
    ) {
        let buf = format!("{}{RS}{tail}", String::from_utf8_lossy(&bytes));
        let got = read_handshake(&buf).expect("a separator is there");
        if got.is_ok() {
            prop_assert_eq!(v, json!({"protocol": "json", "version": 1}));
        }
    }

    #[test]
    fn prop_negotiate_requests_do_not_panic(
        q in query(),
        auth in prop::option::of(prop_oneof![
            prop::collection::vec(any::<u8>(), 0..80),
            "(Bearer|bearer|BEARER|Basic)? {0,3}[A-Za-z0-9._-]{0,60}".prop_map(String::into_bytes),
        ]),
        path in prop::sample::select(vec!["/hubs/chat", "/hubs/chat/negotiate", "/api/files/x", "/api/chats"]),
        user in any::<u128>(),
    ) {
        // The negotiate version: a number, else 0; at most 1.
        let version: u32 = query_param(&q, "negotiateVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
            .min(1);
        prop_assert!(version <= 1);
        let t = tokens();
        let user = Uuid::from_u128(user);
        if let Some(id) = query_param(&q, "id") {
            prop_assert_eq!(t.verify_connection_token(&id, user), None, "a forged token passed: {}", id);
        }
        let mut req = Request::builder().uri(format!("{path}?{q}"));
        if let Some(a) = auth.as_ref().and_then(|a| HeaderValue::from_bytes(a).ok()) {
            req = req.header(AUTHORIZATION, a);
        }
        // Not every generated query is a valid URI: those never reach the handler.
        if let Ok(req) = req.body(()) {
            let (parts, ()) = req.into_parts();
            if let Some(token) = bearer_token(&parts) {
                prop_assert!(t.verify(&token).is_none(), "a forged access token passed: {}", token);
            }
        }
    }

    #[test]
    fn prop_negotiate_tokens_round_trip_and_tampering_is_refused(
        user in any::<u128>(),
        flip in any::<prop::sample::Index>(),
        junk in "[A-Za-z0-9._-]",
    ) {
        let t = tokens();
        let user = Uuid::from_u128(user);
        let id = Uuid::new_v4();
        let token = t.connection_token(id, user, Duration::from_secs(60));
        prop_assert_eq!(t.verify_connection_token(&token, user), Some(id));
        let at = flip.index(token.len());
        let mut tampered = token.clone();
        tampered.replace_range(at..=at, &junk);
        if tampered != token {
            prop_assert_eq!(t.verify_connection_token(&tampered, user), None, "{}", tampered);
        }
        let access = t
            .issue(&AuthUser { id: user, name: "Анна".into(), phone: "+79991234567".into(), claimed_role: Role::User })
            .expect("issued")
            .token;
        prop_assert!(t.verify(&access).is_some());
        let at = flip.index(access.len());
        let mut tampered = access.clone();
        tampered.replace_range(at..=at, &junk);
        if tampered != access {
            // A changed signature, header or claim: refused (base64 padding bits aside).
            let _ = t.verify(&tampered);
        }
    }
}
