//! `spawn_app`: the real amocrm-sync on port 0 with a fresh database, unique NATS streams and a
//! sandbox amoCRM, its settings parsed by the real command line; builders for webhook bodies in
//! amoCRM's exact form format.

#![allow(dead_code)]

use std::time::Duration;

use amocrm_sync::AppState;
use amocrm_sync::config::{Cli, Settings};
use sandbox::Sandbox;
use serde_json::Value;
use testkit::TestEnv;
use tokio_util::sync::CancellationToken;

pub use testkit::wait_for;

pub const WEBHOOK_TOKEN: &str = "amo-hook-5c1e9a7f3d2b";
pub const CLIENT_UUID: &str = "7d3f1a52-9a6e-4b8e-8f1c-1b2d3c4e5f60";
pub const ACCOUNT_ID: i64 = sandbox::amocrm::ACCOUNT_ID;
pub const SUBDOMAIN: &str = sandbox::amocrm::SUBDOMAIN;
/// 2026-11-22T12:00:00Z
pub const T0: i64 = 1_795_348_800;

/// The app under test. Dropping it stops the app and removes its database and streams (the
/// [`TestEnv`]), also when the test panicked.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub sandbox: Sandbox,
    pub state: AppState,
    pub shutdown: CancellationToken,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub db_name: String,
    pub db_url: String,
    /// Last field: dropped after the app was told to stop.
    env: TestEnv,
}

/// Knobs of a test app.
pub struct Options {
    pub retry_delays: Vec<Duration>,
    pub db_retry: Duration,
    pub fetch_leads: bool,
    pub concurrency: usize,
    /// `AMOCRM_LEGACY_JSON_WEBHOOK`.
    pub legacy_json: bool,
    /// `AMOCRM_MAX_ENTRIES_PER_WEBHOOK`; `None` leaves the default.
    pub max_entries: Option<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            retry_delays: vec![
                Duration::ZERO,
                Duration::from_millis(100),
                Duration::from_millis(200),
            ],
            db_retry: Duration::from_millis(200),
            fetch_leads: true,
            concurrency: 2,
            legacy_json: false,
            max_entries: None,
        }
    }
}

fn secs(d: Duration) -> String {
    d.as_secs_f64().to_string()
}

/// The settings of a test app, through the real parser: the test's values by their
/// environment names, everything else as the service defaults it.
pub fn settings_for(sandbox: &Sandbox, env: &TestEnv, opts: &Options) -> Settings {
    let mut vars = env.runtime_overrides();
    vars.extend([
        ("LOG_LEVEL", "warn".to_owned()),
        ("AMOCRM_DOMAIN", format!("{SUBDOMAIN}.amocrm.ru")),
        ("AMOCRM_BASE_URL", sandbox.amocrm_url()),
        ("AMOCRM_CLIENT_ID", sandbox::amocrm::CLIENT_ID.to_owned()),
        (
            "AMOCRM_CLIENT_SECRET",
            sandbox::amocrm::CLIENT_SECRET.to_owned(),
        ),
        (
            "AMOCRM_REDIRECT_URI",
            "https://amocrm.example.com/api/auth/amo/callback".to_owned(),
        ),
        ("AMOCRM_WEBHOOK_TOKEN", WEBHOOK_TOKEN.to_owned()),
        ("AMOCRM_FETCH_LEADS", opts.fetch_leads.to_string()),
        ("AMOCRM_API_RPS", "7".to_owned()),
        ("AMOCRM_API_RETRY_MIN_MS", "50".to_owned()),
        ("AMOCRM_TOKEN_REFRESH_MARGIN_SECS", "600".to_owned()),
        (
            "AMOCRM_RETRY_DELAYS_SECS",
            opts.retry_delays
                .iter()
                .map(|d| secs(*d))
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("AMOCRM_DB_RETRY_SECS", secs(opts.db_retry)),
        ("AMOCRM_CONSUMER_CONCURRENCY", opts.concurrency.to_string()),
        ("AMOCRM_LEGACY_JSON_WEBHOOK", opts.legacy_json.to_string()),
    ]);
    if let Some(max) = opts.max_entries {
        vars.push(("AMOCRM_MAX_ENTRIES_PER_WEBHOOK", max.to_string()));
    }
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
    let env = TestEnv::new("amocrm_test").await;
    let settings = settings_for(&sandbox, &env, &opts);
    let app = amocrm_sync::build(settings).await.expect("app builds");
    let port = app.port();
    let state = app.state().clone();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(app.run_until(shutdown.clone()));
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
        sandbox,
        state,
        shutdown,
        handle: Some(handle),
        db_name: env.db_name.clone(),
        db_url: env.database_url.clone(),
        env,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // The TestEnv (dropped after this) removes the database and the streams.
        self.shutdown.cancel();
    }
}

