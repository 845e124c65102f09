//! `spawn_app`: the real vk-connector on port 0 with a fresh database, unique NATS streams and
//! a sandbox for VK and Chatwoot. Settings go through the real config parser
//! (`testkit::parse_config`); the database and streams are dropped with the `TestApp`, also
//! when a test panics.

use std::time::Duration;

use async_nats::jetstream;
use sandbox::Sandbox;
use serde_json::{Value, json};
use testkit::TestEnv;
use tokio_util::sync::CancellationToken;
use vk_connector::AppState;
use vk_connector::config::{Cli, Settings};

pub const GROUP_ID: i64 = 227_000_001;
pub const VK_SECRET: &str = "vk-callback-secret";
pub const CONFIRMATION: &str = "a1b2c3d4";
pub const CALLBACK_ID: &str = "cb-7f3a9d21e84b6c05";
pub const WEBHOOK_ID: &str = "cw-91e2b7c40d8a3f16";
pub const USER_ID: i64 = 1001;

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub sandbox: Sandbox,
    pub state: AppState,
    pub shutdown: CancellationToken,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// This test's database and NATS prefix, dropped (with the streams) after the app stops.
    pub env: TestEnv,
}

#[derive(Default)]
pub struct Options {
    pub webhook_secret: Option<&'static str>,
    pub reconcile_interval: Option<Duration>,
    pub long_poll: Option<Duration>,
    /// `MEDIA_MAX_BYTES` (default: the service's 20 MB).
    pub media_max_bytes: Option<u64>,
}

/// The settings of a test app, through the real parser: `env`'s database and NATS prefix,
/// the sandbox as VK and Chatwoot, and `opts`.
pub fn settings_for(sandbox: &Sandbox, env: &TestEnv, opts: &Options) -> Settings {
    let cli: Cli = testkit::parse_config(&vars_for(sandbox, env, opts));
    Settings::from_config(&cli.config).expect("test settings are valid")
}

/// The environment of a test app (see [`settings_for`]), to change before parsing.
pub fn vars_for(sandbox: &Sandbox, env: &TestEnv, opts: &Options) -> Vec<(&'static str, String)> {
    let o = sandbox.options();
    let mut vars = env.runtime_overrides();
    vars.extend([
        ("LOG_LEVEL", "warn".to_owned()),
        // Long enough for a loaded machine, short enough for the timeout test to retry soon.
        ("UPSTREAM_TIMEOUT_SECS", "5".to_owned()),
        ("VK_GROUP_ID", GROUP_ID.to_string()),
        ("VK_ACCESS_TOKEN", o.vk_access_token.clone()),
        ("VK_API_VERSION", "5.199".to_owned()),
        ("VK_API_URL", sandbox.vk_api_url()),
        ("VK_SECRET", VK_SECRET.to_owned()),
        ("VK_CONFIRMATION", CONFIRMATION.to_owned()),
        ("VK_CALLBACK_ID", CALLBACK_ID.to_owned()),
        ("CHATWOOT_BASE_URL", sandbox.chatwoot_url()),
        ("CHATWOOT_API_ACCESS_TOKEN", o.chatwoot_api_token.clone()),
        ("CHATWOOT_ACCOUNT_ID", o.chatwoot_account_id.to_string()),
        ("CHATWOOT_INBOX_ID", o.chatwoot_inbox_id.to_string()),
        ("CHATWOOT_WEBHOOK_ID_VK", WEBHOOK_ID.to_owned()),
        (
            "CHATWOOT_WEBHOOK_SECRET",
            opts.webhook_secret.unwrap_or_default().to_owned(),
        ),
        (
            "RECONCILE_INTERVAL_SECS",
            opts.reconcile_interval
                .unwrap_or(Duration::ZERO)
                .as_secs()
                .to_string(),
        ),
        ("RECONCILE_LOOKBACK_SECS", "3600".to_owned()),
        ("MEDIA_TIMEOUT_SECS", "10".to_owned()),
    ]);
    if let Some(max) = opts.media_max_bytes {
        vars.push(("MEDIA_MAX_BYTES", max.to_string()));
    }
    match opts.long_poll {
        Some(wait) => vars.extend([
            ("VK_LONG_POLL", "true".to_owned()),
            ("VK_LONG_POLL_WAIT_SECS", wait.as_secs().to_string()),
        ]),
        None => vars.push(("VK_LONG_POLL", "false".to_owned())),
    }
    vars
}

pub use testkit::WAIT;

/// A new database and NATS prefix for one vk-connector test, removed on drop.
pub async fn test_env() -> TestEnv {
    TestEnv::new("vk_test").await
}

