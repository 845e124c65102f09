//! Registration with invite codes, login (argon2id, imported ASP.NET Identity hashes, rate
//! limits), refresh rotation with reuse detection, logout, and 401 on every protected route.

use serde_json::{Value, json};
use time::Duration;
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn register_login_and_me() {
    let app = spawn_app().await;
    let code = app.invite(1, Duration::hours(1)).await;
    let phone = unique_phone();
    let res = app
        .register_raw(&json!({
            "phone": phone, "password": PASSWORD, "displayName": "  Анна  ", "inviteCode": code
        }))
        .await;
    assert_eq!(res.status(), 201);
    let body = json(res).await;
    // camelCase, as the ASP.NET backend emitted
    for field in [
        "accessToken",
        "refreshToken",
        "tokenType",
        "expiresIn",
        "user",
    ] {
        assert!(body.get(field).is_some(), "{field} in {body}");
    }
    assert_eq!(body["tokenType"], "Bearer");
    assert_eq!(body["expiresIn"], 900);
    assert_eq!(body["user"]["displayName"], "Анна");
    assert_eq!(body["user"]["role"], "User");
    assert!(body["user"]["createdAt"].as_str().unwrap().ends_with('Z'));
    let stored = app
        .state
        .store
        .user_by_phone(&phone)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.password_hash.starts_with("$argon2id$"));

    let user = app.login(&phone, PASSWORD).await;
    let me = json(app.get("/api/auth/me", Some(&user.token)).await).await;
    assert_eq!(me["phone"], phone);
    assert_eq!(me["id"], user.id.to_string());
    app.cleanup().await;
}

