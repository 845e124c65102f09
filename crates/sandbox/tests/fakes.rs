//! The fakes behave like the platforms: shapes, errors, de-duplication, webhooks, failures.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use hmac::{Hmac, KeyInit, Mac};
use sandbox::{Failure, Sandbox, Target};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

async fn vk(sandbox: &Sandbox, method: &str, params: &[(&str, &str)]) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}/{method}", sandbox.vk_api_url()))
        .form(params)
        .send()
        .await
        .expect("VK fake answers");
    assert_eq!(
        response.status(),
        200,
        "VK answers HTTP 200 even for errors"
    );
    response.json().await.expect("VK answers JSON")
}

fn chatwoot(sandbox: &Sandbox, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .request(method, format!("{}{path}", sandbox.chatwoot_url()))
        .header("api_access_token", "cw-test-token")
}

async fn json_of(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("Chatwoot fake answers");
    let status = response.status().as_u16();
    (
        status,
        response.json().await.expect("Chatwoot answers JSON"),
    )
}

/// Contact -> contact inbox -> conversation, through the API. Returns (contact id, conversation id).
async fn open_conversation(sandbox: &Sandbox, identifier: &str) -> (i64, i64) {
    let (status, created) = json_of(
        chatwoot(
            sandbox,
            reqwest::Method::POST,
            "/api/v1/accounts/1/contacts",
        )
        .json(&json!({"name": "Ivan Petrov", "identifier": identifier})),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let contact_id = created["payload"]["contact"]["id"]
        .as_i64()
        .expect("contact id");
    let (status, contact_inbox) = json_of(
        chatwoot(
            sandbox,
            reqwest::Method::POST,
            &format!("/api/v1/accounts/1/contacts/{contact_id}/contact_inboxes"),
        )
        .json(&json!({"inbox_id": 1, "source_id": identifier})),
    )
    .await;
    assert_eq!(status, 200, "{contact_inbox}");
    let (status, conversation) = json_of(
        chatwoot(
            sandbox,
            reqwest::Method::POST,
            "/api/v1/accounts/1/conversations",
        )
        .json(&json!({"source_id": identifier, "inbox_id": 1, "contact_id": contact_id})),
    )
    .await;
    assert_eq!(status, 200, "{conversation}");
    (
        contact_id,
        conversation["id"].as_i64().expect("conversation id"),
    )
}

/// A webhook receiver on port 0 that hands every request to the test.
async fn receiver() -> (String, mpsc::UnboundedReceiver<(HeaderMap, Bytes)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((headers, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let url = format!(
        "http://{}/hook",
        listener.local_addr().expect("receiver address")
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

#[tokio::test]
async fn messages_send_deduplicates_by_random_id() {
    let sandbox = Sandbox::start().await.unwrap();
    let send = |random_id: &'static str, text: &'static str| {
        let sandbox = &sandbox;
        async move {
            vk(
                sandbox,
                "messages.send",
                &[
                    ("access_token", "vk-test-token"),
                    ("v", "5.199"),
                    ("peer_id", "42"),
                    ("random_id", random_id),
                    ("message", text),
                ],
            )
            .await
        }
    };
    let first = send("777", "Здравствуйте").await;
    let again = send("777", "Здравствуйте").await;
    let other = send("778", "Ещё").await;

    let id = first["response"].as_i64().expect("message id");
    assert_eq!(
        again["response"].as_i64(),
        Some(id),
        "a resend answers the same id"
    );
    assert_ne!(other["response"].as_i64(), Some(id));
    let sent = sandbox.vk_sent_messages();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        (sent[0].peer_id, sent[0].random_id, sent[0].message.as_str()),
        (42, 777, "Здравствуйте")
    );
    assert_eq!(sent[0].message_id, id);
}

#[tokio::test]
async fn messages_send_without_random_id_is_error_100() {
    let sandbox = Sandbox::start().await.unwrap();
    let answer = vk(
        &sandbox,
        "messages.send",
        &[
            ("access_token", "vk-test-token"),
            ("v", "5.199"),
            ("peer_id", "42"),
            ("message", "hi"),
        ],
    )
    .await;
    assert_eq!(answer["error"]["error_code"], 100);
    assert_eq!(
        answer["error"]["error_msg"],
        "One of the parameters specified was missing or invalid: random_id is a required parameter"
    );
    assert!(sandbox.vk_sent_messages().is_empty());
}

#[tokio::test]
async fn wrong_vk_token_is_error_5_and_the_token_is_not_echoed() {
    let sandbox = Sandbox::start().await.unwrap();
    let answer = vk(
        &sandbox,
        "users.get",
        &[("access_token", "nope"), ("v", "5.199"), ("user_ids", "1")],
    )
    .await;
    assert_eq!(answer["error"]["error_code"], 5);
    assert_eq!(
        answer["error"]["error_msg"],
        "User authorization failed: invalid access_token (4)."
    );
    let params = answer["error"]["request_params"].as_array().unwrap();
    assert!(params.contains(&json!({"key": "method", "value": "users.get"})));
    assert!(params.iter().all(|p| p["key"] != "access_token"));
}

#[tokio::test]
async fn blocked_peer_and_long_message_get_their_vk_errors() {
    let sandbox = Sandbox::start().await.unwrap();
    sandbox.block_vk_peer(13);
    let base = [
        ("access_token", "vk-test-token"),
        ("v", "5.199"),
        ("random_id", "1"),
    ];
    let blocked = vk(
        &sandbox,
        "messages.send",
        &[&base[..], &[("peer_id", "13"), ("message", "hi")]].concat(),
    )
    .await;
    assert_eq!(blocked["error"]["error_code"], 901);
    assert_eq!(
        blocked["error"]["error_msg"],
        "Can't send messages for users without permission"
    );
    let long = "я".repeat(sandbox::vk::MESSAGE_MAX_CHARS + 1);
    let too_long = vk(
        &sandbox,
        "messages.send",
        &[&base[..], &[("peer_id", "14"), ("message", &long)]].concat(),
    )
    .await;
    assert_eq!(too_long["error"]["error_code"], 914);
    assert!(sandbox.vk_sent_messages().is_empty());
}

#[tokio::test]
async fn users_get_and_groups_get_by_id_have_the_documented_shapes() {
    let sandbox = Sandbox::start().await.unwrap();
    sandbox.add_vk_user(5, "Иван", "Петров");
    let users = vk(
        &sandbox,
        "users.get",
        &[
            ("access_token", "vk-test-token"),
            ("v", "5.199"),
            ("user_ids", "5,6"),
        ],
    )
    .await;
    assert_eq!(
        users["response"][0],
        json!({"id": 5, "first_name": "Иван", "last_name": "Петров", "can_access_closed": true, "is_closed": false})
    );
    assert_eq!(users["response"][1]["id"], 6);

    // Query string instead of a form body works too.
    let url = format!(
        "{}/groups.getById?access_token=vk-test-token&v=5.199",
        sandbox.vk_api_url()
    );
    let groups: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    assert_eq!(groups["response"]["groups"][0]["id"], 1);
    assert_eq!(groups["response"]["groups"][0]["screen_name"], "club1");
    assert_eq!(groups["response"]["profiles"], json!([]));
}

#[tokio::test]
async fn fail_next_vk_error_answers_the_envelope_then_recovers() {
    let sandbox = Sandbox::start().await.unwrap();
    sandbox.fail_next(Target::Vk, 1, Failure::VkError(6));
    let params = [
        ("access_token", "vk-test-token"),
        ("v", "5.199"),
        ("user_ids", "1"),
    ];
    let failed = vk(&sandbox, "users.get", &params).await;
    assert_eq!(failed["error"]["error_code"], 6);
    assert_eq!(failed["error"]["error_msg"], "Too many requests per second");
    assert!(
        failed["error"]["request_params"]
            .as_array()
            .unwrap()
            .contains(&json!({"key": "method", "value": "users.get"}))
    );
    let ok = vk(&sandbox, "users.get", &params).await;
    assert_eq!(ok["response"][0]["id"], 1);
    assert_eq!(
        sandbox.requests().len(),
        2,
        "failed requests are recorded too"
    );
}

#[tokio::test]
async fn chatwoot_without_or_with_a_wrong_token_is_401() {
    let sandbox = Sandbox::start().await.unwrap();
    let url = format!("{}/api/v1/profile", sandbox.chatwoot_url());
    let none = reqwest::get(&url).await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(
        none.json::<Value>().await.unwrap(),
        json!({"errors": ["You need to sign in or sign up before continuing."]})
    );
    let wrong = reqwest::Client::new()
        .get(&url)
        .header("api_access_token", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.json::<Value>().await.unwrap(),
        json!({"error": "Invalid Access Token"})
    );
    let (status, profile) =
        json_of(chatwoot(&sandbox, reqwest::Method::GET, "/api/v1/profile")).await;
    assert_eq!(status, 200);
    assert_eq!(profile["accounts"][0]["id"], 1);
}

#[tokio::test]
async fn contact_to_conversation_to_message() {
    let sandbox = Sandbox::start().await.unwrap();
    let (contact_id, conversation_id) = open_conversation(&sandbox, "vk:42").await;

    let (status, duplicate) = json_of(
        chatwoot(
            &sandbox,
            reqwest::Method::POST,
            "/api/v1/accounts/1/contacts",
        )
        .json(&json!({"identifier": "vk:42"})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        duplicate,
        json!({"message": "Identifier has already been taken", "attributes": ["identifier"]})
    );

    let (_, found) = json_of(chatwoot(
        &sandbox,
        reqwest::Method::GET,
        "/api/v1/accounts/1/contacts/search?q=vk:42",
    ))
    .await;
    assert_eq!(found["payload"][0]["id"], contact_id);
    assert_eq!(
        found["payload"][0]["contact_inboxes"][0]["source_id"],
        "vk:42"
    );
    assert_eq!(found["payload"][0]["contact_inboxes"][0]["inbox"]["id"], 1);

    let conversation = &sandbox.chatwoot_conversations()[0];
    assert_eq!(conversation["id"], conversation_id);
    assert_eq!(conversation["status"], "open");
    assert_eq!(conversation["inbox_id"], 1);
    assert_eq!(conversation["account_id"], 1);
    assert_eq!(conversation["meta"]["sender"]["id"], contact_id);

    let messages_path = format!("/api/v1/accounts/1/conversations/{conversation_id}/messages");
    let (status, message) = json_of(
        chatwoot(&sandbox, reqwest::Method::POST, &messages_path)
            .json(&json!({"content": "Добрый день", "message_type": "incoming"})),
    )
    .await;
    assert_eq!(status, 200, "{message}");
    assert_eq!(message["message_type"], 0);
    assert_eq!(message["sender"]["type"], "contact");
    assert_eq!(message["conversation_id"], conversation_id);

    let (_, listed) = json_of(chatwoot(&sandbox, reqwest::Method::GET, &messages_path)).await;
    assert_eq!(listed["payload"][0]["content"], "Добрый день");
    assert_eq!(listed["meta"]["contact"]["id"], contact_id);

    let (status, missing) = json_of(
        chatwoot(
            &sandbox,
            reqwest::Method::POST,
            "/api/v1/accounts/1/conversations/999/messages",
        )
        .json(&json!({"content": "x"})),
    )
    .await;
    assert_eq!(
        (status, missing),
        (404, json!({"error": "Resource could not be found"}))
    );
    let (status, blank) = json_of(
        chatwoot(&sandbox, reqwest::Method::POST, &messages_path).json(&json!({"content": null})),
    )
    .await;
    assert_eq!(status, 422, "{blank}");
}

#[tokio::test]
async fn api_created_incoming_message_fires_one_signed_webhook() {
    let sandbox = Sandbox::start().await.unwrap();
    let (url, mut deliveries) = receiver().await;
    sandbox.set_chatwoot_webhook(Some(url), Some("s3cret".into()));
    let (contact_id, conversation_id) = open_conversation(&sandbox, "vk:7").await;

    let (status, message) = json_of(
        chatwoot(
            &sandbox,
            reqwest::Method::POST,
            &format!("/api/v1/accounts/1/conversations/{conversation_id}/messages"),
        )
        .json(&json!({"content": "Привет", "message_type": "incoming"})),
    )
    .await;
    assert_eq!(status, 200);

    let (headers, body) = tokio::time::timeout(WAIT, deliveries.recv())
        .await
        .unwrap()
        .unwrap();
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload["event"], "message_created");
    assert_eq!(payload["id"], message["id"]);
    assert_eq!(payload["message_type"], "incoming", "a string in webhooks");
    assert_eq!(payload["content"], "Привет");
    assert_eq!(payload["private"], false);
    assert_eq!(payload["sender"]["id"], contact_id);
    assert_eq!(payload["sender"]["type"], "contact");
    assert_eq!(payload["conversation"]["id"], conversation_id);
    assert_eq!(
        payload["conversation"]["contact_inbox"]["source_id"],
        "vk:7"
    );
    assert_eq!(
        payload["conversation"]["messages"][0]["message_type"], 0,
        "a number inside conversation"
    );
    assert_eq!(
        payload["account"],
        json!({"id": 1, "name": "Sandbox Account"})
    );
    assert_eq!(payload["inbox"]["id"], 1);

    let timestamp = headers["x-chatwoot-timestamp"].to_str().unwrap();
    let signature = headers["x-chatwoot-signature"].to_str().unwrap();
    let hex = signature.strip_prefix("sha256=").expect("sha256= prefix");
    let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&body);
    mac.verify_slice(&hex::decode(hex).unwrap())
        .expect("signature verifies");
    assert!(headers.contains_key("x-chatwoot-delivery"));

    sandbox
        .wait_until(WAIT, |s| {
            s.chatwoot_webhook_deliveries()
                .first()
                .is_some_and(|d| d.status == Some(200))
        })
        .await
        .unwrap();
    assert!(deliveries.try_recv().is_err(), "exactly one delivery");
}

#[tokio::test]
async fn agent_reply_and_private_note_fire_outgoing_webhooks() {
    let sandbox = Sandbox::start().await.unwrap();
    let (url, mut deliveries) = receiver().await;
    sandbox.set_chatwoot_webhook(Some(url), None);
    let (_, conversation_id) = open_conversation(&sandbox, "vk:8").await;

    let reply = sandbox
        .chatwoot_agent_reply(conversation_id, "Здравствуйте", false)
        .await;
    let (headers, body) = tokio::time::timeout(WAIT, deliveries.recv())
        .await
        .unwrap()
        .unwrap();
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (payload["id"].as_i64(), &payload["message_type"]),
        (Some(reply), &json!("outgoing"))
    );
    assert_eq!(payload["sender"]["type"], "user");
    assert!(
        !headers.contains_key("x-chatwoot-signature"),
        "unsigned without a secret"
    );

    sandbox
        .chatwoot_agent_reply(conversation_id, "internal", true)
        .await;
    let (_, body) = tokio::time::timeout(WAIT, deliveries.recv())
        .await
        .unwrap()
        .unwrap();
    let note: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(note["private"], true);

    let messages = sandbox.chatwoot_messages(conversation_id);
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["message_type"], 1);
}

#[tokio::test]
async fn fail_next_status_then_success() {
    let sandbox = Sandbox::start().await.unwrap();
    sandbox.fail_next(Target::Chatwoot, 1, Failure::Status(503));
    sandbox.fail_next(
        Target::Chatwoot,
        1,
        Failure::TooManyRequests {
            retry_after_secs: 7,
        },
    );
    let first = chatwoot(&sandbox, reqwest::Method::GET, "/api/v1/profile")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 503);
    let second = chatwoot(&sandbox, reqwest::Method::GET, "/api/v1/profile")
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 429);
    assert_eq!(second.headers()["retry-after"], "7");
    let third = chatwoot(&sandbox, reqwest::Method::GET, "/api/v1/profile")
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), 200);
    let recorded = sandbox.requests();
    assert_eq!(recorded.len(), 3);
    assert_eq!(
        (recorded[0].target, recorded[0].path.as_str()),
        (Target::Chatwoot, "/chatwoot/api/v1/profile")
    );
}

