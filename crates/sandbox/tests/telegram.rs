//! The Telegram Bot API fake behaves like the real one: envelope, auth, getUpdates offsets and
//! long polling, webhooks, forum topics, copies, edits, blocks and injected failures.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use sandbox::telegram::{self, TgUser};
use sandbox::{Failure, Sandbox, Target};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

fn token(sandbox: &Sandbox) -> String {
    sandbox.options().telegram_bot_token.clone()
}

fn method_url(sandbox: &Sandbox, method: &str) -> String {
    format!(
        "{}/bot{}/{method}",
        sandbox.telegram_api_url(),
        token(sandbox)
    )
}

/// A JSON-body call, as frankenstein makes it.
async fn tg(sandbox: &Sandbox, method: &str, params: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(method_url(sandbox, method))
        .json(&params)
        .send()
        .await
        .expect("the Telegram fake answers");
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("Telegram answers JSON");
    (status, body)
}

fn result(answer: &(u16, Value)) -> &Value {
    assert_eq!(answer.0, 200, "{}", answer.1);
    assert_eq!(answer.1["ok"], true, "{}", answer.1);
    &answer.1["result"]
}

fn assert_error(answer: &(u16, Value), code: u16, description: &str) {
    assert_eq!(
        answer,
        &(
            code,
            json!({"ok": false, "error_code": code, "description": description})
        )
    );
}

fn user() -> TgUser {
    TgUser::new(555_001, "Ivan")
        .last_name("Petrov")
        .username("ivan_p")
        .language_code("ru")
}

/// The user has written to the bot, so the bot may write back.
fn user_started(sandbox: &Sandbox) -> TgUser {
    let user = user();
    sandbox.telegram_push_update(telegram::private_message(&user, json!({"text": "/start"})));
    user
}

async fn create_topic(sandbox: &Sandbox, name: &str) -> i64 {
    let group = sandbox.options().telegram_group_id;
    let answer = tg(
        sandbox,
        "createForumTopic",
        json!({"chat_id": group, "name": name}),
    )
    .await;
    result(&answer)["message_thread_id"]
        .as_i64()
        .expect("thread id")
}

