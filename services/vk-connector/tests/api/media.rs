//! Files each way: a customer's photo, document and voice message become Chatwoot attachments;
//! an agent's image, document and voice recording become a VK photo, document and voice
//! message. The bytes are compared end to end; what cannot be carried goes as a link.

use std::sync::{Arc, Mutex};

use sandbox::Failure;
use serde_json::{Value, json};

use crate::helpers::*;

/// Distinct, recognisable content of `len` bytes.
fn bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add((i % 251) as u8))
        .collect()
}

/// The newest Chatwoot message of the test's conversation with its id.
fn last_message(app: &TestApp) -> Value {
    app.all_chatwoot_messages()
        .into_iter()
        .last()
        .expect("a message in Chatwoot")
}

#[tokio::test]
async fn a_customers_photo_document_and_voice_message_arrive_as_chatwoot_attachments() {
    let app = spawn_app().await;
    let photo = bytes(1, 30_000);
    let doc = bytes(2, 12_345);
    let voice = bytes(3, 7_000);
    let attachments = json!([
        app.sandbox.vk_photo_attachment(photo.clone()),
        app.sandbox
            .vk_doc_attachment("счёт.pdf", "application/pdf", doc.clone()),
        app.sandbox.vk_audio_message_attachment(voice.clone()),
    ]);
    let body = message_new_with(
        USER_ID,
        "Вот фото, счёт и голосовое",
        attachments,
        &event_id(),
    );
    assert_eq!(app.post_callback(&body).await.status(), 200);
    app.sandbox
        .wait_until(WAIT, |s| !all_messages(s).is_empty())
        .await
        .expect("the message reaches Chatwoot");
    let message = last_message(&app);
    // The text only: the files are attachments, not link lines.
    assert_eq!(message["content"], "Вот фото, счёт и голосовое");
    let id = message["id"].as_i64().expect("message id");
    let files = app.sandbox.chatwoot_attachment_bytes(id);
    assert_eq!(files.len(), 3, "{files:?}");
    let types: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(types, ["image", "file", "audio"]);
    assert!(files[0].2 == photo, "the largest photo size, byte for byte");
    assert_eq!(files[1].1, "счёт.pdf");
    assert!(files[1].2 == doc);
    assert!(files[2].2 == voice);
    app.cleanup().await;
}

#[tokio::test]
async fn a_sticker_and_a_video_preview_are_images_and_the_video_stays_a_link() {
    let app = spawn_app().await;
    let sticker = bytes(4, 2_000);
    let preview = bytes(5, 3_000);
    let attachments = json!([
        app.sandbox.vk_sticker_attachment(sticker.clone()),
        app.sandbox.vk_video_attachment(preview.clone()),
    ]);
    let body = message_new_with(USER_ID, "", attachments, &event_id());
    assert_eq!(app.post_callback(&body).await.status(), 200);
    app.sandbox
        .wait_until(WAIT, |s| !all_messages(s).is_empty())
        .await
        .expect("the message reaches Chatwoot");
    let message = last_message(&app);
    let files = app
        .sandbox
        .chatwoot_attachment_bytes(message["id"].as_i64().unwrap());
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files[0].2 == sticker);
    assert!(files[1].2 == preview);
    let content = message["content"].as_str().unwrap_or_default();
    assert!(
        content.starts_with("📎 video") && content.contains("https://vk.com/video"),
        "the video itself is a link: {content}"
    );
    app.cleanup().await;
}

/// Log lines of this test process (nextest runs each test in its own process).
fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(buf.clone());
    let _ = tracing_subscriber::fmt()
        .with_env_filter("vk_connector=warn")
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .try_init();
    buf
}

fn logged(buf: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buf.lock().unwrap()).into_owned()
}

#[tokio::test]
async fn an_oversized_file_becomes_a_link_and_a_log_line_not_a_failure() {
    let logs = capture_logs();
    let app = spawn_app_with(Options {
        media_max_bytes: Some(10_000),
        ..Default::default()
    })
    .await;
    let big = app
        .sandbox
        .vk_doc_attachment("big.zip", "application/zip", bytes(6, 10_001));
    let small = app.sandbox.vk_photo_attachment(bytes(7, 9_000));
    let url = big["doc"]["url"].as_str().expect("doc url").to_owned();
    let body = message_new_with(USER_ID, "два файла", json!([big, small]), &event_id());
    assert_eq!(app.post_callback(&body).await.status(), 200);
    app.sandbox
        .wait_until(WAIT, |s| !all_messages(s).is_empty())
        .await
        .expect("the message reaches Chatwoot");
    let message = last_message(&app);
    assert_eq!(
        message["content"],
        format!("два файла\n📎 file «big.zip»: {url}")
    );
    let files = app
        .sandbox
        .chatwoot_attachment_bytes(message["id"].as_i64().unwrap());
    assert_eq!(files.len(), 1, "the photo under the limit is still a file");
    let log = logged(&logs);
    assert!(
        log.contains("posted to Chatwoot as a link") && log.contains("larger than 10000 bytes"),
        "{log}"
    );

    // The other way: an agent's file over the limit goes to VK as a link.
    let conv = app.conversation_id();
    let reply = app
        .sandbox
        .chatwoot_agent_reply_with_files(
            conv,
            "архив",
            vec![("big.zip".into(), "application/zip".into(), bytes(8, 20_000))],
        )
        .await
        .expect("the agent's reply with files");
    app.sandbox
        .wait_until(WAIT, |s| !s.vk_sent_messages().is_empty())
        .await
        .expect("the reply reaches VK");
    let sent = app.sandbox.vk_sent_messages();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].attachments.is_empty(), "{sent:?}");
    assert!(
        sent[0].message.starts_with("архив\n📎 file") && sent[0].message.contains("http"),
        "{}",
        sent[0].message
    );
    assert!(logged(&logs).contains("sent to VK as a link"));
    app.wait_db("the delivery record", || async {
        app.state.store.outbound_delivered(1, reply).await.unwrap()
    })
    .await;
    app.cleanup().await;
}