#[tokio::test]
async fn control_api_injects_failures_and_lists_state() {
    let sandbox = Sandbox::start().await.unwrap();
    let client = reqwest::Client::new();
    let control = format!("{}/_sandbox", sandbox.url());
    let fail = client
        .post(format!("{control}/fail"))
        .json(&json!({"target": "vk", "count": 1, "failure": {"vk_error": 9}}))
        .send()
        .await
        .unwrap();
    assert_eq!(fail.status(), 204);
    let answer = vk(
        &sandbox,
        "users.get",
        &[("access_token", "vk-test-token"), ("v", "5.199")],
    )
    .await;
    assert_eq!(answer["error"]["error_code"], 9);
    let requests: Value = client
        .get(format!("{control}/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(requests[0]["target"], "vk");
    assert_eq!(requests[0]["path"], "/vk/method/users.get");
}

#[tokio::test]
async fn control_api_lists_received_messages_with_their_arrival_time() {
    let sandbox = Sandbox::start().await.unwrap();
    let (_, conversation_id) = open_conversation(&sandbox, "vk:9").await;
    let messages_path = format!("/api/v1/accounts/1/conversations/{conversation_id}/messages");
    let unix_us = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64
    };
    let before = unix_us();
    for text in ["первое", "второе"] {
        let (status, _) = json_of(
            chatwoot(&sandbox, reqwest::Method::POST, &messages_path)
                .json(&json!({"content": text, "message_type": "incoming"})),
        )
        .await;
        assert_eq!(status, 200);
    }
    let after = unix_us();
    let received = |query: &str| {
        let url = format!("{}/_sandbox/chatwoot/received{query}", sandbox.url());
        async move {
            reqwest::get(url)
                .await
                .unwrap()
                .json::<Vec<Value>>()
                .await
                .unwrap()
        }
    };
    let all = received("").await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["content"], "первое");
    assert_eq!(all[0]["conversation_id"], conversation_id);
    assert_eq!(all[0]["message_type"], 0);
    let at = all[0]["received_at_us"].as_i64().unwrap();
    assert!(before <= at && at <= after, "{before} <= {at} <= {after}");
    let rest = received(&format!("?after={}", all[0]["id"])).await;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["content"], "второе");
    assert_eq!(received("?limit=1").await.len(), 1);
}

