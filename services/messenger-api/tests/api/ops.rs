//! Health, readiness, metrics, OpenAPI and Swagger UI (served from the binary), `/` → Swagger,
//! a 5xx that tells nothing internal, and the binary's command line (help, refusing a missing
//! secret, admin and invite commands, check, dlq).

use std::process::Command;

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn health_ready_metrics_and_docs() {
    let app = spawn_app().await;
    let health = json(app.get("/health", None).await).await;
    assert_eq!(health["ok"], true);
    assert_eq!(health["service"], "messenger-api");
    let ready = json(app.get("/ready", None).await).await;
    assert_eq!(ready["ok"], true, "{ready}");
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(metrics.contains("http_requests_total") || metrics.is_empty() || metrics.contains('#'));

    let root = app.get("/", None).await;
    assert_eq!(root.status(), 307);
    assert_eq!(root.headers()["location"], "/swagger");
    let swagger = app.get("/swagger/", None).await;
    assert_eq!(swagger.status(), 200);
    assert!(swagger.text().await.unwrap().contains("swagger-ui"));
    let init = app.get("/swagger/swagger-initializer.js", None).await;
    assert_eq!(init.status(), 200);
    assert!(init.text().await.unwrap().contains("/openapi.json"));

    let doc: Value = json(app.get("/openapi.json", None).await).await;
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/auth/register",
        "/api/auth/login",
        "/api/auth/refresh",
        "/api/auth/logout",
        "/api/chats",
        "/api/chats/{id}",
        "/api/chats/{id}/read",
        "/api/messages",
        "/api/messages/{id}",
        "/api/messages/audio",
        "/api/files/{id}",
        "/api/admin/users",
        "/api/admin/users/{id}",
        "/api/admin/invites",
        "/hubs/chat/negotiate",
        "/hubs/chat",
    ] {
        assert!(paths.contains_key(p), "{p} documented");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["MessageDto"]["properties"]["chatId"].is_object());
    app.cleanup().await;
}

#[tokio::test]
async fn a_database_error_is_a_5xx_that_tells_nothing_internal() {
    let app = spawn_app().await;
    let a = app.user("Анна").await;
    assert_eq!(app.get("/api/chats", Some(&a.token)).await.status(), 200);
    // the chats table goes away under the running app
    sqlx::query("ALTER TABLE messenger.chats RENAME TO chats_gone")
        .execute(app.state.store.pool())
        .await
        .unwrap();
    let res = app.get("/api/chats", Some(&a.token)).await;
    assert_eq!(res.status(), 500);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let text = res.text().await.unwrap();
    for internal in ["relation", "messenger.", "sqlx", "database", "chats_gone"] {
        assert!(!text.contains(internal), "{internal:?} in the body: {text}");
    }
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"], "internal error");
    assert_eq!(
        body["requestId"],
        request_id.as_str(),
        "the id to quote: {text}"
    );
    // a 4xx keeps its shape: no request id, the message the client can act on
    let v = expect_error(app.get("/api/chats", None).await, 401).await;
    assert!(v.get("requestId").is_none(), "{v}");
    app.cleanup().await;
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_messenger-api"));
    for v in [
        "JWT_SECRET",
        "Jwt__Secret",
        "DATABASE_URL",
        "NATS_SUBJECT_PREFIX",
    ] {
        c.env_remove(v);
    }
    c.env("LOG_FORMAT", "pretty").env("LOG_LEVEL", "warn");
    // no .env of the repository
    c.current_dir(std::env::temp_dir());
    c
}

