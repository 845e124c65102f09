//! The Long Poll position survives restarts (issue 9, item 7): `ts` is saved in
//! `vk.long_poll_state` once a response's events are published, a start continues from it, and
//! `failed` 1/2/3 get the reaction VK documents.

use std::time::Duration;

use sandbox::Sandbox;
use serde_json::Value;
use testkit::TestEnv;
use tokio_util::sync::CancellationToken;
use vk_connector::AppState;

use crate::helpers::*;

/// One vk-connector process with Long Poll on, on a sandbox and a database that outlive it.
struct Node {
    state: AppState,
    stop: CancellationToken,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Node {
    async fn start(sandbox: &Sandbox, env: &TestEnv) -> Self {
        let opts = Options {
            long_poll: Some(Duration::from_secs(2)),
            ..Default::default()
        };
        let app = vk_connector::build(settings_for(sandbox, env, &opts))
            .await
            .expect("app builds");
        let state = app.state().clone();
        let stop = CancellationToken::new();
        let handle = tokio::spawn(app.run_until(stop.clone()));
        Self {
            state,
            stop,
            handle: Some(handle),
        }
    }

    /// Stops it and waits until it has drained (its long poll loop has ended).
    async fn stop(mut self) {
        self.stop.cancel();
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(15), h)
                .await
                .expect("stops in time")
                .expect("joins")
                .expect("ran cleanly");
        }
        self.state.store.pool().close().await;
    }

    async fn saved_ts(&self) -> Option<String> {
        self.state
            .store
            .long_poll_ts(GROUP_ID)
            .await
            .expect("reads the position")
    }

    async fn wait_saved(&self, ts: &str) {
        testkit::wait_for(&format!("saved ts {ts}"), || async {
            self.saved_ts().await.as_deref() == Some(ts)
        })
        .await
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

async fn sandbox_and_env() -> (Sandbox, TestEnv) {
    let sandbox = Sandbox::start().await.expect("sandbox starts");
    sandbox.add_vk_user(USER_ID, "Иван", "Петров");
    sandbox.set_vk_group(GROUP_ID, "Магазин «Ромашка»");
    (sandbox, test_env().await)
}

fn event(text: &str) -> Value {
    let mut e = message_new(USER_ID, text);
    e.as_object_mut().unwrap().remove("secret");
    e
}

fn contents(sandbox: &Sandbox) -> Vec<String> {
    all_messages(sandbox)
        .iter()
        .filter_map(|m| m["content"].as_str().map(str::to_owned))
        .collect()
}

async fn wait_contents(sandbox: &Sandbox, expected: &[&str]) {
    sandbox
        .wait_until(WAIT, |s| contents(s).len() >= expected.len())
        .await
        .unwrap_or_else(|e| panic!("{e}: have {:?}, want {expected:?}", contents(sandbox)));
    assert_eq!(contents(sandbox), expected);
}

fn server_calls(sandbox: &Sandbox) -> usize {
    sandbox
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/groups.getLongPollServer"))
        .count()
}

#[tokio::test]
async fn a_restart_continues_from_the_saved_ts() {
    let (sandbox, env) = sandbox_and_env().await;
    let a = Node::start(&sandbox, &env).await;
    sandbox
        .wait_until(WAIT, |s| s.vk_long_poll_waiting() == 1)
        .await
        .expect("the worker polls");
    sandbox.vk_push_long_poll_event(event("до перезапуска"));
    wait_contents(&sandbox, &["до перезапуска"]).await;
    a.wait_saved("1").await;
    a.stop().await;
    // VK queues two messages while the service is being rolled out.
    sandbox.vk_push_long_poll_event(event("во время выкатки 1"));
    sandbox.vk_push_long_poll_event(event("во время выкатки 2"));
    let b = Node::start(&sandbox, &env).await;
    wait_contents(
        &sandbox,
        &["до перезапуска", "во время выкатки 1", "во время выкатки 2"],
    )
    .await;
    b.wait_saved("3").await;
    b.stop().await;
}

#[tokio::test]
async fn ts_is_saved_only_once_the_events_are_published() {
    let (sandbox, env) = sandbox_and_env().await;
    let a = Node::start(&sandbox, &env).await;
    sandbox
        .wait_until(WAIT, |s| s.vk_long_poll_waiting() == 1)
        .await
        .expect("the worker polls");
    a.state.bus.delete_streams().await.unwrap();
    let answered = sandbox.vk_long_poll_requests();
    sandbox.vk_push_long_poll_event(event("NATS лежит"));
    // The event was handed over, not published, and asked for again with the old ts.
    sandbox
        .wait_until(WAIT, |s| s.vk_long_poll_requests() >= answered + 2)
        .await
        .expect("the batch is read again");
    assert_ne!(a.saved_ts().await.as_deref(), Some("1"));
    a.state.bus.ensure_streams().await.unwrap();
    wait_contents(&sandbox, &["NATS лежит"]).await;
    a.wait_saved("1").await;
    a.stop().await;
}

#[tokio::test]
async fn failed_answers_get_the_reaction_vk_documents() {
    let (sandbox, env) = sandbox_and_env().await;
    let node = Node::start(&sandbox, &env).await;
    sandbox
        .wait_until(WAIT, |s| s.vk_long_poll_waiting() == 1)
        .await
        .expect("the worker polls");
    sandbox.vk_push_long_poll_event(event("первое"));
    wait_contents(&sandbox, &["первое"]).await;
    node.wait_saved("1").await;
    node.stop().await;

    // failed 2 (key expired): a new key, and the saved ts kept, so nothing is skipped.
    sandbox.vk_push_long_poll_event(event("после failed 2")); // ts 2
    sandbox.vk_long_poll_fail_next(2);
    let calls = server_calls(&sandbox);
    let node = Node::start(&sandbox, &env).await;
    wait_contents(&sandbox, &["первое", "после failed 2"]).await;
    node.wait_saved("2").await;
    assert_eq!(
        server_calls(&sandbox),
        calls + 2,
        "one key at start, one after failed 2"
    );
    node.stop().await;

    // failed 1 (history lost): continue from the answer's ts with the same key; what was in
    // between is lost upstream, as VK documents.
    sandbox.vk_push_long_poll_event(event("потеряно при failed 1")); // ts 3
    sandbox.vk_long_poll_fail_next(1); // {"failed":1,"ts":3}
    let calls = server_calls(&sandbox);
    let node = Node::start(&sandbox, &env).await;
    node.wait_saved("3").await;
    sandbox.vk_push_long_poll_event(event("после failed 1")); // ts 4
    wait_contents(&sandbox, &["первое", "после failed 2", "после failed 1"]).await;
    node.wait_saved("4").await;
    assert_eq!(
        server_calls(&sandbox),
        calls + 1,
        "no new key after failed 1"
    );
    node.stop().await;

    // failed 3 (key and ts lost): a new key and the server's ts.
    sandbox.vk_push_long_poll_event(event("потеряно при failed 3")); // ts 5
    sandbox.vk_long_poll_fail_next(3);
    let calls = server_calls(&sandbox);
    let node = Node::start(&sandbox, &env).await;
    node.wait_saved("5").await;
    sandbox.vk_push_long_poll_event(event("после failed 3")); // ts 6
    wait_contents(
        &sandbox,
        &[
            "первое",
            "после failed 2",
            "после failed 1",
            "после failed 3",
        ],
    )
    .await;
    node.wait_saved("6").await;
    assert_eq!(
        server_calls(&sandbox),
        calls + 2,
        "one key at start, one after failed 3"
    );
    node.stop().await;
}
