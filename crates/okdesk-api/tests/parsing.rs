//! Golden fixtures (see `docs/okdesk-api.md` for where each shape comes from) parse into the
//! crate's types, tolerantly.

use okdesk_api::webhook::{EventKind, WebhookPayload};
use okdesk_api::{Comment, Company, Contact, Issue, IssueStatus, NewComment, NewContact, NewIssue};
use serde_json::{Value, json};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

#[test]
fn company_list_with_custom_parameters() {
    let companies: Vec<Company> =
        serde_json::from_str(&fixture("company_list.json")).expect("companies");
    assert_eq!(companies.len(), 2);
    let okdesk = &companies[0];
    assert_eq!(okdesk.id, 1040);
    assert_eq!(okdesk.name, "Okdesk");
    assert_eq!(
        okdesk.additional_name.as_deref(),
        Some("Help Desk система для сервисных компаний")
    );
    assert_eq!(okdesk.parameter("inn").as_deref(), Some("7707083893"));
    assert_eq!(okdesk.parameter("attr4").as_deref(), Some("true"));
    assert_eq!(okdesk.parameter("missing"), None);
    assert_eq!(okdesk.active, Some(true));
    assert_eq!(companies[1].additional_name, None);
    assert_eq!(companies[1].parameter("inn").as_deref(), Some("7830002293"));
}

#[test]
fn contact() {
    let c: Contact = serde_json::from_str(&fixture("contact.json")).expect("contact");
    assert_eq!(c.id, 22);
    assert_eq!(c.first_name.as_deref(), Some("Кирилл"));
    assert_eq!(c.last_name.as_deref(), Some("Клиентов"));
    assert_eq!(c.phone.as_deref(), Some("+79161234567"));
    assert_eq!(c.mobile_phone, None, "empty strings read as None");
    assert_eq!(c.email, None);
    assert_eq!(c.company_id, Some(1041));
}

#[test]
fn documented_issue() {
    let i: Issue = serde_json::from_str(&fixture("issue.json")).expect("issue");
    assert_eq!(i.id, 153);
    assert_eq!(i.title, "Требуется мастер на выезд");
    assert_eq!(i.description, None);
    let status = i.status.expect("status");
    assert_eq!(
        (status.code.as_str(), status.name.as_str()),
        ("opened", "Открыта")
    );
    assert_eq!(i.issue_type.expect("type").code, "service");
    assert_eq!(i.priority.expect("priority").code, "low");
    assert_eq!(i.company_id, Some(40));
    assert_eq!(i.contact.expect("contact").id, 3020);
    assert_eq!(
        i.assignee.expect("assignee").name.as_deref(),
        Some("Иванов Иван Викторович")
    );
    assert_eq!(
        i.created_at.as_deref(),
        Some("2016-03-15T18:05:17.568+03:00")
    );

    // POST /issues/ may answer only the id.
    let created: Issue = serde_json::from_str(&fixture("issue_created_min.json")).expect("min");
    assert_eq!(created.id, 154);
    assert!(created.status.is_none() && created.title.is_empty());
    // Ids as strings are accepted too.
    let s: Issue = serde_json::from_value(json!({"id":"7","company_id":"3","contact":null}))
        .expect("string ids");
    assert_eq!((s.id, s.company_id), (7, Some(3)));
}

#[test]
fn issue_ids_and_statuses() {
    let ids: Vec<i64> = serde_json::from_str(&fixture("issues_count.json")).expect("ids");
    assert_eq!(ids, [154, 153, 97]);
    let statuses: Vec<IssueStatus> =
        serde_json::from_str(&fixture("statuses.json")).expect("statuses");
    let codes: Vec<&str> = statuses.iter().map(|s| s.code.as_str()).collect();
    assert_eq!(
        codes,
        ["opened", "in_progress", "delayed", "completed", "closed"]
    );
    assert_eq!(statuses[3].name, "Решена");
    // Only the code is required.
    let bare: Vec<IssueStatus> =
        serde_json::from_value(json!([{"code":"opened"}])).expect("bare status");
    assert_eq!(bare[0].id, None);
}

#[test]
fn comments() {
    let comments: Vec<Comment> = serde_json::from_str(&fixture("comments.json")).expect("comments");
    assert_eq!(comments.len(), 3);
    let first = &comments[0];
    assert!(first.public);
    let author = first.author.as_ref().expect("author");
    assert_eq!(author.author_type.as_deref(), Some("employee"));
    assert!(!author.is_contact());
    assert!(comments[1].author.as_ref().expect("author").is_contact());
    assert_eq!(
        comments[1].attachments[0].attachment_file_name.as_deref(),
        Some("photo.jpg")
    );
    assert_eq!(
        okdesk_api::html_to_text(&comments[1].content),
        "Спасибо!\nЖдём."
    );
    assert!(!comments[2].public);
}

