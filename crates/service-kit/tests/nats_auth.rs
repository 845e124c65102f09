//! `deploy/nats/auth.conf` on a real nats-server: every service does its work as its own NATS
//! user, and what a user must not do is refused (issue 9, item 3).
//!
//! Each test starts a nats-server of its own on a free loopback port with its own JetStream
//! store, from a main config that includes the repository's `auth.conf` itself (a symlink), the
//! passwords given in the server's environment as compose gives them. The server is
//! `NATS_SERVER_BIN`, else `nats-server` on `PATH`, else `/usr/sbin/nats-server` (Debian's 2.9;
//! compose runs 2.10).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, pull};
use domain::{
    Command as BusCommand, ConversationKind, ConversationRef, Envelope, Event, IdempotencyKey,
    InboundMessage, MessageOrigin, OutboundMessage, Payload, Sender, Source, Subject,
};
use futures::StreamExt;
use service_kit::bus::Bus;
use service_kit::consumer::ConsumerSpec;
use service_kit::{Runtime, RuntimeArgs};
use testkit::{TestEnv, WAIT};
use tokio_util::sync::CancellationToken;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./tests/migrations");

/// How long a refused request may wait for an answer that never comes.
const REFUSED_WAIT: Duration = Duration::from_secs(1);

// ------------------------------------------------------------------ who is who

/// One NATS user of `auth.conf`.
struct User {
    /// The NATS user.
    user: &'static str,
    /// The variable its password comes from.
    password_var: &'static str,
    /// The service's name (`SERVICE` in its lib.rs): its inbox is `_INBOX.<service>.>`.
    service: &'static str,
    /// Its directory under services/ (none yet for the reserved users).
    dir: Option<&'static str>,
    /// Its own events source.
    source: Source,
}

const VK: User = User {
    user: "vk",
    password_var: "VK_NATS_PASSWORD",
    service: "vk-connector",
    dir: Some("vk-connector"),
    source: Source::Vk,
};
const AMOCRM: User = User {
    user: "amocrm",
    password_var: "AMOCRM_NATS_PASSWORD",
    service: "amocrm-sync",
    dir: Some("amocrm-sync"),
    source: Source::Amocrm,
};
const MESSENGER: User = User {
    user: "messenger",
    password_var: "MESSENGER_NATS_PASSWORD",
    service: "messenger-api",
    dir: Some("messenger-api"),
    source: Source::Messenger,
};
const TELEGRAM: User = User {
    user: "telegram",
    password_var: "TELEGRAM_NATS_PASSWORD",
    service: "telegram-bot",
    dir: Some("telegram-bot"),
    source: Source::Telegram,
};
const OKDESK: User = User {
    user: "okdesk",
    password_var: "OKDESK_NATS_PASSWORD",
    service: "okdesk-bridge",
    dir: Some("okdesk-bridge"),
    source: Source::Okdesk,
};
const USERS: [&User; 5] = [&VK, &AMOCRM, &MESSENGER, &TELEGRAM, &OKDESK];

/// The services' durable consumers (`pub const DURABLE` in services/*/src/consumers/): name,
/// stream, filter and the user that owns it; `auth_conf_covers_every_durable_and_inbox` keeps
/// this list true.
const DURABLES: [(&str, &str, &str, &User); 10] = [
    (
        "vk-connector-relay",
        "EVENTS",
        "events.vk.message.received",
        &VK,
    ),
    (
        "vk-connector-sender",
        "COMMANDS",
        "cmd.vk.message.send",
        &VK,
    ),
    (
        "vk-connector-reingest",
        "COMMANDS",
        "cmd.vk.inbound.reingest",
        &VK,
    ),
    ("amocrm-sync-store", "EVENTS", "events.amocrm.>", &AMOCRM),
    (
        "telegram-relay-to-topic",
        "EVENTS",
        "events.telegram.message.*",
        &TELEGRAM,
    ),
    (
        "telegram-relay-to-customer",
        "EVENTS",
        "events.telegram.topic_message.*",
        &TELEGRAM,
    ),
    (
        "telegram-helpdesk-notify",
        "EVENTS",
        "events.okdesk.>",
        &TELEGRAM,
    ),
    (
        "okdesk-register",
        "COMMANDS",
        "cmd.okdesk.contact.register",
        &OKDESK,
    ),
    (
        "okdesk-issues",
        "COMMANDS",
        "cmd.okdesk.issue.create",
        &OKDESK,
    ),
    (
        "okdesk-comments",
        "COMMANDS",
        "cmd.okdesk.comment.create",
        &OKDESK,
    ),
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn auth_conf_path() -> PathBuf {
    repo_root().join("deploy/nats/auth.conf")
}

// ------------------------------------------------------------------ the server

/// A nats-server with `auth.conf`, killed and its store removed on drop.
struct Server {
    child: Child,
    dir: PathBuf,
    port: u16,
}

fn nats_server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nats-server"))
            .find(|p| p.is_file())
    });
    let bin = on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/nats-server"));
    assert!(
        bin.is_file(),
        "no nats-server (set NATS_SERVER_BIN; scripts/dev-deps.sh installs one)"
    );
    bin
}

