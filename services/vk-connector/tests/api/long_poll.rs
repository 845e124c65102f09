//! VK Bots Long Poll: events pulled from VK take the same path as callbacks.

use std::time::Duration;

use sandbox::{Failure, Target};

use crate::helpers::*;

fn long_poll_event(text: &str) -> serde_json::Value {
    let mut e = message_new(USER_ID, text);
    e.as_object_mut().unwrap().remove("secret");
    e
}

#[tokio::test]
async fn long_poll_events_reach_chatwoot_once_across_failures() {
    let app = spawn_app_with(Options {
        long_poll: Some(Duration::from_secs(2)),
        ..Default::default()
    })
    .await;
    app.sandbox
        .wait_until(WAIT, |s| s.vk_long_poll_waiting() == 1)
        .await
        .expect("the worker polls");
    app.sandbox
        .vk_push_long_poll_event(long_poll_event("Через long poll"));
    app.sandbox
        .wait_until(WAIT, |s| all_messages(s).len() == 1)
        .await
        .expect("relayed");
    assert_eq!(app.all_chatwoot_messages()[0]["content"], "Через long poll");
    // The key expires (failed: 2): the worker fetches a new one and goes on.
    app.sandbox.vk_expire_long_poll_key();
    app.sandbox
        .wait_until(WAIT, |s| s.vk_long_poll_waiting() == 1)
        .await
        .unwrap();
    app.sandbox
        .vk_push_long_poll_event(long_poll_event("После смены ключа"));
    app.sandbox
        .wait_until(WAIT, |s| all_messages(s).len() == 2)
        .await
        .expect("relayed after a new key");
    // The long poll server fails for a while: retried with backoff, nothing lost.
    app.sandbox.fail_next(Target::Vk, 2, Failure::Status(502));
    app.sandbox.vk_expire_long_poll_key();
    app.sandbox
        .vk_push_long_poll_event(long_poll_event("Во время сбоя"));
    app.sandbox
        .wait_until(WAIT, |s| all_messages(s).len() == 3)
        .await
        .expect("relayed after the outage");
    assert_eq!(app.events_stored().await, 3);
    app.cleanup().await;
}