/// An amoCRM form body: pairs encoded as amoCRM sends them (brackets percent-encoded, spaces
/// as `+`).
pub fn form(pairs: &[(String, String)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// `{section}[{action}][{n}][…]` pairs of one entity.
pub struct EntityForm {
    prefix: String,
    pub pairs: Vec<(String, String)>,
    fields: usize,
}

impl EntityForm {
    pub fn new(section: &str, action: &str, n: usize, id: i64) -> Self {
        let mut e = Self {
            prefix: format!("{section}[{action}][{n}]"),
            pairs: Vec::new(),
            fields: 0,
        };
        e.set("id", &id.to_string());
        e
    }

    pub fn set(&mut self, key: &str, value: &str) -> &mut Self {
        self.pairs
            .push((format!("{}[{key}]", self.prefix), value.to_owned()));
        self
    }

    /// A custom field with one value (`values[0][value]`), like amoCRM writes text fields.
    pub fn field(&mut self, id: i64, name: &str, value: &str) -> &mut Self {
        let p = format!("{}[custom_fields][{}]", self.prefix, self.fields);
        self.pairs.push((format!("{p}[id]"), id.to_string()));
        self.pairs.push((format!("{p}[name]"), name.to_owned()));
        self.pairs
            .push((format!("{p}[values][0][value]"), value.to_owned()));
        self.fields += 1;
        self
    }

    /// A field with a code and an enum (phones, e-mails).
    pub fn coded_field(&mut self, id: i64, code: &str, value: &str, enum_id: i64) -> &mut Self {
        let p = format!("{}[custom_fields][{}]", self.prefix, self.fields);
        self.pairs.push((format!("{p}[id]"), id.to_string()));
        self.pairs.push((format!("{p}[code]"), code.to_owned()));
        self.pairs
            .push((format!("{p}[values][0][value]"), value.to_owned()));
        self.pairs
            .push((format!("{p}[values][0][enum]"), enum_id.to_string()));
        self.fields += 1;
        self
    }
}

/// A lead entry as amoCRM sends it for add/update/status.
pub fn lead_entry(
    action: &str,
    n: usize,
    id: i64,
    name: &str,
    status_id: i64,
    at: i64,
) -> EntityForm {
    let mut e = EntityForm::new("leads", action, n, id);
    e.set("name", name)
        .set("status_id", &status_id.to_string())
        .set("price", "150000")
        .set("responsible_user_id", "504141")
        .set("last_modified", &at.to_string())
        .set("modified_user_id", "504141")
        .set("created_user_id", "504141")
        .set("date_create", &(at - 3600).to_string())
        .set("pipeline_id", "7331")
        .set("account_id", &ACCOUNT_ID.to_string());
    e
}

/// The `account[…]` pairs of the sandbox account.
pub fn account() -> Vec<(String, String)> {
    vec![
        ("account[subdomain]".into(), SUBDOMAIN.into()),
        ("account[id]".into(), ACCOUNT_ID.to_string()),
        (
            "account[_links][self]".into(),
            format!("https://{SUBDOMAIN}.amocrm.ru"),
        ),
    ]
}

/// A whole form body of these entries plus the account.
pub fn body_of(entries: &[&EntityForm]) -> String {
    let mut pairs: Vec<(String, String)> = entries.iter().flat_map(|e| e.pairs.clone()).collect();
    pairs.extend(account());
    form(&pairs)
}

#[derive(Debug, sqlx::FromRow)]
pub struct LeadRow {
    pub id: i64,
    pub name: Option<String>,
    pub price: Option<i64>,
    pub status_id: Option<i64>,
    pub status: Option<String>,
    pub responsible_user_id: Option<i64>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_content: Option<String>,
    pub utm_term: Option<String>,
    pub object_price: Option<String>,
    pub commission: Option<String>,
    pub custom_fields: Value,
    pub updated_at: time::OffsetDateTime,
    pub deleted_at: Option<time::OffsetDateTime>,
    pub synced_at: time::OffsetDateTime,
}

#[derive(Debug, sqlx::FromRow)]
pub struct ContactRow {
    pub id: i64,
    pub name: Option<String>,
    pub phones: Vec<String>,
    pub emails: Vec<String>,
    pub deleted_at: Option<time::OffsetDateTime>,
}

impl TestApp {
    pub async fn post_form(&self, body: String) -> reqwest::Response {
        self.post_form_to(WEBHOOK_TOKEN, body).await
    }

    pub async fn post_form_to(&self, token: &str, body: String) -> reqwest::Response {
        self.http
            .post(format!("{}/api/webhooks/amo/{token}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("webhook request")
    }

    /// The JSON route, signed as the existing clients sign; a body without `account` gets the
    /// sandbox account's (the route refuses bodies that do not name it).
    pub async fn post_json(&self, body: &Value) -> reqwest::Response {
        let mut body = body.clone();
        if body.get("account").is_none() {
            body["account"] = serde_json::json!({"subdomain": SUBDOMAIN, "id": ACCOUNT_ID});
        }
        let body = &body;
        let sig = amocrm_sync::http::webhook::sign(
            sandbox::amocrm::CLIENT_SECRET,
            CLIENT_UUID,
            &ACCOUNT_ID.to_string(),
        );
        self.post_json_signed(
            body,
            Some(CLIENT_UUID),
            Some(&ACCOUNT_ID.to_string()),
            Some(&sig),
        )
        .await
    }

    pub async fn post_json_signed(
        &self,
        body: &Value,
        client_uuid: Option<&str>,
        account_id: Option<&str>,
        signature: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/api/webhooks/amo", self.base))
            .json(body);
        for (h, v) in [
            ("X-Client-UUID", client_uuid),
            ("X-Account-ID", account_id),
            ("X-Signature", signature),
        ] {
            if let Some(v) = v {
                req = req.header(h, v);
            }
        }
        req.send().await.expect("webhook request")
    }

    /// A consent link's `state`, made as `amocrm-sync oauth-url` makes it.
    pub async fn oauth_state(&self, valid_for: Duration) -> String {
        let link = amocrm_sync::oauth::consent_link(
            &self.state.store,
            &self.state.settings,
            amocrm_sync::config::ConsentMode::PostMessage,
            valid_for,
        )
        .await
        .expect("a consent link");
        url::Url::parse(&link.url)
            .expect("an absolute URL")
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .expect("a state in the link")
    }

    /// The webhook bodies kept as dead letters: (reason, payload).
    pub async fn kept_bodies(&self) -> Vec<(String, Value)> {
        sqlx::query_as(
            "SELECT reason, payload FROM amocrm.dead_letters WHERE subject = $1 ORDER BY id",
        )
        .bind(amocrm_sync::http::webhook::DEAD_LETTER_SUBJECT)
        .fetch_all(self.pool())
        .await
        .expect("query dead letters")
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        self.state.store.pool()
    }

    pub async fn lead(&self, id: i64) -> Option<LeadRow> {
        sqlx::query_as(
            "SELECT id, name, price, status_id, status, responsible_user_id, utm_source, utm_medium, \
             utm_campaign, utm_content, utm_term, object_price::text AS object_price, \
             commission::text AS commission, custom_fields, updated_at, deleted_at, synced_at \
             FROM amocrm.leads WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .expect("query leads")
    }

    pub async fn contact(&self, id: i64) -> Option<ContactRow> {
        sqlx::query_as(
            "SELECT id, name, phones, emails, deleted_at FROM amocrm.contacts WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .expect("query contacts")
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(self.pool())
            .await
            .expect("count query")
    }

    /// Stage history of a lead: (status_id, old_status_id), oldest first.
    pub async fn history(&self, lead_id: i64) -> Vec<(i64, Option<i64>)> {
        sqlx::query_as(
            "SELECT status_id, old_status_id FROM amocrm.lead_status_history \
             WHERE lead_id = $1 ORDER BY changed_at, id",
        )
        .bind(lead_id)
        .fetch_all(self.pool())
        .await
        .expect("query history")
    }

    /// Waits until the lead row satisfies `pred`.
    pub async fn wait_lead<F: Fn(&LeadRow) -> bool>(&self, id: i64, pred: F) -> LeadRow {
        let what = format!("lead {id} stored as expected");
        let pred = &pred;
        wait_for(&what, || async move {
            self.lead(id).await.is_some_and(|r| pred(&r))
        })
        .await;
        self.lead(id).await.expect("lead row")
    }

    pub async fn wait_contact<F: Fn(&ContactRow) -> bool>(&self, id: i64, pred: F) -> ContactRow {
        let what = format!("contact {id} stored as expected");
        let pred = &pred;
        wait_for(&what, || async move {
            self.contact(id).await.is_some_and(|r| pred(&r))
        })
        .await;
        self.contact(id).await.expect("contact row")
    }

    /// Messages in this app's `EVENTS` stream.
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

    /// The last message on `events.amocrm.<type>` (with this app's prefix), decoded.
    pub async fn last_event(&self, event_type: &str) -> Option<domain::Envelope<domain::Event>> {
        let subject = self
            .state
            .bus
            .wire_subject(&domain::Subject::event(domain::Source::Amocrm, event_type));
        let stream = self
            .state
            .bus
            .jetstream()
            .get_stream(self.state.bus.events_stream())
            .await
            .ok()?;
        let msg = stream
            .get_last_raw_message_by_subject(&subject)
            .await
            .ok()?;
        domain::Envelope::decode(&msg.payload).ok()
    }

    /// Waits until the store consumer has acknowledged everything in the stream.
    pub async fn wait_consumed(&self) {
        let js = self.state.bus.jetstream().clone();
        let stream_name = self.state.bus.events_stream();
        wait_for("the store consumer to acknowledge every event", || {
            let js = js.clone();
            let stream_name = stream_name.clone();
            async move {
                let Ok(mut stream) = js.get_stream(&stream_name).await else {
                    return false;
                };
                let Ok(info) = stream.info().await else {
                    return false;
                };
                let last = info.state.last_sequence;
                let Ok(c) = stream
                    .consumer_info(amocrm_sync::consumers::sync::DURABLE)
                    .await
                else {
                    return false;
                };
                c.ack_floor.stream_sequence >= last && c.num_ack_pending == 0
            }
        })
        .await;
    }

    /// Stops the app and waits for it; dropping it then removes its streams and database.
    pub async fn cleanup(mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
        }
        self.state.store.pool().close().await;
    }

    /// The value of the counter `consumer_messages_total` of the store consumer for `outcome`
    /// (`ok`, `retry`, `unavailable`, `dead_letter`), from this app's `/metrics`.
    pub async fn consumer_count(&self, outcome: &str) -> u64 {
        let metrics = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics request")
            .text()
            .await
            .expect("metrics body");
        let durable = format!("durable=\"{}\"", amocrm_sync::consumers::sync::DURABLE);
        let outcome = format!("outcome=\"{outcome}\"");
        metrics
            .lines()
            .filter(|l| l.starts_with("consumer_messages_total{"))
            .filter(|l| l.contains(&durable) && l.contains(&outcome))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum()
    }
}

/// An admin connection (the test role may alter databases).
pub async fn admin() -> sqlx::PgPool {
    sqlx::PgPool::connect(&testkit::admin_url())
        .await
        .expect("admin connection")
}
