//! The Okdesk fake, driven through `okdesk_api::OkdeskClient`: auth, companies by INN,
//! contacts, issues, comments with files, statuses, webhooks with retries, injected failures.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use okdesk_api::webhook::{EventKind, WebhookPayload};
use okdesk_api::{
    Attachment, NewComment, NewContact, NewIssue, OkdeskClient, OkdeskError, html_to_text,
    text_to_html,
};
use sandbox::{Failure, Sandbox, Target};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);
const TOKEN: &str = "okdesk-test-token";

fn client(sandbox: &Sandbox) -> OkdeskClient {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client");
    OkdeskClient::new(http, &sandbox.okdesk_api_url(), TOKEN)
}

/// A webhook receiver that answers `503` to the first `failures` deliveries.
async fn receiver(failures: usize) -> (String, mpsc::UnboundedReceiver<Bytes>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let seen = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/okdesk/webhook/secret-token",
        axum::routing::post(move |body: Bytes| {
            let tx = tx.clone();
            let seen = seen.clone();
            async move {
                if seen.fetch_add(1, Ordering::SeqCst) < failures {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let _ = tx.send(body);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let url = format!(
        "http://{}/okdesk/webhook/secret-token",
        listener.local_addr().expect("receiver address")
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

async fn next_webhook(rx: &mut mpsc::UnboundedReceiver<Bytes>) -> (Value, WebhookPayload) {
    let body = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a webhook in time")
        .expect("receiver open");
    let raw: Value = serde_json::from_slice(&body).expect("webhook JSON");
    let parsed = WebhookPayload::parse(&body).expect("webhook parses");
    (raw, parsed)
}

async fn contact(okdesk: &OkdeskClient, phone: &str, company_id: Option<i64>) -> i64 {
    okdesk
        .create_contact(NewContact {
            first_name: "Кирилл".into(),
            last_name: "Клиентов".into(),
            phone: Some(phone.into()),
            company_id,
            comment: Some("Создан из Telegram".into()),
            ..NewContact::default()
        })
        .await
        .expect("contact created")
        .id
}

#[tokio::test]
async fn a_wrong_token_is_refused_and_never_shown() {
    let sandbox = Sandbox::start().await.unwrap();
    let http = reqwest::Client::new();
    let bad = OkdeskClient::new(http.clone(), &sandbox.okdesk_api_url(), "wrong-s3cr3t");
    let err = bad.statuses().await.expect_err("refused");
    assert!(err.is_unauthorized(), "{err:?}");
    assert!(!err.is_retriable());
    let shown = err.to_string();
    assert!(shown.contains("401"), "{shown}");
    assert!(!shown.contains("wrong-s3cr3t"), "{shown}");
    // The body Okdesk sends.
    let raw = http
        .get(format!("{}/issues/statuses", sandbox.okdesk_api_url()))
        .send()
        .await
        .expect("answer");
    assert_eq!(raw.status(), 401);
    let body: Value = raw.json().await.expect("json");
    assert!(body["errors"].is_string(), "{body}");

    // No answer at all: the error names the call, not the URL with the token.
    let nowhere = OkdeskClient::new(http, "http://127.0.0.1:9/api/v1", "s3cr3t-token");
    let err = nowhere.issue(1).await.expect_err("unreachable");
    assert!(err.is_retriable(), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("s3cr3t-token"));
}

#[tokio::test]
async fn companies_are_found_by_the_inn_attribute() {
    let sandbox = Sandbox::start().await.unwrap();
    let okdesk = client(&sandbox);
    let romashka = sandbox.okdesk_add_company("Ромашка", "7707083893");
    sandbox.okdesk_add_company("Лютик", "7830002293");
    sandbox.okdesk_add_company("Без ИНН", "");

    let found = okdesk
        .find_companies_by_inn("inn", "7707083893")
        .await
        .expect("search");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, romashka);
    assert_eq!(found[0].name, "Ромашка");
    assert_eq!(found[0].parameter("inn").as_deref(), Some("7707083893"));
    assert!(
        okdesk
            .find_companies_by_inn("inn", "500100732259")
            .await
            .expect("search")
            .is_empty()
    );
    // A code Okdesk does not know is ignored by the filter and every company comes back; the
    // client keeps only exact matches of that attribute, so nothing is found.
    assert!(
        okdesk
            .find_companies_by_inn("inn_company", "7707083893")
            .await
            .expect("search")
            .is_empty()
    );
    let query = sandbox
        .requests()
        .into_iter()
        .rfind(|r| r.path.ends_with("/companies/list"))
        .expect("recorded")
        .query;
    assert!(
        query.contains("custom_parameters%5Binn_company%5D=7707083893"),
        "{query}"
    );

    sandbox.okdesk_deny_company_search(true);
    let err = okdesk
        .find_companies_by_inn("inn", "7707083893")
        .await
        .expect_err("a contact person's key");
    assert!(
        matches!(
            err,
            OkdeskError::CompanySearchNotAllowed { status: 403, .. }
        ),
        "{err:?}"
    );
    assert!(!err.is_retriable());
}

#[tokio::test]
async fn contacts_are_found_by_phone_with_the_plus_encoded() {
    let sandbox = Sandbox::start().await.unwrap();
    let okdesk = client(&sandbox);
    let company = sandbox.okdesk_add_company("Ромашка", "7707083893");
    assert_eq!(
        okdesk
            .find_contact_by_phone("+79161234567")
            .await
            .expect("search"),
        None
    );
    let id = contact(&okdesk, "+79161234567", Some(company)).await;
    assert_eq!(id, 1);
    let found = okdesk
        .find_contact_by_phone("+79161234567")
        .await
        .expect("search")
        .expect("found");
    assert_eq!(found.id, id);
    assert_eq!(found.company_id, Some(company));
    assert_eq!(found.last_name.as_deref(), Some("Клиентов"));
    let query = sandbox
        .requests()
        .into_iter()
        .rfind(|r| r.path.ends_with("/contacts/") && r.method == "GET")
        .expect("recorded")
        .query;
    assert!(query.contains("phone=%2B79161234567"), "{query}");

    // Unencoded, the `+` is a space and nothing matches — why the docs insist on %2B.
    let raw: Value = reqwest::get(format!(
        "{}/contacts/?api_token={TOKEN}&phone=+79161234567",
        sandbox.okdesk_api_url()
    ))
    .await
    .expect("answer")
    .json()
    .await
    .expect("json");
    assert_eq!(raw, json!({}));

    // Validation: names are required, the company must exist.
    let err = okdesk
        .create_contact(NewContact {
            first_name: "Кирилл".into(),
            company_id: Some(999),
            ..NewContact::default()
        })
        .await
        .expect_err("invalid");
    assert_eq!(err.status(), Some(422));
    let shown = err.to_string();
    assert!(
        shown.contains("last_name") && shown.contains("company_id"),
        "{shown}"
    );
    assert_eq!(sandbox.okdesk_contacts().len(), 1);
}

#[tokio::test]
async fn issues_statuses_and_links() {
    let sandbox = Sandbox::start().await.unwrap();
    let okdesk = client(&sandbox);
    let company = sandbox.okdesk_add_company("Ромашка", "7707083893");
    let contact_id = contact(&okdesk, "+79161234567", Some(company)).await;
    let other = contact(&okdesk, "+79035550000", None).await;

    let issue = okdesk
        .create_issue(NewIssue {
            title: "Не печатает принтер".into(),
            description: Some(text_to_html("Замятие бумаги\nв лотке 2")),
            contact_id: Some(contact_id),
            ..NewIssue::default()
        })
        .await
        .expect("issue created");
    assert_eq!(issue.id, 1);
    assert_eq!(issue.status.as_ref().expect("status").code, "opened");
    assert_eq!(issue.company_id, Some(company), "taken from the contact");
    assert_eq!(issue.issue_type.as_ref().expect("type").code, "service");
    let second = okdesk
        .create_issue(NewIssue {
            title: "Ещё".into(),
            contact_id: Some(contact_id),
            issue_type: Some("incident".into()),
            priority: Some("high".into()),
            ..NewIssue::default()
        })
        .await
        .expect("second");
    assert_eq!(second.id, 2);
    okdesk
        .create_issue(NewIssue {
            title: "Чужая".into(),
            contact_id: Some(other),
            ..NewIssue::default()
        })
        .await
        .expect("third");

    let read = okdesk.issue(1).await.expect("read").expect("exists");
    assert_eq!(read.title, "Не печатает принтер");
    assert_eq!(
        html_to_text(read.description.as_deref().unwrap_or_default()),
        "Замятие бумаги\nв лотке 2"
    );
    assert_eq!(read.contact.expect("contact").id, contact_id);
    assert_eq!(okdesk.issue(99).await.expect("read"), None);
    assert_eq!(
        okdesk.issue_ids_of_contact(contact_id).await.expect("ids"),
        [2, 1]
    );
    assert!(
        okdesk
            .issue_ids_of_contact(12345)
            .await
            .expect("ids")
            .is_empty()
    );

    let statuses = okdesk.statuses().await.expect("statuses");
    let names: Vec<(&str, &str)> = statuses
        .iter()
        .map(|s| (s.code.as_str(), s.name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("opened", "Открыта"),
            ("in_progress", "В работе"),
            ("delayed", "Отложена"),
            ("completed", "Решена"),
            ("closed", "Закрыта")
        ]
    );
    assert_eq!(
        okdesk.issue_url(1),
        format!("{}/okdesk/issues/1", sandbox.url())
    );

    // Validation.
    let err = okdesk
        .create_issue(NewIssue {
            title: String::new(),
            contact_id: Some(777),
            ..NewIssue::default()
        })
        .await
        .expect_err("invalid");
    assert_eq!(err.status(), Some(422));
    assert!(err.to_string().contains("title"), "{err}");

    // Status changes.
    let moved = okdesk
        .change_status(1, "in_progress", true)
        .await
        .expect("moved");
    assert_eq!(moved.status.expect("status").code, "in_progress");
    let again = okdesk
        .change_status(1, "in_progress", true)
        .await
        .expect_err("already there");
    assert_eq!(again.status(), Some(422));
    let delayed = okdesk
        .change_status(1, "delayed", true)
        .await
        .expect_err("delay_to needed");
    assert!(delayed.to_string().contains("delay_to"), "{delayed}");
    let unknown = okdesk
        .change_status(1, "frozen", true)
        .await
        .expect_err("unknown");
    assert_eq!(unknown.status(), Some(422));
    let body: Value = serde_json::from_str(
        &sandbox
            .requests()
            .into_iter()
            .find(|r| r.path.ends_with("/issues/1/statuses"))
            .expect("recorded")
            .body,
    )
    .expect("json");
    assert_eq!(
        body,
        json!({"code":"in_progress","skip_options":["skip_webhooks"]})
    );
}

#[tokio::test]
async fn comments_with_files_and_authors() {
    let sandbox = Sandbox::start().await.unwrap();
    let okdesk = client(&sandbox);
    let contact_id = contact(&okdesk, "+79161234567", None).await;
    let issue = okdesk
        .create_issue(NewIssue {
            title: "Вопрос".into(),
            contact_id: Some(contact_id),
            ..NewIssue::default()
        })
        .await
        .expect("issue")
        .id;

    let plain = okdesk
        .create_comment(
            issue,
            NewComment {
                content_html: text_to_html("Добрый день!\nКогда приедете?"),
                author_id: contact_id,
                public: true,
                attachments: Vec::new(),
            },
        )
        .await
        .expect("comment");
    assert!(plain.public);
    assert!(plain.author.as_ref().expect("author").is_contact());
    assert_eq!(
        html_to_text(&plain.content),
        "Добрый день!\nКогда приедете?"
    );

    let photo: Vec<u8> = (0u8..=255).cycle().take(3000).collect();
    let with_files = okdesk
        .create_comment(
            issue,
            NewComment {
                content_html: "Фото".into(),
                author_id: contact_id,
                public: true,
                attachments: vec![
                    Attachment {
                        file_name: "фото.jpg".into(),
                        mime: "image/jpeg".into(),
                        bytes: photo.clone(),
                    },
                    Attachment {
                        file_name: "log.txt".into(),
                        mime: "text/plain".into(),
                        bytes: b"line\r\n--not a boundary\r\n".to_vec(),
                    },
                ],
            },
        )
        .await
        .expect("comment with files");
    assert_eq!(with_files.attachments.len(), 2);
    let first = &with_files.attachments[0];
    assert_eq!(first.attachment_file_name.as_deref(), Some("фото.jpg"));
    assert_eq!(first.attachment_file_size, Some(3000));
    let stored = sandbox.okdesk_attachment(first.id).expect("stored");
    assert_eq!(stored.bytes, photo);
    assert_eq!(stored.mime, "image/jpeg");
    assert_eq!(
        sandbox
            .okdesk_attachment(with_files.attachments[1].id)
            .expect("stored")
            .bytes,
        b"line\r\n--not a boundary\r\n"
    );

    let engineer = sandbox.okdesk_add_comment(issue, "Будем в 15:00 <ок>", true);
    let note = sandbox.okdesk_add_comment(issue, "внутреннее", false);
    let listed = okdesk.issue_comments(issue).await.expect("list");
    let ids: Vec<i64> = listed.iter().map(|c| c.id).collect();
    assert_eq!(ids, [plain.id, with_files.id, engineer, note]);
    assert_eq!(html_to_text(&listed[2].content), "Будем в 15:00 <ок>");
    assert_eq!(
        listed[2]
            .author
            .as_ref()
            .expect("author")
            .author_type
            .as_deref(),
        Some("employee")
    );
    assert!(!listed[3].public);

    // An author that does not exist.
    let err = okdesk
        .create_comment(
            issue,
            NewComment {
                content_html: "x".into(),
                author_id: 999,
                public: true,
                attachments: Vec::new(),
            },
        )
        .await
        .expect_err("no such contact");
    assert_eq!(err.status(), Some(422));
    let missing = okdesk.issue_comments(42).await.expect_err("no issue");
    assert_eq!(missing.status(), Some(404));
}

#[tokio::test]
async fn webhooks_are_delivered_in_order_and_retried() {
    let sandbox = Sandbox::start().await.unwrap();
    let okdesk = client(&sandbox);
    let (url, mut rx) = receiver(2).await;
    let company = sandbox.okdesk_add_company("Ромашка", "7707083893");
    let contact_id = contact(&okdesk, "+79161234567", Some(company)).await;
    sandbox.okdesk_set_webhook(Some(url.clone()));

    let issue = okdesk
        .create_issue(NewIssue {
            title: "Не печатает принтер".into(),
            contact_id: Some(contact_id),
            ..NewIssue::default()
        })
        .await
        .expect("issue")
        .id;
    let (raw, created) = next_webhook(&mut rx).await;
    assert_eq!(created.kind(), EventKind::NewTicket);
    assert_eq!(
        raw["issue"]["id"],
        json!(issue.to_string()),
        "ids are strings"
    );
    let wi = created.issue.expect("issue");
    assert_eq!(
        (wi.id, wi.contact_id, wi.company_id),
        (issue, Some(contact_id), Some(company))
    );
    sandbox
        .wait_until(WAIT, |s| s.okdesk_webhook_deliveries().len() == 3)
        .await
        .expect("three attempts recorded");
    let deliveries = sandbox.okdesk_webhook_deliveries();
    assert_eq!(
        deliveries
            .iter()
            .map(|d| (d.attempt, d.status))
            .collect::<Vec<_>>(),
        [(1, Some(503)), (2, Some(503)), (3, Some(200))]
    );

    // The gateway's own comment comes back too, authored by the contact.
    okdesk
        .create_comment(
            issue,
            NewComment {
                content_html: "Клиент пишет".into(),
                author_id: contact_id,
                public: true,
                attachments: Vec::new(),
            },
        )
        .await
        .expect("comment");
    let (_, echo) = next_webhook(&mut rx).await;
    assert_eq!(echo.kind(), EventKind::NewComment);
    assert!(echo.author.expect("author").is_contact());

    let comment_id = sandbox.okdesk_add_comment(issue, "Инженер выедет\nсегодня", true);
    let (_, c) = next_webhook(&mut rx).await;
    assert_eq!(c.kind(), EventKind::NewComment);
    let comment = c.comment.expect("comment");
    assert_eq!(comment.id, Some(comment_id));
    assert!(comment.is_public);
    assert_eq!(html_to_text(&comment.content), "Инженер выедет\nсегодня");
    assert!(c.author.expect("author").is_employee());

    sandbox.okdesk_add_comment(issue, "заметка", false);
    let (_, note) = next_webhook(&mut rx).await;
    assert!(!note.comment.expect("comment").is_public);

    sandbox.okdesk_change_status(issue, "in_progress");
    let (_, s) = next_webhook(&mut rx).await;
    assert_eq!(s.kind(), EventKind::NewTicketStatus);
    assert_eq!(s.old_status.expect("old").code, "opened");
    let new = s.new_status.expect("new");
    assert_eq!(
        (new.code.as_str(), new.name.as_deref()),
        ("in_progress", Some("В работе"))
    );

    // A change through the API with skip_webhooks fires nothing; without, it does.
    okdesk
        .change_status(issue, "completed", true)
        .await
        .expect("completed");
    okdesk
        .change_status(issue, "closed", false)
        .await
        .expect("closed");
    let (_, closed) = next_webhook(&mut rx).await;
    assert_eq!(closed.new_status.expect("new").code, "closed");
    assert_eq!(closed.old_status.expect("old").code, "completed");
    assert!(rx.try_recv().is_err(), "nothing else was sent");
    assert_eq!(
        sandbox.okdesk_issues()[0]["status"]["code"],
        json!("closed")
    );
}

#[tokio::test]
async fn injected_failures_are_retriable_with_retry_after() {
    let sandbox = Sandbox::start().await.unwrap();
    let okdesk = client(&sandbox);
    sandbox.fail_next(Target::Okdesk, 1, Failure::Status(503));
    let err = okdesk.statuses().await.expect_err("503");
    assert_eq!(err.status(), Some(503));
    assert!(err.is_retriable());
    sandbox.fail_next(
        Target::Okdesk,
        1,
        Failure::TooManyRequests {
            retry_after_secs: 7,
        },
    );
    let err = okdesk.statuses().await.expect_err("429");
    assert!(err.is_retriable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(okdesk.statuses().await.expect("then fine").len(), 5);
    assert_eq!(
        sandbox
            .requests()
            .iter()
            .filter(|r| r.target == Target::Okdesk)
            .count(),
        3
    );
}

#[tokio::test]
async fn control_routes_drive_the_ui() {
    let sandbox = Sandbox::start().await.unwrap();
    let okdesk = client(&sandbox);
    let http = reqwest::Client::new();
    let control = |path: &str| format!("{}/_sandbox/okdesk{path}", sandbox.url());
    let created: Value = http
        .post(control("/companies"))
        .json(&json!({"name":"Ромашка","inn":"7707083893"}))
        .send()
        .await
        .expect("add company")
        .json()
        .await
        .expect("json");
    let company = created["id"].as_i64().expect("id");
    let contact_id = contact(&okdesk, "+79161234567", Some(company)).await;
    let issue = okdesk
        .create_issue(NewIssue {
            title: "Вопрос".into(),
            contact_id: Some(contact_id),
            ..NewIssue::default()
        })
        .await
        .expect("issue")
        .id;

    let (url, mut rx) = receiver(0).await;
    let set = http
        .post(control("/webhook"))
        .json(&json!({ "url": url }))
        .send()
        .await
        .expect("set webhook");
    assert_eq!(set.status(), 204);
    let answer = http
        .post(control(&format!("/issues/{issue}/comments")))
        .json(&json!({"text":"Ответ инженера"}))
        .send()
        .await
        .expect("comment");
    assert_eq!(answer.status(), 200);
    let (_, c) = next_webhook(&mut rx).await;
    assert!(c.comment.expect("comment").is_public, "public by default");
    let moved: Value = http
        .post(control(&format!("/issues/{issue}/status")))
        .json(&json!({"code":"completed"}))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert_eq!(moved["status"]["code"], json!("completed"));
    let (_, s) = next_webhook(&mut rx).await;
    assert_eq!(s.new_status.expect("new").code, "completed");
    let bad = http
        .post(control("/issues/99/status"))
        .json(&json!({"code":"completed"}))
        .send()
        .await
        .expect("status");
    assert_eq!(bad.status(), 400);

    let listed: Vec<Value> = http
        .get(control("/issues"))
        .send()
        .await
        .expect("issues")
        .json()
        .await
        .expect("json");
    assert_eq!(listed.len(), 1);
    sandbox
        .wait_until(WAIT, |s| s.okdesk_webhook_deliveries().len() == 2)
        .await
        .expect("two deliveries recorded");
    let deliveries: Vec<Value> = http
        .get(control("/webhooks"))
        .send()
        .await
        .expect("deliveries")
        .json()
        .await
        .expect("json");
    assert_eq!(deliveries.len(), 2);
    let denied = http
        .post(control("/deny_company_search"))
        .json(&json!({"deny": true}))
        .send()
        .await
        .expect("deny");
    assert_eq!(denied.status(), 204);
    assert!(matches!(
        okdesk.find_companies_by_inn("inn", "7707083893").await,
        Err(OkdeskError::CompanySearchNotAllowed { .. })
    ));
}
