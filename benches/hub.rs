//! Room hot paths: encoding one published message (SSE frame, once), and a
//! worker's fan-out of one message to 10,000 in-memory subscriber queues
//! (single-room subscribers share the frame; multi-room ones add a cursor line).

use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ringcast::hub::shard::LocalRooms;
use ringcast::hub::subscriber::Subscriber;
use ringcast::hub::{Message, Published, RoomName};
use ringcast::io::signal::Signal;
use ringcast::proto::sse::encode;

fn bench_encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("sse_encode");
    let small = Bytes::from(vec![b'x'; 64]);
    let multi = Bytes::from("line one\nline two\r\nline three\rline four".repeat(8));
    let mut out = BytesMut::with_capacity(4096);
    g.throughput(Throughput::Elements(1));
    g.bench_function("event_64B", |b| {
        b.iter(|| {
            out.clear();
            encode::event(
                &mut out,
                Some(b"1795240436956546"),
                Some("tick"),
                black_box(&small),
            );
            out.len()
        })
    });
    g.bench_function("event_multiline_320B", |b| {
        b.iter(|| {
            out.clear();
            encode::event(&mut out, None, None, black_box(&multi));
            out.len()
        })
    });
    let room: RoomName = Arc::from("bench");
    g.bench_function("published_encode_64B", |b| {
        b.iter(|| {
            Published::encode(
                room.clone(),
                1795240436956546,
                0,
                Message::new(small.clone()),
            )
        })
    });
    g.finish();
}

fn subscribers(n: usize, rooms_each: usize) -> (LocalRooms, Vec<Rc<Subscriber>>) {
    let room: RoomName = Arc::from("bench");
    let mut local = LocalRooms::default();
    let subs: Vec<Rc<Subscriber>> = (0..n)
        .map(|_| {
            let mut rooms = vec![room.clone()];
            for i in 1..rooms_each {
                rooms.push(Arc::from(format!("other{i}")));
            }
            Rc::new(Subscriber::new(
                &rooms,
                None,
                1 << 20,
                Rc::new(Signal::default()),
                0,
            ))
        })
        .collect();
    for s in &subs {
        local.add(&room, s.clone(), 0);
    }
    (local, subs)
}

fn bench_fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout_10k");
    g.throughput(Throughput::Elements(10_000));
    for (name, rooms_each) in [("single_room", 1), ("two_rooms_cursor", 2)] {
        let (local, subs) = subscribers(10_000, rooms_each);
        let mut seq = 1u64;
        let mut scratch = VecDeque::new();
        let mut wake = VecDeque::new();
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    seq += 1;
                    Published::encode(Arc::from("bench"), seq, 0, Message::new(vec![b'x'; 64]))
                },
                |p| {
                    let d = local.deliver(black_box(&p), &mut wake);
                    // wake and empty the queues as the worker and a writer would,
                    // so they never hit the limit
                    for s in wake.drain(..) {
                        s.wake_staged();
                    }
                    for s in &subs {
                        s.take_queue(&mut scratch);
                        scratch.clear();
                    }
                    d
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench_encode, bench_fanout);
criterion_main!(benches);
