//! Server-Sent Events (WHATWG HTML, "server-sent events"), pure: the wire
//! format ([`encode`]) and the multi-room resume cursor ([`cursor`]).

pub mod cursor;
pub mod encode;
