//! The relay both ways, in polling mode (the default).

use sandbox::telegram::{self, TgUser};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_customers_messages_open_one_topic_headed_by_a_card_and_arrive_in_order() {
    let app = spawn_app_with(Options {
        emoji: Some("5312536423851630001"),
        ..Options::default()
    })
    .await;
    let user = ivan();
    app.customer_sends(&user, text("Здравствуйте, заказ не пришёл"));
    app.customer_sends(
        &user,
        telegram::with(telegram::photo(), json!({"caption": "чек"})),
    );
    app.customer_sends(&user, telegram::voice());
    app.customer_sends(&user, telegram::document());
    app.customer_sends(&user, telegram::sticker());
    app.customer_sends(&user, telegram::contact());
    app.customer_sends(&user, telegram::location());
    let thread = app.wait_topic(1).await;
    // card + 7 messages
    let msgs = app.wait_topic_len(thread, 8).await;
    let topics = app.sandbox.telegram_topics();
    assert_eq!(topics.len(), 1, "one topic per customer: {topics:?}");
    assert_eq!(topics[0].name, "Ivan Petrov");
    assert_eq!(
        topics[0].icon_custom_emoji_id.as_deref(),
        Some("5312536423851630001")
    );
    let card = msgs[0]["text"].as_str().unwrap();
    assert!(
        card.contains("Ivan Petrov") && card.contains("@ivanp"),
        "{card}"
    );
    assert!(card.contains("5000001") && card.contains("ru"), "{card}");
    assert!(
        msgs[0]["entities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["url"] == "tg://user?id=5000001"),
        "the card links the profile: {}",
        msgs[0]
    );
    assert_eq!(msgs[1]["text"], "Здравствуйте, заказ не пришёл");
    assert!(
        msgs[2]["photo"].is_array() && msgs[2]["caption"] == "чек",
        "{}",
        msgs[2]
    );
    assert!(msgs[3]["voice"].is_object(), "{}", msgs[3]);
    assert!(msgs[4]["document"].is_object(), "{}", msgs[4]);
    assert!(msgs[5]["sticker"].is_object(), "{}", msgs[5]);
    assert!(msgs[6]["contact"].is_object(), "{}", msgs[6]);
    assert!(msgs[7]["location"].is_object(), "{}", msgs[7]);
    for m in &msgs {
        assert_eq!(m["is_topic_message"], true, "{m}");
    }
}

#[tokio::test]
async fn an_operator_reply_reaches_the_customer_and_edits_are_mirrored_both_ways() {
    let app = spawn_app().await;
    let user = ivan();
    let first = app.customer_sends(&user, text("Где мой заказ?"));
    let thread = app.wait_topic(1).await;
    app.wait_topic_len(thread, 2).await;
    // The operator answers in the topic: text, then a photo.
    let reply = app.operator_sends(thread, text("Добрый день! Уже едет."));
    app.operator_sends(thread, telegram::photo());
    let got = app.wait_customer_len(user.id, 2).await;
    assert_eq!(got[0]["text"], "Добрый день! Уже едет.");
    assert!(got[1]["photo"].is_array(), "{}", got[1]);
    // The customer edits their message: the copy in the topic changes.
    app.sandbox.telegram_push_update(telegram::edited(
        first.update.clone(),
        text("Где мой заказ №123?"),
    ));
    app.sandbox
        .wait_until(WAIT, |s| {
            s.telegram_bot_messages(s.options().telegram_group_id)
                .iter()
                .any(|m| m["text"] == "Где мой заказ №123?")
        })
        .await
        .expect("customer edit mirrored");
    // The operator edits theirs: the customer's copy changes.
    app.sandbox.telegram_push_update(telegram::edited(
        reply.update.clone(),
        text("Добрый день! Курьер будет в 15:00."),
    ));
    app.sandbox
        .wait_until(WAIT, |s| {
            s.telegram_bot_messages(user.id)
                .iter()
                .any(|m| m["text"] == "Добрый день! Курьер будет в 15:00.")
        })
        .await
        .expect("operator edit mirrored");
    assert_eq!(
        app.to_customer(user.id).len(),
        2,
        "an edit sends nothing new"
    );
}

#[tokio::test]
async fn a_second_customer_gets_a_second_topic_and_start_is_greeted_in_their_language() {
    let app = spawn_app().await;
    app.customer_sends(&anna(), text("/start"));
    let greeting = app.wait_customer_len(anna().id, 1).await;
    assert!(
        greeting[0]["text"].as_str().unwrap().starts_with("Hello"),
        "{}",
        greeting[0]
    );
    app.customer_sends(&ivan(), text("/start"));
    let greeting = app.wait_customer_len(ivan().id, 1).await;
    assert!(
        greeting[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Здравствуйте")
    );
    assert!(
        app.sandbox.telegram_topics().is_empty(),
        "/start alone opens no topic"
    );
    app.customer_sends(&ivan(), text("one"));
    app.customer_sends(&anna(), text("two"));
    app.wait_topic(2).await;
    let topics = app.sandbox.telegram_topics();
    assert_eq!(topics.len(), 2);
    let names: Vec<_> = topics.iter().map(|t| t.name.as_str()).collect();
    assert!(
        names.contains(&"Ivan Petrov") && names.contains(&"Anna"),
        "{names:?}"
    );
    for t in &topics {
        app.wait_topic_len(t.message_thread_id, 2).await;
    }
}

#[tokio::test]
async fn the_general_topic_other_groups_and_bots_are_ignored() {
    let app = spawn_app().await;
    let user = ivan();
    app.customer_sends(&user, text("hi"));
    let thread = app.wait_topic(1).await;
    app.wait_topic_len(thread, 2).await;
    let op = TgUser::new(OPERATOR, "Olga");
    // A reply in the General topic carries a thread id but is not a topic message.
    app.sandbox.telegram_push_update(telegram::group_message(
        app.group(),
        &op,
        Some(thread),
        false,
        text("general chatter"),
    ));
    // Another group.
    app.sandbox.telegram_push_update(telegram::group_message(
        -100_999,
        &op,
        Some(thread),
        true,
        text("other group"),
    ));
    // Another bot, in the topic and privately.
    let bot = TgUser::new(777, "OtherBot").bot();
    app.sandbox.telegram_push_update(telegram::group_message(
        app.group(),
        &bot,
        Some(thread),
        true,
        text("bot in topic"),
    ));
    app.sandbox
        .telegram_push_update(telegram::private_message(&bot, text("bot privately")));
    // Then a real operator message: when it arrived, the ones before were judged.
    app.operator_sends(thread, text("real answer"));
    let got = app.wait_customer_len(user.id, 1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["text"], "real answer");
    assert_eq!(
        app.sandbox.telegram_topics().len(),
        1,
        "no topic for the bot"
    );
}

#[tokio::test]
async fn ban_stops_relaying_unban_restores_it_close_closes_and_the_next_message_reopens() {
    let app = spawn_app().await;
    let user = ivan();
    app.customer_sends(&user, text("first"));
    let thread = app.wait_topic(1).await;
    app.wait_topic_len(thread, 2).await;
    app.operator_sends(thread, text("/ban"));
    app.wait_topic_len(thread, 3).await; // the bot says the customer is banned
    let banned = app.customer_sends(&user, text("while banned"));
    // The two directions are separate lanes: /unban must come after the dropped message.
    let store = app.state.store.clone();
    testkit::wait_for("the banned message handled", || async {
        store
            .link(user.id, banned.message_id.unwrap())
            .await
            .unwrap()
            .is_some_and(|l| l.kind == "banned")
    })
    .await;
    app.operator_sends(thread, text("/unban"));
    app.wait_topic_len(thread, 4).await;
    app.customer_sends(&user, text("after unban"));
    let msgs = app.wait_topic_len(thread, 5).await;
    let texts: Vec<_> = msgs.iter().filter_map(|m| m["text"].as_str()).collect();
    assert!(!texts.contains(&"while banned"), "{texts:?}");
    assert_eq!(texts.last(), Some(&"after unban"));
    assert!(
        app.to_customer(user.id).is_empty(),
        "commands never reach the customer"
    );
    // /close closes the topic; the customer's next message reopens it.
    app.operator_sends(thread, text("/close@support_test_bot"));
    app.sandbox
        .wait_until(WAIT, |s| s.telegram_topics()[0].closed)
        .await
        .expect("topic closed");
    app.customer_sends(&user, text("again"));
    app.sandbox
        .wait_until(WAIT, |s| !s.telegram_topics()[0].closed)
        .await
        .expect("topic reopened");
    let msgs = app.wait_topic_len(thread, 7).await;
    assert_eq!(msgs.last().unwrap()["text"], "again");
    assert_eq!(app.sandbox.telegram_topics().len(), 1);
}

#[tokio::test]
async fn a_long_text_is_split_at_utf16_boundaries_with_nothing_lost() {
    let app = spawn_app().await;
    let user = ivan();
    // 4,500 UTF-16 units: 1,500 × ("😀" = 2 units + "я" = 1).
    let long: String = "😀я".repeat(1500);
    app.customer_sends(&user, text(&long));
    let thread = app.wait_topic(1).await;
    let msgs = app.wait_topic_len(thread, 3).await;
    let parts: Vec<&str> = msgs[1..]
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(parts.len(), 2, "{} parts", parts.len());
    for p in &parts {
        assert!(
            p.encode_utf16().count() <= 4096,
            "{}",
            p.encode_utf16().count()
        );
    }
    assert_eq!(parts.concat(), long);
}

#[tokio::test]
async fn the_same_update_twice_is_relayed_once() {
    let app = spawn_app().await;
    let user = ivan();
    let pushed = app.customer_sends(&user, text("once"));
    // The same message again in a new update (the id is the fake's next one): only the
    // message links can tell it was relayed already — JetStream sees a new Nats-Msg-Id.
    let mut again = pushed.update.clone();
    again.as_object_mut().unwrap().remove("update_id");
    let thread = app.wait_topic(1).await;
    app.wait_topic_len(thread, 2).await;
    app.sandbox.telegram_push_update(again);
    app.customer_sends(&user, text("next"));
    let msgs = app.wait_topic_len(thread, 3).await;
    let texts: Vec<_> = msgs.iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(
        texts.iter().filter(|t| **t == "once").count(),
        1,
        "{texts:?}"
    );
    assert_eq!(texts.last(), Some(&"next"));
}

#[tokio::test]
async fn a_topic_deleted_by_hand_is_recreated() {
    let app = spawn_app().await;
    let user = ivan();
    app.customer_sends(&user, text("first"));
    let thread = app.wait_topic(1).await;
    app.wait_topic_len(thread, 2).await;
    app.sandbox.telegram_delete_topic(thread);
    app.customer_sends(&user, text("after delete"));
    let new_thread = app.wait_topic(1).await;
    assert_ne!(new_thread, thread);
    let msgs = app.wait_topic_len(new_thread, 3).await;
    assert_eq!(msgs.last().unwrap()["text"], "after delete");
    // The operator's reply in the new topic still reaches the customer.
    app.operator_sends(new_thread, text("found you"));
    app.wait_customer_len(user.id, 1).await;
}

#[tokio::test]
async fn a_customer_who_blocked_the_bot_is_marked_and_operators_are_told_once() {
    let app = spawn_app().await;
    let user = ivan();
    app.customer_sends(&user, text("hi"));
    let thread = app.wait_topic(1).await;
    app.wait_topic_len(thread, 2).await;
    app.sandbox.telegram_block_user(user.id);
    app.operator_sends(thread, text("answer 1"));
    app.operator_sends(thread, text("answer 2"));
    let dl = app.state.dead_letters.clone();
    testkit::wait_for("both replies dead-lettered", || async {
        dl.list(10, true).await.map(|l| l.len()).unwrap_or(0) == 2
    })
    .await;
    let notices: Vec<_> = app
        .topic_messages(thread)
        .into_iter()
        .filter(|m| {
            m["text"]
                .as_str()
                .is_some_and(|t| t.contains("заблокировал"))
        })
        .collect();
    assert_eq!(notices.len(), 1, "told once: {notices:?}");
    let reasons: Vec<String> = dl
        .list(10, true)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.reason)
        .collect();
    assert!(
        reasons.iter().all(|r| r.contains("blocked the bot")),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn without_the_right_to_manage_topics_the_developer_is_told_once_and_messages_wait() {
    let app = spawn_app_with(Options {
        dev_id: Some(4242),
        ..Options::default()
    })
    .await;
    // The bot can write to a person only after they started it.
    let dev = TgUser::new(4242, "Dev").language_code("en");
    app.customer_sends(&dev, text("/start"));
    app.wait_customer_len(4242, 1).await;
    app.sandbox.telegram_set_bot_rights(true, false);
    let user = ivan();
    app.customer_sends(&user, text("hello?"));
    app.customer_sends(&user, text("anyone?"));
    let dev = app.wait_customer_len(4242, 2).await;
    assert!(
        dev[1]["text"].as_str().unwrap().contains("Manage topics"),
        "{}",
        dev[1]
    );
    // Fixed by a person: the waiting messages are delivered, in order, and the notice was sent once.
    app.sandbox.telegram_set_bot_rights(true, true);
    let thread = app.wait_topic(1).await;
    let msgs = app.wait_topic_len(thread, 3).await;
    assert_eq!(msgs[1]["text"], "hello?");
    assert_eq!(msgs[2]["text"], "anyone?");
    assert_eq!(app.to_customer(4242).len(), 2, "greeting + one notice");
}

#[tokio::test]
async fn replies_stay_replies_on_the_other_side() {
    let app = spawn_app().await;
    let user = ivan();
    let question = app.customer_sends(&user, text("Сколько стоит доставка?"));
    app.customer_sends(&user, text("И сколько ждать?"));
    let thread = app.wait_topic(1).await;
    let msgs = app.wait_topic_len(thread, 3).await;
    // The operator answers the first question with Telegram's "reply" on its copy.
    let copy_id = msgs[1]["message_id"].as_i64().unwrap();
    // The link from the copy back to the question is recorded right after the copy is sent.
    let store = app.state.store.clone();
    let q = question.message_id.unwrap();
    testkit::wait_for("the question's link", || async {
        store.link(user.id, q).await.unwrap().is_some()
    })
    .await;
    app.operator_sends(
        thread,
        json!({"text": "300 ₽", "reply_to_message": {"message_id": copy_id}}),
    );
    let got = app.wait_customer_len(user.id, 1).await;
    assert_eq!(
        got[0]["reply_to_message"]["message_id"].as_i64(),
        question.message_id,
        "the customer sees the answer as a reply to their question: {}",
        got[0]
    );
    // The customer replies to that answer: in the topic it answers the operator's message.
    let answer_id = got[0]["message_id"].as_i64().unwrap();
    let op_msg = app
        .sandbox
        .telegram_messages(app.group())
        .into_iter()
        .find(|m| m["text"] == "300 ₽")
        .and_then(|m| m["message_id"].as_i64())
        .expect("the operator's message");
    let group = app.group();
    testkit::wait_for("the answer's link", || async {
        store.link(group, op_msg).await.unwrap().is_some()
    })
    .await;
    app.customer_sends(
        &user,
        json!({"text": "Спасибо!", "reply_to_message": {"message_id": answer_id}}),
    );
    let msgs = app.wait_topic_len(thread, 4).await;
    let operator_msg = app
        .sandbox
        .telegram_messages(app.group())
        .into_iter()
        .find(|m| m["text"] == "300 ₽")
        .expect("the operator's message");
    assert_eq!(
        msgs[3]["reply_to_message"]["message_id"], operator_msg["message_id"],
        "{}",
        msgs[3]
    );
}

#[tokio::test]
async fn a_bot_removed_from_the_group_tells_the_developer_once_and_keeps_the_messages() {
    let app = spawn_app_with(Options {
        dev_id: Some(4243),
        ..Options::default()
    })
    .await;
    let dev = TgUser::new(4243, "Dev");
    app.customer_sends(&dev, text("/start"));
    app.wait_customer_len(4243, 1).await;
    let user = ivan();
    app.customer_sends(&user, text("first"));
    let thread = app.wait_topic(1).await;
    app.wait_topic_len(thread, 2).await;
    app.sandbox.telegram_kick_bot();
    app.customer_sends(&user, text("while removed 1"));
    app.customer_sends(&user, text("while removed 2"));
    let got = app.wait_customer_len(4243, 2).await;
    assert!(
        got[1]["text"]
            .as_str()
            .unwrap()
            .contains("удалён из группы"),
        "{}",
        got[1]
    );
    assert!(
        app.state
            .dead_letters
            .list(10, true)
            .await
            .unwrap()
            .is_empty(),
        "waiting for a person is no dead letter"
    );
    assert_eq!(app.to_customer(4243).len(), 2, "told once");
}
