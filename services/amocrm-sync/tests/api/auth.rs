//! Wrong token, wrong signature, wrong account, the JSON route while it is off: refused, and
//! nothing reaches NATS or Postgres.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::helpers::*;

fn legacy() -> Options {
    Options {
        legacy_json: true,
        ..Options::default()
    }
}

fn one_lead() -> String {
    body_of(&[&lead_entry("add", 0, 901, "Чужая сделка", 1, T0)])
}

#[tokio::test]
async fn a_wrong_webhook_token_is_404() {
    let app = spawn_app().await;
    assert_eq!(
        app.post_form_to("amo-hook-guess", one_lead())
            .await
            .status(),
        404
    );
    assert_eq!(app.post_form_to("", one_lead()).await.status(), 404);
    assert_eq!(app.events_stored().await, 0);
    assert_eq!(app.count("SELECT count(*) FROM amocrm.leads").await, 0);
    app.cleanup().await;
}

#[tokio::test]
async fn a_missing_or_wrong_signature_is_401() {
    let app = spawn_app_with(legacy()).await;
    let body = json!({"account": {"subdomain": SUBDOMAIN},
                      "leads": {"add": [{"id": 902, "name": "x", "updated_at": T0}]}});
    let account = ACCOUNT_ID.to_string();
    let good =
        amocrm_sync::http::webhook::sign(sandbox::amocrm::CLIENT_SECRET, CLIENT_UUID, &account);
    let forged = amocrm_sync::http::webhook::sign("not-the-secret", CLIENT_UUID, &account);
    for (uuid, acc, sig) in [
        (None, Some(account.as_str()), Some(good.as_str())),
        (Some(CLIENT_UUID), None, Some(good.as_str())),
        (Some(CLIENT_UUID), Some(account.as_str()), None),
        (
            Some(CLIENT_UUID),
            Some(account.as_str()),
            Some(forged.as_str()),
        ),
        (Some(CLIENT_UUID), Some("1"), Some(good.as_str())),
        (Some(CLIENT_UUID), Some(account.as_str()), Some("not-hex")),
    ] {
        let res = app.post_json_signed(&body, uuid, acc, sig).await;
        assert_eq!(res.status(), 401, "{uuid:?} {acc:?} {sig:?}");
        let answer: Value = res.json().await.unwrap();
        assert_eq!(answer["status"], "error");
    }
    assert_eq!(app.events_stored().await, 0);
    assert_eq!(app.count("SELECT count(*) FROM amocrm.leads").await, 0);
    app.cleanup().await;
}

#[tokio::test]
async fn another_accounts_webhook_is_403() {
    let app = spawn_app_with(legacy()).await;
    let lead = lead_entry("add", 0, 903, "Сделка другого аккаунта", 1, T0);
    let mut pairs = lead.pairs.clone();
    pairs.push(("account[subdomain]".into(), "someoneelse".into()));
    pairs.push(("account[id]".into(), "1".into()));
    assert_eq!(app.post_form(form(&pairs)).await.status(), 403);
    // Without any account at all: not from amoCRM.
    assert_eq!(app.post_form(form(&lead.pairs)).await.status(), 403);
    let res = app
        .post_json(&json!({"account": {"subdomain": "someoneelse"},
                           "leads": {"add": [{"id": 904, "updated_at": T0}]}}))
        .await;
    assert_eq!(res.status(), 403);
    // The signature covers no body: a JSON body must name the account, as a form body must …
    let (status, answer) = signed(
        &app,
        json!({"leads": {"add": [{"id": 905, "updated_at": T0}]}}),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("account.subdomain is missing"),
        "{answer}"
    );
    // … and its account id is the one the signature covers.
    let (status, answer) = signed(
        &app,
        json!({"account": {"subdomain": SUBDOMAIN, "id": 1},
                                         "leads": {"add": [{"id": 906, "updated_at": T0}]}}),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("X-Account-ID"),
        "{answer}"
    );
    assert_eq!(app.events_stored().await, 0);
    assert_eq!(app.count("SELECT count(*) FROM amocrm.leads").await, 0);
    app.cleanup().await;
}

/// Posts `body` to the JSON route with a good signature of the sandbox account, as it is.
async fn signed(app: &TestApp, body: Value) -> (u16, Value) {
    let account = ACCOUNT_ID.to_string();
    let sig =
        amocrm_sync::http::webhook::sign(sandbox::amocrm::CLIENT_SECRET, CLIENT_UUID, &account);
    let res = app
        .post_json_signed(&body, Some(CLIENT_UUID), Some(&account), Some(&sig))
        .await;
    let status = res.status().as_u16();
    (status, res.json::<Value>().await.unwrap())
}

#[tokio::test]
async fn the_json_route_is_404_unless_turned_on() {
    let app = spawn_app().await;
    let res = app
        .post_json(&json!({"leads": {"add": [{"id": 907, "name": "x", "updated_at": T0}]}}))
        .await;
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "error");
    assert_eq!(app.events_stored().await, 0);
    // amoCRM's own route is unaffected.
    assert_eq!(app.post_form(one_lead()).await.status(), 200);
    app.cleanup().await;
}

/// Log lines written while it is the thread's subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

async fn start_logs(opts: Options) -> String {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // The test runtime runs on this thread, so the app's start is logged here.
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = spawn_app_with(opts).await;
    assert_eq!(app.post_form(one_lead()).await.status(), 200);
    app.cleanup().await;
    logs.text()
}

#[tokio::test]
async fn turning_the_json_route_on_warns_once_at_start() {
    let on = start_logs(legacy()).await;
    let warnings = on
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("AMOCRM_LEGACY_JSON_WEBHOOK=true"))
        .count();
    assert_eq!(warnings, 1, "{on}");
    assert!(on.contains("covers neither the body"), "{on}");
    let off = start_logs(Options::default()).await;
    assert!(!off.contains("AMOCRM_LEGACY_JSON_WEBHOOK"), "{off}");
}
