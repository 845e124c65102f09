//! Okdesk's webhooks, and the poll that catches what they missed.

use domain::Event;

use crate::helpers::*;

#[tokio::test]
async fn a_status_change_and_a_public_comment_are_announced_once_and_a_private_one_never() {
    let app = spawn_app_with(Options {
        webhook: true,
        ..Options::default()
    })
    .await;
    let contact = app.add_contact("Иван", "Иванов", "+79001234567").await;
    let issue = app.add_issue("Не печатает принтер", contact).await;
    app.sandbox.okdesk_change_status(issue, "in_progress");
    app.sandbox
        .okdesk_add_comment(issue, "Внутренняя заметка", false);
    app.sandbox
        .okdesk_add_comment(issue, "Заменили картридж, проверьте", true);
    let events = app
        .wait_events("status and comment", |e| {
            count(e, |e| matches!(e, Event::IssueStatusChanged(_))) == 1
                && count(e, |e| matches!(e, Event::CommentCreated(_))) == 1
        })
        .await;
    let Some(Event::IssueStatusChanged(s)) = events
        .iter()
        .find(|e| matches!(e, Event::IssueStatusChanged(_)))
    else {
        unreachable!()
    };
    assert_eq!(s.issue.status.code, "in_progress");
    assert_eq!(s.issue.contact_id, Some(contact));
    let Some(Event::CommentCreated(c)) = events
        .iter()
        .find(|e| matches!(e, Event::CommentCreated(_)))
    else {
        unreachable!()
    };
    assert_eq!(c.text, "Заменили картридж, проверьте");
    assert!(!c.by_contact);
    // Every delivery again (Okdesk retrying): nothing new.
    for d in app.webhook_bodies() {
        let res = app.post_webhook(WEBHOOK_TOKEN, d).await;
        assert_eq!(res.status(), 200);
    }
    // And a poll round agrees with what the webhooks said.
    okdesk_bridge::workers::poll::round(&app.state)
        .await
        .unwrap();
    let events = app.events().await;
    assert_eq!(
        count(&events, |e| matches!(e, Event::IssueStatusChanged(_))),
        1,
        "{events:#?}"
    );
    assert_eq!(
        count(&events, |e| matches!(e, Event::CommentCreated(_))),
        1,
        "{events:#?}"
    );
}

#[tokio::test]
async fn a_lost_webhook_is_caught_by_the_poll_once() {
    // No webhook configured: every Okdesk change is "lost".
    let app = spawn_app().await;
    let contact = app.add_contact("Иван", "Иванов", "+79001234567").await;
    app.state.store.add_contact(contact).await.unwrap();
    let issue = app.add_issue("Не работает почта", contact).await;
    app.sandbox
        .okdesk_add_comment(issue, "старый комментарий", true);
    // The first round sees the issue for the first time: a baseline, nothing announced.
    assert_eq!(
        okdesk_bridge::workers::poll::round(&app.state)
            .await
            .unwrap(),
        0
    );
    app.sandbox.okdesk_change_status(issue, "completed");
    app.sandbox.okdesk_add_comment(issue, "Готово", true);
    assert_eq!(
        okdesk_bridge::workers::poll::round(&app.state)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        okdesk_bridge::workers::poll::round(&app.state)
            .await
            .unwrap(),
        0,
        "once"
    );
    let events = app.events().await;
    assert_eq!(
        count(&events, |e| matches!(e, Event::IssueStatusChanged(_))),
        1
    );
    let comments: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::CommentCreated(c) => Some(c.text.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(comments, ["Готово"]);
}

#[tokio::test]
async fn a_wrong_token_is_404_bad_bodies_400_and_unknown_events_200() {
    let app = spawn_app().await;
    let res = app
        .post_webhook("wrong-token-0123456789", "{}".into())
        .await;
    assert_eq!(res.status(), 404);
    let res = app.post_webhook(WEBHOOK_TOKEN, "not json".into()).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("not an Okdesk webhook"));
    let res = app
        .post_webhook(
            WEBHOOK_TOKEN,
            r#"{"event":{"event_type":"new_assignee"},"issue":{"id":"5"}}"#.into(),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert!(app.events().await.is_empty());
}
