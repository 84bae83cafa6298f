//! WebSocket keys, masks and payload bytes come from ringcast's own
//! generator (xorshift64*: fast, not cryptographic; a load generator needs
//! speed, not secrecy).

pub use ringcast::proto::ws::KeyRng as Rng;
