//! The commands: register a contact, open an issue, add a comment.

use domain::{Command, CommentRequest, Company, ContactRegistration, Event, IssueRequest};
use sandbox::{Failure, Target};

use crate::helpers::*;

fn registration(user: i64, phone: &str, company: Option<Company>) -> Command {
    Command::OkdeskContactRegister(ContactRegistration {
        requester: requester(user),
        full_name: "Иванов Иван Иванович".into(),
        phone: Some(phone.into()),
        company,
    })
}

fn issue_request(user: i64, contact_id: i64, title: &str) -> Command {
    Command::OkdeskIssueCreate(IssueRequest {
        requester: requester(user),
        contact_id,
        company_id: None,
        title: title.into(),
        description: format!("{title}. Подробности: <важно> & срочно\nвторая строка"),
    })
}

async fn registered(app: &TestApp, user: i64, phone: &str) -> i64 {
    app.send(&format!("reg-{user}"), registration(user, phone, None))
        .await;
    let events = app
        .wait_events("contact.registered", |e| {
            e.iter()
                .any(|e| matches!(e, Event::ContactRegistered(r) if r.requester.user_id == user))
        })
        .await;
    events
        .iter()
        .find_map(|e| match e {
            Event::ContactRegistered(r) if r.requester.user_id == user => Some(r.contact_id),
            _ => None,
        })
        .unwrap()
}

#[tokio::test]
async fn a_person_is_registered_once_as_a_contact_found_again_by_phone() {
    let app = spawn_app().await;
    let contact = registered(&app, 42, "+79001234567").await;
    let contacts = app.sandbox.okdesk_contacts();
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0]["id"], contact);
    assert_eq!(contacts[0]["last_name"], "Иванов");
    // The same phone from another Telegram account: the existing contact, not a new one.
    app.send("reg-43", registration(43, "+79001234567", None))
        .await;
    let events = app
        .wait_events("second registration", |e| {
            e.iter()
                .any(|e| matches!(e, Event::ContactRegistered(r) if r.requester.user_id == 43))
        })
        .await;
    let second = events.iter().find_map(|e| match e {
        Event::ContactRegistered(r) if r.requester.user_id == 43 => Some(r.clone()),
        _ => None,
    });
    let second = second.unwrap();
    assert_eq!(second.contact_id, contact);
    assert!(!second.created);
    assert_eq!(app.sandbox.okdesk_contacts().len(), 1);
}

#[tokio::test]
async fn an_issue_is_opened_once_with_its_number_and_link() {
    let app = spawn_app().await;
    let contact = registered(&app, 42, "+79001234567").await;
    app.send("issue-1", issue_request(42, contact, "Не печатает принтер"))
        .await;
    // The same command again (a redelivery): still one issue.
    app.send("issue-1", issue_request(42, contact, "Не печатает принтер"))
        .await;
    let events = app
        .wait_events("issue.created", |e| {
            count(e, |e| matches!(e, Event::IssueCreated(_))) == 1
        })
        .await;
    let Some(Event::IssueCreated(c)) = events.iter().find(|e| matches!(e, Event::IssueCreated(_)))
    else {
        unreachable!()
    };
    assert_eq!(c.requester.as_ref().map(|r| r.user_id), Some(42));
    assert_eq!(c.issue.contact_id, Some(contact));
    assert!(
        c.issue.url.ends_with(&format!("/issues/{}", c.issue.id)),
        "{}",
        c.issue.url
    );
    let issues = app.sandbox.okdesk_issues();
    assert_eq!(issues.len(), 1);
    let description = issues[0]["description"].as_str().unwrap();
    assert!(
        description.contains("&lt;важно&gt; &amp; срочно<br>"),
        "HTML-escaped: {description}"
    );
}

#[tokio::test]
async fn okdesk_down_during_creation_queues_the_issue_and_creates_it_once_when_back() {
    let app = spawn_app().await;
    let contact = registered(&app, 42, "+79001234567").await;
    app.sandbox
        .fail_next(Target::Okdesk, 2, Failure::Status(503));
    app.send(
        "issue-down",
        issue_request(42, contact, "Сервер недоступен"),
    )
    .await;
    let events = app
        .wait_events("issue created after the outage", |e| {
            count(e, |e| matches!(e, Event::IssueCreated(_))) == 1
        })
        .await;
    assert_eq!(count(&events, |e| matches!(e, Event::IssueCreated(_))), 1);
    assert_eq!(app.sandbox.okdesk_issues().len(), 1, "created once");
}

#[tokio::test]
async fn a_comment_from_telegram_reaches_okdesk_as_the_contact_and_is_not_echoed_back() {
    let app = spawn_app().await;
    let contact = registered(&app, 42, "+79001234567").await;
    app.send("issue-c", issue_request(42, contact, "Нужен доступ"))
        .await;
    let events = app
        .wait_events("issue", |e| {
            count(e, |e| matches!(e, Event::IssueCreated(_))) == 1
        })
        .await;
    let issue_id = events
        .iter()
        .find_map(|e| match e {
            Event::IssueCreated(c) => Some(c.issue.id),
            _ => None,
        })
        .unwrap();
    app.send(
        "comment-1",
        Command::OkdeskCommentCreate(CommentRequest {
            requester: requester(42),
            contact_id: contact,
            issue_id,
            text: "Вот скриншот\nошибки".into(),
            files: vec![domain::FileData {
                name: "error.png".into(),
                mime: "image/png".into(),
                base64: "iVBORw0KGgo=".into(),
            }],
        }),
    )
    .await;
    app.sandbox
        .wait_until(WAIT, |s| !s.okdesk_comments(issue_id).is_empty())
        .await
        .expect("comment in Okdesk");
    let comments = app.sandbox.okdesk_comments(issue_id);
    assert_eq!(comments.len(), 1);
    let c = &comments[0];
    assert_eq!(c["author"]["id"], contact);
    assert_eq!(c["author"]["type"], "contact");
    assert_eq!(c["public"], true);
    assert!(
        c["content"]
            .as_str()
            .unwrap()
            .contains("Вот скриншот<br>ошибки"),
        "{c}"
    );
    assert_eq!(c["attachments"].as_array().map(Vec::len), Some(1), "{c}");
    // Once the bridge recorded it, a poll round does not announce the person's own comment
    // back (had the poll or a webhook come first, the event says `by_contact` and the bot
    // does not echo it).
    let pool = app.state.store.pool().clone();
    testkit::wait_for("the comment recorded", || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM okdesk.created_comments WHERE comment_id IS NOT NULL)",
        )
        .fetch_one(&pool)
        .await
        .unwrap_or(false)
    })
    .await;
    okdesk_bridge::workers::poll::round(&app.state)
        .await
        .unwrap();
    let events = app.events().await;
    assert_eq!(count(&events, |e| matches!(e, Event::CommentCreated(_))), 0);
}
