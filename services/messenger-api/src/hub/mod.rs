//! The real-time hub: SignalR JSON hub protocol over WebSockets at `/hubs/chat`, and the
//! fan-out that makes several replicas behave as one.
//!
//! ```text
//! REST / hub invocation ──▶ Hub::to_chat ──▶ local connections of the chat's members
//!                                    └──▶ core NATS fanout.messenger.chat.<id> ──▶ other replicas
//!                                                                         └──▶ their local members
//! ```
//!
//! Each replica keeps only its own connections: user → connections, and chat → locally
//! connected members (SignalR "groups"). A new connection loads its user's chats once; chats
//! created later reach every replica as a `membersAdded` control message. Every replica
//! subscribes to `fanout.messenger.>` and ignores what it published itself (it delivered that
//! locally already, without the round trip).
//!
//! Each connection has a bounded queue of ready frames; a frame is serialized once and shared
//! by every recipient. A connection whose queue is full is too slow: it is disconnected (with
//! a Close message that allows reconnecting) instead of slowing down everyone else.

pub mod connection;
pub mod protocol;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use anyhow::Context;
use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use domain::{Source, Subject};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use service_kit::bus::Bus;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::HubSettings;

const ORIGIN: &str = "Hub-Origin";
const EXCEPT: &str = "Hub-Except";

/// Why a connection was told to go.
#[derive(Debug, Clone, Copy)]
pub enum KickReason {
    /// Its queue overflowed.
    TooSlow,
    /// Its account was deleted.
    AccountRemoved,
    /// The service is stopping; the client should reconnect (to another replica).
    Shutdown,
}

impl KickReason {
    /// The Close message's `error` (none for a shutdown: nothing went wrong).
    pub fn message(self) -> Option<&'static str> {
        match self {
            KickReason::TooSlow => {
                Some("Connection closed: the client fell too far behind and messages were dropped.")
            }
            KickReason::AccountRemoved => Some("Connection closed: the account was removed."),
            KickReason::Shutdown => None,
        }
    }

    /// The Close message's `allowReconnect`: `true` for a slow client or a shutdown, `false` for a
    /// removed account.
    pub fn allow_reconnect(self) -> bool {
        matches!(self, KickReason::TooSlow | KickReason::Shutdown)
    }
}

/// The hub's handle on one connection.
#[derive(Clone)]
pub struct ConnHandle {
    /// Connection number on this replica, from 1 up.
    pub id: u64,
    tx: mpsc::Sender<Utf8Bytes>,
    kick: CancellationToken,
    reason: Arc<OnceLock<KickReason>>,
}

impl ConnHandle {
    /// Tells the connection to go; `true` only the first time (when the reason is set), so
    /// that a connection whose queue stays full is logged and counted once, not once per frame.
    fn kick(&self, reason: KickReason) -> bool {
        let first = self.reason.set(reason).is_ok();
        self.kick.cancel();
        first
    }
}

/// What the connection task holds: its queue, and the signal to leave.
pub struct ConnRx {
    /// Ready frames (serialized messages with their separator) to write to the socket, in order.
    pub frames: mpsc::Receiver<Utf8Bytes>,
    /// Cancelled when the hub tells the connection to go; [`ConnRx::reason`] says why.
    pub kicked: CancellationToken,
    reason: Arc<OnceLock<KickReason>>,
}

impl ConnRx {
    /// Why the connection was kicked (`TooSlow` when no reason was recorded).
    pub fn reason(&self) -> KickReason {
        self.reason.get().copied().unwrap_or(KickReason::TooSlow)
    }
}

#[derive(Default)]
struct UserEntry {
    conns: Vec<ConnHandle>,
    chats: HashSet<Uuid>,
}

#[derive(Default)]
struct Registry {
    users: HashMap<Uuid, UserEntry>,
    /// chat → locally connected members
    chats: HashMap<Uuid, HashSet<Uuid>>,
}

/// Membership changes every replica applies to its groups.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
enum Control {
    #[serde(rename_all = "camelCase")]
    MembersAdded { chat_id: Uuid, user_ids: Vec<Uuid> },
    #[serde(rename_all = "camelCase")]
    ChatRemoved { chat_id: Uuid },
    #[serde(rename_all = "camelCase")]
    UserRemoved { user_id: Uuid },
}

/// Frames for a list of users (presence).
#[derive(Debug, Serialize, Deserialize)]
struct ToUsers {
    users: Vec<Uuid>,
    frame: String,
}

