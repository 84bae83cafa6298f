//! Micro-benchmarks of the WebSocket hot paths: header parsing, frame
//! encoding, unmasking, UTF-8 validation, room-frame compression, and the
//! server's receive state machine and frame encoder.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringcast::proto::ws::codec::{Decoder, DecoderConfig, Encoder};
use ringcast::proto::ws::deflate::{deflate_frame_once, Deflater};
use ringcast::proto::ws::frame::{
    encode_frame, encode_masked_frame, parse_header, text_frame, OpCode,
};
use ringcast::proto::ws::mask::apply_mask;
use ringcast::proto::ws::utf8::Utf8Validator;

/// A JSON-ish room message of exactly `len` bytes.
fn room_message(len: usize) -> String {
    let mut s = String::with_capacity(len + 64);
    let mut seq = 0u64;
    while s.len() < len {
        s.push_str(&format!(
            "{{\"room\":\"lobby\",\"seq\":{seq},\"user\":\"u{}\",\"text\":\"hello everyone\"}}",
            seq % 97
        ));
        seq += 1;
    }
    s.truncate(len);
    s
}

fn bench_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_header");
    let mut small = BytesMut::new();
    encode_masked_frame(
        true,
        false,
        OpCode::Text,
        b"hello",
        [1, 2, 3, 4],
        &mut small,
    );
    let mut big = BytesMut::new();
    encode_masked_frame(
        true,
        false,
        OpCode::Binary,
        &[0u8; 70_000],
        [1, 2, 3, 4],
        &mut big,
    );
    g.bench_function("7bit_masked", |b| {
        b.iter(|| parse_header(black_box(&small[..])))
    });
    g.bench_function("64bit_masked", |b| {
        b.iter(|| parse_header(black_box(&big[..14])))
    });
    g.finish();
}

fn bench_encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_text_frame");
    for len in [64usize, 16 * 1024] {
        let msg = room_message(len);
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(format!("{len}B_into_buffer"), |b| {
            let mut out = BytesMut::with_capacity(len + 16);
            b.iter(|| {
                out.clear();
                encode_frame(OpCode::Text, black_box(msg.as_bytes()), &mut out);
                black_box(&out);
            })
        });
        g.bench_function(format!("{len}B_shared_bytes"), |b| {
            b.iter(|| text_frame(black_box(&msg)))
        });
    }
    g.finish();
}

fn bench_mask(c: &mut Criterion) {
    let mut g = c.benchmark_group("unmask");
    for len in [32usize, 16 * 1024] {
        let mut buf = vec![0x5Au8; len + 1];
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(format!("{len}B_aligned"), |b| {
            b.iter(|| apply_mask(black_box(&mut buf[..len]), [0x37, 0xfa, 0x21, 0x3d]))
        });
        g.bench_function(format!("{len}B_unaligned"), |b| {
            b.iter(|| apply_mask(black_box(&mut buf[1..]), [0x37, 0xfa, 0x21, 0x3d]))
        });
    }
    g.finish();
}

fn bench_utf8(c: &mut Criterion) {
    let mut g = c.benchmark_group("utf8_validate");
    let ascii = room_message(16 * 1024);
    let mut mixed = String::new();
    while mixed.len() < 16 * 1024 {
        mixed.push_str("hello wörld — ünïcödé 日本語のテキスト 😀 ");
    }
    for (name, text) in [
        ("ascii_16KiB", ascii.as_bytes()),
        ("mixed_16KiB", mixed.as_bytes()),
    ] {
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function(format!("{name}_whole"), |b| {
            b.iter(|| {
                let mut v = Utf8Validator::new();
                v.feed(black_box(text)).unwrap();
                v.finish().unwrap();
            })
        });
        g.bench_function(format!("{name}_in_1000B_chunks"), |b| {
            b.iter(|| {
                let mut v = Utf8Validator::new();
                for chunk in black_box(text).chunks(1000) {
                    v.feed(chunk).unwrap();
                }
                v.finish().unwrap();
            })
        });
    }
    g.finish();
}

fn bench_deflate(c: &mut Criterion) {
    let mut g = c.benchmark_group("deflate_room_frame");
    for len in [64usize, 4096] {
        let msg = room_message(len);
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(format!("{len}B_shared_no_context"), |b| {
            b.iter(|| deflate_frame_once(OpCode::Text, black_box(msg.as_bytes()), 15))
        });
        g.bench_function(format!("{len}B_own_deflater"), |b| {
            let mut d = Deflater::new(15, true);
            let mut out = BytesMut::with_capacity(len + 64);
            b.iter(|| {
                out.clear();
                d.encode_frame(OpCode::Text, black_box(msg.as_bytes()), false, &mut out);
                black_box(&out);
            })
        });
    }
    g.finish();
}

/// The server role of the codec: client frames through `Decoder::decode`
/// (16 frames a batch, refilled from one read-sized buffer as a connection
/// would be), and messages through `Encoder::text`.
fn bench_codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    for len in [64usize, 16 * 1024] {
        let msg = room_message(len);
        let mut whole = BytesMut::new();
        let mut fragmented = BytesMut::new();
        for _ in 0..16 {
            encode_masked_frame(
                true,
                false,
                OpCode::Text,
                msg.as_bytes(),
                [1, 2, 3, 4],
                &mut whole,
            );
            let (a, b) = msg.as_bytes().split_at(len / 2);
            encode_masked_frame(false, false, OpCode::Text, a, [1, 2, 3, 4], &mut fragmented);
            encode_masked_frame(
                true,
                false,
                OpCode::Continuation,
                b,
                [5, 6, 7, 8],
                &mut fragmented,
            );
        }
        g.throughput(Throughput::Bytes(16 * len as u64));
        for (name, wire) in [("whole", &whole), ("in_2_fragments", &fragmented)] {
            g.bench_function(format!("decode_16x{len}B_text_{name}"), |b| {
                let mut d = Decoder::new(DecoderConfig::default());
                let mut buf = BytesMut::with_capacity(wire.len());
                b.iter(|| {
                    buf.extend_from_slice(wire);
                    while let Some(event) = d.decode(&mut buf).unwrap() {
                        black_box(event);
                    }
                })
            });
        }
        g.bench_function(format!("encode_16x{len}B_text"), |b| {
            let mut e = Encoder::new(None);
            let mut out = BytesMut::with_capacity(16 * (len + 16));
            b.iter(|| {
                out.clear();
                for _ in 0..16 {
                    e.text(black_box(&msg), &mut out);
                }
                black_box(&out);
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_codec,
    bench_parse,
    bench_encode,
    bench_mask,
    bench_utf8,
    bench_deflate
);
criterion_main!(benches);
