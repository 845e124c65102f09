//! The amoCRM fake, `{url}/amocrm/…` standing in for `https://<subdomain>.amocrm.ru`:
//!
//! * `POST /oauth2/access_token` — OAuth 2.0 as in
//!   <https://www.amocrm.ru/developers/content/oauth/step-by-step>: JSON (or form) body with
//!   `client_id`, `client_secret`, `grant_type` (`authorization_code` with `code`, or
//!   `refresh_token` with `refresh_token`) and `redirect_uri`; answers
//!   `{"token_type":"Bearer","expires_in":86400,"access_token":…,"refresh_token":…}`. Errors are
//!   amoCRM's problem JSON, HTTP 400 (401 for a wrong client):
//!   `{"hint":"Refresh token has been revoked","title":"Некорректный запрос","type":"https://developers.amocrm.ru/v3/errors/OAuthProblemJson","status":400,"detail":"В запросе отсутствует ряд параметров или параметры невалидны"}`.
//! * `GET /api/v4/leads/{id}[?with=contacts]`, `GET /api/v4/contacts/{id}[?with=leads]`,
//!   `GET /api/v4/account` — `Authorization: Bearer <access_token>`; 401 for a missing, unknown
//!   or expired token; 204 with no body for an id amoCRM does not have (what API v4 does).
//!
//! Refresh tokens rotate: each exchange issues a new pair. The presented refresh token stays
//! good until the new pair is first used (an API call with the new access token, or exchanging
//! the new refresh token), and is revoked then. So a client that crashed after the exchange but
//! before storing the new pair can still refresh with the old one; a client that used the new
//! pair and then falls back to the old refresh token is refused.
//!
//! A code granted by *another* account ([`Sandbox::amocrm_authorize_other_account`]: anyone can
//! consent to an integration for an account of theirs, the client id is in every consent URL)
//! is exchanged too — amoCRM's docs leave open whether a token endpoint takes another account's
//! code, and the fake takes the worse case — but its pair opens nothing of this account: API v4
//! answers 401 to it.
//!
//! 429 (amoCRM allows 7 requests per second) is injected with
//! `fail_next(Target::Amocrm, n, Failure::TooManyRequests { .. })`; every request is recorded.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Sandbox, Shared};

/// The integration id the fake accepts (`AMOCRM_CLIENT_ID`).
pub const CLIENT_ID: &str = "sandbox-amo-client-id";
/// The integration secret the fake accepts (`AMOCRM_CLIENT_SECRET`).
pub const CLIENT_SECRET: &str = "sandbox-amo-client-secret";
/// The account's subdomain (`AMOCRM_DOMAIN=sandbox.amocrm.ru`).
pub const SUBDOMAIN: &str = "sandbox";
/// The account's id.
pub const ACCOUNT_ID: i64 = 29_085_431;
/// `expires_in` of an access token unless changed: one day, as amoCRM.
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(86_400);

/// What the amoCRM fake remembers.
#[derive(Debug)]
pub(crate) struct AmoState {
    /// Authorization codes handed out and not yet exchanged.
    codes: HashSet<String>,
    /// Codes another account granted, not yet exchanged.
    foreign_codes: HashSet<String>,
    /// Pairs issued for another account (from a foreign code, or refreshed from such a pair).
    foreign_pairs: HashSet<u64>,
    /// access token → (pair, expires at unix seconds).
    access: HashMap<String, (u64, i64)>,
    /// refresh token → its pair, and the pair that superseded it when it was exchanged.
    refresh: HashMap<String, RefreshToken>,
    /// Pairs that have been used (their predecessors' refresh tokens are revoked).
    used: HashSet<u64>,
    next: u64,
    lifetime: Duration,
    leads: BTreeMap<i64, Value>,
    contacts: BTreeMap<i64, Value>,
    /// Token pairs issued so far.
    issued: usize,
}

