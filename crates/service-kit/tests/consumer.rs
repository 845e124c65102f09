//! The ordered consumer against the real NATS and Postgres: per-key order under in-place
//! retries, a killed process, two replicas, a hung upstream and a slow handler.
//!
//! A "process" here is a tokio runtime of its own: killing it drops its tasks and closes its
//! sockets, as a SIGKILL would — the Postgres lease goes with its connection and the
//! messages it held stay unacked at JetStream.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::{
    ConversationKind, ConversationRef, Envelope, Event, IdempotencyKey, InboundMessage, Sender,
    Source, Subject,
};
use service_kit::consumer::{ConsumerSpec, HandleError};
use service_kit::{Runtime, RuntimeArgs};
use testkit::{TestEnv, WAIT};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./tests/migrations");

const SCHEMA: &str = "kit";

fn args(env: &TestEnv) -> RuntimeArgs {
    let mut a = RuntimeArgs::for_database(env.database_url.clone());
    a.nats_url = testkit::nats_url();
    a.nats_subject_prefix = env.prefix.clone();
    a
}

async fn runtime(env: &TestEnv) -> Runtime {
    Runtime::connect("kit-test", SCHEMA, &MIGRATOR, &args(env))
        .await
        .expect("runtime connects")
}

/// Message `n` of conversation `conv`.
fn message(conv: &str, n: u32) -> Envelope<Event> {
    Envelope::new(
        Source::Vk,
        time::OffsetDateTime::now_utc(),
        IdempotencyKey::from_parts(&["test", conv, &n.to_string()]),
        Event::MessageReceived(InboundMessage {
            message_id: format!("{conv}-{n}"),
            sender: Sender {
                id: conv.to_owned(),
                display_name: None,
                username: None,
                language: None,
            },
            conversation: ConversationRef {
                id: conv.to_owned(),
                kind: ConversationKind::Private,
                thread_id: None,
            },
            text: Some(n.to_string()),
            attachments: vec![],
            reply_to: None,
            sent_at: time::OffsetDateTime::now_utc(),
            formatting: Vec::new(),
        }),
    )
}

fn spec() -> ConsumerSpec<Event> {
    let mut spec = ConsumerSpec::new(
        "kit-relay",
        Subject::event(Source::Vk, Event::MESSAGE_RECEIVED),
        |env: &Envelope<Event>| env.payload.ordering_key(),
    );
    spec.backoff = vec![Duration::from_millis(20)];
    spec
}

fn parts(env: &Envelope<Event>) -> (String, u32) {
    let Event::MessageReceived(m) = &env.payload else {
        panic!("unexpected event");
    };
    let n = m.text.as_deref().unwrap_or("0").parse().unwrap_or(0);
    (m.conversation.id.clone(), n)
}

/// What the handlers did: each message's effect once (a repeat is recognised by its id, as
/// the services' processed-keys tables do), in the order they happened, with who did it.
/// (conversation, message number, which process, when).
type Effect = (String, u32, &'static str, Instant);

#[derive(Clone, Default)]
struct Effects {
    done: Arc<Mutex<Vec<Effect>>>,
    seen: Arc<Mutex<HashSet<(String, u32)>>>,
    calls: Arc<Mutex<HashMap<(String, u32), u32>>>,
    changed: Arc<Notify>,
}

impl Effects {
    /// Counts a call; returns how many calls this message had, this one included.
    fn call(&self, conv: &str, n: u32) -> u32 {
        let mut calls = self.calls.lock().expect("lock");
        let c = calls.entry((conv.to_owned(), n)).or_default();
        *c += 1;
        *c
    }

    fn effect(&self, conv: &str, n: u32, by: &'static str) {
        if self.seen.lock().expect("lock").insert((conv.to_owned(), n)) {
            self.done
                .lock()
                .expect("lock")
                .push((conv.to_owned(), n, by, Instant::now()));
        }
        self.changed.notify_waiters();
    }

    fn count(&self) -> usize {
        self.done.lock().expect("lock").len()
    }

    fn order_of(&self, conv: &str) -> Vec<u32> {
        self.done
            .lock()
            .expect("lock")
            .iter()
            .filter(|(c, ..)| c == conv)
            .map(|(_, n, ..)| *n)
            .collect()
    }

    fn position(&self, conv: &str, n: u32) -> Option<usize> {
        self.done
            .lock()
            .expect("lock")
            .iter()
            .position(|(c, m, ..)| c == conv && *m == n)
    }

    async fn wait_for(&self, what: &str, check: impl Fn(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let changed = self.changed.notified();
            if check(self) {
                return;
            }
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = tokio::time::sleep_until(deadline) => panic!("timed out waiting for {what}"),
            }
        }
    }
}

