//! What every HTTP endpoint needs from a request, in both dialects (the CWA endpoints in
//! [`crate::http`], the JSON API in [`crate::api`]): the ticket it carries and the one to hand
//! back ([`ticket`]), the client's address behind trusted proxies ([`client_addr`]), and the
//! before/after hook the middleware is built from ([`around`]).

pub(crate) mod around;
pub mod client_addr;
pub(crate) mod ticket;
