//! Load generator for `bench/messenger-hub.sh` (not a test): drives a running messenger-api on
//! loopback and writes a Markdown report.
//!
//! 1. idle connections: RSS of the server per connected, handshaken, idle hub connection;
//! 2. one message to every member of a large group: delivery latency to each member;
//! 3. 1:1 messages at a fixed rate: delivery latency;
//! 4. `POST /api/messages` throughput with Postgres persistence.
//!
//! Users are inserted straight into the database and their access tokens minted with the
//! server's secret (registering 10 000 users through argon2 would measure argon2). Every
//! phase is bounded in count and time. Run it through the script, which starts the server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use messenger_api::auth::tokens::{AuthUser, Role, Tokens};
use messenger_api::config::JwtSettings;
use serde_json::{Value, json};
use service_kit::Secret;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use uuid::Uuid;

struct Args {
    base: String,
    database_url: String,
    secret: String,
    server_pid: u32,
    connections: usize,
    group_messages: usize,
    rate: u64,
    rate_secs: u64,
    pairs: usize,
    http_concurrency: usize,
    http_secs: u64,
    out: String,
}

fn args() -> anyhow::Result<Args> {
    let mut m: HashMap<String, String> = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let k = k.trim_start_matches("--").to_owned();
        let v = it.next().with_context(|| format!("--{k} needs a value"))?;
        m.insert(k, v);
    }
    let get = |k: &str, d: &str| m.get(k).cloned().unwrap_or_else(|| d.to_owned());
    Ok(Args {
        base: get("base-url", "http://127.0.0.1:18085"),
        database_url: m.get("database-url").cloned().context("--database-url")?,
        secret: m.get("jwt-secret").cloned().context("--jwt-secret")?,
        server_pid: get("server-pid", "0").parse()?,
        connections: get("connections", "10000").parse()?,
        group_messages: get("group-messages", "20").parse()?,
        rate: get("rate", "2000").parse()?,
        rate_secs: get("rate-secs", "10").parse()?,
        pairs: get("pairs", "200").parse()?,
        http_concurrency: get("http-concurrency", "32").parse()?,
        http_secs: get("http-secs", "10").parse()?,
        out: get("out", "bench/results/messenger-api.md"),
    })
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// RSS once it stops moving (less than 0.5 % over a second, at most 15 s).
async fn settled_rss(pid: u32) -> u64 {
    let mut last = rss_kib(pid);
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = rss_kib(pid);
        if (now as f64 - last as f64).abs() < last as f64 * 0.005 {
            return now;
        }
        last = now;
    }
    last
}

/// Deliveries of one phase: a count, and one sample list per receiving connection (so that
/// ten thousand receivers never contend for one lock).
#[derive(Default)]
struct Stats {
    per_receiver: Mutex<Vec<Arc<Mutex<Vec<u64>>>>>,
    received: AtomicUsize,
}

impl Stats {
    fn receiver_slot(&self) -> Arc<Mutex<Vec<u64>>> {
        let slot = Arc::new(Mutex::new(Vec::new()));
        self.per_receiver.lock().expect("lock").push(slot.clone());
        slot
    }

    /// Takes every sample recorded so far.
    fn take(&self) -> Vec<u64> {
        let mut all = Vec::new();
        for slot in self.per_receiver.lock().expect("lock").iter() {
            all.append(&mut slot.lock().expect("lock"));
        }
        all
    }
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn summary(mut v: Vec<u64>) -> (usize, f64, f64, f64, f64) {
    v.sort_unstable();
    let n = v.len();
    (
        n,
        pct(&v, 0.5),
        pct(&v, 0.99),
        pct(&v, 0.999),
        v.last().map_or(f64::NAN, |m| *m as f64 / 1000.0),
    )
}

/// Text of a probe message: `bench:<micros since start>`.
fn probe(t0: Instant) -> String {
    format!("bench:{}", t0.elapsed().as_micros())
}

/// A pseudo-random number of milliseconds below `max` (no RNG crate needed for a spread).
fn rand_ms(max: u64) -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0x2545_F491_4F6C_DD1D);
    let x = NEXT.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    (x ^ (x >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9) % max
}

