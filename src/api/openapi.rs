//! The OpenAPI document of the JSON API, served at `GET /api/v1/openapi.json` without
//! authentication. Nothing in it is written by hand: the paths come from the handlers'
//! `#[utoipa::path]` annotations — the same list the router is built from — and the schemas from
//! the request and response types the handlers read and write.

use super::error::ApiError;
use crate::error::GatewayError;
use axum::http::header;
use axum::response::IntoResponse;
use std::sync::LazyLock;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The scheme names operations refer to in their `security`.
pub const BEARER: &str = "bearer";
pub const TICKET_HEADER: &str = "cwaTicket";
pub const TICKET_COOKIE: &str = "cwaTicketCookie";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "presence-gateway JSON API",
        description = "Presence sources (reported and read back), manual state and note, rights, presence in \
                       Presence V2 names with Microsoft Graph's `availability` and `activity` (one user or a batch \
                       of up to 650), contact images and user administration. Errors are `{code, message, field?}` \
                       with a stable `code`."
    ),
    components(schemas(ApiError)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "sources", description = "What integrations report about a user, each report with a TTL"),
        (name = "presence", description = "The manual state, the note and reading presence (one user or a batch)"),
        (name = "rights", description = "A user's rights entries (Presence V2 dynamic rights)"),
        (name = "images", description = "Contact images with ETag and 304"),
        (name = "users", description = "User administration"),
        (name = "sessions", description = "Live sessions: list them, end one or all of a user's (admin)"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("A token from the `api_tokens` config, with the role `source` or `admin`"))
            .build();
        components.add_security_scheme(BEARER, SecurityScheme::Http(bearer));
        let ticket = "The `CWA-Ticket` of a user signed in with `POST /forms/logon.html`";
        let header = ApiKeyValue::with_description(crate::request::ticket::TICKET_HEADER, ticket);
        components.add_security_scheme(TICKET_HEADER, SecurityScheme::ApiKey(ApiKey::Header(header)));
        let cookie = ApiKeyValue::with_description(crate::request::ticket::TICKET_HEADER, "The same ticket in its cookie");
        components.add_security_scheme(TICKET_COOKIE, SecurityScheme::ApiKey(ApiKey::Cookie(cookie)));
    }
}

/// The document as JSON, built once (from the same route list the router is built from).
pub fn document() -> Result<&'static str, ApiError> {
    static DOCUMENT: LazyLock<Result<String, String>> =
        LazyLock::new(|| super::routes().into_openapi().to_json().map_err(|e| e.to_string()));
    DOCUMENT.as_deref().map_err(|e| GatewayError::internal("rendering the OpenAPI document", e).into())
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI document of this API", content_type = "application/json", body = Object))
)]
pub async fn get_openapi() -> Result<impl IntoResponse, ApiError> {
    Ok(([(header::CONTENT_TYPE, "application/json")], document()?))
}
