//! Property tests of the client's receive side (a unit-test module because
//! [`Receiver`] is private): server frames cut into any pieces decode to the
//! messages sent, and arbitrary server bytes never panic nor yield a message
//! over the client's size limit.

use bytes::BytesMut;
use flate2::{Compress, Compression, FlushCompress};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use super::{DeflateParams, Message, Receiver};
use crate::proto::ws::deflate::Deflater;
use crate::proto::ws::frame::{header, OpCode, MAX_HEADER_LEN};

/// One unmasked server frame.
fn frame(fin: bool, rsv1: bool, op: OpCode, payload: &[u8], out: &mut Vec<u8>) {
    let (h, n) = header(fin, rsv1, op, payload.len() as u64);
    out.extend_from_slice(&h[..n]);
    out.extend_from_slice(payload);
}

/// `data` as one raw deflate stream ending in a final block, then the 0x00
/// octet (an empty stored block's header) that lets the receiver append the
/// usual `00 00 ff ff`: what a server may send instead of a sync-flushed
/// message (RFC 7692 §7.2.3.4).
fn deflate_final(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    loop {
        c.compress_vec(
            &data[c.total_in() as usize..],
            &mut out,
            FlushCompress::Finish,
        )
        .unwrap();
        if out.len() < out.capacity() {
            out.push(0x00);
            return out;
        }
        out.reserve(out.capacity());
    }
}

fn params(server_no_context_takeover: bool) -> DeflateParams {
    DeflateParams {
        server_no_context_takeover,
        client_no_context_takeover: false,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
    }
}

/// A server message: type, bytes, fragment cuts, how it is compressed
/// (0: not, 1: sync flush, 2: final block), pings between fragments.
#[derive(Debug, Clone)]
struct ServerMessage {
    text: bool,
    data: Vec<u8>,
    cuts: Vec<Index>,
    compression: u8,
    pings: Vec<Vec<u8>>,
}

fn server_message() -> impl Strategy<Value = ServerMessage> {
    (
        any::<bool>(),
        prop_oneof![
            vec(any::<u8>(), 0..2048),
            "[a-z ]{0,2048}".prop_map(String::into_bytes),
            vec(0u8..2, 0..4096),
        ],
        vec(any::<Index>(), 0..5),
        0u8..3,
        vec(vec(any::<u8>(), 0..=125), 0..3),
    )
        .prop_map(|(text, data, cuts, compression, pings)| {
            let data = if text {
                String::from_utf8_lossy(&data).into_owned().into_bytes()
            } else {
                data
            };
            ServerMessage {
                text,
                data,
                cuts,
                compression,
                pings,
            }
        })
}

/// The frames of `m` and the messages they must decode to.
fn encode(m: &ServerMessage, deflater: &mut Deflater, out: &mut Vec<u8>) -> Vec<Message> {
    let body = match m.compression {
        0 => m.data.clone(),
        1 => {
            let mut c = BytesMut::new();
            deflater.compress_into(&m.data, &mut c);
            c.to_vec()
        }
        _ => deflate_final(&m.data),
    };
    let mut at: Vec<usize> = m.cuts.iter().map(|c| c.index(body.len() + 1)).collect();
    at.extend([0, body.len()]);
    at.sort_unstable();
    at.dedup();
    if at.len() == 1 {
        at.push(body.len());
    }
    let n = at.len() - 1;
    let mut want = Vec::new();
    for i in 0..n {
        let op = match (i, m.text) {
            (0, true) => OpCode::Text,
            (0, false) => OpCode::Binary,
            _ => OpCode::Continuation,
        };
        frame(
            i + 1 == n,
            i == 0 && m.compression != 0,
            op,
            &body[at[i]..at[i + 1]],
            out,
        );
        if let Some(p) = m.pings.get(i).filter(|_| i + 1 < n) {
            frame(true, false, OpCode::Ping, p, out);
            want.push(Message::Ping(p.clone()));
        }
    }
    want.push(if m.text {
        Message::Text(String::from_utf8(m.data.clone()).unwrap())
    } else {
        Message::Binary(m.data.clone())
    });
    want
}

