//! Admin routes: users and invite codes, for role Admin only.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn only_admins_reach_admin_routes() {
    let app = spawn_app().await;
    let u = app.user("Анна").await;
    let t = Some(u.token.as_str());
    expect_error(app.get("/api/admin/users", t).await, 403).await;
    expect_error(
        app.delete(&format!("/api/admin/users/{}", u.id), t).await,
        403,
    )
    .await;
    expect_error(app.post("/api/admin/invites", t, &json!({})).await, 403).await;
    app.cleanup().await;
}

#[tokio::test]
async fn admins_list_users_and_issue_invites() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let u = app.user("Анна").await;
    let t = Some(admin.token.as_str());
    let users: Value = json(app.get("/api/admin/users", t).await).await;
    let users = users.as_array().unwrap();
    assert_eq!(users.len(), 2);
    assert!(
        users
            .iter()
            .any(|x| x["id"] == u.id.to_string() && x["role"] == "User")
    );
    assert!(
        users
            .iter()
            .any(|x| x["id"] == admin.id.to_string() && x["role"] == "Admin")
    );
    assert!(users.iter().all(|x| x.get("passwordHash").is_none()));
    let page: Value = json(app.get("/api/admin/users?limit=1&offset=1", t).await).await;
    assert_eq!(page.as_array().unwrap().len(), 1);
    expect_error(app.get("/api/admin/users?limit=0", t).await, 400).await;
    expect_error(app.get("/api/admin/users?offset=-1", t).await, 400).await;

    let res = app
        .post(
            "/api/admin/invites",
            t,
            &json!({ "maxUses": 2, "expiresInHours": 24 }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let invite = json(res).await;
    assert_eq!(invite["maxUses"], 2);
    assert_eq!(invite["uses"], 0);
    let code = invite["code"].as_str().unwrap();
    assert_eq!(code.len(), 12);
    for name in ["Первый", "Второй"] {
        let res = app
            .register_raw(&json!({
                "phone": unique_phone(), "password": PASSWORD, "displayName": name, "inviteCode": code
            }))
            .await;
        assert_eq!(res.status(), 201);
    }
    // defaults: one use, 72 hours; no body at all is fine
    let res = app
        .http
        .post(app.url("/api/admin/invites"))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(json(res).await["maxUses"], 1);
    expect_error(
        app.post("/api/admin/invites", t, &json!({ "maxUses": 0 }))
            .await,
        400,
    )
    .await;
    expect_error(
        app.post("/api/admin/invites", t, &json!({ "expiresInHours": -1 }))
            .await,
        400,
    )
    .await;
    app.cleanup().await;
}

#[tokio::test]
async fn admins_delete_users() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (u, friend) = (app.user("Анна").await, app.user("Борис").await);
    let chat = app.private_chat(&u, &friend).await;
    app.send(&u, chat, "останется без автора").await;
    let t = Some(admin.token.as_str());
    assert_eq!(
        app.delete(&format!("/api/admin/users/{}", u.id), t)
            .await
            .status(),
        204
    );
    expect_error(app.login_raw(&u.phone, PASSWORD).await, 401).await;
    expect_error(
        app.post(
            "/api/auth/refresh",
            None,
            &json!({ "refreshToken": u.refresh }),
        )
        .await,
        401,
    )
    .await;
    let page: Value = json(
        app.get(&format!("/api/messages/{chat}"), Some(&friend.token))
            .await,
    )
    .await;
    assert!(page["items"][0]["senderId"].is_null());
    expect_error(
        app.delete(&format!("/api/admin/users/{}", u.id), t).await,
        404,
    )
    .await;
    expect_error(
        app.delete(&format!("/api/admin/users/{}", Uuid::new_v4()), t)
            .await,
        404,
    )
    .await;
    let v = expect_error(
        app.delete(&format!("/api/admin/users/{}", admin.id), t)
            .await,
        409,
    )
    .await;
    assert!(v["error"].as_str().unwrap().contains("own account"));
    app.cleanup().await;
}

#[tokio::test]
async fn a_deleted_or_demoted_admin_loses_admin_access_at_once() {
    let app = spawn_app().await;
    let (gone, demoted, boss) = (app.admin().await, app.admin().await, app.admin().await);
    assert_eq!(
        app.get("/api/admin/users", Some(&gone.token))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.delete(&format!("/api/admin/users/{}", gone.id), Some(&boss.token))
            .await
            .status(),
        204
    );
    // the access token is still valid, the account is not
    expect_error(app.get("/api/admin/users", Some(&gone.token)).await, 401).await;
    expect_error(
        app.post("/api/admin/invites", Some(&gone.token), &json!({}))
            .await,
        401,
    )
    .await;
    expect_error(
        app.delete(&format!("/api/admin/users/{}", boss.id), Some(&gone.token))
            .await,
        401,
    )
    .await;
    // the hub does not take the deleted account either
    let res = app
        .http
        .get(app.url("/hubs/chat"))
        .bearer_auth(&gone.token)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    expect_error(res, 401).await;

    sqlx::query("UPDATE messenger.users SET role = 'User' WHERE id = $1")
        .bind(demoted.id)
        .execute(app.state.store.pool())
        .await
        .unwrap();
    expect_error(app.get("/api/admin/users", Some(&demoted.token)).await, 403).await;
    expect_error(
        app.post("/api/admin/invites", Some(&demoted.token), &json!({}))
            .await,
        403,
    )
    .await;
    assert_eq!(
        app.get("/api/admin/users", Some(&boss.token))
            .await
            .status(),
        200
    );
    app.cleanup().await;
}
