//! WebSocket protocol (RFC 6455, RFC 7692): pure code, no I/O.