/// The hub of this replica. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    replica: String,
    bus: Bus,
    /// A connection of its own with `no_echo`: the server does not hand this replica back what
    /// it published itself (it delivered that locally already).
    fanout: async_nats::Client,
    settings: HubSettings,
    registry: RwLock<Registry>,
    next_id: AtomicU64,
    /// The hub's own token, cancelled by [`Hub::close`] (the fan-out worker, when the
    /// service stops): connections still arriving then are told to go at once.
    closing: CancellationToken,
}

impl Hub {
    /// Connects the fan-out connection: the same server and NATS user as `bus`.
    pub async fn connect(bus: Bus, settings: HubSettings) -> anyhow::Result<Self> {
        // The second connection is the same NATS user as the bus (its credentials came from
        // NATS_URL); the URL in messages is the one without the password.
        let fanout = bus
            .connect_options()
            .name("messenger-api hub fan-out")
            .no_echo()
            .connection_timeout(std::time::Duration::from_secs(5))
            .connect(bus.server_url())
            .await
            .with_context(|| {
                format!("connecting the hub fan-out to NATS at {}", bus.server_url())
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                replica: Uuid::new_v4().simple().to_string(),
                fanout,
                bus,
                settings,
                registry: RwLock::new(Registry::default()),
                next_id: AtomicU64::new(1),
                closing: CancellationToken::new(),
            }),
        })
    }

    /// The hub settings in force.
    pub fn settings(&self) -> &HubSettings {
        &self.inner.settings
    }

    /// Connections on this replica.
    pub fn connection_count(&self) -> usize {
        self.read().users.values().map(|u| u.conns.len()).sum()
    }

    /// `true` when `user` has a connection on this replica.
    pub fn is_connected(&self, user: Uuid) -> bool {
        self.read().users.contains_key(&user)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.inner
            .registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.inner
            .registry
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a connection of `user`; `true` when it is the user's first on this replica.
    pub fn register(&self, user: Uuid) -> (ConnHandle, ConnRx, bool) {
        let (tx, rx) = mpsc::channel(self.inner.settings.queue_capacity);
        let kick = CancellationToken::new();
        let reason = Arc::new(OnceLock::new());
        let handle = ConnHandle {
            id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
            tx,
            kick: kick.clone(),
            reason: reason.clone(),
        };
        let mut reg = self.write();
        let entry = reg.users.entry(user).or_default();
        let first = entry.conns.is_empty();
        entry.conns.push(handle.clone());
        metrics::gauge!("hub_connections").increment(1.0);
        // Checked under the write lock: a connection registered before `close` read the
        // registry is kicked there, one registered after it sees the token here.
        if self.inner.closing.is_cancelled() {
            let _ = handle.kick(KickReason::Shutdown);
        }
        (
            handle,
            ConnRx {
                frames: rx,
                kicked: kick,
                reason,
            },
            first,
        )
    }

    /// Puts a connected user into the groups of these chats.
    pub fn join_chats(&self, user: Uuid, chats: &[Uuid]) {
        let mut reg = self.write();
        let Registry {
            users,
            chats: groups,
        } = &mut *reg;
        let Some(entry) = users.get_mut(&user) else {
            return;
        };
        for c in chats {
            if entry.chats.insert(*c) {
                groups.entry(*c).or_default().insert(user);
            }
        }
    }

    /// Removes a connection; `true` when it was the user's last on this replica.
    pub fn unregister(&self, user: Uuid, conn: u64) -> bool {
        let mut reg = self.write();
        let Registry { users, chats } = &mut *reg;
        let Some(entry) = users.get_mut(&user) else {
            return false;
        };
        let before = entry.conns.len();
        entry.conns.retain(|c| c.id != conn);
        if entry.conns.len() < before {
            metrics::gauge!("hub_connections").decrement(1.0);
        }
        if !entry.conns.is_empty() {
            return false;
        }
        if let Some(entry) = users.remove(&user) {
            for c in entry.chats {
                if let Some(g) = chats.get_mut(&c) {
                    g.remove(&user);
                    if g.is_empty() {
                        chats.remove(&c);
                    }
                }
            }
        }
        true
    }

    // ------------------------------------------------------------------ sending

    /// Sends a frame to every member of a chat on every replica (except `except`).
    pub async fn to_chat(&self, chat: Uuid, frame: String, except: Option<Uuid>) {
        let bytes = Bytes::from(frame);
        if let Ok(text) = Utf8Bytes::try_from(bytes.clone()) {
            self.deliver_chat(chat, &text, except);
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(ORIGIN, self.inner.replica.as_str());
        if let Some(u) = except {
            headers.insert(EXCEPT, u.to_string().as_str());
        }
        let subject = self.subject(&format!("chat.{chat}"));
        self.publish(subject, headers, bytes).await;
    }

    /// Sends a frame to these users on every replica.
    pub async fn to_users(&self, users: Vec<Uuid>, frame: String) {
        if users.is_empty() {
            return;
        }
        if let Ok(text) = Utf8Bytes::try_from(Bytes::from(frame.clone())) {
            self.deliver_users(&users, &text);
        }
        let body = serde_json::to_vec(&ToUsers { users, frame }).unwrap_or_default();
        self.publish_control_like("users", body.into()).await;
    }

    /// New members of a chat join its group on every replica.
    pub async fn members_added(&self, chat: Uuid, users: Vec<Uuid>) {
        for u in &users {
            self.join_chats(*u, &[chat]);
        }
        self.control(Control::MembersAdded {
            chat_id: chat,
            user_ids: users,
        })
        .await;
    }

    /// A deleted chat's group goes away on every replica.
    pub async fn chat_removed(&self, chat: Uuid) {
        self.remove_chat_local(chat);
        self.control(Control::ChatRemoved { chat_id: chat }).await;
    }

    /// A deleted user's connections are closed on every replica.
    pub async fn user_removed(&self, user: Uuid) {
        self.kick_user_local(user, KickReason::AccountRemoved);
        self.control(Control::UserRemoved { user_id: user }).await;
    }

    async fn control(&self, c: Control) {
        let body = serde_json::to_vec(&c).unwrap_or_default();
        self.publish_control_like("control", body.into()).await;
    }

    async fn publish_control_like(&self, rest: &str, body: Bytes) {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(ORIGIN, self.inner.replica.as_str());
        let subject = self.subject(rest);
        self.publish(subject, headers, body).await;
    }

    fn subject(&self, rest: &str) -> String {
        self.inner
            .bus
            .wire_subject(&Subject::fanout(Source::Messenger, rest))
    }

    async fn publish(&self, subject: String, headers: async_nats::HeaderMap, body: Bytes) {
        // Core NATS: fire and forget; a replica that misses it has clients that catch up with
        // GET /api/messages after they reconnect.
        if let Err(e) = self
            .inner
            .fanout
            .publish_with_headers(subject.clone(), headers, body)
            .await
        {
            tracing::warn!(subject, error = %e, "hub fan-out publish failed");
        }
    }

    // ------------------------------------------------------------------ local delivery

    fn deliver_chat(&self, chat: Uuid, frame: &Utf8Bytes, except: Option<Uuid>) {
        let mut slow = Vec::new();
        let mut sent = 0u64;
        {
            let reg = self.read();
            let Some(members) = reg.chats.get(&chat) else {
                return;
            };
            for u in members {
                if Some(*u) == except {
                    continue;
                }
                if let Some(entry) = reg.users.get(u) {
                    for c in &entry.conns {
                        push(c, frame, &mut slow, &mut sent);
                    }
                }
            }
        }
        self.finish_delivery(slow, sent);
    }

    fn deliver_users(&self, users: &[Uuid], frame: &Utf8Bytes) {
        let mut slow = Vec::new();
        let mut sent = 0u64;
        {
            let reg = self.read();
            for u in users {
                if let Some(entry) = reg.users.get(u) {
                    for c in &entry.conns {
                        push(c, frame, &mut slow, &mut sent);
                    }
                }
            }
        }
        self.finish_delivery(slow, sent);
    }

    fn finish_delivery(&self, slow: Vec<ConnHandle>, sent: u64) {
        metrics::counter!("hub_frames_queued_total").increment(sent);
        for c in slow {
            if c.kick(KickReason::TooSlow) {
                tracing::info!(
                    connection = c.id,
                    "hub client too slow (queue full); disconnecting it"
                );
                metrics::counter!("hub_slow_clients_disconnected_total").increment(1);
            }
        }
    }

    fn remove_chat_local(&self, chat: Uuid) {
        let mut reg = self.write();
        let Registry { users, chats } = &mut *reg;
        if let Some(members) = chats.remove(&chat) {
            for u in members {
                if let Some(e) = users.get_mut(&u) {
                    e.chats.remove(&chat);
                }
            }
        }
    }

    /// Tells every connection of this replica to go (at shutdown). Each connection waits only
    /// on its own token, so that ten thousand of them do not contend for one shared waker.
    fn kick_all(&self, reason: KickReason) {
        let reg = self.read();
        for e in reg.users.values() {
            for c in &e.conns {
                let _ = c.kick(reason);
            }
        }
    }

    fn kick_user_local(&self, user: Uuid, reason: KickReason) {
        let reg = self.read();
        if let Some(e) = reg.users.get(&user) {
            for c in &e.conns {
                let _ = c.kick(reason);
            }
        }
    }

    /// Closes every connection of this replica with a Close message that invites the client
    /// to reconnect (elsewhere), and every connection that still arrives (at shutdown).
    pub fn close(&self) {
        self.inner.closing.cancel();
        self.kick_all(KickReason::Shutdown);
    }

    // ------------------------------------------------------------------ fan-out from NATS

    /// Subscribes to the other replicas' fan-out; returns once the server has the
    /// subscription. [`Fanout::run`] then serves it (the `hub fan-out` worker).
    pub async fn subscribe(&self) -> anyhow::Result<Fanout> {
        let client = self.inner.fanout.clone();
        let all = self
            .inner
            .bus
            .wire_subject(&Subject::all_fanout(Source::Messenger));
        let sub = client
            .subscribe(all)
            .await
            .context("subscribing to the hub fan-out")?;
        // The server has the subscription once a flush round trip returns.
        client
            .flush()
            .await
            .context("subscribing to the hub fan-out")?;
        Ok(Fanout {
            prefix: self.subject(""),
            hub: self.clone(),
            sub,
        })
    }

    fn on_fanout(&self, prefix: &str, m: async_nats::Message) {
        let headers = m.headers.as_ref();
        let origin = headers.and_then(|h| h.get(ORIGIN)).map(|v| v.as_str());
        if origin == Some(self.inner.replica.as_str()) {
            return;
        }
        let Some(rest) = m.subject.as_str().strip_prefix(prefix) else {
            return;
        };
        if let Some(chat) = rest.strip_prefix("chat.") {
            let Ok(chat) = Uuid::parse_str(chat) else {
                return;
            };
            let except = headers
                .and_then(|h| h.get(EXCEPT))
                .and_then(|v| Uuid::parse_str(v.as_str()).ok());
            if let Ok(text) = Utf8Bytes::try_from(m.payload) {
                self.deliver_chat(chat, &text, except);
            }
        } else if rest == "users" {
            if let Ok(t) = serde_json::from_slice::<ToUsers>(&m.payload) {
                self.deliver_users(&t.users, &Utf8Bytes::from(t.frame));
            }
        } else if rest == "control" {
            match serde_json::from_slice::<Control>(&m.payload) {
                Ok(Control::MembersAdded { chat_id, user_ids }) => {
                    for u in user_ids {
                        self.join_chats(u, &[chat_id]);
                    }
                }
                Ok(Control::ChatRemoved { chat_id }) => self.remove_chat_local(chat_id),
                Ok(Control::UserRemoved { user_id }) => {
                    self.kick_user_local(user_id, KickReason::AccountRemoved)
                }
                Err(e) => tracing::debug!(error = %e, "unknown hub control message skipped"),
            }
        }
    }
}

/// The other replicas' fan-out, subscribed: what the `hub fan-out` worker serves.
pub struct Fanout {
    hub: Hub,
    prefix: String,
    sub: async_nats::Subscriber,
}

impl Fanout {
    /// Delivers the other replicas' frames to this replica's connections until `stop`; then
    /// closes the hub ([`Hub::close`]) and unsubscribes.
    ///
    /// Errors: the subscription ended before `stop` (the NATS client went away): without it
    /// this replica no longer hears the others, so the service stops and is restarted.
    pub async fn run(mut self, stop: CancellationToken) -> anyhow::Result<()> {
        let ended = loop {
            tokio::select! {
                _ = stop.cancelled() => break false,
                msg = self.sub.next() => match msg {
                    Some(m) => self.hub.on_fanout(&self.prefix, m),
                    None => break true,
                },
            }
        };
        self.hub.close();
        let _ = self.sub.unsubscribe().await;
        anyhow::ensure!(!ended, "the hub fan-out subscription ended");
        Ok(())
    }
}

fn push(c: &ConnHandle, frame: &Utf8Bytes, slow: &mut Vec<ConnHandle>, sent: &mut u64) {
    match c.tx.try_send(frame.clone()) {
        Ok(()) => *sent += 1,
        Err(mpsc::error::TrySendError::Full(_)) => slow.push(c.clone()),
        // The connection is ending; its task unregisters it.
        Err(mpsc::error::TrySendError::Closed(_)) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_kicked_and_counted_once() {
        let (tx, _rx) = mpsc::channel(1);
        let c = ConnHandle {
            id: 1,
            tx,
            kick: CancellationToken::new(),
            reason: Arc::new(OnceLock::new()),
        };
        assert!(
            c.kick(KickReason::TooSlow),
            "the first kick sets the reason"
        );
        for _ in 0..100 {
            assert!(!c.kick(KickReason::TooSlow), "later kicks are not counted");
        }
        assert!(!c.kick(KickReason::AccountRemoved));
        assert!(c.kick.is_cancelled());
        assert!(matches!(c.reason.get(), Some(KickReason::TooSlow)));
    }
}
