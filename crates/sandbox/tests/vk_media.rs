//! The VK fake's media and community setup, over plain HTTP: hosted files, inbound attachment
//! objects, attachment checks in `messages.send`, upload server edge cases, `groups.*` params.
//! (Client-level round trips live in `crates/vk-api/tests/media.rs`.)

use sandbox::Sandbox;
use serde_json::Value;

async fn vk(sandbox: &Sandbox, method: &str, params: &[(&str, &str)]) -> Value {
    let mut form = vec![("access_token", "vk-test-token"), ("v", "5.199")];
    form.extend_from_slice(params);
    reqwest::Client::new()
        .post(format!("{}/{method}", sandbox.vk_api_url()))
        .form(&form)
        .send()
        .await
        .expect("VK fake answers")
        .json()
        .await
        .expect("JSON")
}

async fn get(url: &str) -> (u16, Option<String>, Option<String>, Vec<u8>) {
    let res = reqwest::get(url).await.expect("file answers");
    let header = |name| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (ct, len) = (header("content-type"), header("content-length"));
    let status = res.status().as_u16();
    (status, ct, len, res.bytes().await.expect("body").to_vec())
}

/// The URL of the largest (by width × height) entry of `list`.
fn largest(list: &Value, url_key: &str) -> String {
    let items = list.as_array().expect("array");
    let best = items
        .iter()
        .max_by_key(|i| i["width"].as_i64().unwrap_or(0) * i["height"].as_i64().unwrap_or(0))
        .expect("not empty");
    best[url_key].as_str().expect("url").to_owned()
}

