//! HTTP hot paths: parsing request heads (a minimal `/healthz` GET and a
//! browser-like request with a dozen headers, alone and pipelined) and
//! writing a small response into a corked output buffer.

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ringcast::proto::http::request::{self, HeadLimits, Parsed};
use ringcast::proto::http::response;

const LIMITS: HeadLimits = HeadLimits {
    max_request_line: 8192,
    max_header_bytes: 16384,
    max_headers: 64,
};

const SMALL: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
const BROWSER: &[u8] = b"GET /sse?room=news&room=sport HTTP/1.1\r\n\
Host: edge.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/event-stream\r\n\
Accept-Language: en-GB,en;q=0.7\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Referer: https://edge.example.com/notifications\r\n\
Connection: keep-alive\r\n\
Cookie: session=6f1c2b1e9d0a4c3f8e7d6c5b4a392817; theme=dark\r\n\
Sec-Fetch-Dest: empty\r\n\
Sec-Fetch-Mode: cors\r\n\
Sec-Fetch-Site: same-origin\r\n\
Cache-Control: no-cache\r\n\r\n";

fn parse_one(buf: &[u8]) -> usize {
    let mut st = request::header_storage();
    match request::parse(buf, &mut st, &LIMITS) {
        Ok(Parsed::Complete(h)) => h.head_len,
        _ => unreachable!(),
    }
}

fn bench_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("http_parse");
    g.throughput(Throughput::Elements(1));
    g.bench_function("healthz", |b| b.iter(|| parse_one(black_box(SMALL))));
    g.bench_function("browser_13_headers", |b| {
        b.iter(|| parse_one(black_box(BROWSER)))
    });
    let pipelined: Vec<u8> = SMALL.repeat(16);
    g.throughput(Throughput::Elements(16));
    g.bench_function("pipelined_16_healthz", |b| {
        b.iter(|| {
            let mut at = 0;
            while at < pipelined.len() {
                at += parse_one(black_box(&pipelined[at..]));
            }
            at
        })
    });
    g.finish();
}

fn bench_respond(c: &mut Criterion) {
    let mut out = BytesMut::with_capacity(64 << 10);
    c.bench_function("http_response_ok", |b| {
        b.iter(|| {
            out.clear();
            response::simple(&mut out, 200, black_box("ok"), true, false);
            out.len()
        })
    });
}

criterion_group!(benches, bench_parse, bench_respond);
criterion_main!(benches);