fn password_of(user: &User) -> String {
    // The same for every server of this process: each server is private to its test anyway.
    static SEED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let seed = SEED.get_or_init(|| uuid::Uuid::new_v4().simple().to_string());
    // Starts with a letter: nats-server reads the value as a config token (see auth.conf).
    format!("p{}{}", user.user, &seed[..24])
}

impl Server {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("nats-auth-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("js")).expect("temp dir");
        std::os::unix::fs::symlink(auth_conf_path(), dir.join("auth.conf")).expect("symlink");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let conf = format!(
            "listen: \"127.0.0.1:{port}\"\njetstream {{ store_dir: \"{}\" }}\ninclude auth.conf\n",
            dir.join("js").display()
        );
        std::fs::write(dir.join("main.conf"), conf).expect("main.conf");
        let log = std::fs::File::create(dir.join("server.log")).expect("log file");
        let mut cmd = Command::new(nats_server_bin());
        cmd.arg("-c")
            .arg(dir.join("main.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        for u in USERS {
            cmd.env(u.password_var, password_of(u));
        }
        let child = cmd.spawn().expect("nats-server starts");
        Self { child, dir, port }
    }

    /// Waits until the server accepts connections (bounded); panics with its log when it
    /// exited or did not come up.
    async fn ready(mut self) -> Self {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("nats-server exited ({status}):\n{}", self.log());
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return self;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nats-server did not come up:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// The service's work needed nothing that its user is denied: the server logged no
    /// `Publish Violation` / `Subscription Violation` (a denied JetStream API call would
    /// otherwise only show as a timeout that the consumer retries).
    fn assert_no_violations(&self) {
        let log = self.log();
        let violations: Vec<&str> = log.lines().filter(|l| l.contains("Violation")).collect();
        assert!(violations.is_empty(), "denied:\n{}", violations.join("\n"));
    }

    /// `NATS_URL` of a service: `nats://<user>:<password>@127.0.0.1:<port>`.
    fn url(&self, user: &User) -> String {
        format!(
            "nats://{}:{}@127.0.0.1:{}",
            user.user,
            password_of(user),
            self.port
        )
    }

    fn bare_url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn server() -> Server {
    Server::start().ready().await
}

/// The service's runtime as its own user (streams ensured, schema `kit` migrated).
async fn runtime(server: &Server, env: &TestEnv, user: &User) -> Runtime {
    let mut args = RuntimeArgs::for_database(env.database_url.clone());
    args.nats_url = server.url(user);
    Runtime::connect(user.service, "kit", &MIGRATOR, &args)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{} connects as NATS user {}: {e:#}",
                user.service, user.user
            )
        })
}

// ------------------------------------------------------------------ envelopes

fn inbound(source: Source, n: u32) -> Envelope<Event> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let message = InboundMessage {
        message_id: id.clone(),
        sender: Sender {
            id: "u1".into(),
            display_name: None,
            username: None,
            language: None,
        },
        conversation: ConversationRef {
            id: format!("c{n}"),
            kind: ConversationKind::Private,
            thread_id: None,
        },
        text: Some(n.to_string()),
        attachments: vec![],
        reply_to: None,
        sent_at: time::OffsetDateTime::now_utc(),
        formatting: Vec::new(),
    };
    let payload = if source == Source::Messenger {
        Event::MessagePosted(message)
    } else {
        Event::MessageReceived(message)
    };
    Envelope::new(
        source,
        time::OffsetDateTime::now_utc(),
        IdempotencyKey::from_parts(&["auth-test", &id]),
        payload,
    )
}

fn send_command() -> Envelope<BusCommand> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    Envelope::new(
        Source::Chatwoot,
        time::OffsetDateTime::now_utc(),
        IdempotencyKey::from_parts(&["auth-test", &id]),
        BusCommand::VkMessageSend(OutboundMessage {
            conversation: ConversationRef {
                id: "2000000001".into(),
                kind: ConversationKind::Private,
                thread_id: None,
            },
            text: Some("Здравствуйте".into()),
            attachments: vec![],
            origin: MessageOrigin {
                system: "chatwoot".into(),
                account_id: 1,
                conversation_id: 7,
                message_id: 70,
            },
            author: None,
            after_gap: false,
        }),
    )
}

// ------------------------------------------------------------------ a service's real work

/// What consumer.rs does with `durable` on `filter`, as the service's user: `envelope` is
/// published to `subject` by the service itself (as `Bus::publish`, or a dead-letter replay,
/// does), a previous holder took it and died without acking it, so this holder rewinds
/// (delete + create from the ack floor), handles it and acks it.
async fn consume_as<P>(
    rt: &Runtime,
    durable: &str,
    filter: Subject,
    subject: &str,
    envelope: Envelope<P>,
) where
    P: Payload + Send + Sync + 'static,
{
    consume_published_by(&rt.bus, rt, durable, filter, subject, envelope).await;
}

