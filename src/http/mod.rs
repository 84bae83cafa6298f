//! Plain HTTP/1.1: static files and the built-in pages, the router, metrics,
//! and the connection driver that runs them (parsing and writing are in
//! [`crate::proto::http`]).

pub mod conn;
pub mod metrics;
pub mod router;
pub mod static_files;