#[tokio::test]
async fn wait_until_times_out_with_an_error() {
    let sandbox = Sandbox::start().await.unwrap();
    let waited = sandbox
        .wait_until(Duration::from_millis(50), |s| {
            !s.vk_sent_messages().is_empty()
        })
        .await;
    assert!(waited.is_err());
}

/// `groups.getLongPollServer` for the sandbox's community: (server, key, ts).
async fn long_poll_server(sandbox: &Sandbox) -> (String, String, String) {
    let answer = vk(
        sandbox,
        "groups.getLongPollServer",
        &[
            ("access_token", "vk-test-token"),
            ("v", "5.199"),
            ("group_id", "1"),
        ],
    )
    .await;
    let session = &answer["response"];
    let field = |name: &str| {
        session[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} is a string: {answer}"))
            .to_owned()
    };
    (field("server"), field("key"), field("ts"))
}

/// One `a_check` request; returns (HTTP status, body as JSON or `null`).
async fn poll(server: &str, key: &str, ts: &str, wait: u64) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(server)
        .query(&[
            ("act", "a_check"),
            ("key", key),
            ("ts", ts),
            ("wait", &wait.to_string()),
        ])
        .send()
        .await
        .expect("long poll server answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn message_new(event_id: &str, text: &str) -> Value {
    json!({
        "type": "message_new",
        "event_id": event_id,
        "v": "5.199",
        "object": {"message": {"id": 1, "from_id": 42, "peer_id": 42, "text": text}},
        "group_id": 1,
        "secret": "callback-secret",
    })
}