/// [`consume_as`], with `envelope` published by `publisher`, another service's user (the
/// commands telegram-bot sends to okdesk-bridge, the events okdesk-bridge sends back).
async fn consume_published_by<P>(
    publisher: &Bus,
    rt: &Runtime,
    durable: &str,
    filter: Subject,
    subject: &str,
    envelope: Envelope<P>,
) where
    P: Payload + Send + Sync + 'static,
{
    let (_, stream_name, listed_filter, _) = DURABLES
        .into_iter()
        .find(|(d, ..)| *d == durable)
        .expect("a durable of DURABLES");
    assert_eq!(filter.as_str(), listed_filter, "{durable}: its filter");
    let published = publisher
        .publish_raw(
            subject,
            &envelope.idempotency_key.to_string(),
            None,
            envelope.to_bytes(),
        )
        .await
        .unwrap_or_else(|e| panic!("{durable}: {subject} published as its sender: {e}"));
    let spec = ConsumerSpec::new(durable, filter.clone(), |_: &Envelope<P>| None);
    assert_eq!(spec.stream_name(&rt.bus), stream_name);
    let stream = rt
        .bus
        .jetstream()
        .get_stream(spec.stream_name(&rt.bus))
        .await
        .expect("stream info");

    // The previous holder: creates the consumer, pulls the message, never acks it.
    let previous = stream
        .get_or_create_consumer(
            durable,
            pull::Config {
                durable_name: Some(durable.to_owned()),
                filter_subject: filter.as_str().to_owned(),
                ack_policy: AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{durable} created by its own user: {e}"));
    let mut batch = previous
        .fetch()
        .max_messages(1)
        .expires(WAIT)
        .messages()
        .await
        .expect("pull");
    let taken = tokio::time::timeout(WAIT, batch.next())
        .await
        .expect("pulled in time")
        .expect("a message")
        .expect("pulled");
    assert_eq!(
        taken.info().expect("JetStream message").stream_sequence,
        published.sequence
    );
    drop(batch);

    // This holder: consumer::run rewinds, handles, acks.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut workers = rt.workers();
    workers.consumer(spec, tx, |tx, env: Envelope<P>| async move {
        let _ = tx.send(env.id);
        Ok(())
    });
    let stop = CancellationToken::new();
    let running = tokio::spawn(workers.run(stop.clone()));
    let handled = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("{durable}: the message was not handled"))
        .expect("handled");
    assert_eq!(handled, envelope.id);
    testkit::wait_for(&format!("{durable}: the ack"), || {
        let stream = stream.clone();
        async move {
            let Ok(mut c) = stream.get_consumer::<pull::Config>(durable).await else {
                return false;
            };
            c.info().await.is_ok_and(|i| {
                i.num_ack_pending == 0 && i.ack_floor.stream_sequence >= published.sequence
            })
        }
    })
    .await;
    stop.cancel();
    let _ = tokio::time::timeout(WAIT, running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_user_creates_and_updates_the_streams() {
    for user in USERS {
        // A fresh server each: the first connect creates both streams, the second updates them.
        let server = server().await;
        for _ in 0..2 {
            Bus::connect(&server.url(user), "", user.service)
                .await
                .unwrap_or_else(|e| panic!("{} ensures the streams: {e:#}", user.user));
        }
        let bus = Bus::connect(&server.url(user), "", user.service)
            .await
            .expect("connects");
        bus.publish(&inbound(user.source, 1))
            .await
            .unwrap_or_else(|e| panic!("{} publishes its own event: {e}", user.user));
        server.assert_no_violations();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vk_connector_publishes_and_consumes_as_vk() {
    let server = server().await;
    let env = TestEnv::new("kit_auth").await;
    let rt = runtime(&server, &env, &VK).await;
    // The callback / Long Poll: its events; the Chatwoot webhook and reconcile: the send
    // command; `dlq replay` of an unreadable inbound body: the reingest command.
    let event = inbound(Source::Vk, 1);
    let subject = event.subject().to_string();
    consume_as(
        &rt,
        "vk-connector-relay",
        Subject::event(Source::Vk, Event::MESSAGE_RECEIVED),
        &subject,
        event,
    )
    .await;
    let command = send_command();
    let subject = command.subject().to_string();
    consume_as(
        &rt,
        "vk-connector-sender",
        Subject::command(BusCommand::VK_MESSAGE_SEND),
        &subject,
        command,
    )
    .await;
    consume_as(
        &rt,
        "vk-connector-reingest",
        Subject::command("vk.inbound.reingest"),
        "cmd.vk.inbound.reingest",
        send_command(),
    )
    .await;
    server.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amocrm_sync_publishes_and_consumes_as_amocrm() {
    let server = server().await;
    let env = TestEnv::new("kit_auth").await;
    let rt = runtime(&server, &env, &AMOCRM).await;
    let event = inbound(Source::Amocrm, 1);
    let subject = event.subject().to_string();
    consume_as(
        &rt,
        "amocrm-sync-store",
        Subject::event(Source::Amocrm, ">"),
        &subject,
        event,
    )
    .await;
    server.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_bot_publishes_and_consumes_as_telegram() {
    let server = server().await;
    let env = TestEnv::new("kit_auth").await;
    let rt = runtime(&server, &env, &TELEGRAM).await;
    // getUpdates / the webhook: a customer's message (private chat) and an operator's reply
    // (a topic of the support group), each relayed by its own consumer.
    for (durable, verb, subject) in [
        (
            "telegram-relay-to-topic",
            "message.*",
            "events.telegram.message.received",
        ),
        (
            "telegram-relay-to-topic",
            "message.*",
            "events.telegram.message.edited",
        ),
        (
            "telegram-relay-to-customer",
            "topic_message.*",
            "events.telegram.topic_message.received",
        ),
        (
            "telegram-relay-to-customer",
            "topic_message.*",
            "events.telegram.topic_message.edited",
        ),
    ] {
        consume_as(
            &rt,
            durable,
            Subject::event(Source::Telegram, verb),
            subject,
            inbound(Source::Telegram, 1),
        )
        .await;
    }
    server.assert_no_violations();

    // Nothing but its own (the helpdesk's okdesk subjects: below): no other source's events,
    // no other service's commands, no one else's inbox.
    let mut tg = probe(&server, &TELEGRAM).await;
    tg.refused_publish("events.vk.message.received").await;
    tg.refused_publish("cmd.vk.message.send").await;
    tg.refused_publish("fanout.messenger.chat.42").await;
    tg.refused_subscribe("_INBOX.vk-connector.>").await;
    tg.refused_subscribe("events.telegram.>").await;
    // Its own durable, but reading more than its filter.
    tg.refused_publish("$JS.API.CONSUMER.CREATE.EVENTS.telegram-relay-to-topic.events.>")
        .await;
    tg.refused_publish(
        "$JS.API.CONSUMER.CREATE.EVENTS.telegram-relay-to-customer.events.telegram.>",
    )
    .await;
}

/// An answer okdesk-bridge's responders give in the tests below.
fn answered(request: serde_json::Value) -> serde_json::Value {
    serde_json::json!({ "ok": request })
}

/// `service_kit::rpc::request` as `bus`'s user, asked again until answered (bounded by WAIT):
/// "no responders" until the responder has subscribed, and on a loaded machine a subscription
/// can reach the server's routing a moment after its flush.
async fn request_answered(
    bus: &Bus,
    subject: &Subject,
    request: &serde_json::Value,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match service_kit::rpc::request::<_, serde_json::Value>(
            bus,
            subject,
            request,
            Duration::from_secs(1),
        )
        .await
        {
            Ok(answer) => return answer,
            Err(
                service_kit::rpc::RpcError::NoResponders(_)
                | service_kit::rpc::RpcError::Timeout(_),
            ) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{subject} answered: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okdesk_bridge_consumes_publishes_and_answers_as_okdesk() {
    let server = server().await;
    let env = TestEnv::new("kit_auth").await;
    let rt = runtime(&server, &env, &OKDESK).await;
    let telegram = Bus::connect(&server.url(&TELEGRAM), "", TELEGRAM.service)
        .await
        .expect("telegram connects");

    // The three commands, sent by telegram-bot, each handled by its own consumer ...
    for (durable, command) in [
        ("okdesk-register", BusCommand::OKDESK_CONTACT_REGISTER),
        ("okdesk-issues", BusCommand::OKDESK_ISSUE_CREATE),
        ("okdesk-comments", BusCommand::OKDESK_COMMENT_CREATE),
    ] {
        let filter = Subject::command(command);
        let subject = filter.as_str().to_owned();
        consume_published_by(&telegram, &rt, durable, filter, &subject, send_command()).await;
    }
    // ... and once more as `okdesk-bridge dlq replay` republishes a dead letter: as okdesk.
    consume_as(
        &rt,
        "okdesk-issues",
        Subject::command(BusCommand::OKDESK_ISSUE_CREATE),
        "cmd.okdesk.issue.create",
        send_command(),
    )
    .await;
    // Its events (webhook, poll, registrations).
    for verb in [
        "contact.registered",
        "issue.created",
        "issue.status_changed",
        "comment.created",
    ] {
        rt.bus
            .publish_raw(
                &format!("events.okdesk.{verb}"),
                &uuid::Uuid::new_v4().to_string(),
                None,
                inbound(Source::Okdesk, 1).to_bytes(),
            )
            .await
            .unwrap_or_else(|e| panic!("events.okdesk.{verb} published by okdesk: {e}"));
    }

    // The look-ups: telegram-bot asks, okdesk-bridge answers into telegram-bot's inbox.
    let stop = CancellationToken::new();
    let mut responders = Vec::new();
    for noun_verb in ["company.find_by_inn", "issue.list", "issue.get"] {
        responders.push(tokio::spawn(service_kit::rpc::serve(
            rt.bus.clone(),
            Subject::rpc(Source::Okdesk, noun_verb),
            stop.clone(),
            |reason| serde_json::json!({ "invalid": reason }),
            |request: serde_json::Value| async move { answered(request) },
        )));
    }
    for noun_verb in ["company.find_by_inn", "issue.list", "issue.get"] {
        let request = serde_json::json!({ "ask": noun_verb });
        let answer = request_answered(
            &telegram,
            &Subject::rpc(Source::Okdesk, noun_verb),
            &request,
        )
        .await;
        assert_eq!(answer, answered(request), "rpc.okdesk.{noun_verb}");
    }
    stop.cancel();
    for r in responders {
        let _ = tokio::time::timeout(WAIT, r).await;
    }
    server.assert_no_violations();

    // A reply goes only to the inbox of a request it received, and once: no unsolicited
    // message into telegram-bot's inbox, no second answer.
    let mut okdesk = probe(&server, &OKDESK).await;
    let mut requests = okdesk
        .client
        .subscribe("rpc.okdesk.issue.get")
        .await
        .expect("subscribed");
    okdesk.client.flush().await.expect("flushed");
    // telegram-bot's side by hand, asked again every 250 ms (bounded by WAIT) until it
    // arrives, each time with a reply subject of its own in its inbox.
    let inbox = format!("_INBOX.telegram-bot.probe{}", uuid::Uuid::new_v4().simple());
    let mut answers = telegram
        .client()
        .subscribe(format!("{inbox}.*"))
        .await
        .expect("subscribed");
    telegram.client().flush().await.expect("flushed");
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut n = 0;
    let request = loop {
        n += 1;
        telegram
            .client()
            .publish_with_reply("rpc.okdesk.issue.get", format!("{inbox}.{n}"), "{}".into())
            .await
            .expect("sent");
        telegram.client().flush().await.expect("flushed");
        match tokio::time::timeout(Duration::from_millis(250), requests.next()).await {
            Ok(m) => break m.expect("a message"),
            Err(_) => assert!(
                tokio::time::Instant::now() < deadline,
                "the request did not reach okdesk within {WAIT:?}"
            ),
        }
    };
    let reply = request.reply.clone().expect("a reply subject");
    assert!(reply.as_str().starts_with(&inbox), "{reply}");
    okdesk
        .client
        .publish(reply.clone(), "first".into())
        .await
        .expect("sent");
    okdesk.client.flush().await.expect("flushed");
    let first = tokio::time::timeout(WAIT, answers.next())
        .await
        .expect("answered in time")
        .expect("the answer");
    assert_eq!(first.subject, reply);
    assert_eq!(first.payload.as_ref(), b"first");
    okdesk.refused_publish(reply.as_str()).await;
    okdesk.refused_publish("_INBOX.telegram-bot.forged").await;

    // Nothing but its own.
    okdesk
        .refused_publish("events.telegram.message.received")
        .await;
    okdesk.refused_publish("events.vk.message.received").await;
    okdesk.refused_publish("cmd.vk.message.send").await;
    okdesk.refused_publish("fanout.messenger.chat.42").await;
    okdesk.refused_publish("rpc.okdesk.issue.list").await;
    okdesk.refused_subscribe("_INBOX.telegram-bot.>").await;
    okdesk.refused_subscribe("_INBOX.>").await;
    okdesk.refused_subscribe("rpc.>").await;
    okdesk.refused_subscribe("events.okdesk.>").await;
    okdesk.refused_subscribe("cmd.okdesk.>").await;
    // Its own durable, but reading more than its filter.
    okdesk
        .refused_publish("$JS.API.CONSUMER.CREATE.COMMANDS.okdesk-issues.cmd.okdesk.>")
        .await;
    okdesk
        .refused_publish("$JS.API.CONSUMER.CREATE.COMMANDS.okdesk-register.cmd.>")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_helpdesk_reaches_okdesk_only_through_its_subjects() {
    let server = server().await;
    let env = TestEnv::new("kit_auth").await;
    let rt = runtime(&server, &env, &TELEGRAM).await;
    let okdesk = Bus::connect(&server.url(&OKDESK), "", OKDESK.service)
        .await
        .expect("okdesk connects");

    // okdesk-bridge's events reach the people through telegram-helpdesk-notify.
    for verb in [
        "contact.registered",
        "issue.created",
        "issue.status_changed",
        "comment.created",
    ] {
        consume_published_by(
            &okdesk,
            &rt,
            "telegram-helpdesk-notify",
            Subject::event(Source::Okdesk, ">"),
            &format!("events.okdesk.{verb}"),
            inbound(Source::Okdesk, 1),
        )
        .await;
    }
    // The three commands (consumed by okdesk-bridge: okdesk_bridge_consumes_…).
    let commands_before = stored(&rt.bus, "COMMANDS").await;
    for command in [
        BusCommand::OKDESK_CONTACT_REGISTER,
        BusCommand::OKDESK_ISSUE_CREATE,
        BusCommand::OKDESK_COMMENT_CREATE,
    ] {
        rt.bus
            .publish_raw(
                &format!("cmd.{command}"),
                &uuid::Uuid::new_v4().to_string(),
                None,
                send_command().to_bytes(),
            )
            .await
            .unwrap_or_else(|e| panic!("cmd.{command} published by telegram: {e}"));
    }
    assert_eq!(stored(&rt.bus, "COMMANDS").await, commands_before + 3);
    // A look-up: the request out, okdesk-bridge's answer back into its own inbox.
    let stop = CancellationToken::new();
    let responder = tokio::spawn(service_kit::rpc::serve(
        okdesk.clone(),
        Subject::rpc(Source::Okdesk, "issue.list"),
        stop.clone(),
        |reason| serde_json::json!({ "invalid": reason }),
        |request: serde_json::Value| async move { answered(request) },
    ));
    let request = serde_json::json!({ "contact_id": 7 });
    let answer = request_answered(
        &rt.bus,
        &Subject::rpc(Source::Okdesk, "issue.list"),
        &request,
    )
    .await;
    assert_eq!(answer, answered(request));
    stop.cancel();
    let _ = tokio::time::timeout(WAIT, responder).await;
    server.assert_no_violations();

    // No forged Okdesk events, no other okdesk command, no answering in okdesk-bridge's
    // place, no reading its inbox.
    let mut tg = probe(&server, &TELEGRAM).await;
    let events_before = stored(&rt.bus, "EVENTS").await;
    tg.refused_publish("events.okdesk.issue.status_changed")
        .await;
    tg.refused_publish("events.okdesk.comment.created").await;
    tg.refused_publish("cmd.okdesk.issue.status.change").await;
    tg.refused_publish("cmd.okdesk.contact.delete").await;
    tg.refused_subscribe("rpc.okdesk.>").await;
    tg.refused_subscribe("rpc.okdesk.issue.list").await;
    tg.refused_subscribe("_INBOX.okdesk-bridge.>").await;
    tg.refused_subscribe("events.okdesk.>").await;
    assert_eq!(stored(&rt.bus, "EVENTS").await, events_before);
    // Its own durable, but reading more than its filter.
    tg.refused_publish("$JS.API.CONSUMER.CREATE.EVENTS.telegram-helpdesk-notify.events.>")
        .await;
    tg.refused_publish("$JS.API.CONSUMER.CREATE.EVENTS.telegram-helpdesk-notify.events.vk.>")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messenger_api_publishes_and_fans_out_as_messenger() {
    let server = server().await;
    let env = TestEnv::new("kit_auth").await;
    let rt = runtime(&server, &env, &MESSENGER).await;
    rt.bus
        .publish(&inbound(Source::Messenger, 1))
        .await
        .expect("message.posted published");

    // Two replicas' hub connections, as hub/mod.rs opens them (no_echo).
    let hub = |name: &'static str| {
        rt.bus
            .connect_options()
            .name(name)
            .no_echo()
            .connect(rt.bus.server_url().to_owned())
    };
    let a = hub("replica a").await.expect("hub a connects");
    let b = hub("replica b").await.expect("hub b connects");
    let all = rt.bus.wire_subject(&Subject::all_fanout(Source::Messenger));
    let mut sub = a.subscribe(all).await.expect("subscribed");
    a.flush().await.expect("flushed");
    let chat = rt
        .bus
        .wire_subject(&Subject::fanout(Source::Messenger, "chat.42"));
    b.publish(chat.clone(), "frame".into())
        .await
        .expect("fan-out published");
    b.flush().await.expect("flushed");
    let got = tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("fan-out delivered in time")
        .expect("a message");
    assert_eq!(got.subject.as_str(), chat);
    server.assert_no_violations();
}

// ------------------------------------------------------------------ what is refused

/// A plain client as `user`, with its own inbox, that collects the server's errors.
struct Probe {
    client: async_nats::Client,
    errors: tokio::sync::mpsc::UnboundedReceiver<String>,
    user: &'static str,
}

async fn probe(server: &Server, user: &User) -> Probe {
    let (tx, errors) = tokio::sync::mpsc::unbounded_channel();
    let client =
        async_nats::ConnectOptions::with_user_and_password(user.user.to_owned(), password_of(user))
            .custom_inbox_prefix(format!("_INBOX.{}", user.service))
            .request_timeout(Some(REFUSED_WAIT))
            .event_callback(move |event| {
                let tx = tx.clone();
                async move {
                    if let async_nats::Event::ServerError(e) = event {
                        let _ = tx.send(e.to_string());
                    }
                }
            })
            .connect(server.bare_url())
            .await
            .unwrap_or_else(|e| panic!("{} connects: {e}", user.user));
    Probe {
        client,
        errors,
        user: user.user,
    }
}

impl Probe {
    /// Waits for the server's permissions violation naming `what` (`Publish to "…"`).
    async fn violation(&mut self, what: &str) {
        let want = what.to_lowercase();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let e = tokio::time::timeout_at(deadline, self.errors.recv())
                .await
                .unwrap_or_else(|_| panic!("{}: no refusal of {what}", self.user))
                .expect("client open");
            let e = e.to_lowercase();
            if e.contains("permissions violation") && e.contains(&want) {
                return;
            }
        }
    }

    async fn refused_publish(&mut self, subject: &str) {
        self.client
            .publish(subject.to_owned(), "{}".into())
            .await
            .expect("sent");
        self.client.flush().await.expect("flushed");
        self.violation(&format!("publish to \"{subject}\"")).await;
    }

    async fn refused_subscribe(&mut self, subject: &str) -> async_nats::Subscriber {
        let sub = self
            .client
            .subscribe(subject.to_owned())
            .await
            .expect("sent");
        self.client.flush().await.expect("flushed");
        self.violation(&format!("subscription to \"{subject}\""))
            .await;
        sub
    }
}

/// Messages stored in a stream, asked as `bus`'s user.
async fn stored(bus: &Bus, stream: &str) -> u64 {
    bus.jetstream()
        .get_stream(stream)
        .await
        .expect("stream info")
        .info()
        .await
        .expect("stream info")
        .state
        .messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_connects_without_a_known_user_and_its_password() {
    let server = server().await;
    let refused = |options: async_nats::ConnectOptions, url: String| async move {
        let err = options.connect(url).await.expect_err("connection refused");
        assert_eq!(
            err.kind(),
            async_nats::ConnectErrorKind::AuthorizationViolation,
            "{err}"
        );
    };
    refused(async_nats::ConnectOptions::new(), server.bare_url()).await;
    refused(
        async_nats::ConnectOptions::with_user_and_password("vk".into(), String::new()),
        server.bare_url(),
    )
    .await;
    refused(
        async_nats::ConnectOptions::with_user_and_password("vk".into(), password_of(&AMOCRM)),
        server.bare_url(),
    )
    .await;
    refused(
        async_nats::ConnectOptions::with_user_and_password("nginx".into(), password_of(&VK)),
        server.bare_url(),
    )
    .await;
    refused(
        async_nats::ConnectOptions::with_token(password_of(&VK)),
        server.bare_url(),
    )
    .await;
    // And through the runtime: a NATS_URL without credentials stops the service at start.
    let err = Bus::connect(&server.bare_url(), "", "vk-connector")
        .await
        .err()
        .expect("refused");
    assert!(
        format!("{err:#}").to_lowercase().contains("authorization"),
        "{err:#}"
    );
    // ... and one with the right password works, which is what the refusals above are
    // measured against.
    Bus::connect(&server.url(&VK), "", "vk-connector")
        .await
        .expect("vk connects");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_cannot_publish_or_read_what_is_not_its_own() {
    let server = server().await;
    let vk_bus = Bus::connect(&server.url(&VK), "", VK.service)
        .await
        .expect("vk connects");
    let messenger_bus = Bus::connect(&server.url(&MESSENGER), "", MESSENGER.service)
        .await
        .expect("messenger connects");
    let (events_before, commands_before) = (
        stored(&vk_bus, "EVENTS").await,
        stored(&vk_bus, "COMMANDS").await,
    );

    // vk: no other source's events, no fan-out, no one else's inbox.
    let mut vk = probe(&server, &VK).await;
    vk.refused_publish("events.amocrm.lead.updated").await;
    vk.refused_publish("events.messenger.message.posted").await;
    vk.refused_publish("fanout.messenger.control").await;
    vk.refused_publish("fanout.messenger.chat.42").await;
    let mut spy = vk.refused_subscribe("fanout.messenger.>").await;
    vk.refused_subscribe("_INBOX.>").await;
    vk.refused_subscribe("_INBOX.messenger-api.>").await;
    vk.refused_subscribe("events.>").await;

    // messenger (internet-facing): cannot order VK to send, nor speak for another source.
    let mut messenger = probe(&server, &MESSENGER).await;
    messenger.refused_publish("cmd.vk.message.send").await;
    messenger
        .refused_publish("events.vk.message.received")
        .await;
    messenger.refused_subscribe("_INBOX.vk-connector.>").await;

    // The refused publishes were not stored.
    assert_eq!(stored(&vk_bus, "EVENTS").await, events_before);
    assert_eq!(stored(&vk_bus, "COMMANDS").await, commands_before);

    // The real fan-out reached messenger's own subscriber but not vk's refused one.
    let hub = messenger_bus
        .connect_options()
        .connect(messenger_bus.server_url().to_owned())
        .await
        .expect("hub connects");
    let mut own = hub
        .subscribe("fanout.messenger.>")
        .await
        .expect("subscribed");
    hub.flush().await.expect("flushed");
    // Published again every 250 ms until it arrives (bounded by WAIT): on a loaded machine the
    // subscription can reach the server's routing a moment after the flush.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        messenger_bus
            .client()
            .publish("fanout.messenger.chat.42", "frame".into())
            .await
            .expect("published");
        messenger_bus.client().flush().await.expect("flushed");
        match tokio::time::timeout(Duration::from_millis(250), own.next()).await {
            Ok(m) => {
                m.expect("a message");
                break;
            }
            Err(_) => assert!(
                tokio::time::Instant::now() < deadline,
                "fan-out not delivered to messenger within {WAIT:?}"
            ),
        }
    }
    vk.client.flush().await.expect("flushed");
    assert!(
        tokio::time::timeout(REFUSED_WAIT, spy.next())
            .await
            .is_err(),
        "vk received the messenger fan-out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_its_owner_can_create_read_or_remove_a_durable_consumer() {
    let server = server().await;
    Bus::connect(&server.url(&VK), "", VK.service)
        .await
        .expect("streams created");

    for (durable, stream, filter, owner) in DURABLES {
        for user in USERS.into_iter().filter(|u| u.user != owner.user) {
            let mut p = probe(&server, user).await;
            for api in ["CREATE", "INFO", "DELETE", "MSG.NEXT"] {
                p.refused_publish(&format!("$JS.API.CONSUMER.{api}.{stream}.{durable}"))
                    .await;
            }
            p.refused_publish(&format!(
                "$JS.API.CONSUMER.CREATE.{stream}.{durable}.{filter}"
            ))
            .await;
            p.refused_publish(&format!("$JS.ACK.{stream}.{durable}.1.1.1.1.0"))
                .await;
        }
    }

    // Through the JetStream API too: amocrm asking for vk's relay consumer gets no consumer.
    let amocrm = probe(&server, &AMOCRM).await;
    let js = async_nats::jetstream::new(amocrm.client.clone());
    let stream = js
        .get_stream("EVENTS")
        .await
        .expect("stream info is allowed");
    assert!(
        stream
            .create_consumer(pull::Config {
                durable_name: Some("vk-connector-relay".into()),
                filter_subject: "events.vk.message.received".into(),
                ..Default::default()
            })
            .await
            .is_err(),
        "amocrm created vk's durable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_cannot_widen_its_own_consumer_or_touch_the_streams() {
    let server = server().await;
    let vk_bus = Bus::connect(&server.url(&VK), "", VK.service)
        .await
        .expect("streams created");
    let mut vk = probe(&server, &VK).await;
    // Its own durable, but reading everything: only the form with its filter in the subject
    // is allowed, and the server checks the body against it.
    vk.refused_publish("$JS.API.CONSUMER.CREATE.EVENTS.vk-connector-relay.events.>")
        .await;
    vk.refused_publish("$JS.API.CONSUMER.CREATE.EVENTS.vk-connector-relay.events.amocrm.>")
        .await;
    vk.refused_publish("$JS.API.CONSUMER.DURABLE.CREATE.EVENTS.vk-connector-relay")
        .await;
    vk.refused_publish("$JS.API.CONSUMER.CREATE.EVENTS").await;
    vk.refused_publish("$JS.API.CONSUMER.CREATE.EVENTS.spy.events.>")
        .await;
    let body = serde_json::json!({
        "stream_name": "EVENTS",
        "config": {
            "durable_name": "vk-connector-relay",
            "filter_subject": "events.>",
            "ack_policy": "explicit",
            "deliver_policy": "all",
        },
    });
    let answer = vk_bus
        .client()
        .request(
            "$JS.API.CONSUMER.CREATE.EVENTS.vk-connector-relay.events.vk.message.received",
            serde_json::to_vec(&body).expect("json").into(),
        )
        .await
        .expect("the server answers");
    let answer: serde_json::Value = serde_json::from_slice(&answer.payload).expect("json");
    assert!(
        answer.get("error").is_some(),
        "a filter wider than the subject's was accepted: {answer}"
    );

    // No one deletes, purges or reads the streams message by message.
    for user in USERS {
        let mut p = probe(&server, user).await;
        for stream in ["EVENTS", "COMMANDS"] {
            for api in [
                "STREAM.DELETE",
                "STREAM.PURGE",
                "STREAM.MSG.GET",
                "DIRECT.GET",
            ] {
                p.refused_publish(&format!("$JS.API.{api}.{stream}")).await;
            }
        }
        p.refused_publish("$JS.API.STREAM.CREATE.SPY").await;
    }
}

// ------------------------------------------------------------------ auth.conf ↔ the code

/// The block of `auth.conf` for `user` (from its `user:` line to the next one).
fn block_of<'a>(conf: &'a str, user: &User) -> &'a str {
    let start = conf
        .find(&format!("user: {}\n", user.user))
        .unwrap_or_else(|| panic!("auth.conf has no user {}", user.user));
    let rest = &conf[start + 1..];
    let end = rest.find("user: ").map_or(conf.len(), |i| start + 1 + i);
    &conf[start..end]
}

/// `pub const NAME: &str = "value";` values in the Rust files under `dir`.
fn consts(dir: &Path, name: &str) -> Vec<String> {
    let needle = format!("pub const {name}: &str = \"");
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        // A service without consumers has no consumers/ directory.
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read source");
                for line in text.lines() {
                    if let Some(v) = line.trim().strip_prefix(&needle) {
                        found.push(v.trim_end_matches("\";").to_owned());
                    }
                }
            }
        }
    }
    found
}

#[test]
fn auth_conf_covers_every_durable_and_inbox() {
    let conf = std::fs::read_to_string(auth_conf_path()).expect("deploy/nats/auth.conf");
    assert!(
        !conf
            .lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains("no_auth_user")),
        "auth.conf lets anonymous in"
    );
    for user in USERS {
        let block = block_of(&conf, user);
        assert!(
            block.contains(&format!("password: ${}\n", user.password_var)),
            "{}: password from ${}",
            user.user,
            user.password_var
        );
        assert!(
            block.contains(&format!("\"_INBOX.{}.>\"", user.service)),
            "{}: its inbox _INBOX.{}.>",
            user.user,
            user.service
        );
        let Some(dir) = user.dir else { continue };
        let src = repo_root().join("services").join(dir).join("src");
        assert_eq!(
            consts(&src, "SERVICE"),
            [user.service],
            "services/{dir}: SERVICE names the inbox"
        );
        let mut durables = consts(&src.join("consumers"), "DURABLE");
        durables.sort();
        let mut listed: Vec<String> = DURABLES
            .iter()
            .filter(|(.., owner)| owner.user == user.user)
            .map(|(d, ..)| (*d).to_owned())
            .collect();
        listed.sort();
        assert_eq!(
            durables, listed,
            "services/{dir}: its durables, as this test lists them"
        );
        for (d, stream, filter, _) in DURABLES.iter().filter(|(.., o)| o.user == user.user) {
            for api in [
                format!("INFO.{stream}.{d}"),
                format!("CREATE.{stream}.{d}.{filter}"),
                format!("DELETE.{stream}.{d}"),
                format!("MSG.NEXT.{stream}.{d}"),
            ] {
                assert!(
                    block.contains(&format!("\"$JS.API.CONSUMER.{api}\"")),
                    "auth.conf: user {} lacks $JS.API.CONSUMER.{api}",
                    user.user
                );
            }
            assert!(
                block.contains(&format!("\"$JS.ACK.{stream}.{d}.>\"")),
                "auth.conf: user {} cannot ack {d}",
                user.user
            );
        }
    }
}
