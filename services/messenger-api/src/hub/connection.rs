//! `/hubs/chat`: negotiate, the WebSocket upgrade, and one connection's life: handshake,
//! invocations, pushes, keep-alive pings and the client timeout.
//!
//! Transport (<https://github.com/dotnet/aspnetcore/blob/main/src/SignalR/docs/specs/TransportProtocols.md>):
//! `POST /hubs/chat/negotiate?negotiateVersion=1` answers a connection id and token and the
//! one transport offered, WebSockets; the client then opens `GET /hubs/chat?id=<token>`
//! (clients with `skipNegotiation` come without `id`). The token is signed and bound to the
//! user, so negotiate and the upgrade may land on different replicas.

use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{OriginalUri, State};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

use super::protocol::{self, ClientMessage, HandshakeRequest};
use crate::AppState;
use crate::auth::{AuthUser, query_param};
use crate::error::{ApiError, Json};
use crate::http::dto::{ErrorBody, NegotiateResponse, TransportDto};
use crate::messaging;

/// How long a negotiated connection token stays valid.
const CONNECTION_TOKEN_TTL: Duration = Duration::from_secs(300);
/// How long the server waits for the handshake after the upgrade (ASP.NET's default).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest message a client may send (ASP.NET's default is 32 KiB).
const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Longest wait for the Close frame to go out before the socket is dropped anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// `POST /hubs/chat/negotiate`: connection id and token, transports.
#[utoipa::path(
    post,
    path = "/hubs/chat/negotiate",
    tag = "hub",
    params(("negotiateVersion" = Option<u32>, Query, description = "negotiate protocol version (0 or 1)")),
    responses(
        (status = 200, description = "SignalR negotiate response", body = NegotiateResponse),
        (status = 401, description = "no valid access token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn negotiate(
    State(state): State<AppState>,
    user: AuthUser,
    OriginalUri(uri): OriginalUri,
) -> Json<NegotiateResponse> {
    let version: u32 = uri
        .query()
        .and_then(|q| query_param(q, "negotiateVersion"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
        .min(1);
    let connection_id = Uuid::new_v4();
    let token = state
        .tokens
        .connection_token(connection_id, user.id, CONNECTION_TOKEN_TTL);
    let transports = vec![TransportDto {
        transport: "WebSockets".into(),
        transfer_formats: vec!["Text".into()],
    }];
    Json(if version >= 1 {
        NegotiateResponse {
            negotiate_version: 1,
            connection_id: connection_id.to_string(),
            connection_token: Some(token),
            available_transports: transports,
        }
    } else {
        // Version 0: the connection id is what the client puts in `id`.
        NegotiateResponse {
            negotiate_version: 0,
            connection_id: token,
            connection_token: None,
            available_transports: transports,
        }
    })
}

/// `GET /hubs/chat`: the WebSocket upgrade.
#[utoipa::path(
    get,
    path = "/hubs/chat",
    tag = "hub",
    params(
        ("id" = Option<String>, Query, description = "connection token from negotiate"),
        ("access_token" = Option<String>, Query, description = "access token (browsers; others send Authorization: Bearer)"),
    ),
    responses(
        (status = 101, description = "WebSocket; then the SignalR JSON hub protocol"),
        (status = 401, description = "no valid access token", body = ErrorBody),
        (status = 404, description = "unknown or expired connection token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn upgrade(
    State(state): State<AppState>,
    user: AuthUser,
    OriginalUri(uri): OriginalUri,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    // The token may outlive its account: a deleted user does not get a connection.
    if state.store.user_role(user.id).await?.is_none() {
        return Err(ApiError::Unauthorized(
            "the account no longer exists".into(),
        ));
    }
    let connection_id = match uri.query().and_then(|q| query_param(q, "id")) {
        Some(token) => state
            .tokens
            .verify_connection_token(&token, user.id)
            .ok_or(ApiError::NotFound("connection"))?,
        None => Uuid::new_v4(),
    };
    Ok(ws
        // Small buffers: an idle connection must stay cheap (tungstenite's default read
        // buffer is 128 KiB per connection).
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| run(state, user, connection_id, socket))
        .into_response())
}

async fn run(state: AppState, user: AuthUser, connection_id: Uuid, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let leftover = match handshake(&mut stream).await {
        Ok(rest) => rest,
        Err(reason) => {
            tracing::debug!(%connection_id, reason, "hub handshake failed");
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                sink.send(Message::Text(protocol::handshake_error(&reason).into()))
                    .await?;
                sink.close().await
            })
            .await;
            return;
        }
    };
    // Register and join the user's chats before answering the handshake: once the client
    // sees `{}`, everything posted to its chats reaches it. A chat created meanwhile arrives
    // as a control message and is merged, not lost.
    let hub = state.hub.clone();
    let (conn, mut rx, first) = hub.register(user.id);
    match state.store.chat_ids_of(user.id).await {
        Ok(chats) => hub.join_chats(user.id, &chats),
        Err(e) => tracing::warn!(error = %e, "loading a hub user's chats failed"),
    }
    tracing::debug!(%connection_id, user = %user.id, "hub connection open");
    let settings = hub.settings().clone();
    let mut out = Out {
        sink,
        timeout: settings.send_timeout,
        kicked: rx.kicked.clone(),
    };
    if !out
        .send(Message::Text(protocol::handshake_ok().into()))
        .await
    {
        finish(&state, &user, conn.id, rx).await;
        return;
    }
    if first {
        presence(&state, &user, "UserConnected").await;
    }

    let mut last_sent = Instant::now();
    let mut last_received = Instant::now();
    let mut pending = leftover;
    // Records that arrived with the handshake.
    let mut close: Option<String> = None;
    if !pending.is_empty() {
        let text = std::mem::take(&mut pending);
        close = handle_text(&state, &user, &text, &mut pending, &mut out, &mut last_sent).await;
    }
    // One timer per connection, re-armed only when it fires (not on every frame: with ten
    // thousand connections receiving one message each, that would be ten thousand timer-wheel
    // updates per message).
    // The first ping comes after 50–100 % of the interval (spread by connection id): after a
    // rollout every client reconnects within seconds, and without the spread their pings would
    // stay in step forever.
    let spread = settings
        .keepalive
        .mul_f64(0.5 + (conn.id.wrapping_mul(0x9E37_79B9) % 1000) as f64 / 2000.0);
    let mut ping_every = spread;
    let timer = tokio::time::sleep_until(last_sent + spread);
    tokio::pin!(timer);
    let kicked = rx.kicked.clone();
    let kicked = kicked.cancelled();
    tokio::pin!(kicked);
    while close.is_none() {
        tokio::select! {
            biased;
            _ = &mut kicked => {
                let reason = rx.reason();
                close = Some(protocol::close(reason.message(), reason.allow_reconnect()));
            }
            frame = rx.frames.recv() => match frame {
                Some(f) => {
                    if !out.send(Message::Text(f)).await {
                        break;
                    }
                    last_sent = Instant::now();
                }
                None => break,
            },
            msg = stream.next() => {
                last_received = Instant::now();
                match msg {
                    Some(Ok(Message::Text(t))) => {
                        let mut text = std::mem::take(&mut pending);
                        text.push_str(t.as_str());
                        if text.len() > MAX_MESSAGE_BYTES {
                            close = Some(protocol::close(Some("message too large"), false));
                        } else {
                            close = handle_text(&state, &user, &text, &mut pending, &mut out, &mut last_sent).await;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        close = Some(protocol::close(Some("binary frames are not supported by the json protocol"), false));
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                }
            }
            _ = &mut timer => {
                let now = Instant::now();
                if now >= last_received + settings.client_timeout {
                    close = Some(protocol::close(
                        Some("Server timeout elapsed without receiving a message from the client."),
                        true,
                    ));
                    continue;
                }
                if now >= last_sent + ping_every {
                    if !out.send(Message::Text(Utf8Bytes::from_static(protocol::ping()))).await {
                        break;
                    }
                    last_sent = now;
                }
                ping_every = settings.keepalive;
                let wake = (last_sent + ping_every).min(last_received + settings.client_timeout);
                timer.as_mut().reset(wake);
            }
        }
    }
    if let Some(frame) = close {
        // A client that does not read gets no more than a moment: the socket is dropped
        // whether or not the Close frame made it out.
        let sink = &mut out.sink;
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            sink.send(Message::Text(frame.into())).await?;
            sink.close().await
        })
        .await;
    }
    finish(&state, &user, conn.id, rx).await;
    tracing::debug!(%connection_id, user = %user.id, "hub connection closed");
}

/// Leaves the hub; the user's last connection on this replica announces the departure.
async fn finish(state: &AppState, user: &AuthUser, conn: u64, rx: super::ConnRx) {
    drop(rx);
    if state.hub.unregister(user.id, conn) {
        if let Err(e) = state.store.touch_last_seen(user.id).await {
            tracing::debug!(error = %e, "last_seen_at not updated");
        }
        presence(state, user, "UserDisconnected").await;
    }
}

/// Waits for `{"protocol":"json","version":1}␞`; returns the text after it.
async fn handshake(stream: &mut futures::stream::SplitStream<WebSocket>) -> Result<String, String> {
    let deadline = tokio::time::sleep(HANDSHAKE_TIMEOUT);
    tokio::pin!(deadline);
    let mut buf = String::new();
    loop {
        let msg = tokio::select! {
            _ = &mut deadline => return Err("handshake was not received in time".into()),
            m = stream.next() => m,
        };
        match msg {
            Some(Ok(Message::Text(t))) => buf.push_str(t.as_str()),
            Some(Ok(Message::Binary(b))) => {
                buf.push_str(&String::from_utf8_lossy(&b));
            }
            Some(Ok(_)) => continue,
            _ => return Err("connection closed before the handshake".into()),
        }
        if let Some((first, rest)) = buf.split_once(protocol::RS) {
            let req: HandshakeRequest = serde_json::from_str(first)
                .map_err(|_| "handshake request is not valid JSON".to_owned())?;
            if req.protocol != "json" {
                return Err(format!(
                    "The protocol '{}' is not supported; use 'json'.",
                    req.protocol
                ));
            }
            if req.version != 1 {
                return Err(format!(
                    "The server does not support version {} of the 'json' protocol.",
                    req.version
                ));
            }
            return Ok(rest.to_owned());
        }
        if buf.len() > MAX_MESSAGE_BYTES {
            return Err("handshake too large".into());
        }
    }
}

type Sink = futures::stream::SplitSink<WebSocket, Message>;

/// The socket's write half. Every write is bounded: by `timeout`, and by the hub's kick, so that
/// a client that stops reading (its TCP window full, `send` pending in `poll_flush`) cannot
/// hold its task past the kick, the client timeout or the keep-alive timer.
struct Out {
    sink: Sink,
    timeout: Duration,
    kicked: tokio_util::sync::CancellationToken,
}

impl Out {
    /// `true` when the frame was written; `false` when the socket failed, the write did not
    /// finish within the timeout, or the connection was kicked meanwhile: then the
    /// connection ends without waiting any longer.
    async fn send(&mut self, msg: Message) -> bool {
        tokio::select! {
            biased;
            _ = self.kicked.cancelled() => false,
            r = tokio::time::timeout(self.timeout, self.sink.send(msg)) => match r {
                Ok(Ok(())) => true,
                Ok(Err(_)) => false,
                Err(_) => {
                    tracing::info!(timeout = ?self.timeout, "hub client stopped reading (send timed out); disconnecting it");
                    metrics::counter!("hub_stalled_clients_disconnected_total").increment(1);
                    false
                }
            },
        }
    }
}

/// Handles the complete records in `text`; keeps an incomplete tail in `pending`. Returns the
/// Close frame to end the connection with, if any.
async fn handle_text(
    state: &AppState,
    user: &AuthUser,
    text: &str,
    pending: &mut String,
    out: &mut Out,
    last_sent: &mut Instant,
) -> Option<String> {
    let (records, rest) = protocol::split_records(text);
    pending.push_str(rest);
    for record in records {
        if record.trim().is_empty() {
            continue;
        }
        let msg = match protocol::parse(record) {
            Ok(m) => m,
            Err(e) => return Some(protocol::close(Some(&e.to_string()), false)),
        };
        let reply = match msg {
            ClientMessage::Invocation {
                invocation_id,
                target,
                arguments,
            } => {
                let result = invoke(state, user, &target, &arguments).await;
                invocation_id.map(|id| match result {
                    Ok(v) => protocol::completion(&id, v),
                    Err(e) => protocol::completion_error(&id, &e),
                })
            }
            ClientMessage::StreamInvocation { invocation_id } => Some(protocol::completion_error(
                &invocation_id,
                "Streaming methods are not supported by this hub.",
            )),
            ClientMessage::Close => return Some(closing()),
            ClientMessage::Ping | ClientMessage::Other => None,
        };
        if let Some(frame) = reply {
            if !out.send(Message::Text(frame.into())).await {
                return Some(closing());
            }
            *last_sent = Instant::now();
        }
    }
    None
}

/// The frame sent when the client itself is leaving: nothing more to say but goodbye.
fn closing() -> String {
    protocol::close(None, false)
}

/// Runs a client → server method. Ok(result) or Err(message for the client).
async fn invoke(
    state: &AppState,
    user: &AuthUser,
    target: &str,
    args: &[Value],
) -> Result<Option<Value>, String> {
    let started = std::time::Instant::now();
    let result = match target {
        "SendMessage" => {
            let chat = arg_uuid(args, 0, "chatId")?;
            let text = args
                .get(1)
                .and_then(Value::as_str)
                .ok_or("SendMessage(chatId, text): text must be a string")?;
            let client_id = args.get(2).and_then(Value::as_str);
            messaging::post_text(state, user, chat, text, client_id)
                .await
                .map(|(m, _)| Some(json!(m)))
                .map_err(ApiError::into_hub_message)
        }
        "Typing" => {
            let chat = arg_uuid(args, 0, "chatId")?;
            messaging::typing(state, user, chat)
                .await
                .map(|()| None)
                .map_err(ApiError::into_hub_message)
        }
        "MarkRead" => {
            let chat = arg_uuid(args, 0, "chatId")?;
            let message = match args.get(1) {
                Some(Value::Number(n)) => n.as_i64(),
                Some(Value::String(s)) => s.parse().ok(),
                Some(Value::Null) | None => None,
                _ => return Err("MarkRead(chatId, messageId): messageId must be a number".into()),
            };
            messaging::mark_read(state, user, chat, message)
                .await
                .map(|_| None)
                .map_err(ApiError::into_hub_message)
        }
        other => Err(format!("Method '{other}' does not exist.")),
    };
    metrics::histogram!("hub_invocation_seconds", "method" => method_label(target))
        .record(started.elapsed().as_secs_f64());
    result
}

fn method_label(target: &str) -> &'static str {
    match target {
        "SendMessage" => "SendMessage",
        "Typing" => "Typing",
        "MarkRead" => "MarkRead",
        _ => "unknown",
    }
}

fn arg_uuid(args: &[Value], i: usize, name: &str) -> Result<Uuid, String> {
    args.get(i)
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| format!("argument {name} must be a chat id (UUID string)"))
}

/// Tells who may see it that `user` came or went (on every replica).
async fn presence(state: &AppState, user: &AuthUser, target: &str) {
    let max = state.hub.settings().presence_max_group;
    match state.store.presence_audience(user.id, max).await {
        Ok(audience) => {
            let frame = protocol::invocation(target, &[json!(user.id)]);
            state.hub.to_users(audience, frame).await;
        }
        Err(e) => tracing::warn!(error = %e, "presence audience not loaded"),
    }
}
