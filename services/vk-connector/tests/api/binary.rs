//! The `vk-connector` binary itself: `--help`, refusal to start on a missing secret, `check`,
//! `healthcheck`, and a clean exit on SIGTERM.

use std::process::{Command, Stdio};
use std::time::Duration;

use sandbox::Sandbox;

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_vk-connector");

#[test]
fn help_lists_every_variable() {
    let out = Command::new(BIN).arg("--help").output().expect("runs");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "VK_GROUP_ID",
        "VK_ACCESS_TOKEN",
        "VK_SECRET",
        "VK_CONFIRMATION",
        "VK_API_VERSION",
        "VK_CALLBACK_ID",
        "VK_API_URL",
        "VK_LONG_POLL",
        "CHATWOOT_BASE_URL",
        "CHATWOOT_API_ACCESS_TOKEN",
        "CHATWOOT_ACCOUNT_ID",
        "CHATWOOT_INBOX_ID",
        "CHATWOOT_WEBHOOK_ID_VK",
        "CHATWOOT_WEBHOOK_SECRET",
        "DATABASE_URL",
        "NATS_URL",
        "LOG_FORMAT",
        "LOG_LEVEL",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "PORT",
        "HOST",
    ] {
        assert!(
            help.contains(&format!("[env: {var}")),
            "--help misses {var}:\n{help}"
        );
    }
    for cmd in ["serve", "migrate", "check", "dlq", "healthcheck"] {
        assert!(help.contains(cmd), "--help misses the `{cmd}` command");
    }
}

#[test]
fn a_missing_secret_stops_it_with_one_line_naming_the_variable() {
    let out = Command::new(BIN)
        .env_clear()
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("VK_GROUP_ID", "1")
        .env("VK_ACCESS_TOKEN", "your_vk_access_token")
        .env("LOG_FORMAT", "json")
        .arg("serve")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("VK_ACCESS_TOKEN"), "{stderr}");
    assert!(
        !stderr.contains("your_vk_access_token"),
        "the value is not echoed"
    );
}

#[tokio::test]
async fn sigterm_drains_and_exits_cleanly() {
    let sandbox = Sandbox::start().await.unwrap();
    let env = test_env().await;
    let (db_url, prefix) = (env.database_url.clone(), env.prefix.clone());
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let o = sandbox.options().clone();
    let child = tokio::process::Command::new(BIN)
        .env_clear()
        .envs([
            ("DATABASE_URL", db_url.as_str()),
            ("NATS_URL", nats().as_str()),
            ("NATS_SUBJECT_PREFIX", prefix.as_str()),
            ("HOST", "127.0.0.1"),
            ("PORT", port.to_string().as_str()),
            ("LOG_FORMAT", "json"),
            ("VK_GROUP_ID", GROUP_ID.to_string().as_str()),
            ("VK_ACCESS_TOKEN", o.vk_access_token.as_str()),
            ("VK_SECRET", VK_SECRET),
            ("VK_CONFIRMATION", CONFIRMATION),
            ("VK_CALLBACK_ID", CALLBACK_ID),
            ("VK_API_URL", sandbox.vk_api_url().as_str()),
            ("CHATWOOT_BASE_URL", sandbox.chatwoot_url().as_str()),
            ("CHATWOOT_API_ACCESS_TOKEN", o.chatwoot_api_token.as_str()),
            ("CHATWOOT_ACCOUNT_ID", "1"),
            ("CHATWOOT_INBOX_ID", "1"),
            ("CHATWOOT_WEBHOOK_ID_VK", WEBHOOK_ID),
        ])
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starts");
    let http = reqwest::Client::new();
    let ready = format!("http://127.0.0.1:{port}/ready");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(r) = http.get(&ready).send().await
            && r.status() == 200
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A message in flight while the signal arrives is still answered and relayed.
    let res = http
        .post(format!("http://127.0.0.1:{port}/vk/callback/{CALLBACK_ID}"))
        .json(&message_new(USER_ID, "перед остановкой"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "ok");
    sandbox
        .wait_until(WAIT, |s| all_messages(s).len() == 1)
        .await
        .expect("relayed before shutdown");
    let pid = child.id().expect("running").to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("exits within the wait")
        .unwrap();
    assert!(out.status.success(), "exit status {:?}", out.status);
    let logs = String::from_utf8_lossy(&out.stdout);
    // Paths carry the callback secret: logs name the route template only.
    assert!(
        !logs.contains(CALLBACK_ID),
        "the callback id leaked into the logs"
    );
    assert!(logs.contains("/vk/callback/{callback_id}"), "{logs}");
    assert!(logs.contains("shutdown signal received"), "{logs}");
    assert!(logs.contains("vk-connector stopped"), "{logs}");
    // Every log line is one JSON object naming the service.
    for line in logs.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(
            v.get("level").is_some() && v.get("timestamp").is_some(),
            "{line}"
        );
        assert_eq!(v["service"], "vk-connector", "{line}");
    }
    // `env` drops the database and the streams.
}

