//! What every HTTP endpoint needs from a request, in both dialects (the CWA endpoints in
//! [`crate::http`], the JSON API in [`crate::api`]): the ticket it carries and the one to hand
//! back ([`ticket`]), header lines read alike from a `HeaderMap` or a parsed head ([`headers`]),
//! the client's address behind trusted proxies ([`client_addr`]), the
//! before/after hook the middleware is built from ([`around`]), and in a cluster the client that
//! passes a request to the node serving it ([`pass`]).

pub(crate) mod around;
pub mod client_addr;
pub mod headers;
pub mod pass;
pub(crate) mod ticket;
