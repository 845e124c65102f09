//! `spawn_app`: the real messenger-api on port 0 with a fresh database, a unique NATS prefix
//! and its own files directory; REST helpers; a minimal SignalR JSON-protocol hub client.
//!
//! Settings go through the binary's own parser ([`testkit::parse_config`] on
//! `messenger_api::config::Cli`), given by their environment names. The database and the
//! NATS streams belong to a [`testkit::TestEnv`] that the app (and its replicas) hold: they
//! are dropped with the last of them, also when a test panics.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use messenger_api::AppState;
use messenger_api::config::{Cli, Settings};
use serde_json::{Value, json};
use testkit::TestEnv;
use time::OffsetDateTime;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use testkit::WAIT;

pub const SECRET: &str = "test-secret-0123456789abcdef-0123456789";
pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub base: String,
    pub port: u16,
    pub http: reqwest::Client,
    pub state: AppState,
    pub shutdown: CancellationToken,
    pub db_url: String,
    pub files_dir: PathBuf,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _files: FilesDir,
    /// Last: dropped after everything above (shared with replicas).
    env: Arc<TestEnv>,
}

/// Changes a test makes to the parsed settings before the app starts, for what the
/// environment cannot say (sub-second durations).
pub type Tweak = Box<dyn FnOnce(&mut Settings) + Send>;

/// What a test may change before the app starts.
#[derive(Default)]
pub struct Options {
    /// Share another app's database and NATS prefix (two replicas).
    pub share: Option<Arc<TestEnv>>,
    /// Settings by their environment names, over the defaults of [`spawn_app`].
    pub env: Vec<(&'static str, String)>,
    pub tweak: Option<Tweak>,
}

/// A files directory removed on drop.
struct FilesDir(PathBuf);

impl Drop for FilesDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

/// `defaults` with `overrides` put over them (by name; clap takes each flag once).
fn merged(
    defaults: Vec<(&'static str, String)>,
    overrides: Vec<(&'static str, String)>,
) -> Vec<(&'static str, String)> {
    let mut out = defaults;
    for (name, value) in overrides {
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => out.push((name, value)),
        }
    }
    out
}

pub async fn spawn_app_with(opts: Options) -> TestApp {
    if let Ok(filter) = std::env::var("TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
    let env = match opts.share {
        Some(env) => env,
        None => Arc::new(TestEnv::new("messenger_test").await),
    };
    let files_dir = std::env::temp_dir().join(format!("messenger-test-{}", Uuid::new_v4()));
    let mut defaults = env.runtime_overrides();
    defaults.extend([
        ("LOG_LEVEL", "warn".to_owned()),
        ("JWT_SECRET", SECRET.to_owned()),
        ("MESSENGER_FILES_DIR", files_dir.display().to_string()),
        // Cheap hashes: tests check behaviour, not cost.
        ("ARGON2_MEMORY_KIB", "1024".to_owned()),
        ("ARGON2_ITERATIONS", "1".to_owned()),
        // Tests register many users from 127.0.0.1; the per-IP limit has its own test.
        ("REGISTER_RATE_PER_IP_PER_MINUTE", "100000".to_owned()),
    ]);
    let cli: Cli = testkit::parse_config(&merged(defaults, opts.env));
    let mut settings = Settings::from_config(&cli.config).expect("valid test settings");
    if let Some(t) = opts.tweak {
        t(&mut settings);
    }
    let db_url = settings.runtime.database_url.clone();
    let app = messenger_api::App::build(settings)
        .await
        .expect("app builds");
    let port = app.port();
    let state = app.state().clone();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(app.run_until(shutdown.clone()));
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        port,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        state,
        shutdown,
        db_url,
        _files: FilesDir(files_dir.clone()),
        files_dir,
        handle: Some(handle),
        env,
    }
}

/// A logged-in user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub phone: String,
    pub token: String,
    pub refresh: String,
}

pub fn unique_phone() -> String {
    let n = Uuid::new_v4().as_u128() % 10_000_000_000;
    format!("+7{n:010}")
}

impl TestApp {
    /// Options for a second replica of this app (same database and NATS prefix).
    pub fn replica_options(&self) -> Options {
        Options {
            share: Some(self.env.clone()),
            ..Default::default()
        }
    }

