//! The HTTP surface: REST under `/api`, the hub at `/hubs/chat`, OpenAPI at `/openapi.json`
//! and Swagger UI at `/swagger` (served from the binary: no internet needed), `/` redirecting
//! there. `/health`, `/ready`, `/metrics` and the layers come from service-kit.

pub mod admin;
pub mod auth;
pub mod chats;
pub mod dto;
pub mod messages;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Redirect, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::AppState;
use crate::error::ApiError;
use crate::hub::connection as hub;

/// The OpenAPI document's frame; the paths come from the routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Messenger API",
        description = "Accounts, chats, messages and voice messages of the own messenger. \
                       Real-time events come over the SignalR hub at /hubs/chat (JSON hub \
                       protocol): server → client ReceiveMessage, MessageDeleted, MessageRead, \
                       UserConnected, UserDisconnected, Typing; client → server \
                       SendMessage(chatId, text), Typing(chatId), MarkRead(chatId, messageId)."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "registration, login, tokens"),
        (name = "chats", description = "private and group chats, read receipts"),
        (name = "messages", description = "text and voice messages, files"),
        (name = "admin", description = "role Admin only"),
        (name = "hub", description = "SignalR negotiate and WebSocket"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The routes and the OpenAPI document built from them.
pub fn api(state: &AppState) -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let audio_limit = state.settings.max_audio_bytes + 64 * 1024;
    // The upload route takes larger bodies than the service-wide MAX_BODY_BYTES.
    let (schemas, paths, upload) = routes!(messages::upload_audio);
    let upload = (
        schemas,
        paths,
        upload.layer(DefaultBodyLimit::max(audio_limit)),
    );
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(chats::list, chats::create))
        .routes(routes!(chats::get_one, chats::delete))
        .routes(routes!(chats::read))
        .routes(routes!(messages::send))
        .routes(routes!(messages::page, messages::delete))
        .routes(upload)
        .routes(routes!(messages::download))
        .routes(routes!(admin::users))
        .routes(routes!(admin::delete_user))
        .routes(routes!(admin::create_invite))
        .routes(routes!(hub::negotiate))
        .routes(routes!(hub::upgrade))
        .split_for_parts()
}

/// Every route of the service, with state.
pub fn router(state: AppState) -> axum::Router {
    let (routes, openapi) = api(&state);
    let routes = routes
        .route(
            "/",
            axum::routing::get(|| async { Redirect::temporary("/swagger") }),
        )
        .fallback(fallback)
        .with_state(state);
    routes.merge(SwaggerUi::new("/swagger").url("/openapi.json", openapi))
}

/// Unknown paths: JSON 404, and under `/api` 401 first when there is no valid token (an
/// anonymous caller learns nothing about which routes exist).
async fn fallback(State(state): State<AppState>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    if parts.uri.path().starts_with("/api/") {
        let valid = crate::auth::bearer_token(&parts)
            .and_then(|t| state.tokens.verify(&t))
            .is_some();
        if !valid {
            return ApiError::Unauthorized("missing or invalid access token".into())
                .into_response();
        }
    }
    ApiError::NotFound("route").into_response()
}

/// CORS for the browser origins in `CORS_ALLOWED_ORIGINS`; `None` when there are none. Put
/// outside every other layer, so preflight requests are answered before anything else.
pub fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(list))
            .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::RANGE,
                HeaderName::from_static("x-requested-with"),
                HeaderName::from_static("x-signalr-user-agent"),
                HeaderName::from_static("idempotency-key"),
            ])
            .allow_credentials(true),
    )
}
