//! The load generator's modes, one file each; `common` holds what they share.

pub mod churn;
pub mod common;
pub mod echo;
pub mod fanout;
pub mod hold;
pub mod hostile;
pub mod midwrite;
pub mod slowloris;