    /// The NATS subject prefix of this app's streams.
    pub fn prefix(&self) -> &str {
        &self.env.prefix
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn invite(&self, max_uses: i32, expires_in: time::Duration) -> String {
        let code = format!("T{}", Uuid::new_v4().simple());
        self.state
            .store
            .create_invite(
                &code,
                max_uses,
                OffsetDateTime::now_utc() + expires_in,
                None,
            )
            .await
            .expect("invite stored");
        code
    }

    pub async fn register_raw(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url("/api/auth/register"))
            .json(body)
            .send()
            .await
            .expect("register request")
    }

    /// Registers a new user with a fresh invite and returns the session.
    pub async fn user(&self, name: &str) -> User {
        let code = self.invite(1, time::Duration::hours(1)).await;
        let phone = unique_phone();
        let res = self
            .register_raw(&json!({
                "phone": phone, "password": PASSWORD, "displayName": name, "inviteCode": code
            }))
            .await;
        assert_eq!(res.status(), 201, "register {name}");
        session(res.json().await.expect("json"))
    }

    /// A user with role Admin (made as `messenger-api admin create` makes one), logged in.
    pub async fn admin(&self) -> User {
        let phone = unique_phone();
        let hash = self.state.passwords.hash(PASSWORD).expect("hash");
        self.state
            .store
            .create_user(Uuid::now_v7(), &phone, "Админ", &hash, "Admin")
            .await
            .expect("insert")
            .expect("new");
        self.login(&phone, PASSWORD).await
    }

    pub async fn login_raw(&self, phone: &str, password: &str) -> reqwest::Response {
        self.http
            .post(self.url("/api/auth/login"))
            .json(&json!({ "phone": phone, "password": password }))
            .send()
            .await
            .expect("login request")
    }

    pub async fn login(&self, phone: &str, password: &str) -> User {
        let res = self.login_raw(phone, password).await;
        assert_eq!(res.status(), 200, "login");
        session(res.json().await.expect("json"))
    }

