//! Who is calling the JSON API: a bearer token from the config (compared in constant time, never
//! logged) with its role, or a signed-in user presenting their `CWA-Ticket`.

use super::error::ApiError;
use crate::config::ApiRole;
use crate::http::ticket;
use crate::service::Gateway;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use std::sync::Arc;
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A configured token (its name, for logs) with its role.
    Token { name: String, role: ApiRole },
    /// A user signed in over CWA.
    User(Arc<str>),
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        matches!(self, Caller::Token { role: ApiRole::Admin, .. })
    }

    /// Admin or a source token.
    pub fn may_report_sources(&self) -> bool {
        matches!(self, Caller::Token { .. })
    }

    pub fn user(&self) -> Option<&str> {
        match self {
            Caller::User(uri) => Some(uri),
            Caller::Token { .. } => None,
        }
    }

    /// Admin, or the user `uri` themself.
    pub fn is_admin_or(&self, uri: &str) -> bool {
        self.is_admin() || self.user() == Some(uri)
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

impl FromRequestParts<Arc<Gateway>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, gateway: &Arc<Gateway>) -> Result<Self, Self::Rejection> {
        if let Some(presented) = bearer(parts) {
            let mut found = None;
            for token in &gateway.config.api_tokens {
                if bool::from(token.token.as_bytes().ct_eq(presented.as_bytes())) {
                    found = Some(Caller::Token { name: token.name.clone(), role: token.role });
                }
            }
            return found.ok_or_else(ApiError::unauthenticated);
        }
        let presented = ticket::presented(&parts.headers).ok_or_else(ApiError::unauthenticated)?;
        let auth = gateway.authenticate(&presented).ok_or_else(ApiError::unauthenticated)?;
        Ok(Caller::User(auth.login.user.clone()))
    }
}