#[tokio::test]
async fn auth_unknown_methods_and_get_me() {
    let sandbox = Sandbox::start().await.unwrap();
    let wrong = reqwest::Client::new()
        .get(format!(
            "{}/bot7000000001:wrong/getMe",
            sandbox.telegram_api_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.json::<Value>().await.unwrap(),
        json!({"ok": false, "error_code": 401, "description": "Unauthorized"})
    );
    assert_error(
        &tg(&sandbox, "sendSomething", json!({})).await,
        404,
        "Not Found",
    );
    // Method names are case-insensitive, a query string works as well as a JSON body.
    let me = reqwest::Client::new()
        .get(method_url(&sandbox, "getme"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(me["ok"], true);
    assert_eq!(me["result"]["id"], 7_000_000_001_i64);
    assert_eq!(sandbox.telegram_bot_id(), 7_000_000_001);
    assert_eq!(me["result"]["is_bot"], true);
    assert_eq!(me["result"]["first_name"], "Support Bot");
    assert_eq!(me["result"]["username"], "support_test_bot");
    assert_eq!(me["result"]["can_join_groups"], true);
}

#[tokio::test]
async fn get_updates_confirms_by_offset_and_long_polls() {
    let sandbox = Sandbox::start().await.unwrap();
    let user = user();
    let first =
        sandbox.telegram_push_update(telegram::private_message(&user, json!({"text": "one"})));
    let second =
        sandbox.telegram_push_update(telegram::private_message(&user, json!({"text": "two"})));
    assert_eq!((first.update_id, second.update_id), (1, 2));
    assert_eq!((first.chat_id, first.message_id), (Some(555_001), Some(1)));
    assert_eq!(second.message_id, Some(2));

    let all = tg(&sandbox, "getUpdates", json!({})).await;
    let all = result(&all).as_array().unwrap().clone();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["update_id"], 1);
    assert_eq!(all[0]["message"]["text"], "one");
    assert_eq!(all[0]["message"]["chat"]["type"], "private");
    assert!(all[0]["message"]["date"].as_i64().unwrap() > 1_700_000_000);
    // Not confirmed yet: the same again, limit honoured.
    let limited = tg(&sandbox, "getUpdates", json!({"limit": 1})).await;
    assert_eq!(result(&limited).as_array().unwrap().len(), 1);
    // offset = last + 1 confirms both.
    let confirmed = tg(&sandbox, "getUpdates", json!({"offset": 3, "timeout": 0})).await;
    assert_eq!(result(&confirmed), &json!([]));
    assert_eq!(sandbox.telegram_pending_updates(), 0);

    // A held poll is answered by the next push, long before its timeout.
    let started = Instant::now();
    let (held, pushed) =
        tokio::join!(
            tg(&sandbox, "getUpdates", json!({"offset": 3, "timeout": 30})),
            async {
                sandbox
                    .wait_until(WAIT, |s| s.telegram_polls_waiting() == 1)
                    .await?;
                Ok::<_, anyhow::Error>(sandbox.telegram_push_update(telegram::private_message(
                    &user,
                    json!({"text": "wake up"}),
                )))
            }
        );
    let pushed = pushed.expect("the poll was held");
    let held = result(&held).as_array().unwrap().clone();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0]["update_id"], pushed.update_id);
    assert_eq!(held[0]["message"]["text"], "wake up");
    assert!(started.elapsed() < WAIT, "{:?}", started.elapsed());
    assert_eq!(sandbox.telegram_polls_waiting(), 0);

    // Nothing new: timeout=1 answers [] after about a second.
    let started = Instant::now();
    let empty = tg(&sandbox, "getUpdates", json!({"offset": 4, "timeout": 1})).await;
    assert_eq!(result(&empty), &json!([]));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(sandbox.telegram_get_updates_calls(), 5);

    // A negative offset keeps only the newest updates.
    for text in ["a", "b", "c"] {
        sandbox.telegram_push_update(telegram::private_message(&user, json!({"text": text})));
    }
    let last = tg(&sandbox, "getUpdates", json!({"offset": -1})).await;
    let last = result(&last).as_array().unwrap().clone();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0]["message"]["text"], "c");
    assert_eq!(sandbox.telegram_pending_updates(), 1);
}

#[tokio::test]
async fn a_second_poll_ends_the_held_one_with_409() {
    let sandbox = Sandbox::start().await.unwrap();
    let (first, second) = tokio::join!(tg(&sandbox, "getUpdates", json!({"timeout": 30})), async {
        sandbox
            .wait_until(WAIT, |s| s.telegram_polls_waiting() == 1)
            .await
            .unwrap();
        let push = async {
            // The second poll parks (ending the first), then the push answers it.
            sandbox
                .wait_until(WAIT, |s| {
                    s.telegram_get_updates_calls() == 2 && s.telegram_polls_waiting() == 1
                })
                .await
                .unwrap();
            sandbox.telegram_push_update(telegram::private_message(&user(), json!({"text": "x"})));
        };
        let (second, ()) = tokio::join!(tg(&sandbox, "getUpdates", json!({"timeout": 30})), push);
        second
    });
    assert_error(
        &first,
        409,
        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
    );
    assert_eq!(result(&second).as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn set_webhook_ends_a_held_poll_with_409() {
    let sandbox = Sandbox::start().await.unwrap();
    let (held, set) = tokio::join!(tg(&sandbox, "getUpdates", json!({"timeout": 30})), async {
        sandbox
            .wait_until(WAIT, |s| s.telegram_polls_waiting() == 1)
            .await
            .unwrap();
        tg(
            &sandbox,
            "setWebhook",
            json!({"url": "http://127.0.0.1:9/hook"}),
        )
        .await
    });
    assert_error(&held, 409, "Conflict: terminated by setWebhook request");
    assert_eq!(result(&set), &json!(true));
    assert_eq!(sandbox.telegram_polls_waiting(), 0);
}

#[tokio::test]
async fn allowed_updates_filter_new_updates() {
    let sandbox = Sandbox::start().await.unwrap();
    let only_edits = tg(
        &sandbox,
        "getUpdates",
        json!({"allowed_updates": ["edited_message"]}),
    )
    .await;
    assert_eq!(result(&only_edits), &json!([]));
    let pushed =
        sandbox.telegram_push_update(telegram::private_message(&user(), json!({"text": "v1"})));
    let edit = sandbox.telegram_push_update(telegram::edited(
        pushed.update.clone(),
        json!({"text": "v2"}),
    ));
    let updates = tg(&sandbox, "getUpdates", json!({})).await;
    let updates = result(&updates).as_array().unwrap().clone();
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0]["update_id"], edit.update_id);
    assert_eq!(
        updates[0]["edited_message"]["message_id"],
        pushed.message_id.unwrap()
    );
    assert_eq!(updates[0]["edited_message"]["text"], "v2");
    assert!(updates[0]["edited_message"]["edit_date"].as_i64().is_some());
    // The stored message has the edited content.
    let stored = sandbox.telegram_messages(555_001);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["text"], "v2");
    // [] restores the default set.
    let reset = tg(
        &sandbox,
        "getUpdates",
        json!({"offset": edit.update_id + 1, "allowed_updates": []}),
    )
    .await;
    assert_eq!(result(&reset), &json!([]));
    sandbox.telegram_push_update(telegram::private_message(&user(), json!({"text": "v3"})));
    assert_eq!(sandbox.telegram_pending_updates(), 1);
}