    pub async fn refresh(&self, refresh_token: String) -> reqwest::Response {
        self.post(
            "/api/auth/refresh",
            None,
            &json!({ "refreshToken": refresh_token }),
        )
        .await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut r = self.http.get(self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.expect("GET")
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut r = self.http.post(self.url(path)).json(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.expect("POST")
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut r = self.http.delete(self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.expect("DELETE")
    }

    /// A private chat of `a` with `b`; its id.
    pub async fn private_chat(&self, a: &User, b: &User) -> Uuid {
        let res = self
            .post(
                "/api/chats",
                Some(&a.token),
                &json!({ "type": "private", "userId": b.id }),
            )
            .await;
        assert!(res.status().is_success(), "private chat: {}", res.status());
        let v: Value = res.json().await.expect("json");
        v["id"].as_str().expect("id").parse().expect("uuid")
    }

    /// A group owned by `owner` with `members`; its id.
    pub async fn group(&self, owner: &User, title: &str, members: &[&User]) -> Uuid {
        let ids: Vec<Uuid> = members.iter().map(|m| m.id).collect();
        let res = self
            .post(
                "/api/chats",
                Some(&owner.token),
                &json!({ "type": "group", "title": title, "memberIds": ids }),
            )
            .await;
        assert_eq!(res.status(), 201, "group");
        let v: Value = res.json().await.expect("json");
        v["id"].as_str().expect("id").parse().expect("uuid")
    }

    /// Sends a text; returns the message JSON.
    pub async fn send(&self, from: &User, chat: Uuid, text: &str) -> Value {
        let res = self
            .post(
                "/api/messages",
                Some(&from.token),
                &json!({ "chatId": chat, "text": text }),
            )
            .await;
        assert_eq!(res.status(), 201, "send");
        res.json().await.expect("json")
    }

    /// The `message.posted` envelopes in this app's EVENTS stream, oldest first.
    pub async fn posted_events(&self) -> Vec<domain::Envelope<domain::Event>> {
        let js = self.state.bus.jetstream();
        let mut stream = js
            .get_stream(self.state.bus.events_stream())
            .await
            .expect("stream");
        let info = stream.info().await.expect("info").state.clone();
        let mut out = Vec::new();
        for seq in info.first_sequence..=info.last_sequence {
            if info.messages == 0 {
                break;
            }
            if let Ok(raw) = stream.get_raw_message(seq).await
                && let Ok(env) = domain::Envelope::<domain::Event>::decode(&raw.payload)
            {
                out.push(env);
            }
        }
        out
    }

    /// Stops the app and waits for it; its files go now, its database and streams with the
    /// last app that shares them.
    pub async fn cleanup(mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
        }
        self.state.store.pool().close().await;
    }

    /// Stops a replica that shares another app's database (dropped with the last of them).
    pub async fn stop(self) {
        self.cleanup().await;
    }
}

impl Drop for TestApp {
    /// Also when a test panics: the app is told to stop; the files, the database and the
    /// streams go with the fields.
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn session(v: Value) -> User {
    User {
        id: v["user"]["id"]
            .as_str()
            .expect("user.id")
            .parse()
            .expect("uuid"),
        phone: v["user"]["phone"].as_str().expect("phone").to_owned(),
        token: v["accessToken"].as_str().expect("accessToken").to_owned(),
        refresh: v["refreshToken"].as_str().expect("refreshToken").to_owned(),
    }
}

pub async fn json(res: reqwest::Response) -> Value {
    res.json().await.expect("JSON body")
}

/// Asserts status and that the body is `{"error": …}`; returns the body.
pub async fn expect_error(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status(), status, "status");
    let v: Value = res.json().await.expect("JSON error body");
    assert!(v["error"].is_string(), "error field in {v}");
    v
}

// ---------------------------------------------------------------------- hub client

/// How the hub client sends its token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TokenVia {
    /// `Authorization: Bearer` on negotiate and upgrade (Node, React Native).
    Header,
    /// `access_token` query parameter on the upgrade (browsers).
    Query,
}

/// A SignalR JSON hub protocol client, written from the spec, for tests.
pub struct HubClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    inbox: VecDeque<Value>,
    next_id: u64,
    pub closed: bool,
}

impl HubClient {
    /// Negotiates, upgrades, and completes the handshake.
    pub async fn connect(app_base: &str, token: &str, via: TokenVia) -> Self {
        let http = reqwest::Client::new();
        let neg: Value = http
            .post(format!("{app_base}/hubs/chat/negotiate?negotiateVersion=1"))
            .bearer_auth(token)
            .send()
            .await
            .expect("negotiate")
            .json()
            .await
            .expect("negotiate json");
        assert_eq!(neg["negotiateVersion"], 1);
        assert_eq!(neg["availableTransports"][0]["transport"], "WebSockets");
        let id = neg["connectionToken"].as_str().expect("connectionToken");
        let ws_base = app_base.replacen("http://", "ws://", 1);
        let url = match via {
            TokenVia::Header => format!("{ws_base}/hubs/chat?id={id}"),
            TokenVia::Query => format!("{ws_base}/hubs/chat?id={id}&access_token={token}"),
        };
        let mut req = url.into_client_request().expect("request");
        if via == TokenVia::Header {
            req.headers_mut().insert(
                "authorization",
                format!("Bearer {token}").parse().expect("header"),
            );
        }
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("websocket upgrade");
        let mut c = Self {
            ws,
            inbox: VecDeque::new(),
            next_id: 0,
            closed: false,
        };
        c.send_raw("{\"protocol\":\"json\",\"version\":1}\u{1e}")
            .await;
        let first = c.next_raw().await.expect("handshake response");
        assert_eq!(first, json!({}), "handshake response");
        c
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("ws send");
    }

