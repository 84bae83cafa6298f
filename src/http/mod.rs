//! Plain HTTP/1.1: request parsing and responses (pure), static files and the
//! built-in pages, the router, and the connection driver that runs them.

pub mod conn;
pub mod metrics;
pub mod request;
pub mod response;
pub mod router;
pub mod static_files;