async fn publish_all(rt: &Runtime, convs: &[&str], per_conv: u32) {
    // Interleaved, as several customers writing at once.
    for n in 1..=per_conv {
        for c in convs {
            rt.bus.publish(&message(c, n)).await.expect("published");
        }
    }
}

fn in_order(order: &[u32], per_conv: u32) -> bool {
    order == (1..=per_conv).collect::<Vec<_>>()
}

/// A process of its own running one consumer.
struct Process {
    rt: Option<tokio::runtime::Runtime>,
    stop: CancellationToken,
    done: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl Process {
    fn start<F, Fut>(args: RuntimeArgs, spec: ConsumerSpec<Event>, handler: F) -> Self
    where
        F: Fn(Envelope<Event>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), HandleError>> + Send + 'static,
    {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let stop = CancellationToken::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let s = stop.clone();
        rt.spawn(async move {
            let runtime = Runtime::connect("kit-test", SCHEMA, &MIGRATOR, &args)
                .await
                .expect("runtime connects");
            let mut workers = runtime.workers();
            workers.consumer(spec, (), move |(), env| handler(env));
            workers.run(s).await.expect("workers run");
            let _ = tx.send(());
        });
        Self {
            rt: Some(rt),
            stop,
            done: Some(rx),
        }
    }

    /// Like SIGKILL: nothing in hand is finished, acked or released politely.
    fn kill(mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }

    /// Like SIGTERM: stop and wait until the consumer returned.
    async fn stop(mut self) {
        self.stop.cancel();
        if let Some(done) = self.done.take() {
            let _ = tokio::time::timeout(WAIT, done).await;
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_message_holds_back_only_its_own_conversation() {
    let env = TestEnv::new("kit_test").await;
    let rt = runtime(&env).await;
    let fx = Effects::default();
    publish_all(&rt, &["a", "b"], 5).await;
    let mut spec = spec();
    // Two failures of a-2, 300 ms apart each: b's five messages are done long before.
    spec.backoff = vec![Duration::from_millis(300)];
    let f = fx.clone();
    let p = Process::start(args(&env), spec, move |env| {
        let f = f.clone();
        async move {
            let (c, n) = parts(&env);
            let call = f.call(&c, n);
            if c == "a" && n == 2 && call <= 2 {
                return Err(HandleError::retry("Chatwoot answered 500"));
            }
            f.effect(&c, n, "p");
            Ok(())
        }
    });
    fx.wait_for("all ten messages", |f| f.count() == 10).await;
    assert!(in_order(&fx.order_of("a"), 5), "a: {:?}", fx.order_of("a"));
    assert!(in_order(&fx.order_of("b"), 5), "b: {:?}", fx.order_of("b"));
    assert_eq!(fx.calls.lock().expect("lock")[&("a".to_owned(), 2)], 3);
    // Other conversations flowed while a-2 waited for its retry.
    let a2 = fx.position("a", 2).expect("a-2 done");
    let b5 = fx.position("b", 5).expect("b-5 done");
    assert!(b5 < a2, "b-5 at {b5} should come before a-2 at {a2}");
    // a-1 was not held back at all, and a-3 waited for a-2.
    assert!(fx.position("a", 1) < Some(a2));
    assert!(fx.position("a", 3) > Some(a2));
    // Each later message of `a` was called once: nothing jumped the queue and came again.
    assert_eq!(fx.calls.lock().expect("lock")[&("a".to_owned(), 3)], 1);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_last_attempt_the_message_is_dead_lettered_with_its_key_and_the_key_moves_on() {
    let env = TestEnv::new("kit_test").await;
    let rt = runtime(&env).await;
    let fx = Effects::default();
    publish_all(&rt, &["a"], 3).await;
    let mut spec = spec();
    spec.max_attempts = 3;
    spec.backoff = vec![Duration::from_millis(10)];
    let f = fx.clone();
    let p = Process::start(args(&env), spec, move |env| {
        let f = f.clone();
        async move {
            let (c, n) = parts(&env);
            f.call(&c, n);
            if n == 1 {
                return Err(HandleError::retry("VK error 10: internal server error"));
            }
            f.effect(&c, n, "p");
            Ok(())
        }
    });
    fx.wait_for("a-2 and a-3", |f| f.count() == 2).await;
    assert_eq!(fx.order_of("a"), vec![2, 3]);
    assert_eq!(fx.calls.lock().expect("lock")[&("a".to_owned(), 1)], 3);
    let rows = rt.dead_letters.list(10, true).await.expect("dead letters");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].ordering_key.as_deref(), Some("conversation:a"));
    assert_eq!(rows[0].attempts, 3);
    assert!(
        rows[0].reason.contains("gave up after 3 attempts"),
        "{}",
        rows[0].reason
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_mid_batch_is_followed_in_order_by_the_next() {
    let env = TestEnv::new("kit_test").await;
    let rt = runtime(&env).await;
    let fx = Effects::default();
    publish_all(&rt, &["a", "b", "c"], 10).await;
    // First process: a-4 hangs (its upstream never answers), so a-5… queue behind it; b and c
    // flow. Then the process is killed.
    let f = fx.clone();
    let first = Process::start(args(&env), spec(), move |env| {
        let f = f.clone();
        async move {
            let (c, n) = parts(&env);
            f.call(&c, n);
            if c == "a" && n == 4 {
                std::future::pending::<()>().await;
            }
            f.effect(&c, n, "first");
            Ok(())
        }
    });
    fx.wait_for("b and c done, a up to 3", |f| {
        f.order_of("b").len() == 10 && f.order_of("c").len() == 10 && f.order_of("a").len() == 3
    })
    .await;
    first.kill();
    let f = fx.clone();
    let second = Process::start(args(&env), spec(), move |env| {
        let f = f.clone();
        async move {
            let (c, n) = parts(&env);
            f.call(&c, n);
            f.effect(&c, n, "second");
            Ok(())
        }
    });
    fx.wait_for("all thirty", |f| f.count() == 30).await;
    for c in ["a", "b", "c"] {
        assert!(in_order(&fx.order_of(c), 10), "{c}: {:?}", fx.order_of(c));
    }
    // The second process did a-4 onwards (well before the 30 s ack wait could have let
    // JetStream hand them out again).
    let by_second: Vec<u32> = fx
        .done
        .lock()
        .expect("lock")
        .iter()
        .filter(|(c, _, by, _)| c == "a" && *by == "second")
        .map(|(_, n, ..)| *n)
        .collect();
    assert_eq!(by_second, (4..=10).collect::<Vec<_>>());
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_keep_each_conversation_in_order_when_the_holder_dies() {
    let env = TestEnv::new("kit_test").await;
    let rt = runtime(&env).await;
    let fx = Effects::default();
    let handler = |name: &'static str, hang_on: Option<(&'static str, u32)>, fx: Effects| {
        move |env: Envelope<Event>| {
            let f = fx.clone();
            async move {
                let (c, n) = parts(&env);
                f.call(&c, n);
                if hang_on == Some((c.as_str(), n)) {
                    std::future::pending::<()>().await;
                }
                f.effect(&c, n, name);
                Ok(())
            }
        }
    };
    let one = Process::start(
        args(&env),
        spec(),
        handler("one", Some(("b", 6)), fx.clone()),
    );
    publish_all(&rt, &["a", "b", "c", "d"], 1).await;
    fx.wait_for("replica one is the holder", |f| f.count() == 4)
        .await;
    let two = Process::start(args(&env), spec(), handler("two", None, fx.clone()));
    publish_all(&rt, &["a", "b", "c", "d"], 12).await;
    fx.wait_for("b held at 6 by replica one", |f| {
        f.order_of("b").len() == 5 && f.order_of("a").len() == 12
    })
    .await;
    // While one holds the consumer, two does nothing.
    assert!(
        fx.done
            .lock()
            .expect("lock")
            .iter()
            .all(|(_, _, by, _)| *by == "one"),
        "replica two handled messages while one held the consumer"
    );
    let killed_at = Instant::now();
    one.kill();
    fx.wait_for("every message", |f| f.count() == 4 * 12).await;
    for c in ["a", "b", "c", "d"] {
        assert!(in_order(&fx.order_of(c), 12), "{c}: {:?}", fx.order_of(c));
    }
    let done = fx.done.lock().expect("lock").clone();
    assert!(
        done.iter()
            .filter(|(_, _, by, _)| *by == "two")
            .all(|(.., at)| *at >= killed_at)
    );
    assert_eq!(
        done.iter()
            .filter(|(c, _, by, _)| c == "b" && *by == "two")
            .map(|(_, n, ..)| *n)
            .collect::<Vec<_>>(),
        (6..=12).collect::<Vec<_>>()
    );
    two.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_whose_upstream_hangs_does_not_stop_the_others() {
    let env = TestEnv::new("kit_test").await;
    let rt = runtime(&env).await;
    let fx = Effects::default();
    let release = Arc::new(Notify::new());
    let convs = [
        "slow", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "k10",
    ];
    publish_all(&rt, &convs, 5).await;
    let (f, r) = (fx.clone(), release.clone());
    let p = Process::start(args(&env), spec(), move |env| {
        let (f, r) = (f.clone(), r.clone());
        async move {
            let (c, n) = parts(&env);
            f.call(&c, n);
            if c == "slow" && n == 1 {
                // The upstream hangs for 10 s (or until the test has seen enough).
                let _ = tokio::time::timeout(Duration::from_secs(10), r.notified()).await;
            }
            f.effect(&c, n, "p");
            Ok(())
        }
    });
    fx.wait_for("the fifty messages of the other conversations", |f| {
        f.count() == 50
    })
    .await;
    assert!(fx.order_of("slow").is_empty(), "slow-1 is still hanging");
    for c in &convs[1..] {
        assert!(in_order(&fx.order_of(c), 5), "{c}: {:?}", fx.order_of(c));
    }
    release.notify_waiters();
    fx.wait_for("slow done", |f| f.count() == 55).await;
    assert!(in_order(&fx.order_of("slow"), 5));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_slower_than_ack_wait_is_not_redelivered_while_it_runs() {
    let env = TestEnv::new("kit_test").await;
    let rt = runtime(&env).await;
    let fx = Effects::default();
    publish_all(&rt, &["a", "b"], 2).await;
    let mut spec = spec();
    spec.ack_wait = Duration::from_secs(1);
    let f = fx.clone();
    let p = Process::start(args(&env), spec, move |env| {
        let f = f.clone();
        async move {
            let (c, n) = parts(&env);
            f.call(&c, n);
            if c == "a" && n == 1 {
                // An upstream that takes three and a half ack waits to answer.
                tokio::time::sleep(Duration::from_millis(3500)).await;
            }
            f.effect(&c, n, "p");
            Ok(())
        }
    });
    fx.wait_for("all four", |f| f.count() == 4).await;
    let calls = fx.calls.lock().expect("lock").clone();
    assert!(
        calls.values().all(|&c| c == 1),
        "a message was handled twice: {calls:?}"
    );
    assert!(in_order(&fx.order_of("a"), 2));
    let stream = rt
        .bus
        .jetstream()
        .get_stream(rt.bus.events_stream())
        .await
        .expect("stream");
    let mut consumer = stream
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>("kit-relay")
        .await
        .expect("consumer");
    let info = consumer.info().await.expect("info");
    assert_eq!(info.num_redelivered, 0, "JetStream redelivered: {info:?}");
    p.stop().await;
}

async fn stream_messages(rt: &Runtime) -> u64 {
    let mut stream = rt
        .bus
        .jetstream()
        .get_stream(rt.bus.events_stream())
        .await
        .expect("stream");
    stream.info().await.expect("info").state.messages
}

async fn one_dead_letter(rt: &Runtime) -> i64 {
    let env = message("a", 1);
    rt.dead_letters
        .store(service_kit::dead_letter::NewDeadLetter {
            consumer: Some("kit-relay"),
            subject: &rt.bus.wire_subject(&env.subject()),
            msg_id: env.idempotency_key.as_str(),
            ordering_key: Some("conversation:a"),
            body: &env.to_bytes(),
            reason: "gave up after 8 attempts: Chatwoot answered 500",
            attempts: 8,
        })
        .await
        .expect("stored")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_replayed_once_unless_forced() {
    let env = TestEnv::new("kit_test").await;
    let rt = runtime(&env).await;
    let id = one_dead_letter(&rt).await;
    assert_eq!(stream_messages(&rt).await, 0);
    rt.dead_letters
        .replay(&rt.bus, id)
        .await
        .expect("first replay");
    assert_eq!(stream_messages(&rt).await, 1);
    let again = rt.dead_letters.replay(&rt.bus, id).await.unwrap_err();
    assert!(again.to_string().contains("replayed already"), "{again:#}");
    assert_eq!(
        stream_messages(&rt).await,
        1,
        "a second replay published again"
    );
    rt.dead_letters
        .replay_with(&rt.bus, id, true)
        .await
        .expect("forced replay");
    assert_eq!(
        stream_messages(&rt).await,
        2,
        "a forced replay is a new message"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replays_at_once_publish_once_and_a_repeat_after_a_lost_answer_is_deduplicated() {
    let env = TestEnv::new("kit_test").await;
    let rt = runtime(&env).await;
    let id = one_dead_letter(&rt).await;
    let (a, b) = tokio::join!(
        rt.dead_letters.replay(&rt.bus, id),
        rt.dead_letters.replay(&rt.bus, id)
    );
    assert!(
        a.is_ok() != b.is_ok(),
        "exactly one replay succeeds: {a:?} {b:?}"
    );
    assert_eq!(stream_messages(&rt).await, 1);
    // The mark was lost (as if the commit failed after the publish): the operator replays
    // again, and JetStream recognises the same message.
    sqlx::query("UPDATE kit.dead_letters SET replayed_at = NULL WHERE id = $1")
        .bind(id)
        .execute(&rt.pool)
        .await
        .expect("reset mark");
    rt.dead_letters.replay(&rt.bus, id).await.expect("replay");
    assert_eq!(stream_messages(&rt).await, 1, "the repeat was stored twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_message_dead_lettered_twice_by_one_consumer_is_one_row() {
    let env = TestEnv::new("kit_test").await;
    let rt = runtime(&env).await;
    let first = one_dead_letter(&rt).await;
    let second = one_dead_letter(&rt).await;
    assert_eq!(first, second);
    assert_eq!(
        rt.dead_letters.list(10, false).await.expect("list").len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_dead_letters_its_message_and_the_key_moves_on() {
    let env = TestEnv::new("kit_test").await;
    let rt = runtime(&env).await;
    let fx = Effects::default();
    publish_all(&rt, &["a"], 3).await;
    let f = fx.clone();
    let p = Process::start(args(&env), spec(), move |env| {
        let f = f.clone();
        async move {
            let (c, n) = parts(&env);
            f.call(&c, n);
            if n == 1 {
                panic!("index out of bounds in a handler");
            }
            f.effect(&c, n, "p");
            Ok(())
        }
    });
    fx.wait_for("a-2 and a-3 after the panic", |f| f.count() == 2)
        .await;
    assert_eq!(fx.order_of("a"), vec![2, 3]);
    let rows = rt.dead_letters.list(10, true).await.expect("dead letters");
    assert_eq!(rows.len(), 1);
    assert!(
        rows[0].reason.contains("handler panicked"),
        "{}",
        rows[0].reason
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_holder_keeps_the_consumer_until_its_running_attempt_finished() {
    let env = TestEnv::new("kit_test").await;
    let rt = runtime(&env).await;
    let fx = Effects::default();
    let release = Arc::new(Notify::new());
    let handler = |name: &'static str, fx: Effects, release: Arc<Notify>| {
        move |env: Envelope<Event>| {
            let (f, r) = (fx.clone(), release.clone());
            async move {
                let (c, n) = parts(&env);
                f.call(&c, n);
                if name == "one" && c == "a" && n == 2 {
                    // A slow upstream: answers when the test says so (bounded).
                    let _ = tokio::time::timeout(WAIT, r.notified()).await;
                }
                f.effect(&c, n, name);
                Ok(())
            }
        }
    };
    let one = Process::start(
        args(&env),
        spec(),
        handler("one", fx.clone(), release.clone()),
    );
    publish_all(&rt, &["a"], 1).await;
    fx.wait_for("replica one holds the consumer", |f| f.count() == 1)
        .await;
    let two = Process::start(
        args(&env),
        spec(),
        handler("two", fx.clone(), release.clone()),
    );
    publish_all(&rt, &["a"], 4).await;
    fx.wait_for("a-2 running at replica one", |f| {
        f.calls
            .lock()
            .expect("lock")
            .contains_key(&("a".to_owned(), 2))
    })
    .await;
    // SIGTERM to the holder while a-2 runs: it drains; the stand-by must wait for it. The
    // window below is how long a wrong takeover would need (lease check 1 s), not a wait for
    // an effect.
    let stopping = tokio::spawn(one.stop());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        fx.calls.lock().expect("lock")[&("a".to_owned(), 2)],
        1,
        "the stand-by took a-2 over while it still ran at the stopping holder"
    );
    release.notify_waiters();
    stopping.await.expect("stopped");
    fx.wait_for("a-3 and a-4 at replica two", |f| f.count() == 4)
        .await;
    assert!(in_order(&fx.order_of("a"), 4), "{:?}", fx.order_of("a"));
    assert_eq!(fx.calls.lock().expect("lock")[&("a".to_owned(), 2)], 1);
    two.stop().await;
}