pub fn nats() -> String {
    testkit::nats_url()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(opts: Options) -> TestApp {
    if let Ok(filter) = std::env::var("TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
    let sandbox = Sandbox::start().await.expect("sandbox starts");
    sandbox.add_vk_user(USER_ID, "Иван", "Петров");
    sandbox.set_vk_group(GROUP_ID, "Магазин «Ромашка»");
    let env = test_env().await;
    let settings = settings_for(&sandbox, &env, &opts);
    let app = vk_connector::build(settings).await.expect("app builds");
    let port = app.port();
    let state = app.state().clone();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(app.run_until(shutdown.clone()));
    let base = format!("http://127.0.0.1:{port}");
    sandbox.set_chatwoot_webhook(
        Some(format!("{base}/chatwoot/webhook/{WEBHOOK_ID}")),
        opts.webhook_secret.map(str::to_owned),
    );
    TestApp {
        base,
        http: reqwest::Client::new(),
        sandbox,
        state,
        shutdown,
        handle: Some(handle),
        env,
    }
}

impl Drop for TestApp {
    /// Stops the app (also when the test panicked); then `env` drops the database and
    /// streams.
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

impl TestApp {
    pub async fn post_callback(&self, body: &Value) -> reqwest::Response {
        self.post_callback_raw(CALLBACK_ID, body.to_string()).await
    }

    pub async fn post_callback_raw(&self, id: &str, body: String) -> reqwest::Response {
        self.http
            .post(format!("{}/vk/callback/{id}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("callback request")
    }

    pub async fn post_webhook(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}/chatwoot/webhook/{WEBHOOK_ID}", self.base))
            .json(body)
            .send()
            .await
            .expect("webhook request")
    }

    /// Messages stored in this app's stream `EVENTS` or `COMMANDS`.
    pub async fn stream_messages(&self, stream: &str) -> u64 {
        let mut s = self
            .state
            .bus
            .jetstream()
            .get_stream(stream)
            .await
            .expect("stream exists");
        s.info().await.expect("stream info").state.messages
    }

    pub async fn events_stored(&self) -> u64 {
        self.stream_messages(&self.state.bus.events_stream()).await
    }

    pub async fn commands_stored(&self) -> u64 {
        self.stream_messages(&self.state.bus.commands_stream())
            .await
    }

    /// Sends a VK message through the callback and waits until it is in Chatwoot; returns
    /// the Chatwoot conversation id.
    pub async fn customer_writes(&self, text: &str) -> i64 {
        let before = self.all_chatwoot_messages().len();
        let res = self.post_callback(&message_new(USER_ID, text)).await;
        assert_eq!(res.status(), 200);
        self.sandbox
            .wait_until(WAIT, |s| all_messages(s).len() > before)
            .await
            .expect("message reaches Chatwoot");
        self.conversation_id()
    }

    pub fn conversation_id(&self) -> i64 {
        let convs = self.sandbox.chatwoot_conversations();
        convs
            .last()
            .and_then(|c| c["id"].as_i64())
            .expect("a Chatwoot conversation exists")
    }

    pub fn all_chatwoot_messages(&self) -> Vec<Value> {
        all_messages(&self.sandbox)
    }

    /// Waits for a condition nothing notifies about (polled, bounded by [`WAIT`]).
    pub async fn wait_db<F, Fut>(&self, what: &str, f: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        testkit::wait_for(what, f).await
    }

    /// Stops the app and waits for it to drain; dropping the `TestApp` then removes its
    /// streams and database (which happens on drop anyway, this only stops it gracefully
    /// first).
    pub async fn cleanup(mut self) {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), h).await;
        }
        self.state.store.pool().close().await;
    }
}

pub fn all_messages(s: &Sandbox) -> Vec<Value> {
    s.chatwoot_conversations()
        .iter()
        .filter_map(|c| c["id"].as_i64())
        .flat_map(|id| s.chatwoot_messages(id))
        .collect()
}

/// A unique 40-hex-char event id, like VK's.
pub fn event_id() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    format!("{a}{}", &a[..8])
}

/// VK `message_new` (API 5.199 shape) from `from_id`.
pub fn message_new(from_id: i64, text: &str) -> Value {
    message_new_with(from_id, text, json!([]), &event_id())
}

pub fn message_new_with(from_id: i64, text: &str, attachments: Value, event_id: &str) -> Value {
    json!({
        "group_id": GROUP_ID,
        "type": "message_new",
        "event_id": event_id,
        "v": "5.199",
        "object": {
            "message": {
                "date": 1_763_812_800,
                "from_id": from_id,
                "id": 4521,
                "out": 0,
                "version": 10_000_123,
                "attachments": attachments,
                "conversation_message_id": 37,
                "fwd_messages": [],
                "important": false,
                "is_hidden": false,
                "peer_id": from_id,
                "random_id": 0,
                "text": text
            },
            "client_info": {
                "button_actions": ["text", "vkpay", "open_app", "location", "open_link", "callback"],
                "keyboard": true,
                "inline_keyboard": true,
                "carousel": true,
                "lang_id": 0
            }
        },
        "secret": VK_SECRET
    })
}

pub fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture exists"))
        .expect("fixture is JSON")
}

pub fn jetstream_of(app: &TestApp) -> &jetstream::Context {
    app.state.bus.jetstream()
}
