//! `GET /api/auth/amo/callback`: where amoCRM sends the account admin after "Allow"
//! (<https://www.amocrm.ru/developers/content/oauth/step-by-step>). The code (valid 20 minutes)
//! is exchanged for the token pair, which is stored, never shown.
//!
//! Two ways lead here (<https://www.amocrm.ru/developers/content/api/auth>):
//!
//! * the consent link printed by `amocrm-sync oauth-url` — amoCRM appends `code`, `referer` and
//!   the link's `state`. The state must be one we issued, unused and unexpired (else 400): a
//!   callback URL someone else got an admin to open carries no state of ours.
//! * the **Install** button of the integration in amoCRM — `code`, `referer`, `from_widget`, and
//!   no `state`. That path stays open; what protects it is the exchange itself: it goes to our
//!   account's domain (`AMOCRM_BASE_URL`) with our client secret and redirect URI, so only a
//!   code amoCRM issued to this integration works, and the new pair must open our account
//!   (`GET /api/v4/account`) before it replaces the stored one (403 otherwise).
//!
//! `referer` is the caller's word and is not read.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::oauth::TokenError;
use crate::store::StateRefused;

/// The redirect's query.
#[derive(Debug, Deserialize)]
pub struct Callback {
    code: Option<String>,
    /// The `state` of a consent link from `amocrm-sync oauth-url`; absent on the Install path.
    state: Option<String>,
    /// `1` when amoCRM's Install button led here (logged only).
    from_widget: Option<String>,
    /// Set by amoCRM when the admin refused access.
    error: Option<String>,
}

/// What an admin reads when the state is refused.
pub fn state_refused_text(why: StateRefused) -> &'static str {
    match why {
        StateRefused::Unknown => {
            "state is unknown: this link was not made by `amocrm-sync oauth-url`; run it and open \
             the link it prints"
        }
        StateRefused::Used => {
            "state was already used: each link works once; run `amocrm-sync oauth-url` for a new one"
        }
        StateRefused::Expired => {
            "state has expired: run `amocrm-sync oauth-url` for a new link and open it within its \
             validity"
        }
    }
}

/// Checks the state (when there is one), exchanges the code and stores the pair.
#[tracing::instrument(skip_all)]
pub async fn callback(
    State(state): State<AppState>,
    Query(q): Query<Callback>,
) -> Result<Json<Value>, ApiError> {
    if let Some(e) = q.error {
        return Err(ApiError::BadRequest(format!(
            "amoCRM did not grant access: {e}"
        )));
    }
    let Some(code) = q.code.filter(|c| !c.trim().is_empty()) else {
        return Err(ApiError::BadRequest("code is missing".into()));
    };
    match q.state.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => {
            if let Err(why) = crate::oauth::use_state(&state.store, s)
                .await
                .map_err(|e| ApiError::Unexpected(e.into()))?
            {
                metrics::counter!("amocrm_oauth_total", "grant" => "authorization_code", "outcome" => "bad_state")
                    .increment(1);
                return Err(ApiError::BadRequest(state_refused_text(why).into()));
            }
        }
        None => tracing::info!(
            from_widget = q.from_widget.as_deref().unwrap_or(""),
            "OAuth callback without state: the Install path"
        ),
    }
    match state.tokens.exchange_code(code.trim()).await {
        Ok(expires_at) => Ok(Json(json!({
            "status": "success",
            "message": "amoCRM connected",
            "account": state.settings.subdomain,
            "access_token_expires_at": expires_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        }))),
        Err(TokenError::Refused(e)) => Err(ApiError::BadRequest(format!(
            "amoCRM refused the code (it is valid 20 minutes and only once): {e}"
        ))),
        Err(e @ TokenError::OtherAccount(_)) => Err(ApiError::Forbidden(format!(
            "{e}, not by {}; nothing was stored",
            state.settings.subdomain
        ))),
        Err(TokenError::Upstream(e)) => Err(ApiError::BadGateway(e.to_string())),
        Err(TokenError::Store(e)) => Err(ApiError::Unexpected(e.into())),
    }
}
