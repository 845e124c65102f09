//! `VkClient` uploads and community setup against the sandbox's VK fake.

use sandbox::{Failure, Sandbox};
use vk_api::{DocType, ErrorClass, VkClient, VkError};

const GROUP: i64 = 1;
const PEER: i64 = 42;

fn client(sandbox: &Sandbox) -> VkClient {
    VkClient::new(
        reqwest::Client::new(),
        sandbox.vk_api_url(),
        sandbox.options().vk_access_token.clone(),
        "5.199",
    )
}

#[tokio::test]
async fn photo_round_trip_keeps_the_bytes_and_sends_the_attachment() {
    let sandbox = Sandbox::start().await.expect("sandbox");
    let vk = client(&sandbox);
    let bytes = b"\xff\xd8\xff\xe0 not really a jpeg".to_vec();

    let server = vk.photo_upload_server(PEER).await.expect("upload server");
    assert!(
        server.upload_url.starts_with(&sandbox.url()),
        "{}",
        server.upload_url
    );
    let upload = vk
        .upload_photo(&server, "cat.jpg", "image/jpeg", bytes.clone())
        .await
        .expect("uploaded");
    let saved = vk.save_messages_photo(&upload).await.expect("saved");
    assert_eq!(saved.owner_id, -GROUP);
    let attachment = saved.attachment();
    assert!(
        attachment.starts_with(&format!("photo-{GROUP}_{}_", saved.id)),
        "{attachment}"
    );

    let media = sandbox.vk_media(&attachment).expect("the fake knows it");
    assert_eq!(media.kind, "photo");
    assert_eq!(media.bytes, bytes);
    assert_eq!(media.file_name, "cat.jpg");
    assert_eq!(media.mime, "image/jpeg");
    assert_eq!(sandbox.vk_upload_attempts(), 1);

    // The same upload cannot be saved twice.
    let again = vk
        .save_messages_photo(&upload)
        .await
        .expect_err("hash used");
    assert_eq!(again.code(), Some(121));

    vk.send_message(PEER, 7, "", Some(&attachment))
        .await
        .expect("sent");
    let sent = sandbox.vk_sent_messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].attachments, vec![attachment]);
}

#[tokio::test]
async fn doc_and_voice_message_round_trips() {
    let sandbox = Sandbox::start().await.expect("sandbox");
    let vk = client(&sandbox);

    let server = vk
        .doc_upload_server(PEER, DocType::Doc)
        .await
        .expect("server");
    let file = vk
        .upload_doc(&server, "счёт.pdf", "application/pdf", b"%PDF-1.4".to_vec())
        .await
        .expect("uploaded");
    let doc = vk.save_doc(&file, "Счёт №1").await.expect("saved");
    assert_eq!(doc.kind, DocType::Doc);
    let media = sandbox.vk_media(&doc.attachment()).expect("known doc");
    assert_eq!(
        (
            media.kind.as_str(),
            media.title.as_str(),
            media.bytes.as_slice()
        ),
        ("doc", "Счёт №1", &b"%PDF-1.4"[..])
    );

    let server = vk
        .doc_upload_server(PEER, DocType::AudioMessage)
        .await
        .expect("server");
    let ogg = b"OggS voice".to_vec();
    let file = vk
        .upload_doc(&server, "voice.ogg", "audio/ogg", ogg.clone())
        .await
        .expect("uploaded");
    let voice = vk.save_doc(&file, "voice").await.expect("saved");
    assert_eq!(voice.kind, DocType::AudioMessage);
    assert!(
        voice.attachment().starts_with("doc-1_"),
        "{}",
        voice.attachment()
    );
    let media = sandbox.vk_media(&voice.attachment()).expect("known voice");
    assert_eq!(media.kind, "audio_message");
    assert_eq!(media.bytes, ogg);

    // A file string the upload server never gave is error 100.
    let bad = vk.save_doc("1|2|3", "x").await.expect_err("bad file");
    assert_eq!(bad.code(), Some(100));

    vk.send_message(
        PEER,
        8,
        "files",
        Some(&format!("{},{}", doc.attachment(), voice.attachment())),
    )
    .await
    .expect("sent");
    assert_eq!(sandbox.vk_sent_messages()[0].attachments.len(), 2);
}

