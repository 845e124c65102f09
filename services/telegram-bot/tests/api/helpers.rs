//! `spawn_app`: the real telegram-bot on port 0 with a fresh database, unique NATS streams and
//! a sandbox for Telegram. Settings go through the real config parser; the database and streams
//! are dropped with the `TestApp`, also when a test panics.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use sandbox::telegram::TgUser;
use sandbox::{PushedUpdate, Sandbox};
use serde_json::{Value, json};
use telegram_bot::AppState;
use telegram_bot::config::{Cli, Settings};
use testkit::TestEnv;
use tokio_util::sync::CancellationToken;

pub use testkit::WAIT;

pub const WEBHOOK_SECRET: &str = "tg-webhook-secret_0123456789";
pub const OPERATOR: i64 = 6_000_001;

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub sandbox: Sandbox,
    pub state: AppState,
    pub guard: Running,
    pub env: TestEnv,
}

/// Stops the app when dropped (also when a test panics).
pub struct Running {
    pub shutdown: CancellationToken,
    pub handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

#[derive(Default, Clone)]
pub struct Options {
    pub webhook: bool,
    pub emoji: Option<&'static str>,
    pub dev_id: Option<i64>,
    /// `OKDESK_ENABLED=true`.
    pub okdesk: bool,
    /// `OKDESK_RPC_TIMEOUT_SECS`, when not the default.
    pub rpc_timeout_secs: Option<u64>,
}

/// The settings of a test app through the real parser: `env`'s database and NATS prefix, the
/// sandbox as Telegram, no sending limits (the sandbox enforces none), and `opts`.
pub fn settings_for(sandbox: &Sandbox, env: &TestEnv, opts: &Options, base: &str) -> Settings {
    let o = sandbox.options();
    let mut vars = env.runtime_overrides();
    vars.extend([
        ("LOG_LEVEL", "debug".to_owned()),
        ("UPSTREAM_TIMEOUT_SECS", "5".to_owned()),
        ("BOT_TOKEN", o.telegram_bot_token.clone()),
        ("BOT_GROUP_ID", o.telegram_group_id.to_string()),
        ("BOT_EMOJI_ID", opts.emoji.unwrap_or_default().to_owned()),
        (
            "BOT_DEV_ID",
            opts.dev_id.map(|d| d.to_string()).unwrap_or_default(),
        ),
        ("TELEGRAM_API_URL", sandbox.telegram_api_url()),
        ("TELEGRAM_POLL_TIMEOUT_SECS", "2".to_owned()),
        ("TELEGRAM_RATE_PER_SEC", "0".to_owned()),
        ("TELEGRAM_CHAT_RATE_PER_SEC", "0".to_owned()),
        ("TELEGRAM_GROUP_RATE_PER_MIN", "0".to_owned()),
        ("TELEGRAM_FIX_RETRY_SECS", "1".to_owned()),
        ("WEBHOOK_ENABLED", opts.webhook.to_string()),
        ("OKDESK_ENABLED", opts.okdesk.to_string()),
    ]);
    if let Some(secs) = opts.rpc_timeout_secs {
        vars.push(("OKDESK_RPC_TIMEOUT_SECS", secs.to_string()));
    }
    if opts.webhook {
        vars.extend([
            ("WEBHOOK_URL", base.to_owned()),
            ("WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
        ]);
    }
    let cli: Cli = testkit::parse_config(&vars);
    Settings::from_config(&cli.config).expect("test settings are valid")
}

/// Everything the app logs (not the sandbox), for the test that looks for the token in it. Installed once per
/// process (nextest runs each test in its own), at `debug` for every crate (reqwest and hyper
/// included), before the app starts.
pub fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    let logs = LOGS
        .get_or_init(|| Arc::new(Mutex::new(Vec::new())))
        .clone();
    let sink = logs.clone();
    let _ = tracing_subscriber::fmt()
        // The sandbox is Telegram's side: its own request log shows the URL, as Telegram's
        // would. Everything of ours (and reqwest, hyper, sqlx, async-nats) is kept.
        .with_env_filter("debug,sandbox=off")
        .with_ansi(false)
        .with_writer(move || Sink(sink.clone()))
        .try_init();
    logs
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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
    let env = TestEnv::new("tg_test").await;
    start(sandbox, env, opts).await
}

/// Starts the app on an existing sandbox and database (for restarts).
pub async fn start(sandbox: Sandbox, env: TestEnv, opts: Options) -> TestApp {
    // In webhook mode the public URL must be known before binding: bind first on port 0 is
    // not possible through the settings, so the webhook URL points at a port picked now.
    let port = if opts.webhook {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().unwrap().port()
    } else {
        0
    };
    let base_guess = format!("http://127.0.0.1:{port}");
    let mut settings = settings_for(&sandbox, &env, &opts, &base_guess);
    settings.port = port;
    let app = telegram_bot::build(settings).await.expect("app builds");
    let port = app.port();
    let state = app.state().clone();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(app.run_until(shutdown.clone()));
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
        sandbox,
        state,
        guard: Running {
            shutdown,
            handle: Some(handle),
        },
        env,
    }
}

