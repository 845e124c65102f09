//! `ChatwootClient` against the sandbox's Chatwoot fake: messages with files, the files'
//! URLs, inboxes, webhooks, the conversation list and contacts with their contact inboxes.

use std::time::Duration;

use chatwoot_api::webhook::{MessagePayload, verify_signature};
use chatwoot_api::{CONVERSATIONS_PER_PAGE, ChatwootClient, MessageType, Upload};
use sandbox::Sandbox;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

fn client(sandbox: &Sandbox) -> ChatwootClient {
    let opts = sandbox.options();
    ChatwootClient::new(
        reqwest::Client::new(),
        sandbox.chatwoot_url(),
        opts.chatwoot_api_token.clone(),
        opts.chatwoot_account_id,
    )
}

/// A contact with an open conversation in the seeded inbox: `(contact id, conversation id)`.
fn seed(sandbox: &Sandbox, identifier: &str) -> (i64, i64) {
    let contact = sandbox.chatwoot_seed_contact(
        "Анна",
        Some(identifier),
        Some("Anna@Example.com"),
        json!({"vk_id": 1001}),
    );
    let conversation = sandbox.chatwoot_seed_conversation(
        contact,
        identifier,
        json!({"vk_peer_id": 1001}),
        json!({"legacy": true}),
    );
    (contact, conversation)
}

/// Downloads a file URL the way a connector does: redirects followed.
async fn download(url: &str) -> (u16, Option<String>, Vec<u8>) {
    let res = reqwest::get(url).await.expect("download");
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = res.bytes().await.expect("body").to_vec();
    (status, content_type, bytes)
}

/// A bare HTTP/1.1 receiver on port 0: hands `(headers as lowercase name → value, body)` of
/// every request to the test and answers `200`.
async fn receiver() -> (
    String,
    mpsc::UnboundedReceiver<(Vec<(String, String)>, Vec<u8>)>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let (head_end, headers) = loop {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).into_owned();
                        let headers: Vec<(String, String)> = head
                            .lines()
                            .skip(1)
                            .filter_map(|l| l.split_once(':'))
                            .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
                            .collect();
                        break (i + 4, headers);
                    }
                };
                let length: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = buf[head_end..head_end + length].to_vec();
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tx.send((headers, body));
            });
        }
    });
    (url, rx)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n fake image bytes";

#[tokio::test]
async fn message_with_two_files_is_stored_and_downloadable() {
    let sandbox = Sandbox::start().await.expect("sandbox");
    let cw = client(&sandbox);
    let (_, conversation) = seed(&sandbox, "vk:1001");
    let pdf: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let message = cw
        .create_message_with_attachments(
            conversation,
            "Смотрите файлы",
            MessageType::Incoming,
            json!({"in_reply_to": 5, "external_id": "vk:1001:77"}),
            Some("vk-msg-77"),
            vec![
                Upload {
                    file_name: "фото 1.png".into(),
                    mime: "image/png".into(),
                    bytes: PNG.to_vec(),
                },
                Upload {
                    file_name: "report.pdf".into(),
                    mime: "application/pdf".into(),
                    bytes: pdf.clone(),
                },
            ],
        )
        .await
        .expect("created");
    assert_eq!(message.content.as_deref(), Some("Смотрите файлы"));
    assert_eq!(message.source_id.as_deref(), Some("vk-msg-77"));
    assert_eq!(
        MessageType::from_json(&message.message_type),
        Some(MessageType::Incoming)
    );
    // The JSON text of the form field came back as the object it encodes.
    assert_eq!(
        message.content_attributes,
        Some(json!({"in_reply_to": 5, "external_id": "vk:1001:77"}))
    );
    assert_eq!(message.attachments.len(), 2, "{message:?}");
    let (image, file) = (&message.attachments[0], &message.attachments[1]);
    assert_eq!(image.file_type, "image");
    assert_eq!(file.file_type, "file");
    assert_eq!(image.file_size, Some(PNG.len() as i64));
    assert_eq!(file.file_size, Some(70_000));
    assert_eq!(image.extension, None, "the API upload path leaves it null");
    assert!(image.thumb_url.as_deref().is_some_and(|u| !u.is_empty()));
    assert_eq!(file.thumb_url.as_deref(), Some(""));
    assert!(
        image.data_url.starts_with(&format!(
            "{}/rails/active_storage/blobs/redirect/",
            sandbox.chatwoot_url()
        )),
        "{}",
        image.data_url
    );
    assert!(
        image
            .data_url
            .ends_with("/%D1%84%D0%BE%D1%82%D0%BE%201.png"),
        "{}",
        image.data_url
    );

    let (status, content_type, bytes) = download(&image.data_url).await;
    assert_eq!((status, content_type.as_deref()), (200, Some("image/png")));
    assert_eq!(bytes, PNG);
    let (status, content_type, bytes) = download(&file.data_url).await;
    assert_eq!(
        (status, content_type.as_deref()),
        (200, Some("application/pdf"))
    );
    assert_eq!(bytes, pdf);

    let stored = sandbox.chatwoot_attachment_bytes(message.id);
    assert_eq!(
        stored,
        vec![
            ("image".to_owned(), "фото 1.png".to_owned(), PNG.to_vec()),
            ("file".to_owned(), "report.pdf".to_owned(), pdf),
        ]
    );
    // The messages list renders the same attachments.
    let listed = cw.messages(conversation).await.expect("messages");
    let last = listed.last().expect("one message");
    assert_eq!(last.attachments, message.attachments);
    // The redirect is a real 302 to the disk service.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let res = no_redirects
        .get(&file.data_url)
        .send()
        .await
        .expect("redirect");
    assert_eq!(res.status().as_u16(), 302);
    let location = res
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .expect("location");
    assert!(
        location.contains("/rails/active_storage/disk/"),
        "{location}"
    );
}