#[tokio::test]
async fn long_poll_without_events_answers_empty_after_wait() {
    let sandbox = Sandbox::start().await.unwrap();
    let (server, key, ts) = long_poll_server(&sandbox).await;
    assert_eq!(server, format!("{}/vk/longpoll/1", sandbox.url()));
    assert_eq!(key.len(), 40);
    assert!(key.chars().all(|c| c.is_ascii_hexdigit()), "{key}");
    assert_eq!(ts, "0");

    let started = std::time::Instant::now();
    let (status, answer) = poll(&server, &key, &ts, 1).await;
    let elapsed = started.elapsed();
    assert_eq!(status, 200);
    assert_eq!(answer, json!({"ts": "0", "updates": []}));
    assert!(
        elapsed >= Duration::from_millis(900),
        "held for wait=1: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "not much longer than wait=1: {elapsed:?}"
    );
    assert_eq!(sandbox.vk_long_poll_requests(), 1);
    assert_eq!(sandbox.vk_long_poll_waiting(), 0);
}

#[tokio::test]
async fn pushed_events_are_polled_with_the_new_ts_and_without_secret() {
    let sandbox = Sandbox::start().await.unwrap();
    let (server, key, ts) = long_poll_server(&sandbox).await;
    sandbox.vk_push_long_poll_event(message_new("e1", "one"));
    // The control route does the same for the demo scripts.
    let pushed = reqwest::Client::new()
        .post(format!("{}/_sandbox/vk/long_poll_event", sandbox.url()))
        .json(&message_new("e2", "two"))
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), 204);

    let (status, answer) = poll(&server, &key, &ts, 25).await;
    assert_eq!(status, 200);
    assert_eq!(answer["ts"], "2", "{answer}");
    let updates = answer["updates"].as_array().expect("updates");
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[0]["event_id"], "e1");
    assert_eq!(updates[1]["object"]["message"]["text"], "two");
    let mut expected = message_new("e1", "one");
    expected.as_object_mut().unwrap().remove("secret");
    assert_eq!(updates[0], expected, "the Callback body without secret");

    // Only events after the given ts; the new ts comes back.
    let (_, answer) = poll(&server, &key, "1", 25).await;
    assert_eq!(answer["ts"], "2");
    assert_eq!(answer["updates"].as_array().unwrap().len(), 1);
    assert_eq!(answer["updates"][0]["event_id"], "e2");

    // Caught up: nothing new, the same ts back.
    let (_, answer) = poll(&server, &key, "2", 0).await;
    assert_eq!(answer, json!({"ts": "2", "updates": []}));
    // A ts from the future is not an error, it just waits.
    let (_, answer) = poll(&server, &key, "7", 0).await;
    assert_eq!(answer, json!({"ts": "7", "updates": []}));
    assert_eq!(sandbox.vk_long_poll_requests(), 4);
}