#[derive(Debug, Clone, Copy)]
struct RefreshToken {
    pair: u64,
    superseded_by: Option<u64>,
    revoked: bool,
}

impl Default for AmoState {
    fn default() -> Self {
        Self {
            codes: HashSet::new(),
            foreign_codes: HashSet::new(),
            foreign_pairs: HashSet::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            used: HashSet::new(),
            next: 1,
            lifetime: ACCESS_TOKEN_LIFETIME,
            leads: BTreeMap::new(),
            contacts: BTreeMap::new(),
            issued: 0,
        }
    }
}

impl AmoState {
    fn issue(&mut self) -> (u64, String, String) {
        let pair = self.next;
        self.next += 1;
        self.issued += 1;
        let access = format!("amo-at-{pair}-{}", uuid::Uuid::new_v4().simple());
        let refresh = format!("amo-rt-{pair}-{}", uuid::Uuid::new_v4().simple());
        let expires = now() + self.lifetime.as_secs() as i64;
        self.access.insert(access.clone(), (pair, expires));
        self.refresh.insert(
            refresh.clone(),
            RefreshToken {
                pair,
                superseded_by: None,
                revoked: false,
            },
        );
        (pair, access, refresh)
    }

    /// The first use of `pair` revokes the refresh tokens it superseded.
    fn mark_used(&mut self, pair: u64) {
        if self.used.insert(pair) {
            for rt in self.refresh.values_mut() {
                if rt.superseded_by == Some(pair) {
                    rt.revoked = true;
                }
            }
        }
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/oauth2/access_token", post(token))
        .route("/api/v4/leads/{id}", get(lead))
        .route("/api/v4/contacts/{id}", get(contact))
        .route("/api/v4/account", get(account))
}

fn oauth_problem(status: StatusCode, hint: &str) -> Response {
    let title = if status == StatusCode::UNAUTHORIZED {
        "Unauthorized"
    } else {
        "Некорректный запрос"
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        Json(json!({
            "hint": hint,
            "title": title,
            "type": "https://developers.amocrm.ru/v3/errors/OAuthProblemJson",
            "status": status.as_u16(),
            "detail": "В запросе отсутствует ряд параметров или параметры невалидны",
        })),
    )
        .into_response()
}

#[derive(Deserialize)]
struct TokenRequest {
    client_id: Option<String>,
    client_secret: Option<String>,
    grant_type: Option<String>,
    code: Option<String>,
    refresh_token: Option<String>,
    redirect_uri: Option<String>,
}

async fn token(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let parsed: Result<TokenRequest, String> = if is_form {
        let pairs: HashMap<String, String> =
            url::form_urlencoded::parse(&body).into_owned().collect();
        serde_json::to_value(pairs)
            .and_then(serde_json::from_value)
            .map_err(|e| e.to_string())
    } else {
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    };
    let Ok(req) = parsed else {
        return oauth_problem(StatusCode::BAD_REQUEST, "Request body is invalid");
    };
    if req.client_id.as_deref() != Some(CLIENT_ID)
        || req.client_secret.as_deref() != Some(CLIENT_SECRET)
    {
        return oauth_problem(StatusCode::UNAUTHORIZED, "Client authentication failed");
    }
    if req.redirect_uri.as_deref().is_none_or(str::is_empty) {
        return oauth_problem(
            StatusCode::BAD_REQUEST,
            "Check the `redirect_uri` parameter",
        );
    }
    let answer = shared.mutate(|s| {
        let st = &mut s.amocrm;
        match req.grant_type.as_deref() {
            Some("authorization_code") => {
                let code = req.code.unwrap_or_default();
                if st.codes.remove(&code) {
                    return Ok(st.issue());
                }
                if st.foreign_codes.remove(&code) {
                    let issued = st.issue();
                    st.foreign_pairs.insert(issued.0);
                    return Ok(issued);
                }
                Err("Authorization code has been revoked")
            }
            Some("refresh_token") => {
                let presented = req.refresh_token.unwrap_or_default();
                let Some(rt) = st.refresh.get(&presented).copied() else {
                    return Err("Cannot decrypt the refresh token");
                };
                if rt.revoked {
                    return Err("Refresh token has been revoked");
                }
                // Exchanging a refresh token is a use of its pair.
                st.mark_used(rt.pair);
                let issued = st.issue();
                if st.foreign_pairs.contains(&rt.pair) {
                    st.foreign_pairs.insert(issued.0);
                }
                if let Some(r) = st.refresh.get_mut(&presented) {
                    r.superseded_by = Some(issued.0);
                }
                Ok(issued)
            }
            _ => Err("Unsupported grant type"),
        }
    });
    match answer {
        Ok((_, access, refresh)) => {
            let lifetime = shared.read().amocrm.lifetime.as_secs();
            Json(json!({
                "token_type": "Bearer",
                "expires_in": lifetime,
                "access_token": access,
                "refresh_token": refresh,
                "server_time": now(),
            }))
            .into_response()
        }
        Err(hint) => oauth_problem(StatusCode::BAD_REQUEST, hint),
    }
}

/// Checks the bearer token and marks its pair used; `false` → answer [`unauthorized`].
fn authorize(shared: &Shared, headers: &HeaderMap) -> bool {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    shared.mutate(|s| match s.amocrm.access.get(&token).copied() {
        Some((pair, _)) if s.amocrm.foreign_pairs.contains(&pair) => false,
        Some((pair, expires)) if expires > now() => {
            s.amocrm.mark_used(pair);
            true
        }
        _ => false,
    })
}

/// amoCRM's 401 for a missing, unknown or expired token.
fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "application/problem+json")],
        Json(json!({
            "title": "Unauthorized",
            "type": "https://httpstatus.es/401",
            "status": 401,
            "detail": "Неверный логин или пароль",
        })),
    )
        .into_response()
}