/// A webhook receiver on port 0 that answers the given statuses in turn (then 200) and hands
/// every request to the test.
async fn receiver(statuses: &[u16]) -> (String, mpsc::UnboundedReceiver<(HeaderMap, Bytes)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let statuses = Arc::new(Mutex::new(
        statuses.iter().copied().collect::<VecDeque<u16>>(),
    ));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            let statuses = statuses.clone();
            async move {
                let _ = tx.send((headers, body));
                let status = statuses.lock().unwrap().pop_front().unwrap_or(200);
                StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

#[tokio::test]
async fn webhook_delivers_with_the_secret_and_retries_after_500() {
    let sandbox = Sandbox::start().await.unwrap();
    let (url, mut rx) = receiver(&[500]).await;
    let set = tg(
        &sandbox,
        "setWebhook",
        json!({"url": url, "secret_token": "s3cr3t-Token_1"}),
    )
    .await;
    assert_eq!(
        set.1,
        json!({"ok": true, "result": true, "description": "Webhook was set"})
    );
    assert_eq!(
        sandbox.telegram_webhook(),
        Some((url.clone(), Some("s3cr3t-Token_1".to_owned())))
    );
    assert_error(
        &tg(&sandbox, "getUpdates", json!({})).await,
        409,
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
    );

    let pushed =
        sandbox.telegram_push_update(telegram::private_message(&user(), json!({"text": "hook"})));
    let second =
        sandbox.telegram_push_update(telegram::private_message(&user(), json!({"text": "next"})));
    sandbox
        .wait_until(WAIT, |s| s.telegram_webhook_deliveries().len() == 3)
        .await
        .expect("delivered, retried, and the next one delivered");
    assert_eq!(
        sandbox
            .telegram_webhook_deliveries()
            .iter()
            .map(|d| (d.update_id, d.status))
            .collect::<Vec<_>>(),
        vec![
            (pushed.update_id, Some(500)),
            (pushed.update_id, Some(200)),
            (second.update_id, Some(200)),
        ]
    );
    for expected in [pushed.update_id, pushed.update_id, second.update_id] {
        let (headers, body) = rx.recv().await.unwrap();
        assert_eq!(headers["x-telegram-bot-api-secret-token"], "s3cr3t-Token_1");
        assert_eq!(headers["content-type"], "application/json");
        let update: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(update["update_id"], expected);
    }
    let info = tg(&sandbox, "getWebhookInfo", json!({})).await;
    let info = result(&info).clone();
    assert_eq!(info["url"], url);
    assert_eq!(info["pending_update_count"], 0);
    assert_eq!(info["has_custom_certificate"], false);
    assert_eq!(
        info["last_error_message"],
        "Wrong response from the webhook: 500 Internal Server Error"
    );

    let deleted = tg(&sandbox, "deleteWebhook", json!({})).await;
    assert_eq!(deleted.1["description"], "Webhook was deleted");
    assert_eq!(sandbox.telegram_webhook(), None);
    assert_eq!(
        result(&tg(&sandbox, "getUpdates", json!({})).await),
        &json!([])
    );
}

#[tokio::test]
async fn webhook_secret_is_validated() {
    let sandbox = Sandbox::start().await.unwrap();
    assert_error(
        &tg(
            &sandbox,
            "setWebhook",
            json!({"url": "https://x.example/hook", "secret_token": "no spaces"}),
        )
        .await,
        400,
        "Bad Request: secret token contains unallowed characters",
    );
    assert_error(
        &tg(&sandbox, "setWebhook", json!({"url": "not a url"})).await,
        400,
        "Bad Request: invalid webhook URL specified",
    );
}

#[tokio::test]
async fn topics_and_messages_in_them() {
    let sandbox = Sandbox::start().await.unwrap();
    let group = sandbox.options().telegram_group_id;
    let answer = tg(
        &sandbox,
        "createForumTopic",
        json!({"chat_id": group, "name": "Ivan Petrov", "icon_custom_emoji_id": "5368324170671202286"}),
    )
    .await;
    let topic = result(&answer).clone();
    // The group's first message is 2: id 1 is the General topic.
    assert_eq!(
        topic,
        json!({"message_thread_id": 2, "name": "Ivan Petrov", "icon_color": 7_322_096,
               "icon_custom_emoji_id": "5368324170671202286"})
    );
    let thread = 2;
    let messages = sandbox.telegram_messages(group);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["message_id"], thread);
    assert_eq!(messages[0]["forum_topic_created"]["name"], "Ivan Petrov");
    assert_eq!(messages[0]["message_thread_id"], thread);
    assert_eq!(messages[0]["from"]["is_bot"], true);

    let sent = tg(
        &sandbox,
        "sendMessage",
        json!({"chat_id": group, "message_thread_id": thread, "text": "<b>New</b> conversation", "parse_mode": "HTML"}),
    )
    .await;
    let sent = result(&sent).clone();
    assert_eq!(sent["message_id"], 3);
    assert_eq!(sent["message_thread_id"], thread);
    assert_eq!(sent["is_topic_message"], true);
    assert_eq!(sent["text"], "New conversation");
    assert_eq!(
        sent["entities"],
        json!([{"offset": 0, "length": 3, "type": "bold"}])
    );
    assert_eq!(
        sent["chat"],
        json!({"id": group, "title": "Support", "is_forum": true, "type": "supergroup"})
    );
    // Telegram's quirk: the topic root is the reply_to_message.
    assert_eq!(sent["reply_to_message"]["message_id"], thread);
    assert!(sent["reply_to_message"]["forum_topic_created"].is_object());
    // General: no thread fields.
    let general = tg(
        &sandbox,
        "sendMessage",
        json!({"chat_id": group, "text": "hello all"}),
    )
    .await;
    let general = result(&general).clone();
    assert!(general.get("message_thread_id").is_none());
    assert!(general.get("is_topic_message").is_none());
    assert_error(
        &tg(
            &sandbox,
            "sendMessage",
            json!({"chat_id": group, "message_thread_id": 1, "text": "x"}),
        )
        .await,
        400,
        "Bad Request: message thread not found",
    );

    // An operator's answer in the topic comes with the root as reply_to_message too.
    let operator = TgUser::new(777, "Olga");
    let answer = sandbox.telegram_push_update(telegram::group_message(
        group,
        &operator,
        Some(thread),
        true,
        json!({"text": "Hello Ivan"}),
    ));
    assert_eq!(answer.message_id, Some(5));
    assert_eq!(
        answer.update["message"]["reply_to_message"]["message_id"],
        thread
    );

    // Close (service message), sending still works for an admin with can_manage_topics.
    let closed = tg(
        &sandbox,
        "closeForumTopic",
        json!({"chat_id": group, "message_thread_id": thread}),
    )
    .await;
    assert_eq!(result(&closed), &json!(true));
    assert_error(
        &tg(
            &sandbox,
            "closeForumTopic",
            json!({"chat_id": group, "message_thread_id": thread}),
        )
        .await,
        400,
        "Bad Request: TOPIC_NOT_MODIFIED",
    );
    let into_closed = tg(
        &sandbox,
        "sendMessage",
        json!({"chat_id": group, "message_thread_id": thread, "text": "still here"}),
    )
    .await;
    result(&into_closed);
    let renamed = tg(
        &sandbox,
        "editForumTopic",
        json!({"chat_id": group, "message_thread_id": thread, "name": "Ivan P. (closed)"}),
    )
    .await;
    assert_eq!(result(&renamed), &json!(true));
    let reopened = tg(
        &sandbox,
        "reopenForumTopic",
        json!({"chat_id": group, "message_thread_id": thread}),
    )
    .await;
    assert_eq!(result(&reopened), &json!(true));
    let topics = sandbox.telegram_topics();
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0].name, "Ivan P. (closed)");
    assert!(!topics[0].closed && !topics[0].deleted);
    let service: Vec<String> = sandbox
        .telegram_messages(group)
        .iter()
        .filter_map(|m| {
            [
                "forum_topic_created",
                "forum_topic_closed",
                "forum_topic_edited",
                "forum_topic_reopened",
            ]
            .into_iter()
            .find(|k| m.get(*k).is_some())
            .map(str::to_owned)
        })
        .collect();
    assert_eq!(
        service,
        [
            "forum_topic_created",
            "forum_topic_closed",
            "forum_topic_edited",
            "forum_topic_reopened"
        ]
    );
    // Bot messages: the three texts, no service messages.
    assert_eq!(sandbox.telegram_bot_messages(group).len(), 3);

    // Without can_manage_topics the bot cannot create topics.
    sandbox.telegram_set_bot_rights(true, false);
    assert_error(
        &tg(
            &sandbox,
            "createForumTopic",
            json!({"chat_id": group, "name": "x"}),
        )
        .await,
        400,
        "Bad Request: not enough rights to create a topic",
    );
    let member = tg(
        &sandbox,
        "getChatMember",
        json!({"chat_id": group, "user_id": sandbox.telegram_bot_id()}),
    )
    .await;
    let member = result(&member).clone();
    assert_eq!(member["status"], "administrator");
    assert_eq!(member["can_manage_topics"], false);
    // A private chat is not a forum.
    let user = user_started(&sandbox);
    assert_error(
        &tg(
            &sandbox,
            "createForumTopic",
            json!({"chat_id": user.id, "name": "x"}),
        )
        .await,
        400,
        "Bad Request: the chat is not a forum",
    );
}