/// Feeds `wire` in pieces of `sizes`, checking every message and pause.
fn receive(
    deflate: Option<&DeflateParams>,
    max: usize,
    wire: &[u8],
    sizes: &[usize],
) -> Result<(Vec<Message>, bool), TestCaseError> {
    let mut r = Receiver::new(deflate, max);
    let mut got = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < wire.len() {
        let n = sizes[i % sizes.len()].max(1).min(wire.len() - pos);
        i += 1;
        r.feed(&wire[pos..pos + n]);
        pos += n;
        loop {
            match r.next() {
                Ok(Some(m)) => {
                    match &m {
                        Message::Text(t) => prop_assert!(t.len() <= max, "{} > {}", t.len(), max),
                        Message::Binary(b) => {
                            prop_assert!(b.len() <= max, "{} > {}", b.len(), max)
                        }
                        Message::Ping(p) | Message::Pong(p) => prop_assert!(p.len() <= 125),
                        Message::Close(_, reason) => prop_assert!(reason.len() <= 123),
                    }
                    got.push(m);
                }
                Ok(None) => {
                    prop_assert!(r.pending().len() < MAX_HEADER_LEN + max.max(125));
                    break;
                }
                Err(_) => return Ok((got, true)),
            }
        }
    }
    Ok((got, false))
}

fn sizes() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        Just(vec![1usize]),
        vec(1usize..200, 1..8),
        Just(vec![usize::MAX])
    ]
}

proptest! {
    /// Server messages of any type, fragmented anywhere, compressed or not
    /// (sync flush or final block, with or without context takeover), with
    /// pings between fragments and cut into any pieces, arrive as sent.
    #[test]
    fn client_receives_what_the_server_sent(
        msgs in vec(server_message(), 1..4), nct in any::<bool>(), sizes in sizes(),
    ) {
        let mut deflater = Deflater::new(15, nct);
        let mut wire = Vec::new();
        let mut want = Vec::new();
        for m in &msgs {
            want.extend(encode(m, &mut deflater, &mut wire));
            if m.compression == 2 {
                // A final block ends the stream: the client starts afresh,
                // so the server must too.
                deflater = Deflater::new(15, nct);
            }
        }
        let p = params(nct);
        let (got, failed) = receive(Some(&p), 1 << 16, &wire, &sizes)?;
        prop_assert!(!failed);
        prop_assert_eq!(got, want);
    }

    /// Under any size limit a message arrives whole or the stream fails;
    /// nothing over the limit is ever returned, and nothing panics.
    #[test]
    fn client_size_limit(m in server_message(), max in prop_oneof![0usize..80, 0usize..5000], sizes in sizes()) {
        let mut wire = Vec::new();
        let want = encode(&m, &mut Deflater::new(15, true), &mut wire);
        let (got, failed) = receive(Some(&params(true)), max, &wire, &sizes)?;
        if !failed {
            prop_assert_eq!(got, want);
        }
    }

    /// Arbitrary server bytes never panic.
    #[test]
    fn client_arbitrary_bytes(
        wire in vec(any::<u8>(), 0..4096), deflate in any::<bool>(),
        max in prop_oneof![0usize..80, 0usize..5000], sizes in sizes(),
    ) {
        let p = params(false);
        receive(deflate.then_some(&p), max, &wire, &sizes)?;
    }
}

// Regressions: inputs the properties above found, kept as plain tests.

/// With a size limit under 63 bytes, the first compressed message panicked
/// (`clamp` with its bounds the wrong way round) instead of being inflated.
#[test]
fn regression_small_limit_compressed_message_does_not_panic() {
    let mut c = BytesMut::new();
    Deflater::new(15, true).compress_into(b"hello", &mut c);
    let mut wire = Vec::new();
    frame(true, true, OpCode::Text, &c, &mut wire);
    let mut r = Receiver::new(Some(&params(true)), 10);
    r.feed(&wire);
    assert_eq!(r.next().unwrap(), Some(Message::Text("hello".into())));
    let mut r = Receiver::new(Some(&params(true)), 4);
    r.feed(&wire);
    assert!(r.next().is_err());
}

/// A compressed message ending in a final block was returned whole even
/// when it inflated to more than the limit (here 10000 bytes under a
/// 5800-byte limit): the size was only checked before each inflate call.
#[test]
fn regression_final_block_message_over_limit_is_refused() {
    let data: Vec<u8> = (0..10000usize).map(|i| (i * i / 7 % 251) as u8).collect();
    let mut wire = Vec::new();
    frame(true, true, OpCode::Binary, &deflate_final(&data), &mut wire);
    let mut r = Receiver::new(Some(&params(true)), 5800);
    r.feed(&wire);
    assert!(r.next().is_err());
    let mut r = Receiver::new(Some(&params(true)), 10000);
    r.feed(&wire);
    assert_eq!(r.next().unwrap(), Some(Message::Binary(data)));
}
