//! `vk-bench`: load generator for `bench/vk-connector.sh` (loopback only, bounded in count and
//! time). Prints one JSON object per run on stdout.
//!
//! * `wrk-lua`: the wrk script for the ingest phase (VK `message_new`, unique `event_id`s).
//! * `publish`: a backlog of N messages from S senders straight onto JetStream, exactly the
//!   envelopes the callback route publishes (built by `vk_bench::route`), round by round so that
//!   each sender's messages are in stream order.
//! * `drain`: started with vk-connector, waits for its `/ready`, then for N backlog messages at
//!   the sandbox Chatwoot; messages/s, total time, per-second arrivals, order per conversation.
//! * `e2e`: callbacks at a fixed rate with the send time in the text; the latency of each to
//!   its `POST …/messages` at the sandbox (the sandbox stamps arrivals with the same clock).
//! * `tg-e2e` (for `bench/telegram-bot.sh`): telegram-bot webhook updates — customers' private
//!   messages — at a fixed rate with the send time in the text; the latency of each to the
//!   moment the sandbox's fake Bot API holds the bot's copy in the customer's forum topic (seen
//!   by overlapping `GET /_sandbox/telegram/watch` requests, stamped with the same clock).
//! * `probe`: one callback, which must be answered `ok`.
//! * `cleanup`: deletes the prefixed streams.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use futures::StreamExt;
use serde_json::json;
use service_kit::bus::Bus;
use tokio::sync::{Mutex, Semaphore};
use vk_bench::callback::{Community, FIRST_USER_ID, MessageNew};
use vk_bench::sandbox::Poller;
use vk_bench::stats::{Samples, round3};
use vk_bench::telegram::{self, PrivateText, WatchChain};
use vk_bench::{ensure_loopback, route, unix_us};

#[derive(Parser)]
#[command(about = "Load generator for vk-connector (loopback only)")]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

/// The community the callbacks are for.
#[derive(clap::Args, Clone)]
struct CommunityArgs {
    /// `VK_GROUP_ID` of the service.
    #[arg(long)]
    group_id: i64,
    /// `VK_SECRET` of the service.
    #[arg(long)]
    secret: String,
}

impl CommunityArgs {
    fn community(&self) -> Community {
        Community {
            group_id: self.group_id,
            secret: self.secret.clone(),
        }
    }
}