#[tokio::test]
async fn registration_is_validated() {
    let app = spawn_app().await;
    let code = app.invite(5, Duration::hours(1)).await;
    let res = app
        .register_raw(&json!({
            "phone": "89991234567", "password": "short", "displayName": "", "inviteCode": code
        }))
        .await;
    let v = expect_error(res, 400).await;
    for field in ["phone", "password", "displayName"] {
        assert!(v["details"][field].is_string(), "{field} in {v}");
    }
    // not JSON at all
    let res = app
        .http
        .post(app.url("/api/auth/register"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    expect_error(res, 400).await;
    // missing fields
    expect_error(
        app.register_raw(&json!({ "phone": "+79990000000" })).await,
        400,
    )
    .await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_phone_registers_once() {
    let app = spawn_app().await;
    let code = app.invite(2, Duration::hours(1)).await;
    let phone = unique_phone();
    let body =
        json!({ "phone": phone, "password": PASSWORD, "displayName": "A", "inviteCode": code });
    assert_eq!(app.register_raw(&body).await.status(), 201);
    let v = expect_error(app.register_raw(&body).await, 409).await;
    assert!(v["error"].as_str().unwrap().contains("already exists"));
    app.cleanup().await;
}

#[tokio::test]
async fn invite_codes_are_unknown_expired_or_used_up() {
    let app = spawn_app().await;
    let reg = |code: &str| json!({ "phone": unique_phone(), "password": PASSWORD, "displayName": "A", "inviteCode": code });
    let v = expect_error(app.register_raw(&reg("NO-SUCH-CODE")).await, 400).await;
    assert_eq!(v["error"], "invite code is not valid");

    let expired = app.invite(5, Duration::seconds(-1)).await;
    let v = expect_error(app.register_raw(&reg(&expired)).await, 400).await;
    assert_eq!(v["error"], "invite code has expired");

    let once = app.invite(1, Duration::hours(1)).await;
    assert_eq!(app.register_raw(&reg(&once)).await.status(), 201);
    let v = expect_error(app.register_raw(&reg(&once)).await, 400).await;
    assert_eq!(v["error"], "invite code has been used up");
    assert_eq!(v["details"]["inviteCode"], "invite code has been used up");

    // a refused registration (phone taken) spends no use
    let twice = app.invite(2, Duration::hours(1)).await;
    let body = reg(&twice);
    assert_eq!(app.register_raw(&body).await.status(), 201);
    assert_eq!(app.register_raw(&body).await.status(), 409);
    assert_eq!(app.register_raw(&reg(&twice)).await.status(), 201);
    app.cleanup().await;
}

#[tokio::test]
async fn wrong_credentials_are_401_and_missing_ones_400() {
    let app = spawn_app().await;
    let u = app.user("Борис").await;
    let v = expect_error(app.login_raw(&u.phone, "wrong password").await, 401).await;
    assert_eq!(v["error"], "invalid phone or password");
    expect_error(app.login_raw("+79990000001", PASSWORD).await, 401).await;
    expect_error(app.login_raw("", "").await, 400).await;
    app.cleanup().await;
}

#[tokio::test]
async fn login_attempts_are_rate_limited_per_phone() {
    let app = spawn_app().await;
    let u = app.user("Вера").await;
    for _ in 0..5 {
        assert_eq!(app.login_raw(&u.phone, "nope").await.status(), 401);
    }
    let res = app.login_raw(&u.phone, PASSWORD).await;
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    expect_error(res, 429).await;
    // another phone from the same address still gets through
    let other = app.user("Глеб").await;
    assert_eq!(app.login_raw(&other.phone, PASSWORD).await.status(), 200);
    app.cleanup().await;
}

#[tokio::test]
async fn login_attempts_are_rate_limited_per_ip() {
    let app = spawn_app_with(Options {
        env: vec![("LOGIN_RATE_PER_IP_PER_MINUTE", "3".into())],
        ..Default::default()
    })
    .await;
    for _ in 0..3 {
        assert_eq!(app.login_raw(&unique_phone(), "x").await.status(), 401);
    }
    assert_eq!(app.login_raw(&unique_phone(), "x").await.status(), 429);
    // behind nginx the client is X-Real-IP, trusted from a loopback peer
    let res = app
        .http
        .post(app.url("/api/auth/login"))
        .header("x-real-ip", "203.0.113.7")
        .json(&json!({ "phone": unique_phone(), "password": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    app.cleanup().await;
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_the_family() {
    let app = spawn_app().await;
    let u = app.user("Дина").await;
    let refresh = |t: &str| app.refresh(t.to_owned());
    let r1 = u.refresh.clone();
    let s2 = json(refresh(&r1).await).await;
    let r2 = s2["refreshToken"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    assert_eq!(s2["user"]["id"], u.id.to_string());
    let access = s2["accessToken"].as_str().unwrap();
    assert_eq!(app.get("/api/chats", Some(access)).await.status(), 200);
    let s3 = json(refresh(&r2).await).await;
    let r3 = s3["refreshToken"].as_str().unwrap().to_owned();

    // r1 again: a replay — the family is revoked, r3 included
    let v = expect_error(refresh(&r1).await, 401).await;
    assert!(v["error"].as_str().unwrap().contains("already used"), "{v}");
    expect_error(refresh(&r3).await, 401).await;

    // another login (another family) is unaffected
    let again = app.login(&u.phone, PASSWORD).await;
    assert_eq!(refresh(&again.refresh).await.status(), 200);

    expect_error(refresh("not-a-token").await, 401).await;
    expect_error(app.post("/api/auth/refresh", None, &json!({})).await, 400).await;
    expect_error(refresh("").await, 400).await;
    app.cleanup().await;
}

#[tokio::test]
async fn logout_revokes_refresh_tokens() {
    let app = spawn_app().await;
    let u = app.user("Ева").await;
    let other_device = app.login(&u.phone, PASSWORD).await;
    expect_error(app.post("/api/auth/logout", None, &json!({})).await, 401).await;
    let res = app
        .post(
            "/api/auth/logout",
            Some(&u.token),
            &json!({ "refreshToken": u.refresh }),
        )
        .await;
    assert_eq!(res.status(), 204);
    let refresh = |t: &str| app.refresh(t.to_owned());
    assert_eq!(refresh(&u.refresh).await.status(), 401);
    assert_eq!(
        refresh(&other_device.refresh).await.status(),
        200,
        "other device stays"
    );
    // no body: everywhere
    let res = app
        .http
        .post(app.url("/api/auth/logout"))
        .bearer_auth(&u.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let third = app.login(&u.phone, PASSWORD).await;
    assert_eq!(
        app.http
            .post(app.url("/api/auth/logout"))
            .bearer_auth(&third.token)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(refresh(&third.refresh).await.status(), 401);
    app.cleanup().await;
}

#[tokio::test]
async fn imported_aspnet_identity_hashes_log_in_and_are_rehashed() {
    let app = spawn_app().await;
    let phone = unique_phone();
    // as exported from AspNetUsers.PasswordHash (Identity V3, HMAC-SHA256, 10 000 rounds)
    let v3 = messenger_api::auth::password::identity_v3_hash(
        "Imported#2024",
        1,
        10_000,
        b"0123456789abcdef",
    );
    let id = Uuid::now_v7();
    app.state
        .store
        .create_user(id, &phone, "Импорт", &v3, "User")
        .await
        .unwrap()
        .unwrap();
    expect_error(app.login_raw(&phone, "imported#2024").await, 401).await;
    let u = app.login(&phone, "Imported#2024").await;
    assert_eq!(u.id, id);
    let row = app.state.store.user_by_id(id).await.unwrap().unwrap();
    assert!(row.password_hash.starts_with("$argon2id$"), "rehashed");
    app.login(&phone, "Imported#2024").await;
    app.cleanup().await;
}

#[tokio::test]
async fn every_protected_route_wants_a_valid_token() {
    let app = spawn_app().await;
    let u = app.user("Жанна").await;
    let chat = Uuid::new_v4();
    let routes: Vec<(&str, String)> = vec![
        ("GET", "/api/auth/me".into()),
        ("POST", "/api/auth/logout".into()),
        ("GET", "/api/chats".into()),
        ("POST", "/api/chats".into()),
        ("GET", format!("/api/chats/{chat}")),
        ("DELETE", format!("/api/chats/{chat}")),
        ("POST", format!("/api/chats/{chat}/read")),
        ("GET", format!("/api/messages/{chat}")),
        ("POST", "/api/messages".into()),
        ("DELETE", "/api/messages/1".into()),
        ("POST", "/api/messages/audio".into()),
        ("GET", format!("/api/files/{chat}")),
        ("GET", "/api/admin/users".into()),
        ("DELETE", format!("/api/admin/users/{chat}")),
        ("POST", "/api/admin/invites".into()),
        ("POST", "/hubs/chat/negotiate".into()),
        ("GET", "/api/no/such/route".into()),
    ];
    // expired, signed with the right key
    let expired = {
        let now = time::OffsetDateTime::now_utc().unix_timestamp() as u64;
        let claims = json!({
            "sub": u.id, "name": "x", "phone": u.phone, "role": "User", "iat": now - 7200,
            "exp": now - 3600, "iss": "messenger-api", "aud": "messenger-clients",
            "jti": Uuid::new_v4(),
        });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    for (method, path) in &routes {
        for token in [None, Some("garbage"), Some(expired.as_str())] {
            let mut req = app
                .http
                .request(method.parse().unwrap(), app.url(path))
                .header("content-type", "application/json")
                .body("{}");
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 401, "{method} {path} with {token:?}");
            assert_eq!(res.headers()["www-authenticate"], "Bearer");
            let v: Value = res.json().await.unwrap();
            assert!(v["error"].is_string(), "{method} {path}");
        }
    }
    // with a token, an unknown route is a JSON 404
    expect_error(app.get("/api/no/such/route", Some(&u.token)).await, 404).await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_bad_invite_is_refused_before_any_password_is_hashed() {
    // Hashing cannot work at all with these parameters (argon2 wants at least 8 KiB): a
    // registration that hashed before looking at the invite would answer 500, not 400.
    let app = spawn_app_with(Options {
        env: vec![
            ("ARGON2_MEMORY_KIB", "1".into()),
            ("ARGON2_ITERATIONS", "1".into()),
        ],
        ..Default::default()
    })
    .await;
    let used_up = app.invite(1, Duration::hours(1)).await;
    app.state
        .store
        .register(Uuid::now_v7(), &unique_phone(), "Первый", "x", &used_up)
        .await
        .unwrap();
    let expired = app.invite(1, Duration::seconds(-1)).await;
    for (code, what) in [
        ("NO-SUCH-CODE", "not valid"),
        (used_up.as_str(), "used up"),
        (expired.as_str(), "expired"),
    ] {
        let res = app
            .register_raw(&json!({
                "phone": unique_phone(), "password": PASSWORD, "displayName": "Ева",
                "inviteCode": code
            }))
            .await;
        let v = expect_error(res, 400).await;
        assert!(v["error"].as_str().unwrap().contains(what), "{v}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn registrations_are_rate_limited_per_ip() {
    let app = spawn_app_with(Options {
        env: vec![("REGISTER_RATE_PER_IP_PER_MINUTE", "2".into())],
        ..Default::default()
    })
    .await;
    let attempt = |ip: &'static str| {
        let app = &app;
        async move {
            app.http
                .post(app.url("/api/auth/register"))
                .header("x-real-ip", ip)
                .json(&json!({
                    "phone": unique_phone(), "password": PASSWORD, "displayName": "Ева",
                    "inviteCode": "NO-SUCH-CODE"
                }))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(attempt("203.0.113.7").await.status(), 400);
    assert_eq!(attempt("203.0.113.7").await.status(), 400);
    let res = attempt("203.0.113.7").await;
    assert!(res.headers().contains_key("retry-after"));
    expect_error(res, 429).await;
    // another address is not affected
    assert_eq!(attempt("203.0.113.8").await.status(), 400);
    app.cleanup().await;
}

#[tokio::test]
async fn password_hashing_runs_a_bounded_number_at_once() {
    let app = spawn_app_with(Options {
        env: vec![("PASSWORD_HASH_CONCURRENCY", "1".into())],
        ..Default::default()
    })
    .await;
    let a = app.user("Анна").await;
    let work = app.state.password_work.clone();
    // every permit taken: a login waits for one instead of hashing
    let held = work.permits().clone().acquire_owned().await.unwrap();
    let login = tokio::spawn({
        let (http, url, phone) = (
            app.http.clone(),
            app.url("/api/auth/login"),
            a.phone.clone(),
        );
        async move {
            http.post(url)
                .json(&json!({ "phone": phone, "password": PASSWORD }))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    testkit::wait_for("the login to wait for a permit", || {
        let work = work.clone();
        async move { work.waiting() == 1 }
    })
    .await;
    assert!(!login.is_finished());
    drop(held);
    assert_eq!(
        tokio::time::timeout(WAIT, login).await.unwrap().unwrap(),
        200
    );
    app.cleanup().await;
}
