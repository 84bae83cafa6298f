//! permessage-deflate (RFC 7692): agreeing the extension's parameters in the
//! handshake (`negotiate`, in `negotiate.rs`), then compressing server
//! messages and inflating client messages with them ([`Deflater`],
//! [`Inflater`], in `codec.rs`).

mod codec;
mod negotiate;

pub use codec::{
    deflate_frame_once, encode_frame_no_context, Deflater, InflateError, Inflater,
    COMPRESSION_LEVEL, DEFLATE_TAIL, MIN_COMPRESS_LEN, MIN_COMPRESS_LEN_NO_CONTEXT,
};
pub use negotiate::{negotiate, DeflateConfig, DeflateParams, EXTENSION_NAME};
