//! `amocrm-bench`: load generator for `bench/amocrm-webhooks.sh` (loopback only, bounded in time
//! and request count). Not part of the service image or of `cargo test`.
//!
//! * `throughput`: N connections post amoCRM form webhooks (L leads × F custom fields, unique
//!   lead ids per request so every event is really stored by JetStream) as fast as answered;
//!   prints requests/s and latency percentiles as JSON.
//! * `lag`: posts at a fixed rate and samples the store consumer's backlog (pending + unacked
//!   events) every 250 ms; prints the rate reached, the largest backlog, the backlog when the
//!   load stops and how long the consumer takes to drain it.
//! * `cleanup`: deletes the prefixed streams.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde_json::json;
use service_kit::bus::Bus;
use tokio::sync::Semaphore;

#[derive(Parser)]
#[command(about = "Load generator for amocrm-sync (loopback only)")]
struct Args {
    /// Webhook URL: `http://127.0.0.1:<port>/api/webhooks/amo/<token>`.
    #[arg(long)]
    url: String,
    /// Leads per webhook.
    #[arg(long, default_value_t = 10)]
    leads: usize,
    /// Custom fields per lead.
    #[arg(long, default_value_t = 20)]
    fields: usize,
    /// Account subdomain the service expects.
    #[arg(long, default_value = "bench")]
    subdomain: String,
    /// Hard limit on requests sent.
    #[arg(long, default_value_t = 500_000)]
    max_requests: u64,
    /// First lead id (each request uses `leads` new ids).
    #[arg(long, default_value_t = 1_000_000)]
    first_id: u64,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Closed loop: `connections` workers for `seconds`.
    Throughput {
        #[arg(long, default_value_t = 64)]
        connections: usize,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// Open loop at `rate` webhooks/s for `seconds`, sampling the consumer backlog.
    Lag {
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
        #[arg(long)]
        prefix: String,
        /// Longest wait for the backlog to drain after the load, in seconds.
        #[arg(long, default_value_t = 300)]
        drain_limit: u64,
    },
    /// Deletes the streams of `prefix`.
    Cleanup {
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
        #[arg(long)]
        prefix: String,
    },
}

/// The form body with unique lead ids, in amoCRM's encoding.
struct Body {
    pieces: Vec<String>,
    leads: usize,
}

impl Body {
    fn new(leads: usize, fields: usize, subdomain: &str) -> Self {
        // Pieces between the lead ids: the ids are the only thing that varies.
        let enc = |k: &str, v: &str| {
            let mut s = url_encode(k);
            s.push('=');
            s.push_str(&url_encode(v));
            s
        };
        let now = 1_795_348_800_i64;
        let mut pieces = Vec::with_capacity(leads + 1);
        let mut cur = String::new();
        for n in 0..leads {
            let p = format!("leads[update][{n}]");
            if n > 0 {
                cur.push('&');
            }
            cur.push_str(&url_encode(&format!("{p}[id]")));
            cur.push('=');
            pieces.push(std::mem::take(&mut cur));
            let mut rest = vec![
                enc(
                    &format!("{p}[name]"),
                    &format!("Сделка №{n} — квартира у метро 🏠"),
                ),
                enc(&format!("{p}[status_id]"), "3"),
                enc(&format!("{p}[old_status_id]"), "2"),
                enc(&format!("{p}[price]"), "12500000"),
                enc(&format!("{p}[responsible_user_id]"), "504141"),
                enc(&format!("{p}[last_modified]"), &now.to_string()),
                enc(&format!("{p}[modified_user_id]"), "504141"),
                enc(&format!("{p}[date_create]"), &(now - 3600).to_string()),
                enc(&format!("{p}[pipeline_id]"), "7331"),
                enc(&format!("{p}[account_id]"), "29085431"),
            ];
            for f in 0..fields {
                let fp = format!("{p}[custom_fields][{f}]");
                let id = 123_458 + f as i64;
                rest.push(enc(&format!("{fp}[id]"), &id.to_string()));
                rest.push(enc(&format!("{fp}[name]"), &format!("Поле {f}")));
                rest.push(enc(
                    &format!("{fp}[values][0][value]"),
                    &format!("значение {f} utm-{n}"),
                ));
            }
            cur.push('&');
            cur.push_str(&rest.join("&"));
        }
        cur.push('&');
        cur.push_str(&enc("account[subdomain]", subdomain));
        cur.push('&');
        cur.push_str(&enc("account[id]", "29085431"));
        pieces.push(cur);
        Self { pieces, leads }
    }

