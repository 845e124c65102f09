//! OAuth 2.0 with amoCRM's rotating refresh tokens, the consent link's `state`, and API v4
//! completing a lead (429 included).

use std::time::Duration;

use sandbox::{Failure, Target};
use serde_json::{Value, json};

use crate::helpers::*;

async fn callback(app: &TestApp, query: &str) -> (u16, Value) {
    let res = app
        .http
        .get(format!("{}/api/auth/amo/callback?{query}", app.base))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[derive(sqlx::FromRow, Debug, Clone, PartialEq)]
struct Pair {
    access_token: String,
    refresh_token: String,
}

async fn stored(app: &TestApp) -> Pair {
    sqlx::query_as("SELECT access_token, refresh_token FROM amocrm.oauth_tokens")
        .fetch_one(app.pool())
        .await
        .expect("a stored pair")
}

/// Makes the stored access token due for refresh (inside the 600 s margin).
async fn expire_soon(app: &TestApp) {
    sqlx::query("UPDATE amocrm.oauth_tokens SET expires_at = now() + interval '30 seconds'")
        .execute(app.pool())
        .await
        .unwrap();
}

/// The Install path: amoCRM sends `code`, `referer` and `from_widget`, no state.
pub async fn authorize(app: &TestApp) {
    let code = app.sandbox.amocrm_authorize();
    let (status, body) = callback(
        app,
        &format!("code={code}&referer={SUBDOMAIN}.amocrm.ru&from_widget=1"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn the_callback_exchanges_the_code_and_keeps_the_tokens_to_itself() {
    let app = spawn_app().await;
    let code = app.sandbox.amocrm_authorize();
    // `referer` is the caller's word: naming another account changes nothing.
    let (status, body) = callback(&app, &format!("code={code}&referer=other.amocrm.ru")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success");
    let pair = stored(&app).await;
    assert!(app.sandbox.amocrm_access_token_valid(&pair.access_token));
    assert!(!body.to_string().contains(&pair.access_token));
    assert!(!body.to_string().contains(&pair.refresh_token));
    // A code works once.
    let (status, body) = callback(&app, &format!("code={code}")).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
    // Another account's consent (its code is exchanged, but the pair does not open this
    // account), also when it claims to be ours, and a refusal: the stored pair stays.
    let code = app.sandbox.amocrm_authorize_other_account();
    let (status, body) =
        callback(&app, &format!("code={code}&referer={SUBDOMAIN}.amocrm.ru")).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("another amoCRM account"),
        "{body}"
    );
    assert_eq!(callback(&app, "error=access_denied").await.0, 400);
    assert_eq!(stored(&app).await, pair);
    let token_calls = app
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/oauth2/access_token"))
        .count();
    assert_eq!(token_calls, 3);
    app.cleanup().await;
}

#[tokio::test]
async fn a_consent_links_state_is_accepted_once_and_unknown_or_expired_ones_are_400() {
    let app = spawn_app().await;
    let state = app.oauth_state(Duration::from_secs(1800)).await;
    assert_eq!(state.len(), 32, "128 random bits in hex: {state}");
    let stored_states: Vec<String> =
        sqlx::query_scalar("SELECT state_sha256 FROM amocrm.oauth_states")
            .fetch_all(app.pool())
            .await
            .unwrap();
    assert_eq!(stored_states.len(), 1);
    assert_ne!(stored_states[0], state, "only a digest is stored");

    let code = app.sandbox.amocrm_authorize();
    let (status, body) = callback(
        &app,
        &format!("code={code}&state={state}&referer={SUBDOMAIN}.amocrm.ru"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let pair = stored(&app).await;

    let message = |body: &Value| body["message"].as_str().unwrap().to_owned();
    // The same state again, with a fresh code: refused before amoCRM is asked.
    let (status, body) = callback(
        &app,
        &format!("code={}&state={state}", app.sandbox.amocrm_authorize()),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("already used"), "{body}");
    // A state we never issued.
    let (status, body) = callback(
        &app,
        &format!(
            "code={}&state=0123456789abcdef0123456789abcdef",
            app.sandbox.amocrm_authorize()
        ),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("unknown"), "{body}");
    assert!(message(&body).contains("amocrm-sync oauth-url"), "{body}");
    // An expired one.
    let late = app.oauth_state(Duration::from_secs(1800)).await;
    sqlx::query("UPDATE amocrm.oauth_states SET expires_at = now() - interval '1 second' WHERE used_at IS NULL")
        .execute(app.pool())
        .await
        .unwrap();
    let (status, body) = callback(
        &app,
        &format!("code={}&state={late}", app.sandbox.amocrm_authorize()),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("expired"), "{body}");

    assert_eq!(
        stored(&app).await,
        pair,
        "no refused callback touched the pair"
    );
    let token_calls = app
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/oauth2/access_token"))
        .count();
    assert_eq!(token_calls, 1, "refused states never reach amoCRM");
    app.cleanup().await;
}

/// `amocrm-sync oauth-url` prints the consent link, and only it, on stdout (its logs go to
/// stderr); the link's state then passes the callback once.
#[tokio::test]
async fn oauth_url_prints_amocrms_consent_link_with_a_fresh_state() {
    let app = spawn_app().await;
    let run = |args: &[&str]| {
        let rt = &app.state.settings.runtime;
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_amocrm-sync"))
            .args(args)
            .current_dir(std::env::temp_dir())
            .env_clear()
            .env("DATABASE_URL", &app.db_url)
            .env("NATS_URL", &rt.nats_url)
            .env("LOG_LEVEL", "debug")
            .env("AMOCRM_DOMAIN", format!("{SUBDOMAIN}.amocrm.ru"))
            .env("AMOCRM_CLIENT_ID", sandbox::amocrm::CLIENT_ID)
            .env("AMOCRM_CLIENT_SECRET", sandbox::amocrm::CLIENT_SECRET)
            .env(
                "AMOCRM_REDIRECT_URI",
                "https://amocrm.example.com/api/auth/amo/callback",
            )
            .env("AMOCRM_WEBHOOK_TOKEN", WEBHOOK_TOKEN)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
    };
    let (stdout, stderr) = run(&["oauth-url"]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "only the link on stdout:\n{stdout}");
    let link = url::Url::parse(lines[0]).expect("a URL");
    assert_eq!(
        link.as_str().split('?').next(),
        Some("https://www.amocrm.ru/oauth")
    );
    let q: Vec<(String, String)> = link.query_pairs().into_owned().collect();
    let state = q[1].1.clone();
    assert_eq!(
        q,
        vec![
            (
                "client_id".to_owned(),
                sandbox::amocrm::CLIENT_ID.to_owned()
            ),
            ("state".to_owned(), state.clone()),
            ("mode".to_owned(), "post_message".to_owned()),
        ]
    );
    assert!(stderr.contains("works once"), "{stderr}");
    let (popup, _) = run(&["oauth-url", "--mode", "popup", "--valid-minutes", "5"]);
    assert!(popup.trim_end().ends_with("&mode=popup"), "{popup}");
    assert!(!popup.contains(&state), "every link has its own state");

    let code = app.sandbox.amocrm_authorize();
    let (status, body) = callback(&app, &format!("code={code}&state={state}")).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = callback(
        &app,
        &format!("code={}&state={state}", app.sandbox.amocrm_authorize()),
    )
    .await;
    assert_eq!(status, 400);
    app.cleanup().await;
}

#[tokio::test]
async fn refresh_rotates_and_the_old_pair_stays_until_the_new_one_is_stored() {
    let app = spawn_app().await;
    authorize(&app).await;
    let p1 = stored(&app).await;

    // Due for refresh: the next use refreshes and stores the rotated pair.
    expire_soon(&app).await;
    let access = app.state.tokens.access_token().await.unwrap().unwrap();
    let p2 = stored(&app).await;
    assert_ne!(p2.refresh_token, p1.refresh_token);
    assert_eq!(access, p2.access_token);
    // amoCRM keeps the old refresh token until the new pair is used …
    assert!(app.sandbox.amocrm_refresh_token_valid(&p1.refresh_token));
    app.state.tokens.check().await.expect("the new token works");
    // … and revokes it then.
    assert!(!app.sandbox.amocrm_refresh_token_valid(&p1.refresh_token));
    assert!(app.sandbox.amocrm_refresh_token_valid(&p2.refresh_token));

    // Storing the next pair fails (Postgres refuses the write, as if we crashed before it):
    // the old pair stays, and the next refresh with it still works.
    expire_soon(&app).await;
    sqlx::raw_sql(
        "CREATE FUNCTION amocrm.refuse() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'disk full (test)'; END $$; \
         CREATE TRIGGER refuse BEFORE UPDATE ON amocrm.oauth_tokens \
         FOR EACH ROW EXECUTE FUNCTION amocrm.refuse();",
    )
    .execute(app.pool())
    .await
    .unwrap();
    let failed = app.state.tokens.access_token().await;
    assert!(failed.is_err(), "the refresh cannot be stored");
    assert_eq!(stored(&app).await, p2, "the old pair is kept");
    sqlx::raw_sql("DROP TRIGGER refuse ON amocrm.oauth_tokens")
        .execute(app.pool())
        .await
        .unwrap();
    let access = app.state.tokens.access_token().await.unwrap().unwrap();
    let p4 = stored(&app).await;
    assert_eq!(access, p4.access_token);
    assert_ne!(p4.refresh_token, p2.refresh_token);
    app.state.tokens.check().await.expect("not locked out");
    assert_eq!(app.sandbox.amocrm_tokens_issued(), 4);
    app.cleanup().await;
}

#[tokio::test]
async fn a_lead_event_is_completed_from_api_v4_and_429_is_retried() {
    let app = spawn_app().await;
    authorize(&app).await;
    app.sandbox.amocrm_put_lead(sandbox::amocrm::lead_json(
        8001,
        "Полное имя из API 📇",
        142,
        T0 + 5,
        json!([
            {"field_id": 123458, "field_name": "utm_source", "field_code": null, "field_type": "text", "values": [{"value": "google"}]},
            {"field_id": 123464, "field_name": "Комиссия", "field_type": "numeric", "values": [{"value": "125000"}]}
        ]),
        &[(9001, true), (9002, false)],
    ));
    app.sandbox.amocrm_put_contact(json!({
        "id": 9001, "name": "Мария Кузнецова", "first_name": "Мария", "last_name": "Кузнецова",
        "responsible_user_id": 504141, "created_at": T0 - 100, "updated_at": T0 - 50,
        "account_id": ACCOUNT_ID,
        "custom_fields_values": [{"field_id": 123456, "field_code": "PHONE", "field_type": "multitext",
            "values": [{"value": "+7 912 345-67-89", "enum_id": 1, "enum_code": "WORK"}]}],
        "_embedded": {"tags": [], "leads": [{"id": 8001}]}
    }));
    // amoCRM answers 429 twice before it serves the lead.
    app.sandbox.fail_next(
        Target::Amocrm,
        2,
        Failure::TooManyRequests {
            retry_after_secs: 0,
        },
    );
    let mut status = EntityForm::new("leads", "status", 0, 8001);
    status
        .set("status_id", "142")
        .set("old_status_id", "6")
        .set("pipeline_id", "7331")
        .set("last_modified", &T0.to_string());
    assert_eq!(app.post_form(body_of(&[&status])).await.status(), 200);
    let row = app
        .wait_lead(8001, |r| r.name.as_deref() == Some("Полное имя из API 📇"))
        .await;
    assert_eq!(row.status.as_deref(), Some("won"));
    assert_eq!(row.utm_source.as_deref(), Some("google"));
    assert_eq!(row.commission.as_deref(), Some("125000.00"));
    assert_eq!(row.updated_at.unix_timestamp(), T0 + 5);
    assert_eq!(app.history(8001).await, vec![(142, Some(6))]);
    let maria = app.wait_contact(9001, |_| true).await;
    assert_eq!(maria.phones, vec!["+79123456789".to_owned()]);
    assert_eq!(
        app.count("SELECT count(*) FROM amocrm.lead_contacts WHERE lead_id = 8001")
            .await,
        2
    );
    let lead_calls: Vec<_> = app
        .sandbox
        .requests()
        .into_iter()
        .filter(|r| r.path == "/amocrm/api/v4/leads/8001")
        .collect();
    assert_eq!(lead_calls.len(), 3, "two 429s, then the lead");
    assert_eq!(lead_calls[0].query, "with=contacts");
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("amocrm_api_calls_total"), "{metrics}");
    assert!(metrics.contains("status=\"429\""), "{metrics}");
    app.cleanup().await;
}

#[tokio::test]
async fn without_a_token_the_webhook_data_is_stored_and_amocrm_is_not_called() {
    let app = spawn_app().await;
    app.post_form(body_of(&[&lead_entry(
        "add",
        0,
        8002,
        "Только вебхук",
        1,
        T0,
    )]))
    .await;
    app.wait_lead(8002, |r| r.name.as_deref() == Some("Только вебхук"))
        .await;
    app.wait_consumed().await;
    assert!(app.sandbox.requests().is_empty());
    app.cleanup().await;
}

/// A database error at the HTTP edge: the OAuth callback stores the pair synchronously, and
/// the table is gone. The answer is a 500 in the old shape with a fixed text and the request
/// id; what failed inside is only in the log.
#[tokio::test]
async fn a_database_error_in_the_callback_is_a_500_without_internal_text() {
    let app = spawn_app().await;
    sqlx::raw_sql("ALTER TABLE amocrm.oauth_tokens RENAME TO oauth_tokens_away")
        .execute(app.pool())
        .await
        .unwrap();
    let code = app.sandbox.amocrm_authorize();
    let res = app
        .http
        .get(format!(
            "{}/api/auth/amo/callback?code={code}&referer={SUBDOMAIN}.amocrm.ru",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    let request_id = res
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = res.text().await.unwrap();
    for internal in ["relation", "amocrm.", "sqlx", "database", "oauth_tokens"] {
        assert!(!text.contains(internal), "{internal:?} leaked: {text}");
    }
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["status"], "error");
    assert_eq!(body["message"], "internal error");
    assert_eq!(body["events_processed"], 0);
    assert!(!request_id.is_empty());
    assert_eq!(body["request_id"], request_id.as_str());
    app.cleanup().await;
}
