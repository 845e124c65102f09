//! Wrong token, wrong signature, wrong account: refused, and nothing reaches NATS or Postgres.

use serde_json::{Value, json};

use crate::helpers::*;

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
    let app = spawn_app().await;
    let body = json!({"leads": {"add": [{"id": 902, "name": "x", "updated_at": T0}]}});
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
    let app = spawn_app().await;
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
    assert_eq!(app.events_stored().await, 0);
    assert_eq!(app.count("SELECT count(*) FROM amocrm.leads").await, 0);
    app.cleanup().await;
}