    fn render(&self, first_id: u64) -> String {
        let mut s = String::with_capacity(
            self.pieces.iter().map(String::len).sum::<usize>() + 16 * self.leads,
        );
        for (n, piece) in self.pieces.iter().enumerate() {
            s.push_str(piece);
            if n < self.leads {
                s.push_str(&(first_id + n as u64).to_string());
            }
        }
        s
    }
}

fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.url.starts_with("http://127.") || args.url.starts_with("http://localhost"),
        "loopback targets only"
    );
    let body = Arc::new(Body::new(args.leads, args.fields, &args.subdomain));
    let body_bytes = body.render(args.first_id).len();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(30))
        .build()?;
    let next_id = Arc::new(AtomicU64::new(args.first_id));
    let sent = Arc::new(AtomicU64::new(0));
    let post = {
        let (http, body, url, next_id, sent) = (
            http.clone(),
            body.clone(),
            args.url.clone(),
            next_id.clone(),
            sent.clone(),
        );
        let leads = args.leads as u64;
        let max = args.max_requests;
        move || {
            let (http, body, url, next_id, sent) = (
                http.clone(),
                body.clone(),
                url.clone(),
                next_id.clone(),
                sent.clone(),
            );
            async move {
                if sent.fetch_add(1, Ordering::Relaxed) >= max {
                    return None;
                }
                let first = next_id.fetch_add(leads, Ordering::Relaxed);
                let payload = body.render(first);
                let started = Instant::now();
                let ok = http
                    .post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(payload)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                Some((ok, started.elapsed().as_micros() as u64))
            }
        }
    };
    match args.mode {
        Mode::Throughput {
            connections,
            seconds,
        } => {
            let deadline = Instant::now() + Duration::from_secs(seconds);
            let started = Instant::now();
            let workers: Vec<_> = (0..connections)
                .map(|_| {
                    let post = post.clone();
                    tokio::spawn(async move {
                        let mut lat = Vec::new();
                        let mut errors = 0u64;
                        while Instant::now() < deadline {
                            match post().await {
                                Some((true, us)) => lat.push(us),
                                Some((false, _)) => errors += 1,
                                None => break,
                            }
                        }
                        (lat, errors)
                    })
                })
                .collect();
            let mut lat = Vec::new();
            let mut errors = 0;
            for w in workers {
                let (l, e) = w.await?;
                lat.extend(l);
                errors += e;
            }
            let elapsed = started.elapsed().as_secs_f64();
            lat.sort_unstable();
            println!(
                "{}",
                json!({
                    "mode": "throughput", "connections": connections, "seconds": elapsed,
                    "body_bytes": body_bytes, "leads_per_webhook": args.leads, "fields_per_lead": args.fields,
                    "ok": lat.len(), "errors": errors,
                    "webhooks_per_s": lat.len() as f64 / elapsed,
                    "events_per_s": (lat.len() * args.leads) as f64 / elapsed,
                    "latency_ms": {"p50": percentile(&lat, 0.50), "p90": percentile(&lat, 0.90),
                                   "p99": percentile(&lat, 0.99), "max": percentile(&lat, 1.0)}
                })
            );
        }
        Mode::Lag {
            rate,
            seconds,
            nats_url,
            prefix,
            drain_limit,
        } => {
            let bus = Bus::connect(&nats_url, &prefix, "amocrm-bench").await?;
            let js = bus.jetstream().clone();
            let stream_name = bus.events_stream();
            let backlog = move || {
                let js = js.clone();
                let stream_name = stream_name.clone();
                async move {
                    let s = js.get_stream(&stream_name).await.ok()?;
                    let c = s
                        .consumer_info(amocrm_sync::consumers::sync::DURABLE)
                        .await
                        .ok()?;
                    Some(c.num_pending + c.num_ack_pending as u64)
                }
            };
            let permits = Arc::new(Semaphore::new(512));
            let ok = Arc::new(AtomicU64::new(0));
            let failed = Arc::new(AtomicU64::new(0));
            let started = Instant::now();
            let stop = started + Duration::from_secs(seconds);
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut samples: Vec<(f64, u64)> = Vec::new();
            let mut next_sample = Instant::now();
            let mut lat = Vec::new();
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
            while Instant::now() < stop {
                tick.tick().await;
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let (post, ok, failed, tx) = (post.clone(), ok.clone(), failed.clone(), tx.clone());
                tokio::spawn(async move {
                    match post().await {
                        Some((true, us)) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            let _ = tx.send(us);
                        }
                        Some((false, _)) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        None => {}
                    }
                    drop(permit);
                });
                if Instant::now() >= next_sample {
                    next_sample += Duration::from_millis(250);
                    let b = tokio::time::timeout(Duration::from_millis(200), backlog())
                        .await
                        .ok()
                        .flatten();
                    if let Some(b) = b {
                        samples.push((started.elapsed().as_secs_f64(), b));
                    }
                }
            }
            let load_secs = started.elapsed().as_secs_f64();
            // Let the requests in flight finish.
            let _ = permits.acquire_many(512).await;
            drop(tx);
            while let Some(us) = rx.recv().await {
                lat.push(us);
            }
            lat.sort_unstable();
            let at_stop = backlog().await.unwrap_or(0);
            let drain_started = Instant::now();
            let mut drained = None;
            while drain_started.elapsed() < Duration::from_secs(drain_limit) {
                match backlog().await {
                    Some(0) => {
                        drained = Some(drain_started.elapsed().as_secs_f64());
                        break;
                    }
                    Some(b) => samples.push((started.elapsed().as_secs_f64(), b)),
                    None => {}
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            let during: Vec<u64> = samples
                .iter()
                .filter(|(t, _)| *t <= load_secs)
                .map(|(_, b)| *b)
                .collect();
            let max_during = during.iter().copied().max().unwrap_or(0);
            let n = ok.load(Ordering::Relaxed);
            // Backlog over time, one sample per second of the load.
            let per_second: Vec<u64> = (1..=seconds)
                .filter_map(|s| {
                    samples
                        .iter()
                        .rev()
                        .find(|(t, _)| *t <= s as f64)
                        .map(|(_, b)| *b)
                })
                .collect();
            println!(
                "{}",
                json!({
                    "mode": "lag", "target_rate": rate, "seconds": load_secs,
                    "ok": n, "errors": failed.load(Ordering::Relaxed),
                    "webhooks_per_s": n as f64 / load_secs,
                    "events_per_s": (n as usize * args.leads) as f64 / load_secs,
                    "latency_ms": {"p50": percentile(&lat, 0.50), "p99": percentile(&lat, 0.99), "max": percentile(&lat, 1.0)},
                    "backlog_max_during_load": max_during,
                    "backlog_at_stop": at_stop,
                    "backlog_per_second": per_second,
                    "drain_seconds": drained,
                })
            );
        }
        Mode::Cleanup { nats_url, prefix } => {
            let bus = Bus::connect(&nats_url, &prefix, "amocrm-bench").await?;
            bus.delete_streams().await?;
        }
    }
    Ok(())
}