#[tokio::test]
async fn oversize_file_is_a_422_and_nothing_is_stored() {
    let sandbox = Sandbox::start().await.expect("sandbox");
    let cw = client(&sandbox);
    let (_, conversation) = seed(&sandbox, "vk:1002");
    sandbox.chatwoot_set_attachment_limit(16);
    let err = cw
        .create_message_with_attachments(
            conversation,
            "",
            MessageType::Incoming,
            json!({}),
            None,
            vec![Upload {
                file_name: "big.bin".into(),
                mime: "application/octet-stream".into(),
                bytes: vec![7; 17],
            }],
        )
        .await
        .expect_err("too big");
    assert_eq!(err.status(), Some(422));
    assert!(!err.is_retriable());
    assert!(
        err.to_string()
            .contains("Validation failed: Attachments file size is too big"),
        "{err}"
    );
    assert!(sandbox.chatwoot_messages(conversation).is_empty());
    // At the limit it passes; the message may have files and no text.
    let ok = cw
        .create_message_with_attachments(
            conversation,
            "",
            MessageType::Incoming,
            json!({}),
            None,
            vec![Upload {
                file_name: "ok.ogg".into(),
                mime: "audio/ogg".into(),
                bytes: vec![7; 16],
            }],
        )
        .await
        .expect("at the limit");
    assert_eq!(ok.attachments[0].file_type, "audio");
}

#[tokio::test]
async fn agent_reply_with_a_file_reaches_the_registered_webhook_signed() {
    let sandbox = Sandbox::start().await.expect("sandbox");
    let cw = client(&sandbox);
    let (_, conversation) = seed(&sandbox, "vk:1003");
    let (url, mut rx) = receiver().await;
    let hook = cw
        .create_webhook(&url, &["message_created"])
        .await
        .expect("webhook");
    let secret = hook.secret.clone().expect("v4.11+ webhooks have a secret");

    let id = sandbox
        .chatwoot_agent_reply_with_files(
            conversation,
            "Счёт во вложении",
            vec![(
                "invoice.pdf".into(),
                "application/pdf".into(),
                b"%PDF-1.4 x".to_vec(),
            )],
        )
        .await
        .expect("reply");
    let (headers, body) = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("delivered in time")
        .expect("delivered");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    verify_signature(
        secret.as_bytes(),
        header(&headers, "x-chatwoot-signature"),
        header(&headers, "x-chatwoot-timestamp"),
        &body,
        now,
        300,
    )
    .expect("signed with the webhook's secret");

    let payload: MessagePayload = serde_json::from_slice(&body).expect("payload");
    assert_eq!(payload.id, id);
    assert_eq!(payload.message_type(), Some(MessageType::Outgoing));
    assert_eq!(payload.attachments.len(), 1);
    let a = &payload.attachments[0];
    assert_eq!(a.file_type.as_deref(), Some("file"));
    assert_eq!(a.message_id, Some(id));
    assert_eq!(a.file_size, Some(10));
    let (status, _, bytes) = download(a.data_url.as_deref().expect("data_url")).await;
    assert_eq!((status, bytes.as_slice()), (200, b"%PDF-1.4 x".as_slice()));

    // The conversation part carries what an old gateway's conversation is recognised by.
    let conv = payload.conversation.expect("conversation");
    assert_eq!(
        conv.contact_inbox.and_then(|ci| ci.source_id).as_deref(),
        Some("vk:1003")
    );
    let sender = conv.meta.sender.expect("meta.sender");
    assert_eq!(sender.identifier.as_deref(), Some("vk:1003"));
    assert_eq!(sender.email.as_deref(), Some("anna@example.com"));
    assert_eq!(sender.custom_attributes, json!({"vk_id": 1001}));
    assert_eq!(conv.custom_attributes, json!({"legacy": true}));
    assert_eq!(conv.additional_attributes, json!({"vk_peer_id": 1001}));

    // A failing download answers its status until it is cleared.
    let data_url = a.data_url.clone().expect("data_url");
    sandbox.chatwoot_fail_file(&data_url, 503);
    assert_eq!(download(&data_url).await.0, 503);
    sandbox.chatwoot_fail_file(&data_url, 200);
    assert_eq!(download(&data_url).await.0, 200);
    assert_eq!(sandbox.chatwoot_attachment_bytes(id).len(), 1);
}