fn latency_of(frame: &str, t0: Instant) -> Option<u64> {
    // `…"text":"bench:123"…`: avoid a full parse per delivery on the load generator
    let at = frame.find("\"text\":\"bench:")? + 14;
    let end = frame[at..].find('"')? + at;
    let sent: u64 = frame[at..end].parse().ok()?;
    Some((t0.elapsed().as_micros() as u64).saturating_sub(sent))
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(base: &str, token: &str) -> anyhow::Result<Ws> {
    let url = format!(
        "{}/hubs/chat?access_token={token}",
        base.replacen("http://", "ws://", 1)
    );
    let cfg = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(cfg), false).await?;
    ws.send(Message::Text(
        "{\"protocol\":\"json\",\"version\":1}\u{1e}".into(),
    ))
    .await?;
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.as_str().starts_with("{}") => Ok(ws),
        other => anyhow::bail!("handshake failed: {other:?}"),
    }
}

/// A connection that pings every 15 s and records the latency of every probe it receives.
fn receiver(mut ws: Ws, stats: Arc<Stats>, t0: Instant, stop: tokio_util::sync::CancellationToken) {
    let slot = stats.receiver_slot();
    tokio::spawn(async move {
        // clients connect at random moments in real life: spread the pings over the interval
        let first = Duration::from_millis(rand_ms(15_000));
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + first, Duration::from_secs(15));
        loop {
            // biased, socket first: a wake-up for a frame polls nothing else (the stop token is
            // shared by every receiver; polling it on each frame would make them contend)
            tokio::select! {
                biased;
                m = ws.next() => match m {
                    Some(Ok(Message::Text(t))) => {
                        let s = t.as_str();
                        if s.contains("\"target\":\"ReceiveMessage\"")
                            && let Some(us) = latency_of(s, t0)
                        {
                            slot.lock().expect("lock").push(us);
                            stats.received.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => break,
                },
                _ = ping.tick() => {
                    if ws.send(Message::Text("{\"type\":6}\u{1e}".into())).await.is_err() { break; }
                }
                _ = stop.cancelled() => break,
            }
        }
        let _ = ws.close(None).await;
    });
}

struct Seeded {
    ids: Vec<Uuid>,
    tokens: Vec<String>,
}

async fn seed_users(
    pool: &sqlx::PgPool,
    tokens: &Tokens,
    n: usize,
    tag: &str,
) -> anyhow::Result<Seeded> {
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
    let phones: Vec<String> = (0..n).map(|i| format!("+7{tag}{i:07}")).collect();
    let names: Vec<String> = (0..n).map(|i| format!("bench {tag}-{i}")).collect();
    sqlx::query(
        "INSERT INTO messenger.users (id, phone, display_name, password_hash) \
         SELECT u.id, u.phone, u.name, 'no-login' \
         FROM unnest($1::uuid[], $2::text[], $3::text[]) AS u(id, phone, name)",
    )
    .bind(&ids)
    .bind(&phones)
    .bind(&names)
    .execute(pool)
    .await
    .context("seeding users")?;
    let tokens = ids
        .iter()
        .zip(&names)
        .zip(&phones)
        .map(|((id, name), phone)| {
            tokens
                .issue(&AuthUser {
                    id: *id,
                    name: name.clone(),
                    phone: phone.clone(),
                    claimed_role: Role::User,
                })
                .map(|t| t.token)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Seeded { ids, tokens })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let t0 = Instant::now();
    let stop = tokio_util::sync::CancellationToken::new();
    let pool = sqlx::PgPool::connect(&a.database_url).await?;
    let tokens = Tokens::new(&JwtSettings {
        secret: Secret::new(&a.secret),
        issuer: "messenger-api".into(),
        audience: "messenger-clients".into(),
        access_ttl: Duration::from_secs(3 * 3600),
        refresh_ttl: Duration::from_secs(3600),
    });
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let mut report = String::new();
    let line = |r: &mut String, s: String| {
        println!("{s}");
        r.push_str(&s);
        r.push('\n');
    };

    // ------------------------------------------------------------------ 1. idle connections
    eprintln!("seeding {} users …", a.connections + 1 + 2 * a.pairs);
    let crowd = seed_users(&pool, &tokens, a.connections, "1").await?;
    let owner = seed_users(&pool, &tokens, 1, "2").await?;
    let pairs = seed_users(&pool, &tokens, 2 * a.pairs, "3").await?;
    let rss_before = settled_rss(a.server_pid).await;
    eprintln!("opening {} idle hub connections …", a.connections);
    let stats_group = Arc::new(Stats::default());
    let opened = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let sem = Arc::new(Semaphore::new(200));
    let open_started = Instant::now();
    let mut joins = Vec::new();
    for token in crowd.tokens.clone() {
        let (base, sem, stats, stop, opened, failed) = (
            a.base.clone(),
            sem.clone(),
            stats_group.clone(),
            stop.clone(),
            opened.clone(),
            failed.clone(),
        );
        joins.push(tokio::spawn(async move {
            let _permit = sem.acquire().await;
            match connect(&base, &token).await {
                Ok(ws) => {
                    opened.fetch_add(1, Ordering::Relaxed);
                    receiver(ws, stats, t0, stop);
                }
                Err(e) => {
                    if failed.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("connect failed: {e:#}");
                    }
                }
            }
        }));
    }
    for j in joins {
        let _ = j.await;
    }
    let open_secs = open_started.elapsed().as_secs_f64();
    let rss_after = settled_rss(a.server_pid).await;
    let n_open = opened.load(Ordering::Relaxed);
    let per_conn_kib = (rss_after.saturating_sub(rss_before)) as f64 / n_open.max(1) as f64;
    line(&mut report, "## 1. Idle hub connections\n".into());
    line(&mut report, "| connections open | failed | opened in | server RSS before | server RSS after | **RSS per connection** | target |".into());
    line(&mut report, "|---|---|---|---|---|---|---|".into());
    line(
        &mut report,
        format!(
            "| {n_open} | {} | {open_secs:.1} s | {:.1} MiB | {:.1} MiB | **{per_conn_kib:.1} KiB** | ≤ 20 KB |\n",
            failed.load(Ordering::Relaxed),
            rss_before as f64 / 1024.0,
            rss_after as f64 / 1024.0,
        ),
    );

    // ------------------------------------------------------------------ 2. one message to a big group
    eprintln!("group of {} members …", a.connections + 1);
    let owner_token = owner.tokens[0].clone();
    let res: Value = http
        .post(format!("{}/api/chats", a.base))
        .bearer_auth(&owner_token)
        .json(&json!({ "type": "group", "title": "bench group", "memberIds": crowd.ids }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let group_id = res["id"].as_str().context("group id")?.to_owned();
    let mut sender = connect(&a.base, &owner_token).await?;
    // make sure membership reached the hub: a first message everyone receives
    let members = n_open;
    let mut incomplete = 0usize;
    for i in 0..=a.group_messages {
        let before = stats_group.received.load(Ordering::Relaxed);
        let inv = json!({ "type": 1, "invocationId": i.to_string(), "target": "SendMessage",
                          "arguments": [group_id, probe(t0)] });
        sender
            .send(Message::Text(format!("{inv}\u{1e}").into()))
            .await?;
        // drain the sender's own socket (its echo and the completion)
        let deadline = Instant::now() + Duration::from_secs(10);
        while stats_group.received.load(Ordering::Relaxed) < before + members
            && Instant::now() < deadline
        {
            tokio::select! {
                _ = sender.next() => {}
                _ = tokio::time::sleep(Duration::from_millis(2)) => {}
            }
        }
        let got = stats_group.received.load(Ordering::Relaxed) - before;
        if got < members && i > 0 {
            incomplete += 1;
        }
        if i == 0 {
            // warm-up message: not counted
            stats_group.take();
            continue;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let samples = stats_group.take();
    let (n, p50, p99, p999, max) = summary(samples);
    line(
        &mut report,
        format!(
            "## 2. One message to every member of a {}-member group\n",
            members + 1
        ),
    );
    line(
        &mut report,
        format!(
            "{} messages sent one after another through the hub (`SendMessage`: stored in Postgres, published to JetStream, fanned out), each to {members} connected members; latency = from the sender's WebSocket write to each member's receipt.\n",
            a.group_messages
        ),
    );
    line(&mut report, "| deliveries | p50 | **p99** | p99.9 | max | messages not delivered to everyone in 10 s | target |".into());
    line(&mut report, "|---|---|---|---|---|---|---|".into());
    line(
        &mut report,
        format!(
            "| {n} | {p50:.1} ms | **{p99:.1} ms** | {p999:.1} ms | {max:.1} ms | {} | p99 ≤ 100 ms |\n",
            incomplete
        ),
    );

    // ------------------------------------------------------------------ 3. 1:1 at a fixed rate
    eprintln!(
        "{} private chats, {} msg/s for {} s …",
        a.pairs, a.rate, a.rate_secs
    );
    for p in 0..a.pairs {
        let (x, y) = (pairs.ids[2 * p], pairs.ids[2 * p + 1]);
        let res = http
            .post(format!("{}/api/chats", a.base))
            .bearer_auth(&pairs.tokens[2 * p])
            .json(&json!({ "type": "private", "userId": y }))
            .send()
            .await?;
        anyhow::ensure!(
            res.status().is_success(),
            "private chat {x}: {}",
            res.status()
        );
    }
    let chat_of: Vec<String> = {
        let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT m.user_id, m.chat_id FROM messenger.chat_members m \
             JOIN messenger.chats c ON c.id = m.chat_id WHERE c.kind = 'private' AND m.user_id = ANY($1)",
        )
        .bind(&pairs.ids)
        .fetch_all(&pool)
        .await?;
        let by_user: HashMap<Uuid, Uuid> = rows.into_iter().collect();
        (0..a.pairs)
            .map(|p| by_user[&pairs.ids[2 * p]].to_string())
            .collect()
    };
    let stats_1to1 = Arc::new(Stats::default());
    for p in 0..a.pairs {
        let ws = connect(&a.base, &pairs.tokens[2 * p + 1]).await?;
        receiver(ws, stats_1to1.clone(), t0, stop.clone());
    }
    let sent_total = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let per_sender = a.rate as f64 / a.pairs as f64;
    let run_for = Duration::from_secs(a.rate_secs);
    let started = Instant::now();
    let mut senders = Vec::new();
    for (p, chat) in chat_of.iter().enumerate() {
        let mut ws = connect(&a.base, &pairs.tokens[2 * p]).await?;
        let chat = chat.clone();
        let (sent_total, errors) = (sent_total.clone(), errors.clone());
        senders.push(tokio::spawn(async move {
            let every = Duration::from_secs_f64(1.0 / per_sender);
            // spread the senders over the first interval
            tokio::time::sleep(every.mul_f64(p as f64 / 200.0 % 1.0)).await;
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut i = 0u64;
            while started.elapsed() < run_for {
                tokio::select! {
                    _ = tick.tick() => {
                        i += 1;
                        let inv = json!({ "type": 1, "invocationId": i.to_string(), "target": "SendMessage",
                                          "arguments": [chat, probe(t0)] });
                        if ws.send(Message::Text(format!("{inv}\u{1e}").into())).await.is_err() {
                            errors.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        sent_total.fetch_add(1, Ordering::Relaxed);
                    }
                    m = ws.next() => match m {
                        Some(Ok(Message::Text(t))) if t.as_str().contains("\"error\"") => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    }
                }
            }
            // collect the outstanding completions for a moment
            let until = Instant::now() + Duration::from_secs(3);
            while Instant::now() < until {
                tokio::select! {
                    m = ws.next() => if m.is_none() { break },
                    _ = tokio::time::sleep_until(until.into()) => break,
                }
            }
            let _ = ws.close(None).await;
        }));
    }
    for s in senders {
        let _ = s.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let sent = sent_total.load(Ordering::Relaxed);
    let samples = stats_1to1.take();
    let (n, p50, p99, p999, max) = summary(samples);
    line(
        &mut report,
        format!("## 3. 1:1 messages at {} msg/s\n", a.rate),
    );
    line(
        &mut report,
        format!(
            "{} private chats; one sender per chat invokes `SendMessage` at an even pace ({} msg/s together) for {} s while the {} idle connections stay open; latency = from the sender's write to the partner's receipt.\n",
            a.pairs, a.rate, a.rate_secs, n_open
        ),
    );
    line(
        &mut report,
        "| sent | achieved rate | delivered | errors | p50 | **p99** | p99.9 | max | target |"
            .into(),
    );
    line(&mut report, "|---|---|---|---|---|---|---|---|---|".into());
    line(
        &mut report,
        format!(
            "| {sent} | {:.0} msg/s | {n} | {} | {p50:.1} ms | **{p99:.1} ms** | {p999:.1} ms | {max:.1} ms | p99 ≤ 20 ms |\n",
            sent as f64 / elapsed.min(a.rate_secs as f64).max(0.001),
            errors.load(Ordering::Relaxed)
        ),
    );

    // ------------------------------------------------------------------ 4. POST /api/messages
    eprintln!(
        "POST /api/messages, {} concurrent clients for {} s …",
        a.http_concurrency, a.http_secs
    );
    let ok = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let lat = Arc::new(Mutex::new(Vec::<u64>::new()));
    let started = Instant::now();
    let run_for = Duration::from_secs(a.http_secs);
    let mut workers = Vec::new();
    for w in 0..a.http_concurrency {
        let p = w % a.pairs;
        let (http, base, token, chat) = (
            http.clone(),
            a.base.clone(),
            pairs.tokens[2 * p].clone(),
            chat_of[p].clone(),
        );
        let (ok, bad, lat) = (ok.clone(), bad.clone(), lat.clone());
        workers.push(tokio::spawn(async move {
            let mut local = Vec::new();
            while started.elapsed() < run_for {
                let t = Instant::now();
                let r = http
                    .post(format!("{base}/api/messages"))
                    .bearer_auth(&token)
                    .json(&json!({ "chatId": chat, "text": probe(t0) }))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 201 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        local.push(t.elapsed().as_micros() as u64);
                    }
                    _ => {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            lat.lock().expect("lock").extend(local);
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let n_ok = ok.load(Ordering::Relaxed);
    let (_, p50, p99, _, max) = summary(std::mem::take(&mut *lat.lock().expect("lock")));
    line(
        &mut report,
        "## 4. `POST /api/messages` throughput\n".into(),
    );
    line(
        &mut report,
        format!(
            "{} concurrent HTTP/1.1 keep-alive clients, each posting to its own private chat for {} s; every request is authenticated, stored in Postgres (one INSERT, a committed transaction), pushed to the hub and published to JetStream (acknowledged) before the 201.\n",
            a.http_concurrency, a.http_secs
        ),
    );
    line(
        &mut report,
        "| requests 201 | errors | **throughput** | p50 | p99 | max |".into(),
    );
    line(&mut report, "|---|---|---|---|---|---|".into());
    line(
        &mut report,
        format!(
            "| {n_ok} | {} | **{:.0} req/s** | {p50:.1} ms | {p99:.1} ms | {max:.1} ms |\n",
            bad.load(Ordering::Relaxed),
            n_ok as f64 / elapsed
        ),
    );

    stop.cancel();
    let final_rss = rss_kib(a.server_pid);
    line(
        &mut report,
        format!(
            "Server RSS at the end: {:.1} MiB.\n",
            final_rss as f64 / 1024.0
        ),
    );
    if let Some(dir) = std::path::Path::new(&a.out).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(format!("{}.part", a.out), &report)?;
    Ok(())
}
