//! Durable JetStream pull consumers: the egress half of every service, concurrent across
//! conversations and strictly ordered within one.
//!
//! Each [`ConsumerSpec`] names an **ordering key** taken from the envelope (a VK peer, a
//! Chatwoot conversation, an amoCRM entity …). Up to `concurrency` handlers run at once, never
//! two of the same key; within a key messages are handled in stream order. A retriable failure
//! is retried **in place** with backoff (the upstream's `retry_after` when it gave one), holding
//! back only the later messages of that key. While a message is in hand — running, waiting for
//! its retry, or queued behind its key — its ack deadline is extended with in-progress acks, so
//! JetStream does not hand it out again. After the last attempt, or on a failure that can never
//! succeed, the message goes to the service's dead-letter table with its key, is acked, and the
//! key moves on. A message that is not an envelope is dead-lettered at once; an envelope of an
//! unknown `type` is acked and logged (a newer producer), never retried forever.
//!
//! ## Replicas and restarts
//!
//! Order across processes is kept by giving each durable consumer **one holder at a time**: a
//! replica handles a consumer only while it holds a Postgres advisory lock named after it
//! (`<schema>.<stream>.<durable>`), on a connection of its own that it checks every second; the other
//! replicas stand by and take over within about a second when the holder dies (its
//! connection closes) or stops. When a holder takes a consumer that still has messages in
//! flight from the previous holder (delivered, never acked: the process was killed, or stopped
//! with messages queued), it **rewinds** the consumer to its ack floor before pulling, so those
//! messages come again *before* anything newer of their keys. Messages after the ack floor that
//! had been acked are handled again: handlers are idempotent (processed-keys tables, VK
//! `random_id`, ordered upserts), so that is a repeat without a second effect.
//! See `docs/architecture.md`, "Ordered consumers".

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, AckKind, consumer::pull};
use domain::{DecodeError, Envelope, Payload, Subject};
use futures::{FutureExt, StreamExt};
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::bus::Bus;
use crate::dead_letter::DeadLetters;
use crate::lease::{LEASE_CHECK, Lease, sleep_or_cancel};

/// Handlers at once per consumer when neither the spec nor the environment says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 32;

/// How long a pull request waits for messages before it is renewed.
const PULL_EXPIRES: Duration = Duration::from_secs(5);

/// What a handler says when it could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Try again later (upstream 5xx/429/timeout, VK code 6 …); `after` overrides the
    /// backoff, e.g. from `Retry-After`.
    #[error("{reason}")]
    Retry {
        /// What failed, for the log and, after the last attempt, the dead letter.
        reason: String,
        /// Delay before the next attempt; `None` = the consumer's backoff for this attempt.
        after: Option<Duration>,
    },
    /// Can never succeed (VK code 901, a 4xx that is not 429 …): dead-letter it now.
    #[error("{0}")]
    Fatal(String),
    /// The service's own dependency (its database) is down: nothing is wrong with the message.
    /// It is retried after `after` however often it failed and never dead-lettered (the
    /// dead-letter table is in that same database), so it is done once the dependency is back.
    #[error("{reason}")]
    Unavailable {
        /// What is down, for the log.
        reason: String,
        /// Delay before the next attempt.
        after: Duration,
    },
}

impl HandleError {
    /// Retriable, with the consumer's backoff.
    pub fn retry(reason: impl std::fmt::Display) -> Self {
        Self::Retry {
            reason: reason.to_string(),
            after: None,
        }
    }
}

/// Connection-level Postgres failures: the pool cannot reach Postgres, the server is shutting
/// down or refuses connections (SQLSTATE class 08, 57P01–57P03, 53300 too many connections,
/// 3D000 no such database, 55000 "database is not currently accepting connections").
pub fn db_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            c.starts_with("08")
                || matches!(
                    c.as_ref(),
                    "57P01" | "57P02" | "57P03" | "53300" | "3D000" | "55000"
                )
        }),
        _ => false,
    }
}

/// A handler's Postgres failure: when Postgres is unreachable ([`db_unavailable`]) the message
/// is not at fault and waits 2 s without using up attempts (never dead-lettered: the
/// dead-letter table is in that same database); any other error is retried with the backoff.
pub fn db_failure(e: sqlx::Error) -> HandleError {
    if db_unavailable(&e) {
        HandleError::Unavailable {
            reason: format!("database unreachable: {e}"),
            after: Duration::from_secs(2),
        }
    } else {
        HandleError::retry(format!("database: {e}"))
    }
}