#[test]
fn request_bodies() {
    let contact = NewContact {
        first_name: "Кирилл".into(),
        last_name: "Клиентов".into(),
        phone: Some("+79161234567".into()),
        company_id: Some(1041),
        ..NewContact::default()
    };
    assert_eq!(
        serde_json::to_value(&contact).expect("contact"),
        json!({"first_name":"Кирилл","last_name":"Клиентов","phone":"+79161234567","company_id":1041})
    );
    let issue = NewIssue {
        title: "Не печатает принтер".into(),
        description: Some("Замятие".into()),
        contact_id: Some(22),
        company_id: Some(1041),
        issue_type: Some("incident".into()),
        priority: None,
    };
    assert_eq!(
        serde_json::to_value(&issue).expect("issue"),
        json!({"title":"Не печатает принтер","description":"Замятие","contact_id":22,"company_id":1041,"type":"incident"})
    );
    let _ = NewComment::default();
}

#[test]
fn webhook_new_ticket() {
    let p = WebhookPayload::parse(fixture("webhook_new_ticket.json").as_bytes()).expect("parse");
    assert_eq!(p.kind(), EventKind::NewTicket);
    assert_eq!(p.event_type, "new_ticket");
    let issue = p.issue.expect("issue");
    assert_eq!(issue.id, 155);
    assert_eq!(issue.title.as_deref(), Some("Не печатает принтер"));
    assert_eq!(issue.company_id, Some(1041));
    assert_eq!(issue.contact_id, Some(22));
    assert_eq!(issue.status.expect("status").code, "opened");
    assert!(p.new_status.is_none() && p.comment.is_none());
}

#[test]
fn webhook_new_comment() {
    let p = WebhookPayload::parse(fixture("webhook_new_comment.json").as_bytes()).expect("parse");
    assert_eq!(p.kind(), EventKind::NewComment);
    assert_eq!(p.issue_id(), Some(155));
    let c = p.comment.expect("comment");
    assert_eq!(c.id, Some(78));
    assert!(c.is_public);
    assert_eq!(
        okdesk_api::html_to_text(&c.content),
        "Инженер выедет сегодня.\nБудьте на месте."
    );
    let author = p.author.expect("author");
    assert!(author.is_employee());
    assert_eq!(author.id, Some(10));
    assert_eq!(author.display_name(), "Сергей Иванов");
    assert_eq!(p.attachments.len(), 1);
    assert_eq!(p.attachments[0].id, Some(31));
    assert_eq!(p.attachments[0].size, Some(20480));
    assert_eq!(p.attachments[0].file_name.as_deref(), Some("act.pdf"));
}

#[test]
fn webhook_new_ticket_status() {
    let p =
        WebhookPayload::parse(fixture("webhook_new_ticket_status.json").as_bytes()).expect("parse");
    assert_eq!(p.kind(), EventKind::NewTicketStatus);
    assert_eq!(p.issue_id(), Some(155));
    assert_eq!(p.new_status.expect("new").code, "completed");
    assert_eq!(p.old_status.expect("old").name.as_deref(), Some("В работе"));
    let c = p.comment.expect("status comment");
    assert!(!c.is_public, "\"false\" as a string");
    // Without event.new_status the issue's status is the new one.
    let mut raw: Value =
        serde_json::from_str(&fixture("webhook_new_ticket_status.json")).expect("json");
    raw["event"]
        .as_object_mut()
        .expect("event")
        .remove("new_status");
    let p = WebhookPayload::from_value(raw).expect("parse");
    assert_eq!(p.new_status.expect("fallback").code, "completed");
}

#[test]
fn webhook_other_events_and_garbage() {
    let p = WebhookPayload::parse(fixture("webhook_new_assignee.json").as_bytes()).expect("parse");
    assert_eq!(p.kind(), EventKind::Other);
    assert_eq!(p.event_type, "new_assignee");
    assert_eq!(p.issue_id(), Some(155), "numeric ids are accepted too");
    assert!(WebhookPayload::parse(b"not json").is_err());
    assert!(WebhookPayload::parse(b"[]").is_err());
    assert!(WebhookPayload::parse(br#"{"issue":{"id":1}}"#).is_err());
    // Unknown fields and a bare issue_id.
    let p = WebhookPayload::parse(
        br#"{"event":{"event_type":"ticket_deleted","x":1},"issue_id":"9","extra":true}"#,
    )
    .expect("parse");
    assert_eq!(p.issue_id(), Some(9));
}