#[derive(Subcommand)]
enum Mode {
    /// Prints the wrk Lua script.
    WrkLua {
        #[command(flatten)]
        community: CommunityArgs,
        /// Request path, `/vk/callback/<VK_CALLBACK_ID>`.
        #[arg(long)]
        path: String,
        /// Distinct VK users writing.
        #[arg(long, default_value_t = 1000)]
        senders: u64,
        /// Makes event ids unique across runs.
        #[arg(long)]
        run_id: String,
    },
    /// Publishes a backlog onto JetStream (vk-connector not running).
    Publish {
        #[command(flatten)]
        community: CommunityArgs,
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
        /// NATS_SUBJECT_PREFIX of the service.
        #[arg(long)]
        prefix: String,
        #[arg(long, default_value_t = 1000)]
        senders: u64,
        /// Messages in all (at most 1,000,000).
        #[arg(long, default_value_t = 20_000)]
        messages: u64,
        /// Publishes awaiting their acknowledgement at once.
        #[arg(long, default_value_t = 256)]
        in_flight: usize,
        /// Marks this run's texts and event ids.
        #[arg(long)]
        run_id: String,
    },
    /// Waits for vk-connector's /ready, then for the backlog at the sandbox Chatwoot.
    Drain {
        /// Sandbox base URL.
        #[arg(long)]
        sandbox: String,
        /// vk-connector's /ready URL.
        #[arg(long)]
        ready_url: String,
        /// Messages to wait for.
        #[arg(long)]
        expect: u64,
        /// The run id `publish` used.
        #[arg(long)]
        run_id: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout_secs: u64,
    },
    /// Callbacks at a fixed rate; latency callback → Chatwoot POST at the sandbox.
    E2e {
        #[command(flatten)]
        community: CommunityArgs,
        /// Callback URL, `http://127.0.0.1:<port>/vk/callback/<VK_CALLBACK_ID>`.
        #[arg(long)]
        url: String,
        /// Sandbox base URL.
        #[arg(long)]
        sandbox: String,
        #[arg(long, default_value_t = 1000)]
        senders: u64,
        /// Callbacks per second.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// Seconds of measured load (at most 600).
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Longest wait for the last messages after the load, in seconds.
        #[arg(long, default_value_t = 60)]
        settle_secs: u64,
        /// Marks this run's texts and event ids.
        #[arg(long)]
        run_id: String,
    },
    /// telegram-bot webhook updates at a fixed rate; latency update → the bot's message in the
    /// customer's topic at the sandbox.
    TgE2e {
        /// Webhook URL, `http://127.0.0.1:<port>/telegram/webhook`.
        #[arg(long)]
        url: String,
        /// `WEBHOOK_SECRET` of the service (sent as `X-Telegram-Bot-Api-Secret-Token`).
        #[arg(long)]
        secret: String,
        /// Sandbox base URL.
        #[arg(long)]
        sandbox: String,
        /// `BOT_GROUP_ID` of the service: the forum group the topics are in.
        #[arg(long, allow_negative_numbers = true)]
        group_id: i64,
        /// Telegram user id of the first customer (customer `s` is `first_user + s`).
        #[arg(long, default_value_t = 500_000_001)]
        first_user: i64,
        /// Customers writing (their topics should exist: the warm-up does not count).
        #[arg(long, default_value_t = 1000)]
        senders: u64,
        /// Updates per second.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// Seconds of measured load (at most 600).
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Longest wait for the last messages after the load, in seconds.
        #[arg(long, default_value_t = 60)]
        settle_secs: u64,
        /// `update_id` of the first update (later ones count up from it).
        #[arg(long, default_value_t = 1_000_000_000)]
        first_update_id: i64,
        /// Marks this run's texts.
        #[arg(long)]
        run_id: String,
    },
    /// Posts one `message_new` and fails unless the answer is HTTP 200 `ok`.
    Probe {
        #[command(flatten)]
        community: CommunityArgs,
        /// Callback URL.
        #[arg(long)]
        url: String,
        /// Makes the event id unique.
        #[arg(long)]
        run_id: String,
    },
    /// Deletes the streams of `prefix`.
    Cleanup {
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
        #[arg(long)]
        prefix: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().mode {
        Mode::WrkLua {
            community,
            path,
            senders,
            run_id,
        } => {
            print!(
                "{}",
                community
                    .community()
                    .wrk_lua(&path, senders.max(1), &run_id)
            );
            Ok(())
        }
        Mode::Publish {
            community,
            nats_url,
            prefix,
            senders,
            messages,
            in_flight,
            run_id,
        } => {
            ensure_loopback(&nats_url)?;
            anyhow::ensure!(messages <= 1_000_000, "at most 1,000,000 messages");
            publish(
                community.community(),
                &nats_url,
                &prefix,
                senders.max(1),
                messages,
                in_flight.max(1),
                &run_id,
            )
            .await
        }
        Mode::Drain {
            sandbox,
            ready_url,
            expect,
            run_id,
            timeout_secs,
        } => {
            ensure_loopback(&sandbox)?;
            ensure_loopback(&ready_url)?;
            drain(
                &sandbox,
                &ready_url,
                expect,
                &run_id,
                Duration::from_secs(timeout_secs.min(900)),
            )
            .await
        }
        Mode::E2e {
            community,
            url,
            sandbox,
            senders,
            rate,
            seconds,
            settle_secs,
            run_id,
        } => {
            ensure_loopback(&url)?;
            ensure_loopback(&sandbox)?;
            anyhow::ensure!(seconds <= 600 && rate <= 100_000, "bounded runs only");
            e2e(E2e {
                community: community.community(),
                url,
                sandbox,
                senders: senders.max(1),
                rate: rate.max(1),
                seconds,
                settle: Duration::from_secs(settle_secs.min(600)),
                run_id,
            })
            .await
        }
        Mode::TgE2e {
            url,
            secret,
            sandbox,
            group_id,
            first_user,
            senders,
            rate,
            seconds,
            settle_secs,
            first_update_id,
            run_id,
        } => {
            ensure_loopback(&url)?;
            ensure_loopback(&sandbox)?;
            anyhow::ensure!(seconds <= 600 && rate <= 100_000, "bounded runs only");
            tg_e2e(TgE2e {
                url,
                secret,
                sandbox,
                group_id,
                first_user,
                senders: senders.max(1),
                rate: rate.max(1),
                seconds,
                settle: Duration::from_secs(settle_secs.min(600)),
                first_update_id,
                run_id,
            })
            .await
        }
        Mode::Probe {
            community,
            url,
            run_id,
        } => {
            ensure_loopback(&url)?;
            let body = community.community().message_new(&MessageNew {
                event_id: &format!("{run_id}-probe"),
                user_id: FIRST_USER_ID,
                message_id: 1,
                conversation_message_id: 1,
                date: unix_us() / 1_000_000,
                text: &format!("probe {run_id}"),
            });
            let answer = reqwest::Client::new()
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .timeout(Duration::from_secs(10))
                .send()
                .await?;
            let status = answer.status();
            let text = answer.text().await?;
            anyhow::ensure!(
                status.is_success() && text == "ok",
                "the callback answered {status} {text:?}, not 200 \"ok\""
            );
            Ok(())
        }
        Mode::Cleanup { nats_url, prefix } => {
            ensure_loopback(&nats_url)?;
            anyhow::ensure!(!prefix.is_empty(), "a prefix is required");
            let bus = Bus::connect(&nats_url, &prefix, "vk-bench").await?;
            bus.delete_streams().await
        }
    }
}

/// The callback body of message `n` of sender `s`, and its parsed event.
fn backlog_body(c: &Community, run_id: &str, s: u64, n: u64, seq: u64) -> String {
    let text = format!("backlog {run_id} s={s} n={n}");
    c.message_new(&MessageNew {
        event_id: &format!("{run_id}-b-{seq}"),
        user_id: FIRST_USER_ID + s as i64,
        message_id: seq as i64 + 1,
        conversation_message_id: n as i64 + 1,
        date: unix_us() / 1_000_000,
        text: &text,
    })
}

async fn publish(
    c: Community,
    nats_url: &str,
    prefix: &str,
    senders: u64,
    messages: u64,
    in_flight: usize,
    run_id: &str,
) -> anyhow::Result<()> {
    let bus = Bus::connect(nats_url, prefix, "vk-bench").await?;
    let started = Instant::now();
    let duplicates = AtomicU64::new(0);
    let rounds = messages.div_ceil(senders);
    for n in 0..rounds {
        // One message per sender per round, each round acknowledged before the next: every
        // sender's messages are in the stream in their order.
        let round: Vec<u64> = (0..senders)
            .map(|s| n * senders + s)
            .take_while(|seq| *seq < messages)
            .collect();
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(round)
            .map(|seq| {
                let (bus, c, duplicates) = (&bus, &c, &duplicates);
                async move {
                    let s = seq % senders;
                    let body = backlog_body(c, run_id, s, n, seq);
                    let event: vk_api::callback::CallbackEvent = serde_json::from_str(&body)?;
                    let env = route::envelope(c.group_id, &event)
                        .map_err(anyhow::Error::msg)?
                        .ok_or_else(|| anyhow::anyhow!("message_new not relayed"))?;
                    if bus.publish(&env).await?.duplicate {
                        duplicates.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                }
            })
            .buffer_unordered(in_flight)
            .collect()
            .await;
        results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "mode": "publish", "published": messages, "senders": senders,
            "duplicates": duplicates.load(Ordering::Relaxed),
            "seconds": round3(secs), "per_s": (messages as f64 / secs).round(),
        })
    );
    Ok(())
}