/// The ordering key of an envelope: `Some(key)` keeps every message with that key in stream
/// order; `None` means the message is ordered with nothing (it gets a key of its own).
pub type KeyFn<P> = fn(&Envelope<P>) -> Option<String>;

/// How one durable consumer behaves: declared in the consumer's module, beside its handler.
#[derive(Debug, Clone)]
pub struct ConsumerSpec<P> {
    /// Durable name, shared by every replica of the service.
    pub durable: String,
    /// Subject filter, without prefix (the bus adds it); `events.…` reads stream `EVENTS`,
    /// `cmd.…` stream `COMMANDS`.
    pub filter: Subject,
    /// The ordering key of a message (see [`KeyFn`]).
    pub key: KeyFn<P>,
    /// Attempts before the message is dead-lettered (≥ 1).
    pub max_attempts: u32,
    /// Delay before attempt 2, 3, …; the last entry repeats.
    pub backoff: Vec<Duration>,
    /// How long JetStream waits for an ack or in-progress signal before redelivering; in-hand
    /// messages are touched every third of it.
    pub ack_wait: Duration,
    /// Handlers at once, never two of one key. `None`: `CONSUMER_CONCURRENCY_<DURABLE>` (the
    /// durable name upper-cased, `-` as `_`) from the environment, else the runtime's
    /// `CONSUMER_CONCURRENCY`, else [`DEFAULT_CONCURRENCY`].
    pub concurrency: Option<usize>,
}

impl<P> ConsumerSpec<P> {
    /// Defaults: 8 attempts, backoff 1 s, 5 s, 15 s, 30 s, 60 s…, ack wait 30 s.
    pub fn new(durable: impl Into<String>, filter: Subject, key: KeyFn<P>) -> Self {
        Self {
            durable: durable.into(),
            filter,
            key,
            max_attempts: 8,
            backoff: [1, 5, 15, 30, 60]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            ack_wait: Duration::from_secs(30),
            concurrency: None,
        }
    }

    fn delay_before(&self, next_attempt: u32) -> Duration {
        let i = (next_attempt.saturating_sub(2) as usize).min(self.backoff.len().saturating_sub(1));
        self.backoff
            .get(i)
            .copied()
            .unwrap_or(Duration::from_secs(1))
    }

    /// The stream this consumer reads, by its filter: `cmd.…` → commands, else events.
    pub fn stream_name(&self, bus: &Bus) -> String {
        if self.filter.as_str().starts_with("cmd.") {
            bus.commands_stream()
        } else {
            bus.events_stream()
        }
    }

    /// The concurrency in force: the spec's, else the environment's per-consumer override,
    /// else `default`.
    pub fn effective_concurrency(&self, default: usize) -> usize {
        if let Some(n) = self.concurrency {
            return n.max(1);
        }
        let var = format!(
            "CONSUMER_CONCURRENCY_{}",
            self.durable.to_ascii_uppercase().replace(['-', '.'], "_")
        );
        std::env::var(&var)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(default)
            .max(1)
    }
}

/// What a consumer needs from the runtime: the bus, the dead-letter table and the pool its
/// lease lives in.
#[derive(Clone)]
pub struct ConsumerDeps {
    /// JetStream.
    pub bus: Bus,
    /// `<schema>.dead_letters`.
    pub dead_letters: DeadLetters,
    /// The service's pool; one connection is taken out of it for the lease.
    pub pool: PgPool,
    /// The service's schema, naming the lease (`<schema>.<durable>`).
    pub schema: String,
    /// Concurrency when the spec and the environment say nothing.
    pub default_concurrency: usize,
}

