//! Property tests of the Okdesk webhook parser ([`WebhookPayload::parse`],
//! <https://help.okdesk.ru/knowledge_base/articles/vebhuki-148>) and of [`html_to_text`], which
//! every relayed comment goes through: whatever the bytes, nothing panics; a body that is not a
//! webhook is a [`WebhookError`] with a message. See `docs/fuzzing.md` for longer runs.

#[path = "../../vk-api/tests/prop_support/mod.rs"]
mod prop_support;

use okdesk_api::webhook::{WebhookError, WebhookPayload};
use okdesk_api::{html_to_text, text_to_html};
use prop_support::{config, json, mutated_body, text};
use proptest::prelude::*;
use serde_json::Value;

/// Field names of the webhook body.
const KEYS: &[&str] = &[
    "event",
    "event_type",
    "issue",
    "issue_id",
    "id",
    "title",
    "status",
    "code",
    "name",
    "client",
    "company",
    "contact",
    "company_id",
    "contact_id",
    "created_at",
    "new_status",
    "old_status",
    "comment",
    "content",
    "is_public",
    "public",
    "author",
    "first_name",
    "last_name",
    "patronymic",
    "type",
    "attachments",
    "attachment_file_name",
    "attachment_file_size",
];

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Everything the bridge reads from a parsed webhook.
fn read(body: &[u8]) -> Result<WebhookPayload, WebhookError> {
    let p = WebhookPayload::parse(body)?;
    let _ = (p.kind(), p.issue_id());
    if let Some(c) = &p.comment {
        let _ = html_to_text(&c.content);
    }
    if let Some(a) = &p.author {
        let _ = (a.display_name(), a.is_contact(), a.is_employee());
    }
    serde_json::to_vec(&p).expect("a payload serializes");
    Ok(p)
}

fn samples() -> impl Strategy<Value = (Value, Vec<u8>)> {
    prop_oneof![
        mutated_body(fixture("webhook_new_comment.json"), KEYS),
        mutated_body(fixture("webhook_new_ticket.json"), KEYS),
        mutated_body(fixture("webhook_new_ticket_status.json"), KEYS),
    ]
}

/// HTML-ish text: tags (closed or not), entities (known, numeric, out of range, unfinished),
/// `<script>` without its end, line breaks, and arbitrary characters.
fn html() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        prop::sample::select(vec![
            "<p>",
            "</p>",
            "<br>",
            "<br/>",
            "<BR >",
            "</div>",
            "<li>",
            "</li>",
            "<script>",
            "</script",
            "<style>x",
            "</STYLE>",
            "<",
            ">",
            "</",
            "<!--",
            "-->",
            "<?xml",
            "<a href=\"x>y\">",
            "&amp;",
            "&nbsp;",
            "&#1071;",
            "&#x44F;",
            "&#xD800;",
            "&#1114112;",
            "&#;",
            "&#x;",
            "&unknown;",
            "&",
            "&amp",
            ";",
            "\r\n",
            "\r",
            "\n",
            " ",
            "\t",
            "&#99999999999;",
        ])
        .prop_map(str::to_owned),
        text(),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|p| p.concat())
}

#[test]
fn the_samples_are_read() {
    for name in [
        "webhook_new_comment.json",
        "webhook_new_ticket.json",
        "webhook_new_ticket_status.json",
    ] {
        let got = read(&serde_json::to_vec(&fixture(name)).expect("serializes"));
        assert!(got.is_ok_and(|p| p.issue_id().is_some()), "{name}");
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn prop_okdesk_arbitrary_bytes_do_not_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = read(&bytes) {
            prop_assert!(!e.0.is_empty());
        }
    }

    #[test]
    fn prop_okdesk_arbitrary_json_does_not_panic(v in json(KEYS, 5)) {
        let got = read(&serde_json::to_vec(&v).expect("serializes"));
        if !v.is_object() {
            prop_assert!(got.is_err(), "{v}");
        }
    }

    #[test]
    fn prop_okdesk_mutated_samples_do_not_panic((v, bytes) in samples()) {
        match read(&bytes) {
            Ok(p) => prop_assert!(!p.event_type.is_empty(), "{v}"),
            Err(e) => prop_assert!(!e.0.is_empty(), "{v}"),
        }
    }

    #[test]
    fn prop_okdesk_html_to_text_does_not_panic(s in html()) {
        let t = html_to_text(&s);
        // Tags are dropped: none of the pieces' tags survives as text.
        prop_assert!(!t.contains("<br>") && !t.contains("<p>"), "{s:?} -> {t:?}");
    }

    #[test]
    fn prop_okdesk_text_round_trips_through_html(s in text()) {
        // What the bridge sends (`text_to_html`) comes back as the same text, up to the
        // whitespace tidying `html_to_text` documents.
        let back = html_to_text(&text_to_html(&s));
        let norm = |x: &str| x.split_whitespace().collect::<Vec<_>>().join(" ");
        prop_assert_eq!(norm(&back), norm(&s));
    }
}
