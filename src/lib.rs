//! ringcast: a real-time edge server.
pub mod ws;
