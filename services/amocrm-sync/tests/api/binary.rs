//! The binary itself: --help names every variable, a missing secret stops it with the name.

use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_amocrm-sync"));
    // Never read a developer's .env or environment.
    c.current_dir(std::env::temp_dir()).env_clear();
    c
}

#[test]
fn help_lists_the_configuration() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "AMOCRM_DOMAIN",
        "AMOCRM_CLIENT_ID",
        "AMOCRM_CLIENT_SECRET",
        "AMOCRM_REDIRECT_URI",
        "AMOCRM_WEBHOOK_TOKEN",
        "AMOCRM_BASE_URL",
        "AMOCRM_STATUS_MAP",
        "AMOCRM_MAPPING_FILE",
        "AMOCRM_RETRY_DELAYS_SECS",
        "AMOCRM_LEGACY_JSON_WEBHOOK",
        "AMOCRM_MAX_ENTRIES_PER_WEBHOOK",
        "DATABASE_URL",
        "NATS_URL",
    ] {
        assert!(help.contains(var), "{var} missing from --help");
    }
    for cmd in ["serve", "migrate", "check", "dlq", "oauth-url"] {
        assert!(help.contains(cmd), "{cmd} missing from --help");
    }
}

#[test]
fn a_placeholder_secret_stops_it_with_the_variable_named() {
    let out = bin()
        .args(["serve"])
        .envs([
            ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none"),
            ("AMOCRM_DOMAIN", "example.amocrm.ru"),
            ("AMOCRM_CLIENT_ID", "id"),
            ("AMOCRM_CLIENT_SECRET", "your_amocrm_secret"),
            (
                "AMOCRM_REDIRECT_URI",
                "https://amocrm.example.com/api/auth/amo/callback",
            ),
            ("AMOCRM_WEBHOOK_TOKEN", "t0k3n"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("AMOCRM_CLIENT_SECRET"), "{err}");
    assert!(!err.contains("your_amocrm_secret"), "{err}");
}

#[test]
fn a_short_webhook_token_stops_it_with_one_line_naming_the_variable() {
    let out = bin()
        .args(["serve"])
        .envs([
            ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none"),
            ("AMOCRM_DOMAIN", "example.amocrm.ru"),
            ("AMOCRM_CLIENT_ID", "id"),
            ("AMOCRM_CLIENT_SECRET", "s3cr3t-amo-9f2c"),
            (
                "AMOCRM_REDIRECT_URI",
                "https://amocrm.example.com/api/auth/amo/callback",
            ),
            ("AMOCRM_WEBHOOK_TOKEN", "t0k3n-short"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("AMOCRM_WEBHOOK_TOKEN"), "{err}");
    assert!(err.contains("at least 16"), "{err}");
    assert!(!err.contains("t0k3n-short"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
