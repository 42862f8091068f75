//! One error type for everything a request can run into, and the single mapping from it to the
//! CWA error element (code, subCode, reason, detail) and to JSON error bodies. Internal failures are
//! logged where they happen and leave as a bare "Internal Failure", never with their text.

/// CWA service codes used as `error@code` (docs/architecture.md §1.2 item 9).
pub mod codes {
    pub const INVALID_FORMAT: u32 = 18000;
    pub const INVALID_REQUEST: u32 = 18001;
    pub const SESSION_NOT_FOUND: u32 = 18100;
    pub const REQUEST_THROTTLED: u32 = 18101;
    pub const INVALID_OPERATION: u32 = 18102;
    pub const INTERNAL_FAILURE: u32 = 18400;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// The body or an element is not what the schema allows.
    #[error("invalid format: {0}")]
    InvalidFormat(String),
    /// Well-formed, but the values cannot be used (bad URI, out-of-range number, unknown user…).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("session not found")]
    SessionNotFound,
    /// A limit or rate was exceeded.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// Not allowed or not supported here.
    #[error("invalid operation: {0}")]
    InvalidOperation(String),
    /// The caller may not make this change (`service::permits`).
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The caller's role may not do this at all (a user's ticket where an admin token is needed,
    /// a source token reading presence) (`service::permits`, `service::mandates`).
    #[error("forbidden: {0}")]
    RoleRequired(String),
    #[error("authentication required")]
    Unauthenticated,
    #[error("internal failure")]
    Internal,
    /// The store could not complete a write or read; nothing was half-written and the same
    /// request may be retried.
    #[error("store unavailable")]
    StoreUnavailable,
    /// Other nodes' live presence could not be brought up to date (the cluster's Redis is away);
    /// nothing stale was answered and the same request may be retried.
    #[error("live presence unavailable")]
    LiveStateUnavailable,
}

impl GatewayError {
    pub fn cwa_code(&self) -> u32 {
        match self {
            GatewayError::InvalidFormat(_) => codes::INVALID_FORMAT,
            GatewayError::InvalidRequest(_) | GatewayError::Unauthenticated => codes::INVALID_REQUEST,
            GatewayError::SessionNotFound => codes::SESSION_NOT_FOUND,
            GatewayError::LimitExceeded(_) => codes::REQUEST_THROTTLED,
            GatewayError::InvalidOperation(_) | GatewayError::PermissionDenied(_) | GatewayError::RoleRequired(_) => {
                codes::INVALID_OPERATION
            }
            GatewayError::Internal | GatewayError::StoreUnavailable | GatewayError::LiveStateUnavailable => {
                codes::INTERNAL_FAILURE
            }
        }
    }

    /// The CWA `reason` attribute: the name of the service code.
    pub fn reason(&self) -> &'static str {
        match self.cwa_code() {
            codes::INVALID_FORMAT => "Invalid Format",
            codes::INVALID_REQUEST => "Invalid Request",
            codes::SESSION_NOT_FOUND => "Session Not Found",
            codes::REQUEST_THROTTLED => "Request Throttled",
            codes::INVALID_OPERATION => "Invalid Operation",
            _ => "Internal Failure",
        }
    }

    /// The CWA `detail` attribute: safe, caller-facing text only.
    pub fn detail(&self) -> String {
        match self {
            GatewayError::InvalidFormat(d)
            | GatewayError::InvalidRequest(d)
            | GatewayError::LimitExceeded(d)
            | GatewayError::InvalidOperation(d)
            | GatewayError::PermissionDenied(d)
            | GatewayError::RoleRequired(d) => d.clone(),
            GatewayError::SessionNotFound => "the session does not exist or has ended".into(),
            GatewayError::Unauthenticated => "a valid CWA-Ticket is required".into(),
            GatewayError::Internal => String::new(),
            GatewayError::StoreUnavailable => "the store is unavailable; nothing was changed, try again".into(),
            GatewayError::LiveStateUnavailable => "live presence from the other nodes is unavailable; try again".into(),
        }
    }

    /// A stable machine-readable code for JSON bodies.
    pub fn json_code(&self) -> &'static str {
        match self {
            GatewayError::InvalidFormat(_) => "invalid_format",
            GatewayError::InvalidRequest(_) => "invalid_request",
            GatewayError::SessionNotFound => "session_not_found",
            GatewayError::LimitExceeded(_) => "limit_exceeded",
            GatewayError::InvalidOperation(_) => "invalid_operation",
            GatewayError::PermissionDenied(_) => "permission_denied",
            GatewayError::RoleRequired(_) => "forbidden",
            GatewayError::Unauthenticated => "unauthenticated",
            GatewayError::Internal => "internal",
            GatewayError::StoreUnavailable => "store_unavailable",
            GatewayError::LiveStateUnavailable => "live_state_unavailable",
        }
    }

    /// Logs an internal error's real cause and returns the opaque variant.
    pub fn internal(context: &str, cause: impl std::fmt::Display) -> GatewayError {
        tracing::error!(%cause, "{context}");
        GatewayError::Internal
    }

    /// Logs a store failure and returns [`GatewayError::StoreUnavailable`]: a store error never
    /// leaves half a change behind (every multi-row write is one transaction), so the client may
    /// retry.
    pub fn store(context: &str, cause: crate::store::StoreError) -> GatewayError {
        tracing::error!(cause = %cause, retryable = cause.is_retryable(), "{context}");
        GatewayError::StoreUnavailable
    }
}

pub type Result<T, E = GatewayError> = std::result::Result<T, E>;
