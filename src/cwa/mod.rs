//! The CWA "Unified Communications AJAX API" wire format: parsing request bodies into typed
//! requests, rendering the hub's events (presence views into `cwaCategory` XML, lists, answers)
//! and the `cwaResponses` / `cwaEvents` envelopes. Nothing here knows about sessions or storage.

pub mod batch;
pub mod envelope;
pub mod events;
pub mod lists;
mod plain_xml;
pub mod raw;
pub mod requests;
pub mod wire;
pub mod writer;
pub mod xml;

pub const NS_CWA: &str = "http://schemas.microsoft.com/2006/09/rtc/cwa";
pub const NS_STATE: &str = "http://schemas.microsoft.com/2006/09/sip/state";
pub const NS_NOTE: &str = "http://schemas.microsoft.com/2006/09/sip/note";
pub const NS_CONTACT_CARD: &str = "http://schemas.microsoft.com/2006/09/sip/contactcard";
pub const NS_CALENDAR: &str = "http://schemas.microsoft.com/2006/09/sip/calendarData";
pub const NS_XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// The project's namespace for lines, calls, forwards and agent state (a raw category).
pub const NS_TELEPHONY: &str = "urn:presence-gateway:telephony:1";