/// Runs the consumer until `shutdown` is cancelled: stands by while another replica holds it,
/// handles it while this one does. Attempts in progress finish (and are acked) before it
/// returns; messages waiting for a retry or queued behind their key are left unacked, to be
/// taken again, first, by the next holder.
///
/// It never gives up on its own: when the consumer cannot be created (stream missing, NATS
/// down) or Postgres is unreachable for the lease, it logs a warning and tries again.
pub async fn run<P, F, Fut>(
    deps: ConsumerDeps,
    spec: ConsumerSpec<P>,
    shutdown: CancellationToken,
    handler: F,
) -> anyhow::Result<()>
where
    P: Payload + Send + Sync + 'static,
    F: Fn(Envelope<P>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandleError>> + Send + 'static,
{
    let concurrency = spec.effective_concurrency(deps.default_concurrency);
    let handler = Arc::new(handler);
    // The stream is in the name: two deployments on one database but different NATS prefixes
    // (two bots sharing a database) each get their own holder.
    let lease_name = format!(
        "{}.{}.{}",
        deps.schema,
        spec.stream_name(&deps.bus),
        spec.durable
    );
    tracing::info!(durable = %spec.durable, filter = %spec.filter, concurrency, "consumer starting");
    let mut said_standby = false;
    // A stand-by keeps one connection and asks again on it every second.
    let mut standby: Option<sqlx::PgConnection> = None;
    // A rewind whose delete went through but whose re-creation failed: the next attempt
    // re-creates from here, never from the start of the stream.
    let rewind_from: Mutex<Option<u64>> = Mutex::new(None);
    while !shutdown.is_cancelled() {
        let lease = match Lease::try_acquire(&deps.pool, standby.take(), &lease_name).await {
            Ok(Ok(lease)) => lease,
            Ok(Err(conn)) => {
                standby = Some(conn);
                if !said_standby {
                    tracing::info!(durable = %spec.durable, "another replica holds this consumer; standing by");
                    said_standby = true;
                }
                if sleep_or_cancel(LEASE_CHECK, &shutdown).await {
                    break;
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(durable = %spec.durable, error = format!("{e:#}"), "cannot take the consumer's lease; retrying in 1 s");
                if sleep_or_cancel(LEASE_CHECK, &shutdown).await {
                    break;
                }
                continue;
            }
        };
        said_standby = false;
        tracing::info!(durable = %spec.durable, "holding the consumer");
        // `held` stops the sessions (shutdown, or the lease lost); `release` gives the lock
        // up, and only once the sessions drained: a stand-by must not take over while an
        // attempt of ours still runs.
        let held = shutdown.child_token();
        let release = CancellationToken::new();
        let watch = tokio::spawn(lease.hold(held.clone(), release.clone(), spec.durable.clone()));
        while !held.is_cancelled() {
            let session = Session {
                deps: &deps,
                spec: &spec,
                concurrency,
                handler: handler.clone(),
                stop: held.child_token(),
                rewind_from: &rewind_from,
            };
            if let Err(e) = session.run().await {
                tracing::warn!(durable = %spec.durable, error = format!("{e:#}"), "consumer session ended; starting again in 1 s");
                if sleep_or_cancel(LEASE_CHECK, &held).await {
                    break;
                }
            }
        }
        held.cancel();
        release.cancel();
        let _ = watch.await;
    }
    tracing::info!(durable = %spec.durable, "consumer stopped");
    Ok(())
}

/// One message in hand.
struct Held<P> {
    msg: jetstream::Message,
    env: Envelope<P>,
    seq: u64,
    key: String,
    msg_id: String,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

/// What the holder of a consumer shares between its pull loop and its key workers.
struct Shared<P, F> {
    spec: ConsumerSpec<P>,
    dead_letters: DeadLetters,
    handler: Arc<F>,
    /// Per key: the messages queued behind the one being handled. A key is present while a
    /// worker owns it.
    keys: Mutex<HashMap<String, VecDeque<Held<P>>>>,
    /// Every message in hand by stream sequence, touched with in-progress acks.
    in_hand: Mutex<HashMap<u64, jetstream::Message>>,
    /// Handler attempts at once.
    handlers: Arc<Semaphore>,
    stop: CancellationToken,
}

struct Session<'a, P, F> {
    deps: &'a ConsumerDeps,
    spec: &'a ConsumerSpec<P>,
    concurrency: usize,
    handler: Arc<F>,
    stop: CancellationToken,
    rewind_from: &'a Mutex<Option<u64>>,
}

enum Done {
    Finished,
    Abandoned,
}

impl<P, F, Fut> Session<'_, P, F>
where
    P: Payload + Send + Sync + 'static,
    F: Fn(Envelope<P>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandleError>> + Send + 'static,
{
    /// Pulls and dispatches until stopped (Ok) or pulling fails (Err); in both cases waits
    /// for the attempts in progress first.
    async fn run(self) -> anyhow::Result<()> {
        let consumer = prepare(&self.deps.bus, self.spec, self.rewind_from).await?;
        // Messages in hand at once: enough to keep every handler busy with queues behind a
        // few slow keys, few enough to touch them all well within ack_wait.
        let max_in_hand = (self.concurrency * 8).clamp(64, 4096);
        let slots = Arc::new(Semaphore::new(max_in_hand));
        let shared = Arc::new(Shared {
            spec: self.spec.clone(),
            dead_letters: self.deps.dead_letters.clone(),
            handler: self.handler.clone(),
            keys: Mutex::new(HashMap::new()),
            in_hand: Mutex::new(HashMap::new()),
            handlers: Arc::new(Semaphore::new(self.concurrency)),
            stop: self.stop.clone(),
        });
        let tracker = TaskTracker::new();
        tracker.spawn(touch_in_hand(shared.clone()));
        let result = self.pull_loop(&consumer, &shared, &slots, &tracker).await;
        self.stop.cancel();
        tracker.close();
        tracker.wait().await;
        result
    }

    async fn pull_loop(
        &self,
        consumer: &jetstream::consumer::PullConsumer,
        shared: &Arc<Shared<P, F>>,
        slots: &Arc<Semaphore>,
        tracker: &TaskTracker,
    ) -> anyhow::Result<()> {
        let durable = &self.spec.durable;
        let mut idle_batches = 0u32;
        while !self.stop.is_cancelled() {
            // Wait for a free slot, so every message we ask for can be taken at once (a
            // message left in the client's buffer would not be touched and could time out).
            let first = tokio::select! {
                biased;
                _ = self.stop.cancelled() => return Ok(()),
                p = slots.clone().acquire_owned() => p.context("slots closed")?,
            };
            let free = 1 + slots.available_permits();
            drop(first);
            let batch = consumer
                .batch()
                .max_messages(free.min(256))
                .expires(PULL_EXPIRES)
                .messages()
                .await
                .map_err(|e| anyhow::anyhow!("pull request failed: {e}"))?;
            tokio::pin!(batch);
            let mut got = 0u32;
            loop {
                let next = tokio::select! {
                    biased;
                    _ = self.stop.cancelled() => return Ok(()),
                    next = batch.next() => next,
                };
                match next {
                    Some(Ok(msg)) => {
                        got += 1;
                        let slot = slots
                            .clone()
                            .try_acquire_owned()
                            .context("more messages than asked for")?;
                        self.dispatch(shared, tracker, msg, slot).await;
                    }
                    Some(Err(e)) => anyhow::bail!("pull failed: {e}"),
                    None => break,
                }
            }
            // An empty batch now and then: make sure the consumer still exists (a deleted
            // consumer or stream just yields nothing), so it is re-created within seconds.
            if got == 0 {
                idle_batches += 1;
                if idle_batches >= 2 {
                    idle_batches = 0;
                    let mut c = consumer.clone();
                    c.info()
                        .await
                        .map_err(|e| anyhow::anyhow!("consumer {durable} is gone: {e}"))?;
                }
            } else {
                idle_batches = 0;
            }
        }
        Ok(())
    }

    async fn dispatch(
        &self,
        shared: &Arc<Shared<P, F>>,
        tracker: &TaskTracker,
        msg: jetstream::Message,
        slot: tokio::sync::OwnedSemaphorePermit,
    ) {
        let seq = msg.info().map(|i| i.stream_sequence).unwrap_or(0);
        // Without a Nats-Msg-Id (a foreign producer), the stream position names the message:
        // dead letters are unique per (consumer, msg_id), and a rewind brings the same seq.
        let msg_id = msg
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.as_str().to_owned())
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| format!("{}:seq:{seq}", self.spec.stream_name(&self.deps.bus)));
        if lock(&shared.in_hand).contains_key(&seq) {
            // A redelivery of a message we still hold (a touch got lost): the one in hand
            // will be acked; this copy is dropped.
            tracing::debug!(seq, "dropping a second copy of a message in hand");
            return;
        }
        let env = match Envelope::<P>::decode(&msg.payload) {
            Ok(env) => env,
            Err(DecodeError::UnknownType(t)) => {
                tracing::info!(durable = %self.spec.durable, r#type = %t, %msg_id, "skipping an envelope of unknown type");
                count(&self.spec.durable, "unknown_type");
                if let Err(e) = msg.ack().await {
                    tracing::warn!(error = %e, "ack failed; JetStream will redeliver");
                }
                return;
            }
            Err(e @ DecodeError::Malformed(_)) => {
                let reason = format!("undecodable: {e}");
                let _ = dead_letter(shared, &msg, &msg_id, None, &reason, 1).await;
                return;
            }
        };
        let key = (self.spec.key)(&env).unwrap_or_else(|| format!("seq:{seq}"));
        lock(&shared.in_hand).insert(seq, msg.clone());
        let held = Held {
            msg,
            env,
            seq,
            key: key.clone(),
            msg_id,
            _slot: slot,
        };
        let mut keys = lock(&shared.keys);
        if let Some(queue) = keys.get_mut(&key) {
            queue.push_back(held);
        } else {
            keys.insert(key, VecDeque::new());
            drop(keys);
            tracker.spawn(key_worker(shared.clone(), held));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn count(durable: &str, outcome: &'static str) {
    metrics::counter!("consumer_messages_total", "durable" => durable.to_owned(), "outcome" => outcome)
        .increment(1);
}

/// Creates the consumer, or takes the existing one; rewinds it to its ack floor when the
/// previous holder left messages in flight, so they come again before newer ones.
async fn prepare<P>(
    bus: &Bus,
    spec: &ConsumerSpec<P>,
    rewind_from: &Mutex<Option<u64>>,
) -> anyhow::Result<jetstream::consumer::PullConsumer> {
    let stream_name = spec.stream_name(bus);
    let stream = bus
        .jetstream()
        .get_stream(&stream_name)
        .await
        .with_context(|| format!("stream {stream_name} not found"))?;
    let config = |deliver_policy| pull::Config {
        durable_name: Some(spec.durable.clone()),
        filter_subject: bus.wire_subject(&spec.filter),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: spec.ack_wait,
        deliver_policy,
        // Unlimited at the server: we dead-letter ourselves, and only ack once that is stored.
        max_deliver: -1,
        max_ack_pending: 20_000,
        ..Default::default()
    };
    if let Ok(mut existing) = stream.get_consumer::<pull::Config>(&spec.durable).await {
        let info = existing.info().await.context("consumer info")?.clone();
        if info.num_ack_pending == 0 {
            return Ok(existing);
        }
        let from = info.ack_floor.stream_sequence + 1;
        tracing::warn!(
            durable = %spec.durable,
            in_flight = info.num_ack_pending,
            from_stream_sequence = from,
            "messages were in flight at the previous holder; rewinding to the ack floor to keep their order"
        );
        *lock(rewind_from) = Some(from);
        stream
            .delete_consumer(&spec.durable)
            .await
            .with_context(|| format!("deleting consumer {} to rewind it", spec.durable))?;
    }
    let pending_rewind = *lock(rewind_from);
    let created = match pending_rewind {
        Some(from) => stream
            .create_consumer(config(
                jetstream::consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: from,
                },
            ))
            .await
            .with_context(|| format!("re-creating consumer {} from {from}", spec.durable))?,
        None => stream
            .get_or_create_consumer(
                &spec.durable,
                config(jetstream::consumer::DeliverPolicy::All),
            )
            .await
            .with_context(|| format!("creating consumer {}", spec.durable))?,
    };
    *lock(rewind_from) = None;
    Ok(created)
}

/// Extends the ack deadline of every message in hand, every third of `ack_wait`.
async fn touch_in_hand<P, F>(shared: Arc<Shared<P, F>>) {
    let every = (shared.spec.ack_wait / 3).max(Duration::from_millis(200));
    loop {
        if sleep_or_cancel(every, &shared.stop).await {
            return;
        }
        let messages: Vec<jetstream::Message> = lock(&shared.in_hand).values().cloned().collect();
        for m in messages {
            if let Err(e) = m.ack_with(AckKind::Progress).await {
                tracing::debug!(error = %e, "in-progress ack failed");
            }
        }
    }
}

/// Owns one key: handles its first message, then the ones queued behind it, then lets go.
async fn key_worker<P, F, Fut>(shared: Arc<Shared<P, F>>, first: Held<P>)
where
    P: Payload + Send + Sync + 'static,
    F: Fn(Envelope<P>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandleError>> + Send + 'static,
{
    let key = first.key.clone();
    let mut current = first;
    loop {
        let done = handle(&shared, &current).await;
        lock(&shared.in_hand).remove(&current.seq);
        drop(current);
        let mut keys = lock(&shared.keys);
        if matches!(done, Done::Abandoned) {
            // Stopping: what is queued stays unacked, for the next holder.
            if let Some(rest) = keys.remove(&key) {
                let mut in_hand = lock(&shared.in_hand);
                for h in rest {
                    in_hand.remove(&h.seq);
                }
            }
            return;
        }
        match keys.get_mut(&key).and_then(VecDeque::pop_front) {
            Some(next) => current = next,
            None => {
                keys.remove(&key);
                return;
            }
        }
    }
}

/// Handles one message with in-place retries; acks it when done or dead-lettered.
async fn handle<P, F, Fut>(shared: &Arc<Shared<P, F>>, held: &Held<P>) -> Done
where
    P: Payload + Send + Sync + 'static,
    F: Fn(Envelope<P>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandleError>> + Send + 'static,
{
    let spec = &shared.spec;
    let span = tracing::info_span!(
        "consume",
        durable = %spec.durable,
        subject = %held.msg.subject,
        msg_id = %held.msg_id,
        key = %held.key,
        seq = held.seq,
        attempt = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    crate::telemetry::set_parent_from_headers(&span, held.msg.headers.as_ref());
    crate::telemetry::record_trace_id(&span);
    async {
        let started = std::time::Instant::now();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            tracing::Span::current().record("attempt", attempt);
            let permit = tokio::select! {
                // Stopping wins over a free handler slot: nothing new starts after the signal.
                biased;
                _ = shared.stop.cancelled() => return Done::Abandoned,
                p = shared.handlers.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return Done::Abandoned,
                },
            };
            // A panicking handler must not leave its key owned and its message in hand
            // forever: it is a final failure of this message.
            let env = held.env.clone();
            let handler = shared.handler.clone();
            let result = match std::panic::AssertUnwindSafe(async move { handler(env).await })
                .catch_unwind()
                .await
            {
                Ok(r) => r,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "no message".to_owned());
                    Err(HandleError::Fatal(format!("handler panicked: {what}")))
                }
            };
            drop(permit);
            let delay = match result {
                Ok(()) => {
                    count(&spec.durable, "ok");
                    if let Err(e) = held.msg.ack().await {
                        tracing::warn!(error = %e, "ack failed; JetStream will redeliver");
                    }
                    metrics::histogram!("consumer_handle_seconds", "durable" => spec.durable.clone())
                        .record(started.elapsed().as_secs_f64());
                    return Done::Finished;
                }
                Err(HandleError::Fatal(reason)) => {
                    return dead_letter(shared, &held.msg, &held.msg_id, Some(&held.key), &reason, attempt as i32).await;
                }
                Err(HandleError::Retry { reason, .. }) if attempt >= spec.max_attempts => {
                    let reason = format!("gave up after {attempt} attempts: {reason}");
                    return dead_letter(shared, &held.msg, &held.msg_id, Some(&held.key), &reason, attempt as i32).await;
                }
                Err(HandleError::Retry { reason, after }) => {
                    let delay = after.unwrap_or_else(|| spec.delay_before(attempt + 1));
                    count(&spec.durable, "retry");
                    tracing::warn!(%reason, delay_ms = delay.as_millis() as u64, "will retry; later messages of this key wait");
                    delay
                }
                Err(HandleError::Unavailable { reason, after }) => {
                    // Not the message's fault: does not count as an attempt.
                    attempt -= 1;
                    count(&spec.durable, "unavailable");
                    tracing::warn!(%reason, delay_ms = after.as_millis() as u64, "dependency unavailable; will retry");
                    after
                }
            };
            if sleep_or_cancel(delay, &shared.stop).await {
                return Done::Abandoned;
            }
        }
    }
    .instrument(span)
    .await
}

/// Stores a dead letter and acks the message; keeps retrying the insert while the database is
/// down (the message stays in hand and touched meanwhile).
async fn dead_letter<P, F>(
    shared: &Arc<Shared<P, F>>,
    msg: &jetstream::Message,
    msg_id: &str,
    key: Option<&str>,
    reason: &str,
    attempts: i32,
) -> Done {
    loop {
        match shared
            .dead_letters
            .store(crate::dead_letter::NewDeadLetter {
                consumer: Some(&shared.spec.durable),
                subject: msg.subject.as_str(),
                msg_id,
                ordering_key: key,
                body: &msg.payload,
                reason,
                attempts,
            })
            .await
        {
            Ok(id) => {
                tracing::error!(dead_letter_id = id, %reason, key, "message dead-lettered");
                count(&shared.spec.durable, "dead_letter");
                if let Err(e) = msg.ack().await {
                    tracing::warn!(error = %e, "ack failed; JetStream will redeliver");
                }
                return Done::Finished;
            }
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), %reason, "cannot store the dead letter; keeping the message and trying again in 5 s");
                if sleep_or_cancel(Duration::from_secs(5), &shared.stop).await {
                    return Done::Abandoned;
                }
            }
        }
    }
}