#[tokio::test]
async fn held_long_poll_is_woken_by_a_push() {
    let sandbox = Sandbox::start().await.unwrap();
    let (server, key, ts) = long_poll_server(&sandbox).await;
    let started = std::time::Instant::now();
    let ((status, answer), pushed) = tokio::join!(poll(&server, &key, &ts, 60), async {
        // Push only once the poll is parked on the server.
        sandbox
            .wait_until(WAIT, |s| s.vk_long_poll_waiting() == 1)
            .await?;
        sandbox.vk_push_long_poll_event(message_new("e1", "wake up"));
        anyhow::Ok(())
    });
    pushed.expect("the poll was held");
    assert_eq!(status, 200);
    assert_eq!(answer["ts"], "1", "{answer}");
    assert_eq!(answer["updates"][0]["event_id"], "e1");
    assert!(
        started.elapsed() < WAIT,
        "answered on the push, not after wait=60: {:?}",
        started.elapsed()
    );
    assert_eq!(sandbox.vk_long_poll_waiting(), 0);
    assert_eq!(sandbox.vk_long_poll_requests(), 1);
}

#[tokio::test]
async fn expired_or_replaced_key_answers_failed_2() {
    let sandbox = Sandbox::start().await.unwrap();
    let (server, key, ts) = long_poll_server(&sandbox).await;
    sandbox.vk_expire_long_poll_key();
    let (status, answer) = poll(&server, &key, &ts, 25).await;
    assert_eq!(status, 200);
    assert_eq!(answer, json!({"failed": 2}));

    // A new session; a held poll is answered failed 2 when its key expires.
    let (server, key, ts) = long_poll_server(&sandbox).await;
    let ((_, answer), expired) = tokio::join!(poll(&server, &key, &ts, 60), async {
        sandbox
            .wait_until(WAIT, |s| s.vk_long_poll_waiting() == 1)
            .await?;
        sandbox.vk_expire_long_poll_key();
        anyhow::Ok(())
    });
    expired.unwrap();
    assert_eq!(answer, json!({"failed": 2}));

    // Calling getLongPollServer again replaces the key; the old ts stays good.
    let (_, old_key, _) = long_poll_server(&sandbox).await;
    sandbox.vk_push_long_poll_event(message_new("e1", "hi"));
    let (_, new_key, _) = long_poll_server(&sandbox).await;
    assert_ne!(old_key, new_key);
    assert_eq!(
        poll(&server, &old_key, &ts, 0).await.1,
        json!({"failed": 2})
    );
    let (_, answer) = poll(&server, &new_key, &ts, 0).await;
    assert_eq!(answer["updates"][0]["event_id"], "e1");
    // The key belongs to its group's server.
    let other_server = server.replace("/longpoll/1", "/longpoll/2");
    assert_eq!(
        poll(&other_server, &new_key, &ts, 0).await.1,
        json!({"failed": 2})
    );
}

