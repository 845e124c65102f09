//! Voice messages: multipart upload onto the files volume, member-only downloads with Range.

use reqwest::multipart::{Form, Part};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::*;

pub fn ogg(len: usize) -> Vec<u8> {
    let mut v = b"OggS\0\x02".to_vec();
    v.extend((0..len.saturating_sub(6)).map(|i| (i % 251) as u8));
    v
}

pub fn form(chat: Uuid, bytes: Vec<u8>, mime: &str) -> Form {
    Form::new()
        .text("chatId", chat.to_string())
        .text("durationMs", "3200")
        .part(
            "file",
            Part::bytes(bytes)
                .file_name("voice.ogg")
                .mime_str(mime)
                .unwrap(),
        )
}

pub async fn upload(app: &TestApp, token: &str, form: Form) -> reqwest::Response {
    app.http
        .post(app.url("/api/messages/audio"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("upload")
}

#[tokio::test]
async fn a_voice_message_is_uploaded_and_downloaded_by_members_only() {
    let app = spawn_app().await;
    let (a, b, s) = (
        app.user("Анна").await,
        app.user("Борис").await,
        app.user("Чужой").await,
    );
    let chat = app.private_chat(&a, &b).await;
    let bytes = ogg(10_000);
    let res = upload(&app, &a.token, form(chat, bytes.clone(), "audio/ogg")).await;
    assert_eq!(res.status(), 201);
    let m: Value = res.json().await.unwrap();
    assert_eq!(m["type"], "audio");
    assert_eq!(m["durationMs"], 3200);
    assert_eq!(m["file"]["contentType"], "audio/ogg");
    assert_eq!(m["file"]["sizeBytes"], 10_000);
    let url = m["file"]["url"].as_str().unwrap().to_owned();
    let file_id: Uuid = m["file"]["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(url, format!("/api/files/{file_id}"));
    assert!(
        app.files_dir.join(file_id.simple().to_string()).exists(),
        "on the files volume"
    );

    // the other member downloads it whole
    let res = app.get(&url, Some(&b.token)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "audio/ogg");
    assert_eq!(res.headers()["accept-ranges"], "bytes");
    assert_eq!(res.bytes().await.unwrap().as_ref(), bytes.as_slice());

    // a range, as an audio player seeks
    let res = app
        .http
        .get(app.url(&url))
        .bearer_auth(&b.token)
        .header("Range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(res.headers()["content-range"], "bytes 100-199/10000");
    assert_eq!(res.bytes().await.unwrap().as_ref(), &bytes[100..200]);
    let res = app
        .http
        .get(app.url(&url))
        .bearer_auth(&b.token)
        .header("Range", "bytes=20000-")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 416);

    // <audio src> in a browser: the token as a query parameter
    let res = app
        .http
        .get(app.url(&format!("{url}?access_token={}", b.token)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // strangers and anonymous callers
    expect_error(app.get(&url, Some(&s.token)).await, 404).await;
    expect_error(app.get(&url, None).await, 401).await;
    expect_error(
        app.get(&format!("/api/files/{}", Uuid::new_v4()), Some(&a.token))
            .await,
        404,
    )
    .await;

    // deleting the message removes the file
    let path = format!("/api/messages/{}", m["id"]);
    assert_eq!(app.delete(&path, Some(&a.token)).await.status(), 204);
    expect_error(app.get(&url, Some(&a.token)).await, 404).await;
    assert!(!app.files_dir.join(file_id.simple().to_string()).exists());
    app.cleanup().await;
}

#[tokio::test]
async fn uploads_are_checked() {
    let app = spawn_app_with(Options {
        env: vec![("MESSENGER_MAX_AUDIO_BYTES", "50000".into())],
        ..Default::default()
    })
    .await;
    let (a, b, s) = (
        app.user("Анна").await,
        app.user("Борис").await,
        app.user("Чужой").await,
    );
    let chat = app.private_chat(&a, &b).await;
    // not audio
    let v = expect_error(
        upload(&app, &a.token, form(chat, ogg(100), "image/png")).await,
        415,
    )
    .await;
    assert!(v["error"].as_str().unwrap().contains("audio"));
    // too large
    expect_error(
        upload(&app, &a.token, form(chat, ogg(60_000), "audio/ogg")).await,
        413,
    )
    .await;
    // far too large: refused by the body limit before it is read
    expect_error(
        upload(&app, &a.token, form(chat, ogg(300_000), "audio/ogg")).await,
        413,
    )
    .await;
    // no chatId, no file, bad chatId
    let no_chat = Form::new().part("file", Part::bytes(ogg(100)).mime_str("audio/ogg").unwrap());
    expect_error(upload(&app, &a.token, no_chat).await, 400).await;
    let no_file = Form::new().text("chatId", chat.to_string());
    expect_error(upload(&app, &a.token, no_file).await, 400).await;
    let bad_chat = Form::new().text("chatId", "nope");
    expect_error(upload(&app, &a.token, bad_chat).await, 400).await;
    // not multipart
    let res = app
        .http
        .post(app.url("/api/messages/audio"))
        .bearer_auth(&a.token)
        .json(&serde_json::json!({ "chatId": chat }))
        .send()
        .await
        .unwrap();
    expect_error(res, 415).await;
    // a stranger's upload: 404, and nothing left on disk
    expect_error(
        upload(&app, &s.token, form(chat, ogg(100), "audio/ogg")).await,
        404,
    )
    .await;
    let left: Vec<_> = std::fs::read_dir(&app.files_dir).unwrap().collect();
    assert!(left.is_empty(), "refused uploads leave no files: {left:?}");
    app.cleanup().await;
}
