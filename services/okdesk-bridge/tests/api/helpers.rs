//! `spawn_app`: the real okdesk-bridge with a fresh database, unique NATS streams and the
//! sandbox Okdesk; helpers to publish commands and read the events it published.

use std::time::Duration;

use domain::{Command, Envelope, Event, IdempotencyKey, Requester, Source};
use okdesk_bridge::AppState;
use okdesk_bridge::config::{Cli, Settings};
use sandbox::Sandbox;
use testkit::TestEnv;
use tokio_util::sync::CancellationToken;

pub use testkit::WAIT;

pub const WEBHOOK_TOKEN: &str = "okdesk-hook-3f9a1c7e5b2d";

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub sandbox: Sandbox,
    pub state: AppState,
    /// Stops the app when the test ends; then `_env` drops the database and streams.
    pub _guard: Running,
    pub _env: TestEnv,
}

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
    /// Poll interval; `None` = no poll (tests call `poll::round` themselves).
    pub poll: Option<Duration>,
    /// Whether the sandbox delivers webhooks to the app.
    pub webhook: bool,
}

pub fn settings_for(sandbox: &Sandbox, env: &TestEnv, opts: &Options) -> Settings {
    let o = sandbox.options();
    let mut vars = env.runtime_overrides();
    vars.extend([
        ("LOG_LEVEL", "warn".to_owned()),
        ("UPSTREAM_TIMEOUT_SECS", "3".to_owned()),
        ("OKDESK_API_URL", sandbox.okdesk_api_url()),
        ("OKDESK_API_TOKEN", o.okdesk_api_token.clone()),
        ("OKDESK_WEBHOOK_TOKEN", WEBHOOK_TOKEN.to_owned()),
        (
            "OKDESK_INN_PARAMETER_CODE",
            o.okdesk_inn_parameter_code.clone(),
        ),
        (
            "OKDESK_POLL_INTERVAL_SECS",
            opts.poll.map_or(0, |d| d.as_secs()).to_string(),
        ),
    ]);
    let cli: Cli = testkit::parse_config(&vars);
    Settings::from_config(&cli.config).expect("test settings are valid")
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
    let env = TestEnv::new("okdesk_test").await;
    let settings = settings_for(&sandbox, &env, &opts);
    let app = okdesk_bridge::build(settings).await.expect("app builds");
    let port = app.port();
    let state = app.state().clone();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(app.run_until(shutdown.clone()));
    let base = format!("http://127.0.0.1:{port}");
    if opts.webhook {
        sandbox.okdesk_set_webhook(Some(format!("{base}/okdesk/webhook/{WEBHOOK_TOKEN}")));
    }
    TestApp {
        base,
        http: reqwest::Client::new(),
        sandbox,
        state,
        _guard: Running {
            shutdown,
            handle: Some(handle),
        },
        _env: env,
    }
}

pub fn requester(user_id: i64) -> Requester {
    Requester {
        system: "telegram".into(),
        bot_id: 7_000_000_001,
        user_id,
    }
}

impl TestApp {
    /// Publishes `command` with idempotency key `key` as telegram-bot would.
    pub async fn send(&self, key: &str, command: Command) {
        let env = Envelope::new(
            Source::Telegram,
            time::OffsetDateTime::now_utc(),
            IdempotencyKey::from_parts(&["test", key]),
            command,
        );
        self.state.bus.publish(&env).await.expect("published");
    }

    /// Every event okdesk-bridge published so far, oldest first.
    pub async fn events(&self) -> Vec<Event> {
        let js = self.state.bus.jetstream();
        let mut stream = js
            .get_stream(self.state.bus.events_stream())
            .await
            .expect("stream");
        let last = stream.info().await.expect("info").state.last_sequence;
        let mut out = Vec::new();
        for seq in 1..=last {
            let Ok(m) = stream.get_raw_message(seq).await else {
                continue;
            };
            if let Ok(env) = Envelope::<Event>::decode(&m.payload) {
                out.push(env.payload);
            }
        }
        out
    }

    /// Waits until `pred` holds for the published events; returns them.
    pub async fn wait_events<F: Fn(&[Event]) -> bool>(&self, what: &str, pred: F) -> Vec<Event> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let ev = self.events().await;
            if pred(&ev) {
                return ev;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; events: {ev:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn post_webhook(&self, token: &str, body: String) -> reqwest::Response {
        self.http
            .post(format!("{}/okdesk/webhook/{token}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("webhook request")
    }
}

impl TestApp {
    /// A contact made through the API, as an Okdesk employee would.
    pub async fn add_contact(&self, first: &str, last: &str, phone: &str) -> i64 {
        self.state
            .okdesk
            .create_contact(okdesk_api::NewContact {
                first_name: first.into(),
                last_name: last.into(),
                mobile_phone: Some(phone.into()),
                ..Default::default()
            })
            .await
            .expect("contact created")
            .id
    }

    /// An issue of `contact` made through the API.
    pub async fn add_issue(&self, title: &str, contact: i64) -> i64 {
        self.state
            .okdesk
            .create_issue(okdesk_api::NewIssue {
                title: title.into(),
                contact_id: Some(contact),
                ..Default::default()
            })
            .await
            .expect("issue created")
            .id
    }

    /// Every webhook body the sandbox delivered (or tried to).
    pub fn webhook_bodies(&self) -> Vec<String> {
        self.sandbox
            .okdesk_webhook_deliveries()
            .into_iter()
            .map(|d| d.body)
            .collect()
    }
}

pub fn count<F: Fn(&Event) -> bool>(events: &[Event], f: F) -> usize {
    events.iter().filter(|e| f(e)).count()
}