#[test]
fn help_lists_the_settings_and_a_missing_secret_is_named() {
    let out = bin().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for v in [
        "Jwt__Secret",
        "JWT_SECRET",
        "MESSENGER_FILES_DIR",
        "DATABASE_URL",
        "NATS_URL",
        "HUB_KEEPALIVE_SECS",
        "MESSENGER_GROUP_MEMBERS_PER_REQUEST",
        "MESSENGER_GROUP_MEMBERS_PER_HOUR",
        "MESSENGER_SEND_RATE_PER_MINUTE",
        "MESSENGER_SEND_BURST",
        "admin",
        "invite",
    ] {
        assert!(help.contains(v), "--help mentions {v}");
    }
    let out = bin()
        .arg("serve")
        .env("DATABASE_URL", "postgres://x@127.0.0.1:1/x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("JWT_SECRET is not set"), "{err}");
    let out = bin()
        .arg("serve")
        .env("DATABASE_URL", "postgres://x@127.0.0.1:1/x")
        .env("Jwt__Secret", "change_me")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Jwt__Secret still holds a placeholder"));
}

#[tokio::test]
async fn admin_and_invite_commands_make_a_working_first_login() {
    let app = spawn_app().await;
    let phone = unique_phone();
    let out = bin()
        .args([
            "admin",
            "create",
            "--phone",
            &phone,
            "--display-name",
            "Главный",
        ])
        .env("DATABASE_URL", &app.db_url)
        .env("ARGON2_MEMORY_KIB", "1024")
        .env("ARGON2_ITERATIONS", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let password = stdout
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("the generated password is printed once")
        .to_owned();
    let admin = app.login(&phone, &password).await;
    assert_eq!(
        app.get("/api/admin/users", Some(&admin.token))
            .await
            .status(),
        200
    );

    // a typed (piped) password
    let phone2 = unique_phone();
    let mut child = bin()
        .args(["admin", "create", "--phone", &phone2, "--password-stdin"])
        .env("DATABASE_URL", &app.db_url)
        .env("ARGON2_MEMORY_KIB", "1024")
        .env("ARGON2_ITERATIONS", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"typed-password-123\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("typed-password-123"));
    app.login(&phone2, "typed-password-123").await;

    let out = bin()
        .args(["invite", "create", "--max-uses", "2", "--count", "2"])
        .env("DATABASE_URL", &app.db_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let codes: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(codes.len(), 2);
    let res = app
        .register_raw(&serde_json::json!({
            "phone": unique_phone(), "password": PASSWORD, "displayName": "По коду", "inviteCode": codes[0]
        }))
        .await;
    assert_eq!(res.status(), 201);

    // a bad phone is refused by name
    let out = bin()
        .args(["admin", "create", "--phone", "123"])
        .env("DATABASE_URL", &app.db_url)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("E.164"));
    app.cleanup().await;
}

#[tokio::test]
async fn commands_print_only_their_result_on_stdout_and_log_to_stderr() {
    let app = spawn_app().await;
    let out = bin()
        .args(["invite", "create", "--count", "3"])
        .env("DATABASE_URL", &app.db_url)
        .env("LOG_FORMAT", "json")
        .env("LOG_LEVEL", "info")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "only the codes on stdout: {stdout}");
    for code in &lines {
        assert!(
            code.chars().all(|c| c.is_ascii_alphanumeric()),
            "a code, not a log line: {code}"
        );
    }
    assert!(!stderr.is_empty(), "the logs went to stderr");

    let phone = unique_phone();
    let out = bin()
        .args(["admin", "create", "--phone", &phone])
        .env("DATABASE_URL", &app.db_url)
        .env("ARGON2_MEMORY_KIB", "1024")
        .env("ARGON2_ITERATIONS", "1")
        .env("LOG_FORMAT", "json")
        .env("LOG_LEVEL", "info")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().all(|l| !l.trim_start().starts_with('{')),
        "no JSON log lines among the output: {stdout}"
    );
    assert!(stdout.lines().any(|l| l.starts_with("password: ")));
    app.cleanup().await;
}

#[tokio::test]
async fn check_names_what_it_checked_and_fails_on_an_unusable_files_directory() {
    let app = spawn_app().await;
    let check = |files_dir: &std::path::Path| {
        bin()
            .arg("check")
            .env("DATABASE_URL", &app.db_url)
            .env("NATS_URL", testkit::nats_url())
            .env("NATS_SUBJECT_PREFIX", app.prefix())
            .env("JWT_SECRET", SECRET)
            .env("MESSENGER_FILES_DIR", files_dir)
            .output()
            .unwrap()
    };
    let out = check(&app.files_dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "DATABASE_URL: ok",
        "NATS_URL: ok",
        "MESSENGER_FILES_DIR: ok",
        "JWT_SECRET: ok",
    ] {
        assert!(stdout.contains(line), "{line:?} in {stdout}");
    }
    assert!(!stdout.contains(SECRET), "the secret is never printed");

    let out = check(&app.files_dir.join("no-such-dir"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("MESSENGER_FILES_DIR: FAILED"), "{stdout}");

    // a short secret is a configuration error, named
    let out = bin()
        .arg("check")
        .env("DATABASE_URL", &app.db_url)
        .env("JWT_SECRET", "short")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("JWT_SECRET must be at least 32"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    app.cleanup().await;
}

#[tokio::test]
async fn dlq_lists_the_dead_letters_table() {
    let app = spawn_app().await;
    let out = bin()
        .args(["dlq", "list"])
        .env("DATABASE_URL", &app.db_url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("no dead letters waiting"), "{stdout}");
    app.cleanup().await;
}

#[tokio::test]
async fn cors_answers_preflights_for_the_allowed_origins_only() {
    let app = spawn_app_with(Options {
        env: vec![(
            "CORS_ALLOWED_ORIGINS",
            "https://app.example, https://b.example".into(),
        )],
        ..Default::default()
    })
    .await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/api/chats"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let res = preflight("https://app.example").await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(res.headers()["access-control-allow-credentials"], "true");
    let res = preflight("https://evil.example").await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    // answers of the API carry it too, errors included
    let res = app
        .http
        .get(app.url("/api/chats"))
        .header("origin", "https://b.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://b.example"
    );
    app.cleanup().await;
}