#[derive(Deserialize)]
struct With {
    with: Option<String>,
}

fn wants(with: &With, what: &str) -> bool {
    with.with
        .as_deref()
        .is_some_and(|w| w.split(',').any(|p| p.trim() == what))
}

async fn lead(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<i64>,
    Query(with): Query<With>,
    headers: HeaderMap,
) -> Response {
    if !authorize(&shared, &headers) {
        return unauthorized();
    }
    let Some(mut lead) = shared.read().amocrm.leads.get(&id).cloned() else {
        return StatusCode::NO_CONTENT.into_response();
    };
    if !wants(&with, "contacts")
        && let Some(e) = lead.get_mut("_embedded").and_then(Value::as_object_mut)
    {
        e.remove("contacts");
    }
    hal(lead)
}

async fn contact(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<i64>,
    Query(with): Query<With>,
    headers: HeaderMap,
) -> Response {
    if !authorize(&shared, &headers) {
        return unauthorized();
    }
    let Some(mut contact) = shared.read().amocrm.contacts.get(&id).cloned() else {
        return StatusCode::NO_CONTENT.into_response();
    };
    if !wants(&with, "leads")
        && let Some(e) = contact.get_mut("_embedded").and_then(Value::as_object_mut)
    {
        e.remove("leads");
    }
    hal(contact)
}

async fn account(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !authorize(&shared, &headers) {
        return unauthorized();
    }
    hal(json!({
        "id": ACCOUNT_ID,
        "name": "Sandbox Realty",
        "subdomain": SUBDOMAIN,
        "currency": "RUB",
        "country": "RU",
        "_links": {"self": {"href": format!("https://{SUBDOMAIN}.amocrm.ru/api/v4/account")}},
    }))
}

fn hal(v: Value) -> Response {
    ([(header::CONTENT_TYPE, "application/hal+json")], Json(v)).into_response()
}