#[tokio::test]
async fn deleted_topic_is_thread_not_found() {
    let sandbox = Sandbox::start().await.unwrap();
    let group = sandbox.options().telegram_group_id;
    let thread = create_topic(&sandbox, "Someone").await;
    result(
        &tg(
            &sandbox,
            "sendMessage",
            json!({"chat_id": group, "message_thread_id": thread, "text": "hi"}),
        )
        .await,
    );
    sandbox.telegram_delete_topic(thread);
    assert!(sandbox.telegram_topics()[0].deleted);
    assert!(
        sandbox.telegram_messages(group).is_empty(),
        "its messages are gone"
    );
    assert_error(
        &tg(
            &sandbox,
            "sendMessage",
            json!({"chat_id": group, "message_thread_id": thread, "text": "again"}),
        )
        .await,
        400,
        "Bad Request: message thread not found",
    );
    assert_error(
        &tg(
            &sandbox,
            "sendMessage",
            json!({"chat_id": group, "message_thread_id": 999, "text": "never"}),
        )
        .await,
        400,
        "Bad Request: message thread not found",
    );
}

#[tokio::test]
async fn copy_message_answers_only_the_id_and_keeps_the_media() {
    let sandbox = Sandbox::start().await.unwrap();
    let group = sandbox.options().telegram_group_id;
    let user = user();
    let photo = telegram::with(telegram::photo(), json!({"caption": "look #here"}));
    let pushed = sandbox.telegram_push_update(telegram::private_message(&user, photo));
    let source = pushed.update["message"].clone();
    assert_eq!(source["caption_entities"][0]["type"], "hashtag");
    let thread = create_topic(&sandbox, "Ivan").await;

    let copy = tg(
        &sandbox,
        "copyMessage",
        json!({"chat_id": group, "from_chat_id": user.id, "message_id": pushed.message_id, "message_thread_id": thread}),
    )
    .await;
    let copied = result(&copy).clone();
    assert_eq!(copied, json!({"message_id": thread + 1}));
    let stored = sandbox.telegram_bot_messages(group);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["message_id"], thread + 1);
    assert_eq!(stored[0]["photo"], source["photo"]);
    assert_eq!(stored[0]["caption"], "look #here");
    assert_eq!(stored[0]["is_topic_message"], true);
    assert_eq!(stored[0]["from"]["id"], sandbox.telegram_bot_id());
    assert!(stored[0].get("forward_origin").is_none());

    // A new caption replaces the old one; form-encoded parameters work as well.
    let form = reqwest::Client::new()
        .post(method_url(&sandbox, "copyMessage"))
        .form(&[
            ("chat_id", group.to_string()),
            ("from_chat_id", user.id.to_string()),
            ("message_id", pushed.message_id.unwrap().to_string()),
            ("message_thread_id", thread.to_string()),
            ("caption", "from <i>Ivan</i>".to_owned()),
            ("parse_mode", "HTML".to_owned()),
        ])
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(form["ok"], true, "{form}");
    let second = sandbox.telegram_bot_messages(group)[1].clone();
    assert_eq!(second["caption"], "from Ivan");
    assert_eq!(
        second["caption_entities"],
        json!([{"offset": 5, "length": 4, "type": "italic"}])
    );

    assert_error(
        &tg(
            &sandbox,
            "copyMessage",
            json!({"chat_id": group, "from_chat_id": user.id, "message_id": 999}),
        )
        .await,
        400,
        "Bad Request: message to copy not found",
    );
    assert_error(
        &tg(
            &sandbox,
            "copyMessage",
            json!({"chat_id": group, "from_chat_id": group, "message_id": thread}),
        )
        .await,
        400,
        "Bad Request: message can't be copied",
    );
}

