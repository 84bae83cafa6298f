//! The application a default ringcast serves on top of the drivers: the
//! endpoint table ([`router`]), static files and the built-in pages
//! ([`static_files`]), `/metrics` ([`metrics`]), the live demos ([`demo`])
//! and the dashboard ([`dashboard`]).

pub mod dashboard;
pub mod demo;
pub mod metrics;
pub mod router;
pub mod static_files;