#[tokio::test]
async fn failing_uploads_are_upload_errors_classified_by_status() {
    let sandbox = Sandbox::start().await.expect("sandbox");
    let vk = client(&sandbox);
    let server = vk.photo_upload_server(PEER).await.expect("server");

    sandbox.vk_fail_next_upload(1, Failure::Status(500));
    let err = vk
        .upload_photo(&server, "a.jpg", "image/jpeg", b"jpg".to_vec())
        .await
        .expect_err("500");
    assert!(
        matches!(err, VkError::Upload { status: 500, .. }),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::RetrySoon);
    assert!(
        !err.to_string().contains(&server.upload_url),
        "no URL in errors"
    );

    sandbox.vk_fail_next_upload(1, Failure::VkError(1));
    let err = vk
        .upload_photo(&server, "a.jpg", "image/jpeg", b"jpg".to_vec())
        .await
        .expect_err("refused");
    assert!(
        matches!(err, VkError::Upload { status: 200, .. }),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Final);

    // Not a photo at all: VK answers an empty photo list.
    let err = vk
        .upload_photo(&server, "a.pdf", "application/pdf", b"%PDF".to_vec())
        .await
        .expect_err("not a photo");
    assert!(
        matches!(err, VkError::Upload { status: 200, .. }),
        "{err:?}"
    );

    let doc_server = vk
        .doc_upload_server(PEER, DocType::Doc)
        .await
        .expect("server");
    sandbox.vk_fail_next_upload(1, Failure::VkError(1));
    let err = vk
        .upload_doc(&doc_server, "a.txt", "text/plain", b"hi".to_vec())
        .await
        .expect_err("refused");
    assert!(
        matches!(err, VkError::Upload { status: 200, .. }),
        "{err:?}"
    );

    // Recovered.
    vk.upload_photo(&server, "a.jpg", "image/jpeg", b"jpg".to_vec())
        .await
        .expect("works again");
    assert_eq!(sandbox.vk_upload_attempts(), 5);

    // A blocked peer cannot get an upload server.
    sandbox.block_vk_peer(PEER);
    let err = vk.photo_upload_server(PEER).await.expect_err("blocked");
    assert_eq!(err.code(), Some(901));
}

#[tokio::test]
async fn callback_servers_confirmation_code_and_settings() {
    let sandbox = Sandbox::start().await.expect("sandbox");
    let vk = client(&sandbox);

    assert!(vk.callback_servers(GROUP).await.expect("list").is_empty());
    let id = vk
        .add_callback_server(GROUP, "https://gw.example/vk/callback", "gateway", "s3cr3t")
        .await
        .expect("added");
    vk.edit_callback_server(
        GROUP,
        id,
        "https://gw2.example/vk/callback",
        "gateway",
        "n3w",
    )
    .await
    .expect("edited");
    let servers = vk.callback_servers(GROUP).await.expect("list");
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0].id, id);
    assert_eq!(servers[0].url, "https://gw2.example/vk/callback");
    assert_eq!(servers[0].secret_key.as_deref(), Some("n3w"));
    assert_eq!(servers[0].status, "unconfigured");
    assert_eq!(sandbox.vk_callback_servers().len(), 1);

    let err = vk
        .edit_callback_server(GROUP, id + 100, "https://x.example/", "gateway", "")
        .await
        .expect_err("unknown server");
    assert_eq!(err.code(), Some(104));
    let err = vk
        .add_callback_server(GROUP, "https://x.example/", "a title too long", "")
        .await
        .expect_err("title > 14");
    assert_eq!(err.code(), Some(100));

    let code = vk.callback_confirmation_code(GROUP).await.expect("code");
    assert_eq!(code, sandbox.vk_confirmation_code());
    assert_eq!(code.len(), 8);

    vk.set_callback_settings(
        GROUP,
        id,
        "5.199",
        &[("message_new", true), ("message_reply", false)],
    )
    .await
    .expect("callback settings");
    let settings = sandbox.vk_callback_settings(id).expect("recorded");
    assert_eq!(settings["api_version"], "5.199");
    assert_eq!(settings["events"]["message_new"], 1);
    assert_eq!(settings["events"]["message_reply"], 0);

    assert!(sandbox.vk_long_poll_settings().is_none());
    vk.set_long_poll_settings(GROUP, "5.131", &[("message_new", true)])
        .await
        .expect("long poll settings");
    let lp = sandbox.vk_long_poll_settings().expect("recorded");
    assert_eq!(lp["is_enabled"], true);
    assert_eq!(lp["api_version"], "5.131");
    assert_eq!(lp["events"]["message_new"], 1);

    // Ten servers at most.
    for i in 1..10 {
        vk.add_callback_server(GROUP, "https://gw.example/", &format!("s{i}"), "")
            .await
            .expect("within the limit");
    }
    let err = vk
        .add_callback_server(GROUP, "https://gw.example/", "s11", "")
        .await
        .expect_err("limit");
    assert_eq!(err.code(), Some(2000));
}
