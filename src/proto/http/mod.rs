//! HTTP/1.1, pure: the request head parser with its limits ([`request`])
//! and the response writer ([`response`]).

pub mod request;
pub mod response;