/// `n=<k>` and `s=<sender>` of a backlog text.
fn field(text: &str, name: &str) -> Option<u64> {
    text.split(' ')
        .find_map(|w| w.strip_prefix(name))
        .and_then(|v| v.parse().ok())
}

/// What `drain` has seen of the backlog at the sandbox.
struct Tally {
    marker: String,
    arrivals: Vec<i64>,
    seen: HashSet<(u64, u64)>,
    duplicates: u64,
    /// Conversation → the last `n` that arrived in it.
    last_n: HashMap<i64, u64>,
    out_of_order: u64,
    /// Sender → its conversation.
    conversation_of: HashMap<u64, i64>,
    split_senders: u64,
}

impl Tally {
    fn new(marker: String, expect: u64) -> Self {
        Self {
            marker,
            arrivals: Vec::with_capacity(expect as usize),
            seen: HashSet::new(),
            duplicates: 0,
            last_n: HashMap::new(),
            out_of_order: 0,
            conversation_of: HashMap::new(),
            split_senders: 0,
        }
    }

    fn take(&mut self, batch: Vec<vk_bench::sandbox::Received>) {
        for m in batch {
            let Some(text) = m.content.as_deref().filter(|t| t.starts_with(&self.marker)) else {
                continue;
            };
            let (Some(s), Some(n)) = (field(text, "s="), field(text, "n=")) else {
                continue;
            };
            if !self.seen.insert((s, n)) {
                self.duplicates += 1;
                continue;
            }
            self.arrivals.push(m.received_at_us);
            if *self.conversation_of.entry(s).or_insert(m.conversation_id) != m.conversation_id {
                self.split_senders += 1;
            }
            if let Some(prev) = self.last_n.insert(m.conversation_id, n)
                && prev > n
            {
                self.out_of_order += 1;
            }
        }
    }
}