#[tokio::test]
async fn ts_older_than_the_history_answers_failed_1() {
    let sandbox = Sandbox::start().await.unwrap();
    let (server, key, ts) = long_poll_server(&sandbox).await;
    let total = sandbox::vk::long_poll::HISTORY + 5;
    for n in 0..total {
        sandbox.vk_push_long_poll_event(message_new(&format!("e{n}"), "spam"));
    }
    let (status, answer) = poll(&server, &key, &ts, 25).await;
    assert_eq!(status, 200);
    assert_eq!(answer, json!({"failed": 1, "ts": total}));
    // Continuing from the oldest ts still covered works.
    let (_, answer) = poll(&server, &key, "5", 25).await;
    assert_eq!(answer["ts"], total.to_string());
    assert_eq!(
        answer["updates"].as_array().unwrap().len(),
        sandbox::vk::long_poll::HISTORY
    );
    assert_eq!(answer["updates"][0]["event_id"], "e5");
}

#[tokio::test]
async fn long_poll_failures_can_be_injected_and_server_checks_its_params() {
    let sandbox = Sandbox::start().await.unwrap();
    let (server, key, ts) = long_poll_server(&sandbox).await;
    sandbox.fail_next(Target::Vk, 1, Failure::Status(503));
    assert_eq!(poll(&server, &key, &ts, 0).await.0, 503);
    // failed 3 also expires the key, like the real thing.
    sandbox.fail_next(Target::Vk, 1, Failure::VkError(3));
    assert_eq!(poll(&server, &key, &ts, 0).await.1, json!({"failed": 3}));
    assert_eq!(poll(&server, &key, &ts, 0).await.1, json!({"failed": 2}));
    assert_eq!(
        sandbox.vk_long_poll_requests(),
        1,
        "injected failures are not answers of the fake"
    );

    let call = |params: &'static [(&'static str, &'static str)]| {
        vk(&sandbox, "groups.getLongPollServer", params)
    };
    let missing = call(&[("access_token", "vk-test-token"), ("v", "5.199")]).await;
    assert_eq!(missing["error"]["error_code"], 100, "{missing}");
    let other = call(&[
        ("access_token", "vk-test-token"),
        ("v", "5.199"),
        ("group_id", "2"),
    ])
    .await;
    assert_eq!(other["error"]["error_code"], 15, "{other}");
    let no_token = call(&[("v", "5.199"), ("group_id", "1")]).await;
    assert_eq!(no_token["error"]["error_code"], 5, "{no_token}");
    sandbox.set_vk_group(77, "Other");
    let own = call(&[
        ("access_token", "vk-test-token"),
        ("v", "5.199"),
        ("group_id", "77"),
    ])
    .await;
    assert!(
        own["response"]["server"]
            .as_str()
            .unwrap()
            .ends_with("/vk/longpoll/77"),
        "{own}"
    );
}