    /// Next record from the socket (None when it closed), waiting at most [`WAIT`].
    async fn next_raw(&mut self) -> Option<Value> {
        if let Some(v) = self.inbox.pop_front() {
            return Some(v);
        }
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("hub message within the wait");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    for rec in t.as_str().split('\u{1e}').filter(|r| !r.is_empty()) {
                        self.inbox
                            .push_back(serde_json::from_str(rec).expect("record is JSON"));
                    }
                    if let Some(v) = self.inbox.pop_front() {
                        return Some(v);
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    self.closed = true;
                    return None;
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// Next message of `type`, keeping the others for later.
    pub async fn next_of_type(&mut self, kind: u64) -> Value {
        if let Some(pos) = self.inbox.iter().position(|v| v["type"] == kind) {
            return self.inbox.remove(pos).expect("present");
        }
        let mut held = Vec::new();
        let found = loop {
            let v = self.next_raw().await.expect("connection open");
            if v["type"] == kind {
                break v;
            }
            held.push(v);
        };
        for v in held.into_iter().rev() {
            self.inbox.push_front(v);
        }
        found
    }

    /// The arguments of the next server invocation of `target`; other messages are kept.
    pub async fn next_invocation(&mut self, target: &str) -> Vec<Value> {
        let mut held = Vec::new();
        let found = loop {
            let v = match self
                .inbox
                .iter()
                .position(|v| v["type"] == 1 && v["target"] == target)
            {
                Some(pos) => self.inbox.remove(pos).expect("present"),
                None => {
                    let v = self
                        .next_raw()
                        .await
                        .unwrap_or_else(|| panic!("connection closed while waiting for {target}"));
                    if !(v["type"] == 1 && v["target"] == target) {
                        held.push(v);
                        continue;
                    }
                    v
                }
            };
            break v;
        };
        for v in held.into_iter().rev() {
            self.inbox.push_front(v);
        }
        found["arguments"].as_array().cloned().unwrap_or_default()
    }

    /// Whether a server invocation of `target` has arrived and is still unread.
    pub fn has_invocation(&self, target: &str) -> bool {
        self.inbox
            .iter()
            .any(|v| v["type"] == 1 && v["target"] == target)
    }

    /// Invokes a hub method and returns its completion message.
    pub async fn invoke(&mut self, target: &str, args: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id.to_string();
        let msg = json!({ "type": 1, "invocationId": id, "target": target, "arguments": args });
        self.send_raw(&format!("{msg}\u{1e}")).await;
        let mut held = Vec::new();
        let found = loop {
            let v = self.next_raw().await.expect("connection open");
            if v["type"] == 3 && v["invocationId"] == id.as_str() {
                break v;
            }
            held.push(v);
        };
        for v in held.into_iter().rev() {
            self.inbox.push_front(v);
        }
        found
    }

    /// Waits until the server closes the connection; returns the Close message (type 7)
    /// when one came first.
    pub async fn wait_closed(&mut self) -> Option<Value> {
        let mut close = None;
        while let Some(v) = self.next_raw().await {
            if v["type"] == 7 {
                close = Some(v);
            }
        }
        close
    }

    /// Says goodbye and closes.
    pub async fn close(mut self) {
        self.send_raw("{\"type\":7}\u{1e}").await;
        let _ = self.ws.close(None).await;
    }
}

/// A message with no reply expected; for invocations the client does not await.
pub fn invocation(target: &str, args: Value) -> String {
    format!(
        "{}\u{1e}",
        json!({ "type": 1, "target": target, "arguments": args })
    )
}
