//! The `telegram-bot` binary: `--help`, `check`, and the webhook commands, against the sandbox.

use std::process::Command;

use sandbox::Sandbox;

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_telegram-bot");

#[test]
fn help_lists_every_variable_of_the_old_bot_and_the_commands() {
    let out = Command::new(BIN).arg("--help").output().expect("runs");
    let help = String::from_utf8_lossy(&out.stdout);
    for v in [
        "BOT_TOKEN",
        "BOT_GROUP_ID",
        "BOT_EMOJI_ID",
        "BOT_DEV_ID",
        "WEBHOOK_ENABLED",
        "WEBHOOK_URL",
        "WEBHOOK_PATH",
        "WEBHOOK_SECRET",
        "TELEGRAM_API_URL",
        "set-webhook",
        "delete-webhook",
        "webhook-info",
        "dlq",
    ] {
        assert!(help.contains(v), "--help misses {v}:\n{help}");
    }
}

fn binary_env(sandbox: &Sandbox, env: &testkit::TestEnv) -> Vec<(String, String)> {
    let o = sandbox.options();
    [
        ("DATABASE_URL", env.database_url.clone()),
        ("NATS_URL", testkit::nats_url()),
        ("NATS_SUBJECT_PREFIX", env.prefix.clone()),
        ("LOG_FORMAT", "json".into()),
        ("BOT_TOKEN", o.telegram_bot_token.clone()),
        ("BOT_GROUP_ID", o.telegram_group_id.to_string()),
        ("TELEGRAM_API_URL", sandbox.telegram_api_url()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

async fn run(
    vars: &[(String, String)],
    overrides: &[(&str, &str)],
    args: &[&str],
) -> (Option<i32>, String) {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.env_clear()
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    for (k, v) in overrides {
        cmd.env(k, v);
    }
    let out = cmd.args(args).output().await.expect("runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[tokio::test]
async fn check_says_whether_the_bot_may_manage_topics() {
    let sandbox = Sandbox::start().await.unwrap();
    let env = testkit::TestEnv::new("tg_bin").await;
    let vars = binary_env(&sandbox, &env);
    let (code, out) = run(&vars, &[], &["check"]).await;
    assert_eq!(code, Some(0), "{out}");
    for line in [
        "DATABASE_URL: ok",
        "NATS_URL: ok",
        "BOT_TOKEN: ok (bot @",
        "BOT_GROUP_ID: ok",
        "allowed to manage topics",
    ] {
        assert!(out.contains(line), "missing `{line}`:\n{out}");
    }
    sandbox.telegram_set_bot_rights(true, false);
    let (code, out) = run(&vars, &[], &["check"]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("BOT_GROUP_ID: FAILED") && out.contains("Manage topics"),
        "{out}"
    );
    sandbox.telegram_set_bot_rights(false, false);
    let (_, out) = run(&vars, &[], &["check"]).await;
    assert!(out.contains("not an administrator"), "{out}");
    let (code, out) = run(
        &vars,
        &[("BOT_TOKEN", "7000000001:wrong-secret")],
        &["check"],
    )
    .await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("BOT_TOKEN: FAILED") && out.contains("@BotFather"),
        "{out}"
    );
    assert!(
        !out.contains("wrong-secret"),
        "the token is never printed: {out}"
    );
}

#[tokio::test]
async fn the_webhook_commands_set_show_and_delete_it() {
    let sandbox = Sandbox::start().await.unwrap();
    let env = testkit::TestEnv::new("tg_bin").await;
    let vars = binary_env(&sandbox, &env);
    let hook = [
        ("WEBHOOK_ENABLED", "true"),
        ("WEBHOOK_URL", "https://tg.example.com"),
        ("WEBHOOK_SECRET", WEBHOOK_SECRET),
    ];
    let (code, out) = run(&vars, &hook, &["set-webhook"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("https://tg.example.com/telegram/webhook"),
        "{out}"
    );
    assert_eq!(
        sandbox.telegram_webhook(),
        Some((
            "https://tg.example.com/telegram/webhook".to_owned(),
            Some(WEBHOOK_SECRET.to_owned())
        ))
    );
    let (code, out) = run(&vars, &[], &["webhook-info"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("url: https://tg.example.com/telegram/webhook"),
        "{out}"
    );
    assert!(!out.contains(WEBHOOK_SECRET), "{out}");
    let (code, out) = run(&vars, &[], &["delete-webhook"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(sandbox.telegram_webhook(), None);
    let (_, out) = run(&vars, &[], &["webhook-info"]).await;
    assert!(out.contains("no webhook set"), "{out}");
    // set-webhook without webhook settings says what is missing.
    let (code, out) = run(&vars, &[], &["set-webhook"]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("WEBHOOK_ENABLED=true"), "{out}");
}

#[tokio::test]
async fn with_nats_down_the_webhook_answers_503_without_internal_text() {
    let app = spawn_app_with(Options {
        webhook: true,
        ..Options::default()
    })
    .await;
    app.state.bus.delete_streams().await.unwrap();
    let body = serde_json::json!({
        "update_id": 77,
        "message": {"message_id": 1, "date": 1_764_000_000,
                    "chat": {"id": 5_000_001, "type": "private", "first_name": "Ivan"},
                    "from": {"id": 5_000_001, "is_bot": false, "first_name": "Ivan"},
                    "text": "hello"}
    });
    let res = app
        .post_webhook(Some(WEBHOOK_SECRET), body.to_string())
        .await;
    assert_eq!(res.status(), 503, "Telegram must retry");
    let text = res.text().await.unwrap();
    assert!(
        text.contains(service_kit::http_error::UNAVAILABLE_TEXT),
        "{text}"
    );
    for internal in ["stream", "nats", "jetstream", "publish"] {
        assert!(
            !text.to_lowercase().contains(internal),
            "`{internal}` leaked: {text}"
        );
    }
}
