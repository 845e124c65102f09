//! The `okdesk-bridge` binary: `--help` and `check` against the sandbox.

use std::process::Command;

use sandbox::Sandbox;

const BIN: &str = env!("CARGO_BIN_EXE_okdesk-bridge");

#[test]
fn help_lists_every_variable() {
    let out = Command::new(BIN).arg("--help").output().expect("runs");
    let help = String::from_utf8_lossy(&out.stdout);
    for v in [
        "OKDESK_API_URL",
        "OKDESK_API_TOKEN",
        "OKDESK_WEBHOOK_TOKEN",
        "OKDESK_WEBHOOK_SECRET",
        "OKDESK_INN_PARAMETER_CODE",
        "OKDESK_POLL_INTERVAL_SECS",
        "dlq",
    ] {
        assert!(help.contains(v), "--help misses {v}:\n{help}");
    }
}

async fn check(sandbox: &Sandbox, env: &testkit::TestEnv, token: &str) -> (Option<i32>, String) {
    let out = tokio::process::Command::new(BIN)
        .env_clear()
        .envs([
            ("DATABASE_URL", env.database_url.clone()),
            ("NATS_URL", testkit::nats_url()),
            ("NATS_SUBJECT_PREFIX", env.prefix.clone()),
            ("OKDESK_API_URL", sandbox.okdesk_api_url()),
            ("OKDESK_API_TOKEN", token.to_owned()),
            (
                "OKDESK_WEBHOOK_TOKEN",
                "okdesk-hook-3f9a1c7e5b2d".to_owned(),
            ),
        ])
        .arg("check")
        .output()
        .await
        .expect("runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[tokio::test]
async fn check_tries_the_token_and_the_company_search_and_names_the_cause() {
    let sandbox = Sandbox::start().await.unwrap();
    let env = testkit::TestEnv::new("okdesk_bin").await;
    let token = sandbox.options().okdesk_api_token.clone();
    let (code, out) = check(&sandbox, &env, &token).await;
    assert_eq!(code, Some(0), "{out}");
    for line in [
        "DATABASE_URL: ok",
        "NATS_URL: ok",
        "OKDESK_API_TOKEN: ok (the API answers",
        "OKDESK_INN_PARAMETER_CODE: ok (company search",
    ] {
        assert!(out.contains(line), "missing `{line}`:\n{out}");
    }
    // A contact person's key: company search is not available.
    sandbox.okdesk_deny_company_search(true);
    let (code, out) = check(&sandbox, &env, &token).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("OKDESK_INN_PARAMETER_CODE: FAILED"), "{out}");
    assert!(out.contains("contact persons"), "{out}");
    // A wrong token.
    let (code, out) = check(&sandbox, &env, "wrong-okdesk-token").await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("OKDESK_API_TOKEN: FAILED") && out.contains("Settings → API"),
        "{out}"
    );
    assert!(
        !out.contains("wrong-okdesk-token"),
        "the token is never printed: {out}"
    );
}
