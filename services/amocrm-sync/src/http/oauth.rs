//! `GET /api/auth/amo/callback?code=…&state=…&referer=<subdomain>.amocrm.ru`: where amoCRM sends
//! the account admin after "Allow" (<https://www.amocrm.ru/developers/content/oauth/step-by-step>).
//! The code (valid 20 minutes) is exchanged for the token pair, which is stored, never shown.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::oauth::TokenError;

/// The redirect's query.
#[derive(Debug, Deserialize)]
pub struct Callback {
    code: Option<String>,
    /// `<subdomain>.amocrm.ru` of the account that granted access.
    referer: Option<String>,
    /// Set by amoCRM when the admin refused access.
    error: Option<String>,
}

/// Exchanges the code and stores the pair.
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
    if let Some(referer) = q.referer.as_deref().filter(|r| !r.is_empty()) {
        let sub = referer.split('.').next().unwrap_or_default();
        if !sub.eq_ignore_ascii_case(&state.settings.subdomain) {
            return Err(ApiError::Forbidden(format!(
                "access was granted by {referer}, not by the configured account"
            )));
        }
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
        Err(TokenError::Upstream(e)) => Err(ApiError::BadGateway(e.to_string())),
        Err(TokenError::Store(e)) => Err(ApiError::Unexpected(e.into())),
    }
}
