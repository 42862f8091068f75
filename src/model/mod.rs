//! The internal presence model in the style of Presence V2: the calculated state, its inputs, the
//! aggregation rule, access levels and what each level sees. Pure data and functions: no I/O, no
//! wire format; the CWA and JSON layers render from [`presentity::PresenceView`] only.

pub mod aggregate;
pub mod contact;
pub mod contacts;
pub mod presentity;
pub mod raw;
pub mod reports;
pub mod rights;
pub mod sources;
pub mod state;
pub mod text;