/// The environment of a binary run against `env`'s database and NATS prefix and the sandbox.
fn binary_env(sandbox: &Sandbox, env: &testkit::TestEnv, port: u16) -> Vec<(String, String)> {
    let o = sandbox.options();
    [
        ("DATABASE_URL", env.database_url.clone()),
        ("NATS_URL", nats()),
        ("NATS_SUBJECT_PREFIX", env.prefix.clone()),
        ("HOST", "127.0.0.1".into()),
        ("PORT", port.to_string()),
        ("LOG_FORMAT", "json".into()),
        ("VK_GROUP_ID", GROUP_ID.to_string()),
        ("VK_ACCESS_TOKEN", o.vk_access_token.clone()),
        ("VK_SECRET", VK_SECRET.into()),
        ("VK_CONFIRMATION", CONFIRMATION.into()),
        ("VK_CALLBACK_ID", CALLBACK_ID.into()),
        ("VK_API_URL", sandbox.vk_api_url()),
        ("CHATWOOT_BASE_URL", sandbox.chatwoot_url()),
        ("CHATWOOT_API_ACCESS_TOKEN", o.chatwoot_api_token.clone()),
        ("CHATWOOT_ACCOUNT_ID", o.chatwoot_account_id.to_string()),
        ("CHATWOOT_INBOX_ID", o.chatwoot_inbox_id.to_string()),
        ("CHATWOOT_WEBHOOK_ID_VK", WEBHOOK_ID.into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

#[tokio::test]
async fn check_prints_one_line_per_dependency_and_names_the_failing_token() {
    let sandbox = Sandbox::start().await.unwrap();
    sandbox.set_vk_group(GROUP_ID, "Магазин «Ромашка»");
    let env = test_env().await;
    let vars = binary_env(&sandbox, &env, 0);
    let run = |overrides: &[(&str, &str)]| {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.env_clear()
            .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        for (k, v) in overrides {
            cmd.env(k, v);
        }
        cmd.arg("check").output()
    };
    let out = run(&[]).await.expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for line in [
        "DATABASE_URL: ok",
        "NATS_URL: ok",
        "VK_ACCESS_TOKEN: ok (community «Магазин «Ромашка»»",
        "CHATWOOT_API_ACCESS_TOKEN: ok",
    ] {
        assert!(stdout.contains(line), "missing `{line}`:\n{stdout}");
    }
    let out = run(&[("VK_ACCESS_TOKEN", "revoked")]).await.expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("VK_ACCESS_TOKEN: FAILED")
            && stdout.contains("issue a new community token"),
        "{stdout}"
    );
    assert!(stdout.contains("CHATWOOT_API_ACCESS_TOKEN: ok"), "{stdout}");
}

#[tokio::test]
async fn healthcheck_asks_the_running_service() {
    let sandbox = Sandbox::start().await.unwrap();
    let env = test_env().await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let vars = binary_env(&sandbox, &env, port);
    let healthcheck = || {
        Command::new(BIN)
            .env_clear()
            .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .arg("healthcheck")
            .output()
            .expect("runs")
    };
    // Nothing listens yet: not healthy.
    assert!(!healthcheck().status.success());
    let mut child = tokio::process::Command::new(BIN)
        .env_clear()
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starts");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !healthcheck().status.success() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().await.unwrap();
}