#[tokio::test]
async fn inboxes_are_listed_and_created() {
    let sandbox = Sandbox::start().await.expect("sandbox");
    let cw = client(&sandbox);
    let seeded = cw.inboxes().await.expect("inboxes");
    assert_eq!(seeded.len(), 1);
    assert_eq!(seeded[0].id, sandbox.options().chatwoot_inbox_id);
    assert_eq!(seeded[0].channel_type, "Channel::Api");

    let created = cw.create_api_inbox("VK сообщество").await.expect("created");
    assert_eq!(created.name, "VK сообщество");
    assert_eq!(created.channel_type, "Channel::Api");
    assert_ne!(created.id, seeded[0].id);
    sandbox.chatwoot_rename_inbox(created.id, "VK");
    let all = cw.inboxes().await.expect("inboxes");
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].name, "VK");
    assert_eq!(sandbox.chatwoot_inboxes()[1]["name"], "VK");

    // Contacts and conversations can live in the new inbox.
    let contact = cw
        .create_contact(created.id, "Олег", "vk:2001", json!({}))
        .await
        .expect("contact");
    cw.create_contact_inbox(contact.id, created.id, "vk:2001")
        .await
        .expect("contact inbox");
    let conv = cw
        .create_conversation("vk:2001", created.id, contact.id, json!({}))
        .await
        .expect("conversation");
    assert_eq!(conv.inbox_id, Some(created.id));

    let err = cw.create_api_inbox("").await.expect_err("blank name");
    assert_eq!(err.status(), Some(422));
}

#[tokio::test]
async fn webhooks_are_created_updated_listed_and_validated() {
    let sandbox = Sandbox::start().await.expect("sandbox");
    let cw = client(&sandbox);
    assert!(cw.webhooks().await.expect("none yet").is_empty());
    let hook = cw
        .create_webhook("https://gw.example/chatwoot", &["message_created"])
        .await
        .expect("created");
    assert_eq!(hook.url, "https://gw.example/chatwoot");
    assert_eq!(hook.subscriptions, vec!["message_created".to_owned()]);
    let secret = hook.secret.clone().expect("secret");
    assert_eq!(secret.len(), 24);

    let updated = cw
        .update_webhook(
            hook.id,
            "https://gw.example/v2/chatwoot",
            &["message_created", "conversation_status_changed"],
        )
        .await
        .expect("updated");
    assert_eq!(updated.id, hook.id);
    assert_eq!(updated.url, "https://gw.example/v2/chatwoot");
    assert_eq!(updated.subscriptions.len(), 2);
    assert_eq!(
        updated.secret.as_deref(),
        Some(secret.as_str()),
        "the secret stays"
    );
    assert_eq!(cw.webhooks().await.expect("list"), vec![updated.clone()]);
    assert_eq!(
        sandbox.chatwoot_webhooks()[0]["secret"],
        Value::from(secret)
    );

    for (url, events, text) in [
        ("not a url", &["message_created"][..], "Url is invalid"),
        (
            "ftp://gw.example/x",
            &["message_created"][..],
            "Url is invalid",
        ),
        (
            "https://gw.example/v2/chatwoot",
            &["message_created"][..],
            "Url has already been taken",
        ),
        (
            "https://gw.example/other",
            &["message_exploded"][..],
            "Subscriptions Invalid events",
        ),
        (
            "https://gw.example/other",
            &[][..],
            "Subscriptions Invalid events",
        ),
    ] {
        let err = cw.create_webhook(url, events).await.expect_err(url);
        assert_eq!(err.status(), Some(422), "{url}");
        assert!(err.to_string().contains(text), "{url}: {err}");
    }
    let err = cw
        .update_webhook(hook.id + 100, "https://gw.example/x", &["message_created"])
        .await
        .expect_err("unknown");
    assert_eq!(err.status(), Some(404));
    assert_eq!(cw.webhooks().await.expect("list").len(), 1);
}