/// API v4 shape of a lead with the given custom fields and linked contacts, for
/// [`Sandbox::amocrm_put_lead`].
pub fn lead_json(
    id: i64,
    name: &str,
    status_id: i64,
    updated_at: i64,
    custom_fields: Value,
    contacts: &[(i64, bool)],
) -> Value {
    json!({
        "id": id,
        "name": name,
        "price": 0,
        "responsible_user_id": 504141,
        "group_id": 0,
        "status_id": status_id,
        "pipeline_id": 7331,
        "loss_reason_id": null,
        "created_by": 504141,
        "updated_by": 504141,
        "created_at": updated_at - 3600,
        "updated_at": updated_at,
        "closed_at": null,
        "closest_task_at": null,
        "is_deleted": false,
        "custom_fields_values": custom_fields,
        "score": null,
        "account_id": ACCOUNT_ID,
        "labor_cost": null,
        "_links": {"self": {"href": format!("https://{SUBDOMAIN}.amocrm.ru/api/v4/leads/{id}")}},
        "_embedded": {
            "tags": [],
            "companies": [],
            "contacts": contacts.iter().map(|(c, main)| json!({
                "id": c,
                "is_main": main,
                "_links": {"self": {"href": format!("https://{SUBDOMAIN}.amocrm.ru/api/v4/contacts/{c}")}},
            })).collect::<Vec<_>>(),
        },
    })
}

impl Sandbox {
    /// `{url}/amocrm`: the fake account's base URL (`AMOCRM_BASE_URL`).
    pub fn amocrm_url(&self) -> String {
        format!("{}/amocrm", self.url())
    }

    /// What an account admin does by pressing "Allow" on the integration's consent page: a new
    /// authorization code, as amoCRM appends it to the redirect URI (`?code=…`).
    pub fn amocrm_authorize(&self) -> String {
        let code = format!("def50200{}", uuid::Uuid::new_v4().simple());
        self.shared.mutate(|s| s.amocrm.codes.insert(code.clone()));
        code
    }

    /// The same for an admin of *another* amoCRM account who consented to this integration: the
    /// code is exchanged, but its pair opens no API of this account (401).
    pub fn amocrm_authorize_other_account(&self) -> String {
        let code = format!("def50200{}", uuid::Uuid::new_v4().simple());
        self.shared
            .mutate(|s| s.amocrm.foreign_codes.insert(code.clone()));
        code
    }

    /// `expires_in` of the access tokens issued from now on.
    pub fn amocrm_set_token_lifetime(&self, lifetime: Duration) {
        self.shared.mutate(|s| s.amocrm.lifetime = lifetime);
    }

    /// Stores (or replaces) a lead in API v4 shape (see [`lead_json`]).
    pub fn amocrm_put_lead(&self, lead: Value) {
        let id = lead["id"].as_i64().unwrap_or_default();
        self.shared.mutate(|s| s.amocrm.leads.insert(id, lead));
    }

    /// Stores (or replaces) a contact in API v4 shape.
    pub fn amocrm_put_contact(&self, contact: Value) {
        let id = contact["id"].as_i64().unwrap_or_default();
        self.shared
            .mutate(|s| s.amocrm.contacts.insert(id, contact));
    }

    /// `true` when the fake would exchange this refresh token now.
    pub fn amocrm_refresh_token_valid(&self, refresh_token: &str) -> bool {
        self.shared
            .read()
            .amocrm
            .refresh
            .get(refresh_token)
            .is_some_and(|r| !r.revoked)
    }

    /// `true` when this access token is known and not expired.
    pub fn amocrm_access_token_valid(&self, access_token: &str) -> bool {
        self.shared
            .read()
            .amocrm
            .access
            .get(access_token)
            .is_some_and(|(_, exp)| *exp > now())
    }

    /// Token pairs issued so far (code exchanges plus refreshes).
    pub fn amocrm_tokens_issued(&self) -> usize {
        self.shared.read().amocrm.issued
    }
}