#[tokio::test]
async fn private_chats_blocks_and_edits() {
    let sandbox = Sandbox::start().await.unwrap();
    let group = sandbox.options().telegram_group_id;
    let stranger = 555_999;
    assert_error(
        &tg(
            &sandbox,
            "sendMessage",
            json!({"chat_id": stranger, "text": "hi"}),
        )
        .await,
        400,
        "Bad Request: chat not found",
    );
    assert_error(
        &tg(&sandbox, "sendMessage", json!({"text": "hi"})).await,
        400,
        "Bad Request: chat_id is empty",
    );
    // Seen only in the group: the bot may not start the conversation.
    sandbox.telegram_push_update(telegram::group_message(
        group,
        &TgUser::new(777, "Olga"),
        None,
        false,
        json!({"text": "hi"}),
    ));
    assert_error(
        &tg(
            &sandbox,
            "sendMessage",
            json!({"chat_id": 777, "text": "hi"}),
        )
        .await,
        403,
        "Forbidden: bot can't initiate conversation with a user",
    );

    let user = user_started(&sandbox);
    let sent = tg(
        &sandbox,
        "sendMessage",
        json!({"chat_id": user.id, "text": "Здравствуйте"}),
    )
    .await;
    let sent = result(&sent).clone();
    assert_eq!(
        sent["message_id"], 2,
        "ids are per chat: the user's /start was 1"
    );
    assert!(sent.get("message_thread_id").is_none() && sent.get("is_topic_message").is_none());
    assert_eq!(sent["chat"]["username"], "ivan_p");

    let edited = tg(
        &sandbox,
        "editMessageText",
        json!({"chat_id": user.id, "message_id": 2, "text": "Добрый день"}),
    )
    .await;
    let edited = result(&edited).clone();
    assert_eq!(edited["text"], "Добрый день");
    assert!(edited["edit_date"].as_i64().is_some());
    assert_error(
        &tg(
            &sandbox,
            "editMessageText",
            json!({"chat_id": user.id, "message_id": 2, "text": "Добрый день"}),
        )
        .await,
        400,
        "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
    );
    assert_error(
        &tg(
            &sandbox,
            "editMessageText",
            json!({"chat_id": user.id, "message_id": 42, "text": "x"}),
        )
        .await,
        400,
        "Bad Request: message to edit not found",
    );
    assert_error(
        &tg(
            &sandbox,
            "editMessageText",
            json!({"chat_id": user.id, "message_id": 1, "text": "x"}),
        )
        .await,
        400,
        "Bad Request: message can't be edited",
    );
    assert_eq!(sandbox.telegram_messages(user.id)[1]["text"], "Добрый день");

    let chat = tg(&sandbox, "getChat", json!({"chat_id": user.id})).await;
    let chat = result(&chat).clone();
    assert_eq!(chat["type"], "private");
    assert_eq!(chat["first_name"], "Ivan");
    let group_chat = tg(&sandbox, "getChat", json!({"chat_id": group})).await;
    assert_eq!(result(&group_chat)["is_forum"], true);
    assert_eq!(result(&group_chat)["title"], "Support");

    sandbox.telegram_block_user(user.id);
    assert_error(
        &tg(
            &sandbox,
            "sendMessage",
            json!({"chat_id": user.id, "text": "are you there?"}),
        )
        .await,
        403,
        "Forbidden: bot was blocked by the user",
    );
    sandbox.telegram_unblock_user(user.id);
    result(
        &tg(
            &sandbox,
            "sendMessage",
            json!({"chat_id": user.id, "text": "welcome back"}),
        )
        .await,
    );

    sandbox.telegram_kick_bot();
    assert_error(
        &tg(
            &sandbox,
            "sendMessage",
            json!({"chat_id": group, "text": "x"}),
        )
        .await,
        403,
        "Forbidden: bot was kicked from the supergroup chat",
    );
    // Block, unblock and kick each queued the my_chat_member update Telegram sends.
    let kinds: Vec<String> = result(&tg(&sandbox, "getUpdates", json!({})).await)
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u.get("my_chat_member").is_some())
        .map(|u| {
            u["my_chat_member"]["new_chat_member"]["status"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(kinds, ["kicked", "member", "kicked"]);
}

#[tokio::test]
async fn message_length_counts_utf16_units() {
    let sandbox = Sandbox::start().await.unwrap();
    let user = user_started(&sandbox);
    let fits = "а".repeat(4096);
    result(
        &tg(
            &sandbox,
            "sendMessage",
            json!({"chat_id": user.id, "text": fits}),
        )
        .await,
    );
    assert_error(
        &tg(
            &sandbox,
            "sendMessage",
            json!({"chat_id": user.id, "text": "а".repeat(4097)}),
        )
        .await,
        400,
        "Bad Request: message is too long",
    );
    // 2048 emoji are 4096 units; one more character is too many.
    let emoji = "😀".repeat(2048);
    result(
        &tg(
            &sandbox,
            "sendMessage",
            json!({"chat_id": user.id, "text": emoji.clone()}),
        )
        .await,
    );
    assert_error(
        &tg(
            &sandbox,
            "sendMessage",
            json!({"chat_id": user.id, "text": format!("{emoji}!")}),
        )
        .await,
        400,
        "Bad Request: message is too long",
    );
    assert_error(
        &tg(
            &sandbox,
            "sendMessage",
            json!({"chat_id": user.id, "text": "  \n "}),
        )
        .await,
        400,
        "Bad Request: message text is empty",
    );
    assert_error(
        &tg(
            &sandbox,
            "sendMessage",
            json!({"chat_id": user.id, "text": "1.5", "parse_mode": "MarkdownV2"}),
        )
        .await,
        400,
        "Bad Request: can't parse entities: Character '.' is reserved and must be escaped with the preceding '\\'",
    );
}

#[tokio::test]
async fn injected_failures_use_the_telegram_envelope() {
    let sandbox = Sandbox::start().await.unwrap();
    let user = user_started(&sandbox);
    sandbox.fail_next(
        Target::Telegram,
        1,
        Failure::TooManyRequests {
            retry_after_secs: 7,
        },
    );
    let limited = reqwest::Client::new()
        .post(method_url(&sandbox, "sendMessage"))
        .json(&json!({"chat_id": user.id, "text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().get("retry-after").is_none());
    assert_eq!(
        limited.json::<Value>().await.unwrap(),
        json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 7",
               "parameters": {"retry_after": 7}})
    );
    sandbox.fail_next(Target::Telegram, 1, Failure::Status(500));
    assert_error(
        &tg(
            &sandbox,
            "sendMessage",
            json!({"chat_id": user.id, "text": "hi"}),
        )
        .await,
        500,
        "Internal Server Error",
    );
    sandbox.fail_next(Target::Telegram, 1, Failure::Status(502));
    let proxy = reqwest::Client::new()
        .post(method_url(&sandbox, "sendMessage"))
        .json(&json!({"chat_id": user.id, "text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(proxy.status(), 502);
    assert!(
        proxy
            .text()
            .await
            .unwrap()
            .contains("<center>nginx</center>")
    );
    // Recovered; nothing was sent by the failed calls.
    result(
        &tg(
            &sandbox,
            "sendMessage",
            json!({"chat_id": user.id, "text": "hi"}),
        )
        .await,
    );
    assert_eq!(sandbox.telegram_bot_messages(user.id).len(), 1);
    let recorded = sandbox
        .requests()
        .into_iter()
        .filter(|r| r.target == Target::Telegram)
        .count();
    assert_eq!(recorded, 4);
}

#[tokio::test]
async fn control_api_pushes_and_lists() {
    let sandbox = Sandbox::start().await.unwrap();
    let http = reqwest::Client::new();
    let control = format!("{}/_sandbox/telegram", sandbox.url());
    let pushed: Value = http
        .post(format!("{control}/updates"))
        .json(&telegram::private_message(
            &user(),
            json!({"text": "from the demo"}),
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        pushed,
        json!({"update_id": 1, "chat_id": 555_001, "message_id": 1})
    );
    let malformed = http
        .post(format!("{control}/updates"))
        .json(&json!({"edited_message": {"chat": {"id": 555_001}, "text": "no id"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let messages: Value = http
        .get(format!("{control}/chats/555001/messages"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(messages[0]["text"], "from the demo");
    let blocked = http
        .post(format!("{control}/blocked"))
        .json(&json!({"user_id": 555_001}))
        .send()
        .await
        .unwrap();
    assert_eq!(blocked.status(), 204);
    assert_error(
        &tg(
            &sandbox,
            "sendMessage",
            json!({"chat_id": 555_001, "text": "x"}),
        )
        .await,
        403,
        "Forbidden: bot was blocked by the user",
    );
    create_topic(&sandbox, "Demo").await;
    let topics: Value = http
        .get(format!("{control}/topics"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(topics[0]["name"], "Demo");
    let failed = http
        .post(format!("{}/_sandbox/fail", sandbox.url()))
        .json(&json!({"target": "telegram", "count": 1, "failure": {"status": 500}}))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 204);
    assert_eq!(tg(&sandbox, "getMe", json!({})).await.0, 500);
}