#[tokio::test]
async fn conversations_come_in_pages_of_25_with_the_old_gateways_marks() {
    let sandbox = Sandbox::start().await.expect("sandbox");
    let cw = client(&sandbox);
    let inbox = sandbox.options().chatwoot_inbox_id;
    let total = CONVERSATIONS_PER_PAGE + 5;
    for i in 0..total {
        seed(&sandbox, &format!("vk:{}", 3000 + i));
    }
    let first = cw
        .conversations_page(inbox, "open", 1)
        .await
        .expect("page 1");
    let second = cw
        .conversations_page(inbox, "open", 2)
        .await
        .expect("page 2");
    let third = cw
        .conversations_page(inbox, "open", 3)
        .await
        .expect("page 3");
    assert_eq!((first.len(), second.len(), third.len()), (25, 5, 0));
    let mut ids: Vec<i64> = first.iter().chain(&second).map(|c| c.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), total, "no conversation on two pages");
    assert!(
        cw.conversations_page(inbox, "resolved", 1)
            .await
            .expect("resolved")
            .is_empty()
    );
    assert_eq!(
        cw.conversations_page(inbox, "all", 2)
            .await
            .expect("all")
            .len(),
        5
    );
    let other = cw.create_api_inbox("Other").await.expect("inbox");
    assert!(
        cw.conversations_page(other.id, "open", 1)
            .await
            .expect("other")
            .is_empty()
    );

    let c = &first[0];
    assert_eq!(c.custom_attributes, json!({"legacy": true}));
    let sender = c.meta.sender.as_ref().expect("meta.sender");
    assert_eq!(sender.custom_attributes, json!({"vk_id": 1001}));
    assert!(
        sender
            .identifier
            .as_deref()
            .is_some_and(|i| i.starts_with("vk:"))
    );
    // No messages yet: the REST conversation names no contact inbox.
    assert_eq!(c.source_id(), None);
    cw.create_message(c.id, "привет", MessageType::Incoming, json!({}), None)
        .await
        .expect("message");
    let again = cw.conversation(c.id).await.expect("conversation");
    assert_eq!(again.source_id(), sender.identifier.as_deref());
}

#[tokio::test]
async fn contact_has_its_contact_inboxes() {
    let sandbox = Sandbox::start().await.expect("sandbox");
    let cw = client(&sandbox);
    let (contact, _) = seed(&sandbox, "vk:4001");
    let details = cw.contact(contact).await.expect("contact");
    assert_eq!(details.id, contact);
    assert_eq!(details.name.as_deref(), Some("Анна"));
    assert_eq!(details.identifier.as_deref(), Some("vk:4001"));
    assert_eq!(details.email.as_deref(), Some("anna@example.com"));
    assert_eq!(details.custom_attributes, json!({"vk_id": 1001}));
    assert_eq!(details.additional_attributes, json!({}));
    assert_eq!(details.contact_inboxes.len(), 1);
    assert_eq!(details.contact_inboxes[0].source_id, "vk:4001");
    assert_eq!(
        details.contact_inboxes[0].inbox_id,
        sandbox.options().chatwoot_inbox_id
    );
    let err = cw.contact(contact + 1000).await.expect_err("unknown");
    assert_eq!(err.status(), Some(404));
}

#[tokio::test]
async fn legacy_webhook_url_still_receives_deliveries() {
    let sandbox = Sandbox::start().await.expect("sandbox");
    let (_, conversation) = seed(&sandbox, "vk:5001");
    let (url, mut rx) = receiver().await;
    sandbox.set_chatwoot_webhook(Some(url.clone()), None);
    let id = sandbox
        .chatwoot_agent_reply_with_files(
            conversation,
            "",
            vec![("a.jpg".into(), "image/jpeg".into(), vec![1, 2, 3])],
        )
        .await
        .expect("reply");
    let (headers, body) = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("in time")
        .expect("delivered");
    assert_eq!(
        header(&headers, "x-chatwoot-signature"),
        None,
        "unsigned without a secret"
    );
    let payload: MessagePayload = serde_json::from_slice(&body).expect("payload");
    assert_eq!(payload.id, id);
    assert_eq!(payload.content, None, "attachment-only");
    assert_eq!(payload.attachments[0].file_type.as_deref(), Some("image"));
    sandbox
        .wait_until(WAIT, |s| {
            s.chatwoot_webhook_deliveries()
                .iter()
                .any(|d| d.url == url && d.status == Some(200))
        })
        .await
        .expect("recorded");
    let err = sandbox
        .chatwoot_agent_reply_with_files(conversation + 1000, "x", vec![])
        .await
        .expect_err("unknown conversation");
    assert!(err.to_string().contains("sandbox"), "{err}");
}