#[tokio::test]
async fn an_agents_image_document_and_voice_arrive_in_vk_as_photo_doc_and_voice_message() {
    let app = spawn_app().await;
    let conv = app.customer_writes("Пришлите документы").await;
    let image = bytes(9, 25_000);
    let pdf = bytes(10, 8_000);
    let voice = bytes(11, 5_000);
    let reply = app
        .sandbox
        .chatwoot_agent_reply_with_files(
            conv,
            "Держите",
            vec![
                ("scan.png".into(), "image/png".into(), image.clone()),
                ("договор.pdf".into(), "application/pdf".into(), pdf.clone()),
                ("voice.ogg".into(), "audio/ogg".into(), voice.clone()),
            ],
        )
        .await
        .expect("the agent's reply with files");
    app.sandbox
        .wait_until(WAIT, |s| !s.vk_sent_messages().is_empty())
        .await
        .expect("the reply reaches VK");
    app.wait_db("the delivery record", || async {
        app.state.store.outbound_delivered(1, reply).await.unwrap()
    })
    .await;
    let sent = app.sandbox.vk_sent_messages();
    assert_eq!(
        sent.len(),
        1,
        "one VK message with the text and three files: {sent:?}"
    );
    assert_eq!(sent[0].message, "Держите");
    assert_eq!(sent[0].attachments.len(), 3, "{sent:?}");
    let media: Vec<_> = sent[0]
        .attachments
        .iter()
        .map(|a| {
            app.sandbox
                .vk_media(a)
                .unwrap_or_else(|| panic!("{a} is saved media"))
        })
        .collect();
    assert_eq!(media[0].kind, "photo");
    assert!(media[0].bytes == image);
    assert_eq!(media[1].kind, "doc");
    assert_eq!(media[1].title, "договор.pdf");
    assert!(media[1].bytes == pdf);
    assert_eq!(media[2].kind, "audio_message");
    assert!(media[2].bytes == voice);
    app.cleanup().await;
}

#[tokio::test]
async fn an_upload_server_failing_once_is_retried_and_vk_gets_one_message() {
    let app = spawn_app().await;
    let conv = app.customer_writes("Фото?").await;
    app.sandbox.vk_fail_next_upload(1, Failure::Status(500));
    let image = bytes(12, 4_000);
    let reply = app
        .sandbox
        .chatwoot_agent_reply_with_files(
            conv,
            "Вот",
            vec![("photo.jpg".into(), "image/jpeg".into(), image.clone())],
        )
        .await
        .expect("the agent's reply with files");
    app.wait_db("the delivery record", || async {
        app.state.store.outbound_delivered(1, reply).await.unwrap()
    })
    .await;
    let sent = app.sandbox.vk_sent_messages();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].attachments.len(), 1);
    let media = app
        .sandbox
        .vk_media(&sent[0].attachments[0])
        .expect("saved photo");
    assert!(media.bytes == image);
    assert_eq!(
        app.sandbox.vk_upload_attempts(),
        2,
        "the failed upload and the retried one"
    );
    app.cleanup().await;
}

/// A reply whose files were uploaded and whose VK messages were planned by an earlier attempt
/// (that died mid-way) is sent as that plan: no new upload, the same texts and random_ids.
#[tokio::test]
async fn a_retry_sends_the_stored_plan_and_uploads_nothing_again() {
    let app = spawn_app().await;
    let conv = app.customer_writes("Фото пришлите").await;
    let mut webhook = fixture("chatwoot_message_created_attachment_only.json");
    webhook["conversation"]["id"] = json!(conv);
    webhook["attachments"][0]["data_url"] = json!(app.sandbox.vk_host_file(
        "photo.jpg",
        "image/jpeg",
        bytes(13, 2_000)
    ));
    let message_id = webhook["id"].as_i64().expect("fixture id");
    // What the earlier attempt planned: its photo already uploaded, two messages.
    let (before, stored) = app
        .state
        .store
        .start_outbound_attempt(1, message_id)
        .await
        .unwrap();
    assert_eq!((before, stored), (0, None));
    let photo = app.sandbox.vk_photo_attachment(bytes(14, 1_000));
    let attachment = format!(
        "photo{}_{}",
        photo["photo"]["owner_id"], photo["photo"]["id"]
    );
    let plan =
        json!({"messages": [["первая часть", null], ["вторая часть", attachment]], "files": 1});
    app.state
        .store
        .save_outbound_plan(1, message_id, &plan)
        .await
        .unwrap();
    assert_eq!(app.post_webhook(&webhook).await.status(), 200);
    app.wait_db("the delivery record", || async {
        app.state
            .store
            .outbound_delivered(1, message_id)
            .await
            .unwrap()
    })
    .await;
    let sent = app.sandbox.vk_sent_messages();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0].message, "первая часть");
    assert_eq!(sent[1].message, "вторая часть");
    assert_eq!(sent[1].attachments, vec![attachment]);
    assert_eq!(
        sent[1].random_id,
        vk_connector::normalize::random_id(1, message_id, 1) as i64
    );
    assert_eq!(
        app.sandbox.vk_upload_attempts(),
        0,
        "nothing uploaded again"
    );
    // The attempt record ends with the delivery.
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM vk.outbound_attempts")
        .fetch_one(app.state.store.pool())
        .await
        .unwrap();
    assert_eq!(left, 0);
    app.cleanup().await;
}