#[tokio::test]
async fn hosted_files_serve_bytes_with_headers_and_can_fail() {
    let sandbox = Sandbox::start().await.expect("sandbox");
    let url = sandbox.vk_host_file("a.pdf", "application/pdf", b"%PDF-1.4".to_vec());
    assert!(
        url.starts_with(&format!("{}/vk/files/", sandbox.url())),
        "{url}"
    );
    let (status, ct, len, body) = get(&url).await;
    assert_eq!(status, 200);
    assert_eq!(ct.as_deref(), Some("application/pdf"));
    assert_eq!(len.as_deref(), Some("8"));
    assert_eq!(body, b"%PDF-1.4");

    sandbox.vk_fail_file(&url, 404);
    assert_eq!(get(&url).await.0, 404);
    sandbox.vk_fail_file(&url, 200);
    assert_eq!(get(&url).await.0, 200);

    let (status, ..) = get(&format!("{}/vk/files/nope", sandbox.url())).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn inbound_attachments_point_their_largest_copy_at_the_bytes() {
    let sandbox = Sandbox::start().await.expect("sandbox");

    let photo = sandbox.vk_photo_attachment(b"big jpeg".to_vec());
    assert_eq!(photo["type"], "photo");
    let sizes = &photo["photo"]["sizes"];
    assert!(sizes.as_array().expect("sizes").len() > 3);
    let last = sizes.as_array().and_then(|s| s.last()).expect("last")["url"].clone();
    let best = largest(sizes, "url");
    assert_ne!(
        Value::String(best.clone()),
        last,
        "largest is not simply the last"
    );
    assert_eq!(get(&best).await.3, b"big jpeg");
    assert_ne!(get(last.as_str().expect("url")).await.3, b"big jpeg");
    // The photo can be attached again, with its owner, id and key.
    let p = &photo["photo"];
    let attachment = format!(
        "photo{}_{}_{}",
        p["owner_id"],
        p["id"],
        p["access_key"].as_str().expect("key")
    );
    assert_eq!(
        sandbox.vk_media(&attachment).map(|m| m.bytes),
        Some(b"big jpeg".to_vec())
    );

    let doc = sandbox.vk_doc_attachment("отчёт.pdf", "application/pdf", b"%PDF".to_vec());
    assert_eq!(doc["doc"]["title"], "отчёт.pdf");
    assert_eq!(doc["doc"]["ext"], "pdf");
    assert_eq!(doc["doc"]["size"], 4);
    let (_, ct, _, body) = get(doc["doc"]["url"].as_str().expect("url")).await;
    assert_eq!(
        (ct.as_deref(), body.as_slice()),
        (Some("application/pdf"), &b"%PDF"[..])
    );

    let voice = sandbox.vk_audio_message_attachment(b"OggS".to_vec());
    let am = &voice["audio_message"];
    assert_eq!(get(am["link_ogg"].as_str().expect("ogg")).await.3, b"OggS");
    assert_eq!(get(am["link_mp3"].as_str().expect("mp3")).await.3, b"OggS");
    assert!(am["duration"].as_i64().expect("duration") >= 1);

    let sticker = sandbox.vk_sticker_attachment(b"PNG".to_vec());
    let st = &sticker["sticker"];
    assert_eq!(get(&largest(&st["images"], "url")).await.3, b"PNG");
    assert_eq!(
        get(&largest(&st["images_with_background"], "url")).await.3,
        b"PNG"
    );

    let video = sandbox.vk_video_attachment(b"preview".to_vec());
    let v = &video["video"];
    assert_eq!(get(&largest(&v["image"], "url")).await.3, b"preview");
    assert_eq!(get(&largest(&v["first_frame"], "url")).await.3, b"preview");
}

#[tokio::test]
async fn messages_send_rejects_attachments_the_fake_never_saved() {
    let sandbox = Sandbox::start().await.expect("sandbox");
    let answer = vk(
        &sandbox,
        "messages.send",
        &[
            ("peer_id", "5"),
            ("random_id", "1"),
            ("attachment", "photo-1_999_abc"),
        ],
    )
    .await;
    assert_eq!(answer["error"]["error_code"], 100, "{answer}");
    assert!(
        answer["error"]["error_msg"]
            .as_str()
            .is_some_and(|m| m.contains("attachment")),
        "{answer}"
    );
    assert!(sandbox.vk_sent_messages().is_empty());

    let doc = sandbox.vk_doc_attachment("a.txt", "text/plain", b"hi".to_vec());
    let attachment = format!("doc{}_{}", doc["doc"]["owner_id"], doc["doc"]["id"]);
    let ok = vk(
        &sandbox,
        "messages.send",
        &[
            ("peer_id", "5"),
            ("random_id", "2"),
            ("attachment", &format!(" {attachment} ")),
        ],
    )
    .await;
    assert!(ok["response"].is_i64(), "{ok}");
    assert_eq!(sandbox.vk_sent_messages()[0].attachments, vec![attachment]);
}

#[tokio::test]
async fn upload_servers_refuse_missing_files_and_unknown_urls() {
    let sandbox = Sandbox::start().await.expect("sandbox");
    let server = vk(
        &sandbox,
        "photos.getMessagesUploadServer",
        &[("peer_id", "5")],
    )
    .await;
    let url = server["response"]["upload_url"]
        .as_str()
        .expect("url")
        .to_owned();
    assert_eq!(server["response"]["album_id"], -64);

    // Wrong field name: VK takes nothing and answers an empty photo list.
    let body = "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\njpg\r\n--B--\r\n";
    let post = |url: String| {
        reqwest::Client::new()
            .post(url)
            .header("content-type", "multipart/form-data; boundary=B")
            .body(body)
            .send()
    };
    let answer: Value = post(url.clone())
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(answer["photo"], "[]", "{answer}");
    assert!(answer["server"].is_i64());

    let doc_server = vk(&sandbox, "docs.getMessagesUploadServer", &[("type", "doc")]).await;
    let doc_url = doc_server["response"]["upload_url"]
        .as_str()
        .expect("url")
        .to_owned();
    let ok: Value = post(doc_url)
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    let file = ok["file"].as_str().expect("file string");
    let saved = vk(&sandbox, "docs.save", &[("file", file)]).await;
    assert_eq!(saved["response"]["type"], "doc", "{saved}");
    assert_eq!(saved["response"]["doc"]["title"], "a.jpg");

    let unknown = post(format!("{}/vk/upload/photo/nope", sandbox.url()))
        .await
        .expect("answers");
    assert_eq!(unknown.status(), 403);
    assert_eq!(sandbox.vk_upload_attempts(), 3);

    let bad_type = vk(
        &sandbox,
        "docs.getMessagesUploadServer",
        &[("type", "video")],
    )
    .await;
    assert_eq!(bad_type["error"]["error_code"], 100);
    let missing = vk(&sandbox, "docs.save", &[]).await;
    assert_eq!(
        missing["error"]["error_msg"],
        "One of the parameters specified was missing or invalid: file is undefined"
    );
}

#[tokio::test]
async fn groups_methods_validate_like_vk() {
    let sandbox = Sandbox::start().await.expect("sandbox");
    let missing = vk(&sandbox, "groups.getCallbackServers", &[]).await;
    assert_eq!(missing["error"]["error_code"], 100);
    assert_eq!(
        missing["error"]["error_msg"],
        "One of the parameters specified was missing or invalid: group_id is undefined"
    );
    let other = vk(
        &sandbox,
        "groups.getCallbackConfirmationCode",
        &[("group_id", "77")],
    )
    .await;
    assert_eq!(other["error"]["error_code"], 15);

    let added = vk(
        &sandbox,
        "groups.addCallbackServer",
        &[
            ("group_id", "1"),
            ("url", "https://gw.example/"),
            ("title", "gateway"),
        ],
    )
    .await;
    let id = added["response"]["server_id"].as_i64().expect("server id");
    let no_url = vk(
        &sandbox,
        "groups.addCallbackServer",
        &[("group_id", "1"), ("title", "gateway")],
    )
    .await;
    assert_eq!(no_url["error"]["error_code"], 100);

    let settings = vk(
        &sandbox,
        "groups.getCallbackSettings",
        &[("group_id", "1"), ("server_id", &id.to_string())],
    )
    .await;
    assert_eq!(
        settings["response"]["events"]["message_new"], 0,
        "{settings}"
    );

    let deleted = vk(
        &sandbox,
        "groups.deleteCallbackServer",
        &[("group_id", "1"), ("server_id", &id.to_string())],
    )
    .await;
    assert_eq!(deleted["response"], 1);
    assert!(sandbox.vk_callback_servers().is_empty());
    assert!(sandbox.vk_callback_settings(id).is_none());
    let gone = vk(
        &sandbox,
        "groups.deleteCallbackServer",
        &[("group_id", "1"), ("server_id", &id.to_string())],
    )
    .await;
    assert_eq!(gone["error"]["error_code"], 104);

    let lp = vk(&sandbox, "groups.getLongPollSettings", &[("group_id", "1")]).await;
    assert_eq!(lp["response"]["is_enabled"], false, "{lp}");
}