async fn drain(
    sandbox: &str,
    ready_url: &str,
    expect: u64,
    run_id: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let started_us = unix_us();
    let deadline = Instant::now() + timeout;
    // /ready, polled closely: the drain is timed from it.
    let ready_us = loop {
        let ok = http
            .get(ready_url)
            .timeout(Duration::from_millis(500))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            break unix_us();
        }
        anyhow::ensure!(Instant::now() < deadline, "vk-connector never got ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut poller = Poller::new(http.clone(), sandbox, 0);
    let mut tally = Tally::new(format!("backlog {run_id} "), expect);
    let mut timed_out = false;
    loop {
        tally.take(poller.poll().await?);
        if tally.seen.len() as u64 >= expect {
            break;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Late duplicates, if any, arrive right after.
    tokio::time::sleep(Duration::from_millis(500)).await;
    tally.take(poller.poll().await?);
    let Tally {
        mut arrivals,
        duplicates,
        last_n,
        out_of_order,
        split_senders,
        ..
    } = tally;
    arrivals.sort_unstable();
    let received = arrivals.len() as u64;
    let first = arrivals.first().copied().unwrap_or(ready_us);
    let last = arrivals.last().copied().unwrap_or(ready_us);
    let drain_s = (last - ready_us) as f64 / 1e6;
    let steady_s = (last - first) as f64 / 1e6;
    let mut per_second: Vec<u64> = Vec::new();
    for at in &arrivals {
        let i = ((at - ready_us).max(0) / 1_000_000) as usize;
        if per_second.len() <= i {
            per_second.resize(i + 1, 0);
        }
        per_second[i] += 1;
    }
    println!(
        "{}",
        json!({
            "mode": "drain", "expected": expect, "received": received, "timed_out": timed_out,
            "duplicates": duplicates, "out_of_order": out_of_order,
            "senders_split_over_conversations": split_senders,
            "conversations": last_n.len(),
            "startup_s": round3((ready_us - started_us) as f64 / 1e6),
            "first_after_ready_s": round3((first - ready_us) as f64 / 1e6),
            "drain_s": round3(drain_s),
            "per_s": if drain_s > 0.0 { (received as f64 / drain_s).round() } else { 0.0 },
            "first_to_last_s": round3(steady_s),
            "per_s_first_to_last": if steady_s > 0.0 { (received as f64 / steady_s).round() } else { 0.0 },
            "per_second": per_second,
        })
    );
    Ok(())
}

struct E2e {
    community: Community,
    url: String,
    sandbox: String,
    senders: u64,
    rate: u64,
    seconds: u64,
    settle: Duration,
    run_id: String,
}

/// Counters and samples of one open-loop run.
#[derive(Default)]
struct Sent {
    ok: AtomicU64,
    errors: AtomicU64,
    callback_us: Mutex<Samples>,
}

async fn e2e(cfg: E2e) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(2048)
        .timeout(Duration::from_secs(10))
        .build()?;
    // Skip what the sandbox holds already.
    let mut poller = Poller::new(http.clone(), &cfg.sandbox, 0);
    poller.poll().await?;
    let cfg = Arc::new(cfg);

    // Warm-up: one message per sender (contacts and conversations exist afterwards), not
    // measured.
    let warm = Arc::new(Sent::default());
    let warm_started = Instant::now();
    send_at_rate(&http, &cfg, "warm", 0, cfg.senders, &warm).await;
    let warm_marker = format!("e2e {} warm ", cfg.run_id);
    let mut warm_arrived = 0u64;
    let warm_deadline = Instant::now() + cfg.settle;
    while warm_arrived < warm.ok.load(Ordering::Relaxed) && Instant::now() < warm_deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        warm_arrived += poller
            .poll()
            .await?
            .iter()
            .filter(|m| {
                m.content
                    .as_deref()
                    .is_some_and(|t| t.starts_with(&warm_marker))
            })
            .count() as u64;
    }
    let warm_s = warm_started.elapsed().as_secs_f64();

    // Measured load.
    let sent = Arc::new(Sent::default());
    let total = cfg.rate * cfg.seconds;
    let started = Instant::now();
    let started_us = unix_us();
    send_at_rate(&http, &cfg, "run", cfg.senders, total, &sent).await;
    let load_s = started.elapsed().as_secs_f64();
    let load_end_us = unix_us();
    let mut last_arrival_us = load_end_us;
    let ok = sent.ok.load(Ordering::Relaxed);
    let marker = format!("e2e {} run ", cfg.run_id);
    let mut latency = Samples::new();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut duplicates = 0u64;
    let settle_deadline = Instant::now() + cfg.settle;
    loop {
        for m in poller.poll().await? {
            let Some(text) = m.content.as_deref().filter(|t| t.starts_with(&marker)) else {
                continue;
            };
            let (Some(i), Some(t)) = (field(text, "i="), field(text, "t=")) else {
                continue;
            };
            if !seen.insert(i) {
                duplicates += 1;
                continue;
            }
            latency.push(m.received_at_us - t as i64);
            last_arrival_us = last_arrival_us.max(m.received_at_us);
        }
        if seen.len() as u64 >= ok || Instant::now() >= settle_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut callback = std::mem::take(&mut *sent.callback_us.lock().await);
    println!(
        "{}",
        json!({
            "mode": "e2e", "target_rate": cfg.rate, "senders": cfg.senders,
            "seconds": round3(load_s), "sent": total, "ok": ok,
            "errors": sent.errors.load(Ordering::Relaxed),
            "achieved_rate": (ok as f64 / load_s).round(),
            "delivered": seen.len(),
            "undelivered": ok.saturating_sub(seen.len() as u64),
            // How long after the last callback the last message reached Chatwoot, and the rate
            // the relay delivered at over the whole run: when it is below the offered rate,
            // messages queued and the latency is mostly the queue.
            "last_arrival_after_load_s": round3((last_arrival_us - load_end_us) as f64 / 1e6),
            "relay_per_s": (seen.len() as f64 / ((last_arrival_us - started_us) as f64 / 1e6)).round(),
            "duplicates": duplicates,
            "latency_ms": latency.summary(),
            "callback_ms": callback.summary(),
            "warmup": {"sent": cfg.senders, "ok": warm.ok.load(Ordering::Relaxed),
                       "delivered": warm_arrived, "seconds": round3(warm_s)},
        })
    );
    Ok(())
}

struct TgE2e {
    url: String,
    secret: String,
    sandbox: String,
    group_id: i64,
    first_user: i64,
    senders: u64,
    rate: u64,
    seconds: u64,
    settle: Duration,
    first_update_id: i64,
    run_id: String,
}

impl Load for TgE2e {
    fn rate(&self) -> u64 {
        self.rate
    }

    fn request(
        &self,
        http: &reqwest::Client,
        tag: &str,
        i: u64,
        t: i64,
    ) -> reqwest::RequestBuilder {
        let s = i % self.senders;
        let text = format!("e2e {} {tag} i={i} s={s} t={t}", self.run_id);
        let body = PrivateText {
            update_id: self.first_update_id + i as i64,
            user_id: self.first_user + s as i64,
            // Unique in the customer's chat: the relay keys what it sent on (chat, message id).
            message_id: 10_000_000 + i as i64,
            date: t / 1_000_000,
            text: &text,
        }
        .update();
        http.post(&self.url)
            .header("content-type", "application/json")
            .header("x-telegram-bot-api-secret-token", &self.secret)
            .body(body)
    }

    fn accepted(&self, status: reqwest::StatusCode, body: &str) -> bool {
        status == reqwest::StatusCode::OK && body.is_empty()
    }
}

/// What the group holds of one run at the end: which benchmark messages are stored, in which
/// topics, and their latencies where a watch stamped them.
#[derive(Default)]
struct TopicTally {
    run: HashSet<u64>,
    warm: HashSet<u64>,
    duplicates: u64,
    latency: Samples,
    last_arrival_us: i64,
    unstamped: u64,
    outside_topics: u64,
    /// Customer → the topics their messages landed in.
    threads_of: HashMap<u64, HashSet<i64>>,
    /// Topic → the customers whose messages landed in it.
    senders_in: HashMap<i64, HashSet<u64>>,
}

impl TopicTally {
    fn take(&mut self, marker: &str, m: &telegram::GroupMessage, stamps: &HashMap<i64, i64>) {
        if !m.from.as_ref().is_some_and(|f| f.is_bot) {
            return;
        }
        let Some(rest) = m.text.as_deref().and_then(|t| t.strip_prefix(marker)) else {
            return;
        };
        let (Some(i), Some(s), Some(t)) = (field(rest, "i="), field(rest, "s="), field(rest, "t="))
        else {
            return;
        };
        if rest.starts_with("run ") {
            if !self.run.insert(i) {
                self.duplicates += 1;
                return;
            }
            match stamps.get(&m.message_id) {
                Some(&at) => {
                    self.latency.push(at - t as i64);
                    self.last_arrival_us = self.last_arrival_us.max(at);
                }
                None => self.unstamped += 1,
            }
        } else if rest.starts_with("warm ") {
            self.warm.insert(i);
        } else {
            return;
        }
        match m.message_thread_id {
            Some(thread) => {
                self.threads_of.entry(s).or_default().insert(thread);
                self.senders_in.entry(thread).or_default().insert(s);
            }
            None => self.outside_topics += 1,
        }
    }
}

async fn tg_e2e(cfg: TgE2e) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(2048)
        .timeout(Duration::from_secs(10))
        .build()?;
    let before = telegram::stats(&http, &cfg.sandbox).await?;
    let cfg = Arc::new(cfg);
    let marker = format!("e2e {} ", cfg.run_id);
    let chain = WatchChain::start(http.clone(), &cfg.sandbox, cfg.group_id, marker.clone());

    // Warm-up: one message per customer (into the topics that exist, or opening them), not
    // measured. Done when the group holds that many more bot messages and a first watch has
    // answered — the watches then overlap, so the measured load is seen from its first message.
    let warm = Arc::new(Sent::default());
    let warm_started = Instant::now();
    send_at_rate(&http, &cfg, "warm", 0, cfg.senders, &warm).await;
    let warm_deadline = Instant::now() + cfg.settle;
    loop {
        let now = telegram::stats(&http, &cfg.sandbox).await?;
        let arrived = now.bot_messages.saturating_sub(before.bot_messages);
        let watching = chain.answers() >= 1;
        if (arrived >= warm.ok.load(Ordering::Relaxed) && watching)
            || Instant::now() >= warm_deadline
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let warm_s = warm_started.elapsed().as_secs_f64();

    // Measured load.
    let sent = Arc::new(Sent::default());
    let total = cfg.rate * cfg.seconds;
    let started = Instant::now();
    let started_us = unix_us();
    send_at_rate(&http, &cfg, "run", cfg.senders, total, &sent).await;
    let load_s = started.elapsed().as_secs_f64();
    let load_end_us = unix_us();
    let ok = sent.ok.load(Ordering::Relaxed);
    let run_prefix = format!("{marker}run ");
    let settle_deadline = Instant::now() + cfg.settle;
    while (chain.distinct_texts(&run_prefix) as u64) < ok && Instant::now() < settle_deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (watched, watch_errors) = chain.finish().await;

    // What the group holds: every benchmark message, its topic, its stamp.
    let after = telegram::stats(&http, &cfg.sandbox).await?;
    let stamps: HashMap<i64, i64> = watched
        .iter()
        .filter(|w| w.chat_id == cfg.group_id)
        .map(|w| (w.message_id, w.seen_at_us))
        .collect();
    let mut tally = TopicTally {
        last_arrival_us: load_end_us,
        ..TopicTally::default()
    };
    for m in telegram::chat_messages(&http, &cfg.sandbox, cfg.group_id).await? {
        tally.take(&marker, &m, &stamps);
    }
    let delivered = tally.latency.len() as u64;
    let mut webhook = std::mem::take(&mut *sent.callback_us.lock().await);
    println!(
        "{}",
        json!({
            "mode": "tg-e2e", "target_rate": cfg.rate, "senders": cfg.senders,
            "seconds": round3(load_s), "sent": total, "ok": ok,
            "errors": sent.errors.load(Ordering::Relaxed),
            "achieved_rate": (ok as f64 / load_s).round(),
            // Delivered = stored in the group and stamped by a watch before the wait ended.
            "delivered": delivered,
            "undelivered": ok.saturating_sub(delivered),
            // Stored but never stamped: arrived after the wait, or while no watch was held.
            "stored_unstamped": tally.unstamped,
            "last_arrival_after_load_s": round3((tally.last_arrival_us - load_end_us) as f64 / 1e6),
            "relay_per_s": (delivered as f64 / ((tally.last_arrival_us - started_us) as f64 / 1e6)).round(),
            "duplicates": tally.duplicates,
            "latency_ms": tally.latency.summary(),
            "webhook_ms": webhook.summary(),
            "topics": {
                "before": before.topics, "after": after.topics,
                "threads": tally.senders_in.len(),
                "split_senders": tally.threads_of.values().filter(|t| t.len() > 1).count(),
                "shared_threads": tally.senders_in.values().filter(|s| s.len() > 1).count(),
                "outside_topics": tally.outside_topics,
            },
            "warmup": {"sent": cfg.senders, "ok": warm.ok.load(Ordering::Relaxed),
                       "delivered": tally.warm.len(), "seconds": round3(warm_s)},
            "watch_errors": watch_errors,
        })
    );
    Ok(())
}

/// One kind of open-loop load: the request for message `i`, and whether its answer accepted it.
trait Load: Send + Sync + 'static {
    /// Requests per second.
    fn rate(&self) -> u64;
    /// The request carrying message `i` of run part `tag`, with send time `t` (unix µs) in
    /// its text.
    fn request(&self, http: &reqwest::Client, tag: &str, i: u64, t: i64)
    -> reqwest::RequestBuilder;
    /// Whether the service took it: the status and body it answered.
    fn accepted(&self, status: reqwest::StatusCode, body: &str) -> bool;
}

impl Load for E2e {
    fn rate(&self) -> u64 {
        self.rate
    }

    fn request(
        &self,
        http: &reqwest::Client,
        tag: &str,
        i: u64,
        t: i64,
    ) -> reqwest::RequestBuilder {
        let s = i % self.senders;
        let text = format!("e2e {} {tag} i={i} s={s} t={t}", self.run_id);
        let body = self.community.message_new(&MessageNew {
            event_id: &format!("{}-e-{i}", self.run_id),
            user_id: FIRST_USER_ID + s as i64,
            message_id: 10_000_000 + i as i64,
            conversation_message_id: i as i64 + 1,
            date: t / 1_000_000,
            text: &text,
        });
        http.post(&self.url)
            .header("content-type", "application/json")
            .body(body)
    }

    fn accepted(&self, status: reqwest::StatusCode, body: &str) -> bool {
        status.is_success() && body == "ok"
    }
}

/// Posts `count` requests (messages `first..first + count`) at `cfg.rate()` per second (open
/// loop: a slow answer does not delay the next request), the send time in each text; returns
/// when all are answered.
async fn send_at_rate<L: Load>(
    http: &reqwest::Client,
    cfg: &Arc<L>,
    tag: &'static str,
    first: u64,
    count: u64,
    sent: &Arc<Sent>,
) {
    const IN_FLIGHT: usize = 2048;
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / cfg.rate() as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for k in 0..count {
        tick.tick().await;
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let (http, cfg, sent) = (http.clone(), cfg.clone(), sent.clone());
        let i = first + k;
        tokio::spawn(async move {
            let request = cfg.request(&http, tag, i, unix_us());
            let started = Instant::now();
            let ok = match request.send().await {
                Ok(r) => {
                    let status = r.status();
                    r.text().await.is_ok_and(|b| cfg.accepted(status, &b))
                }
                Err(_) => false,
            };
            let us = started.elapsed().as_micros() as i64;
            if ok {
                sent.ok.fetch_add(1, Ordering::Relaxed);
                sent.callback_us.lock().await.push(us);
            } else {
                sent.errors.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
        });
    }
    let _ = permits.acquire_many(IN_FLIGHT as u32).await;
}