/// The amoCRM fake: OAuth with refresh-token rotation, API v4 reads, 429 injection.
mod amocrm {
    use sandbox::amocrm::{CLIENT_ID, CLIENT_SECRET, lead_json};
    use sandbox::{Failure, Sandbox, Target};
    use serde_json::{Value, json};

    async fn token(sandbox: &Sandbox, body: Value) -> (u16, Value) {
        let res = reqwest::Client::new()
            .post(format!("{}/oauth2/access_token", sandbox.amocrm_url()))
            .json(&body)
            .send()
            .await
            .expect("amoCRM fake answers");
        let status = res.status().as_u16();
        (status, res.json().await.expect("JSON"))
    }

    fn grant(extra: Value) -> Value {
        let mut v = json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                           "redirect_uri": "https://amocrm.example.com/api/auth/amo/callback"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    }

    async fn get(sandbox: &Sandbox, path: &str, token: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(format!("{}{path}", sandbox.amocrm_url()))
            .bearer_auth(token)
            .send()
            .await
            .expect("amoCRM fake answers")
    }

    #[tokio::test]
    async fn codes_are_exchanged_once_and_wrong_clients_refused() {
        let sandbox = Sandbox::start().await.unwrap();
        let code = sandbox.amocrm_authorize();
        let (status, pair) = token(
            &sandbox,
            grant(json!({"grant_type": "authorization_code", "code": code})),
        )
        .await;
        assert_eq!(status, 200, "{pair}");
        assert_eq!(pair["token_type"], "Bearer");
        assert_eq!(pair["expires_in"], 86_400);
        let (status, err) = token(
            &sandbox,
            grant(json!({"grant_type": "authorization_code", "code": code})),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(err["hint"], "Authorization code has been revoked");
        assert_eq!(
            err["type"],
            "https://developers.amocrm.ru/v3/errors/OAuthProblemJson"
        );
        let (status, _) = token(
            &sandbox,
            json!({"client_id": CLIENT_ID, "client_secret": "wrong", "grant_type": "authorization_code",
                   "code": sandbox.amocrm_authorize(), "redirect_uri": "https://x"}),
        )
        .await;
        assert_eq!(status, 401);
    }

    #[tokio::test]
    async fn a_refresh_token_stays_good_until_the_new_pair_is_used() {
        let sandbox = Sandbox::start().await.unwrap();
        let code = sandbox.amocrm_authorize();
        let (_, p1) = token(
            &sandbox,
            grant(json!({"grant_type": "authorization_code", "code": code})),
        )
        .await;
        let rt1 = p1["refresh_token"].as_str().unwrap().to_owned();
        let (status, p2) = token(
            &sandbox,
            grant(json!({"grant_type": "refresh_token", "refresh_token": rt1})),
        )
        .await;
        assert_eq!(status, 200);
        assert_ne!(p2["refresh_token"], p1["refresh_token"]);
        // Not stored by the client yet (the new pair is unused): the old one still works.
        assert!(sandbox.amocrm_refresh_token_valid(&rt1));
        let at2 = p2["access_token"].as_str().unwrap();
        assert_eq!(get(&sandbox, "/api/v4/account", at2).await.status(), 200);
        assert!(!sandbox.amocrm_refresh_token_valid(&rt1));
        let (status, err) = token(
            &sandbox,
            grant(json!({"grant_type": "refresh_token", "refresh_token": rt1})),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(err["hint"], "Refresh token has been revoked");
        assert_eq!(sandbox.amocrm_tokens_issued(), 2);
    }

    #[tokio::test]
    async fn leads_and_contacts_need_a_token_and_429_can_be_injected() {
        let sandbox = Sandbox::start().await.unwrap();
        sandbox.amocrm_put_lead(lead_json(
            5,
            "Сделка",
            142,
            1_795_348_800,
            json!(null),
            &[(7, true)],
        ));
        assert_eq!(get(&sandbox, "/api/v4/leads/5", "nope").await.status(), 401);
        let code = sandbox.amocrm_authorize();
        let (_, pair) = token(
            &sandbox,
            grant(json!({"grant_type": "authorization_code", "code": code})),
        )
        .await;
        let at = pair["access_token"].as_str().unwrap();
        let lead: Value = get(&sandbox, "/api/v4/leads/5?with=contacts", at)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(lead["_embedded"]["contacts"][0]["id"], 7);
        assert_eq!(lead["_embedded"]["contacts"][0]["is_main"], true);
        let bare: Value = get(&sandbox, "/api/v4/leads/5", at)
            .await
            .json()
            .await
            .unwrap();
        assert!(bare["_embedded"].get("contacts").is_none());
        assert_eq!(get(&sandbox, "/api/v4/leads/6", at).await.status(), 204);
        assert_eq!(get(&sandbox, "/api/v4/contacts/7", at).await.status(), 204);
        sandbox.fail_next(
            Target::Amocrm,
            1,
            Failure::TooManyRequests {
                retry_after_secs: 2,
            },
        );
        let limited = get(&sandbox, "/api/v4/leads/5", at).await;
        assert_eq!(limited.status(), 429);
        assert_eq!(limited.headers()["retry-after"], "2");
        assert_eq!(get(&sandbox, "/api/v4/leads/5", at).await.status(), 200);
        let recorded: Vec<_> = sandbox
            .requests()
            .into_iter()
            .filter(|r| r.target == Target::Amocrm && r.path == "/amocrm/api/v4/leads/5")
            .collect();
        assert_eq!(recorded.len(), 5);
        assert_eq!(recorded[1].query, "with=contacts");
    }
}