impl TestApp {
    /// Stops the app and waits until it has; returns the sandbox and database for a restart.
    pub async fn stop(self) -> (Sandbox, TestEnv) {
        let TestApp {
            sandbox,
            mut guard,
            env,
            ..
        } = self;
        guard.shutdown.cancel();
        if let Some(h) = guard.handle.take() {
            let _ = h.await;
        }
        (sandbox, env)
    }

    pub fn group(&self) -> i64 {
        self.sandbox.options().telegram_group_id
    }

    /// A customer writes `content` in their private chat with the bot.
    pub fn customer_sends(&self, user: &TgUser, content: Value) -> PushedUpdate {
        self.sandbox
            .telegram_push_update(sandbox::telegram::private_message(user, content))
    }

    /// An operator writes `content` in topic `thread`.
    pub fn operator_sends(&self, thread: i64, content: Value) -> PushedUpdate {
        let op = TgUser::new(OPERATOR, "Olga");
        self.sandbox
            .telegram_push_update(sandbox::telegram::group_message(
                self.group(),
                &op,
                Some(thread),
                true,
                content,
            ))
    }

    /// The bot's messages in the group's topic `thread`, oldest first.
    pub fn topic_messages(&self, thread: i64) -> Vec<Value> {
        self.sandbox
            .telegram_bot_messages(self.group())
            .into_iter()
            .filter(|m| m["message_thread_id"].as_i64() == Some(thread))
            .collect()
    }

    /// The bot's messages to a customer, oldest first.
    pub fn to_customer(&self, user: i64) -> Vec<Value> {
        self.sandbox.telegram_bot_messages(user)
    }

    /// Waits until the bot has sent `n` messages (card included) into topic `thread`.
    pub async fn wait_topic_len(&self, thread: i64, n: usize) -> Vec<Value> {
        let group = self.group();
        self.sandbox
            .wait_until(WAIT, |s| {
                s.telegram_bot_messages(group)
                    .iter()
                    .filter(|m| m["message_thread_id"].as_i64() == Some(thread))
                    .count()
                    >= n
            })
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "topic {thread} has {:?}, wanted {n} messages",
                    self.topic_messages(thread)
                )
            });
        self.topic_messages(thread)
    }

    /// Waits for the first topic; returns its thread id.
    pub async fn wait_topic(&self, n: usize) -> i64 {
        self.sandbox
            .wait_until(WAIT, |s| {
                s.telegram_topics().iter().filter(|t| !t.deleted).count() >= n
            })
            .await
            .expect("a topic is created");
        self.sandbox
            .telegram_topics()
            .iter()
            .filter(|t| !t.deleted)
            .nth(n - 1)
            .expect("topic")
            .message_thread_id
    }

    pub async fn wait_customer_len(&self, user: i64, n: usize) -> Vec<Value> {
        self.sandbox
            .wait_until(WAIT, |s| s.telegram_bot_messages(user).len() >= n)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "customer {user} got {:?}, wanted {n}",
                    self.to_customer(user)
                )
            });
        self.to_customer(user)
    }

    /// Messages stored in this app's stream `EVENTS`.
    pub async fn events_stored(&self) -> u64 {
        let mut s = self
            .state
            .bus
            .jetstream()
            .get_stream(self.state.bus.events_stream())
            .await
            .expect("stream exists");
        s.info().await.expect("stream info").state.messages
    }

    /// POSTs `body` to the webhook route with `secret` in the header.
    pub async fn post_webhook(&self, secret: Option<&str>, body: String) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/telegram/webhook", self.base))
            .header("content-type", "application/json")
            .body(body);
        if let Some(s) = secret {
            req = req.header("X-Telegram-Bot-Api-Secret-Token", s);
        }
        req.send().await.expect("webhook request")
    }
}

pub fn ivan() -> TgUser {
    TgUser::new(5_000_001, "Ivan")
        .last_name("Petrov")
        .username("ivanp")
        .language_code("ru")
}

pub fn anna() -> TgUser {
    TgUser::new(5_000_002, "Anna").language_code("en")
}

pub fn text(t: &str) -> Value {
    json!({ "text": t })
}
