//! WebSocket protocol (RFC 6455, RFC 7692 permessage-deflate) as pure code:
//! bytes in, events and bytes out, no I/O. The connection runtime feeds read
//! buffers to a [`Decoder`], appends replies with an [`Encoder`], and answers
//! the upgrade request with the helpers in [`handshake`].
//!
//! The same code speaks for the other end too ([`Role::Client`]): the
//! library's client ([`crate::client`]), the integration tests' raw client
//! and the load generator build, mask and read their frames and check the
//! server's 101 with it. There is one implementation of each rule.
//!
//! - [`frame`]: opcodes, header parsing, frame encoding (any frame at all,
//!   for tests of a peer).
//! - [`mask`]: masking and unmasking payloads.
//! - [`utf8`]: incremental UTF-8 validation of text messages.
//! - [`close`]: close codes and close frame payloads.
//! - [`handshake`]: the opening handshake (accept key, checks, 101 response;
//!   for a client, the key, the request and the checks of the 101).
//! - [`deflate`]: permessage-deflate negotiation, compression, inflation.
//! - [`codec`]: the receive state machine and the frame encoder, in either
//!   role.

pub mod close;
pub mod codec;
pub mod deflate;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod utf8;

pub use close::{is_valid_received_close_code, CloseError, CloseFrame};
pub use codec::{Decoder, DecoderConfig, Encoder, Event, Masked, Masking, Role, Unmasked};
pub use deflate::{
    deflate_frame_once, negotiate, DeflateConfig, DeflateParams, Deflater, Inflater,
};
pub use frame::{
    encode_masked_frame, encode_raw_frame, parse_header, text_frame, FrameHeader, OpCode,
    ProtocolError,
};
pub use handshake::{
    accept_key, client_key, origin_allowed, select_subprotocol, validate_101, validate_upgrade,
    write_101_response, ClientRequest, HandshakeError, Upgrade,
};
pub use mask::{apply_mask, apply_mask_offset, KeyRng};
pub use utf8::{Utf8Error, Utf8Validator};

#[cfg(test)]
pub(crate) mod test_util {
    /// Incompressible bytes (xorshift64), for compression tests.
    pub fn noise(len: usize) -> Vec<u8> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }
}
