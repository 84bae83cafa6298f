// how to run: k6 run -e BASE=127.0.0.1:8080 bench-scripts/k6/room-subscribe.js
//
// SUBS virtual users subscribe to one room over WebSocket (/ws?room=ROOM)
// and stay for HOLD; one publisher POSTs numbered messages to
// /publish/ROOM at RATE per second. Every subscriber checks that sequence
// numbers only go up (no duplicates, no reordering) and that it received
// messages; delivery latency (publish to receive, ms) is a trend.
// Options by environment: BASE, ROOM (k6room), SUBS (50), RATE (20),
// HOLD (10s).
import ws from 'k6/ws';
import http from 'k6/http';
import exec from 'k6/execution';
import { check } from 'k6';
import { Counter, Trend } from 'k6/metrics';

const BASE = __ENV.BASE || '127.0.0.1:8080';
const ROOM = __ENV.ROOM || 'k6room';
const SUBS = parseInt(__ENV.SUBS || '50', 10);
const RATE = parseInt(__ENV.RATE || '20', 10);
const HOLD = __ENV.HOLD || '10s';

function seconds(d) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(d);
  if (!m) return 10;
  const v = parseFloat(m[1]);
  return m[2] === 'ms' ? v / 1000 : m[2] === 'm' ? v * 60 : v;
}
const HOLD_S = seconds(HOLD);

export const options = {
  scenarios: {
    subscribers: {
      executor: 'per-vu-iterations',
      exec: 'subscriber',
      vus: SUBS,
      iterations: 1,
      maxDuration: `${Math.ceil(HOLD_S) + 30}s`,
    },
    publisher: {
      executor: 'constant-arrival-rate',
      exec: 'publisher',
      rate: RATE,
      timeUnit: '1s',
      // Start once the subscribers are in; stop before they leave.
      startTime: '2s',
      duration: `${Math.max(1, Math.floor(HOLD_S) - 4)}s`,
      preAllocatedVUs: 2,
      maxVUs: 10,
    },
  },
  thresholds: {
    checks: ['rate==1.0'],
    room_out_of_order: ['count==0'],
    room_messages: ['count>0'],
    room_latency: ['p(99)<200'],
    'http_req_failed{scenario:publisher}': ['rate==0'],
  },
};

const latency = new Trend('room_latency', true);
const received = new Counter('room_messages');
const disorder = new Counter('room_out_of_order');

export function publisher() {
  const seq = exec.scenario.iterationInTest;
  const res = http.post(`http://${BASE}/publish/${ROOM}`, `${seq}:${Date.now()}:k6`, {
    headers: { 'Content-Type': 'text/plain' },
  });
  check(res, { 'publish accepted (2xx)': (r) => r.status >= 200 && r.status < 300 });
}

export function subscriber() {
  let last = -1;
  let got = 0;
  const res = ws.connect(`ws://${BASE}/ws?room=${ROOM}`, null, function (socket) {
    socket.on('message', (data) => {
      const parts = String(data).split(':');
      const seq = parseInt(parts[0], 10);
      const ts = parseInt(parts[1], 10);
      if (!(seq > last)) {
        disorder.add(1);
      }
      last = seq;
      got += 1;
      received.add(1);
      latency.add(Date.now() - ts);
    });
    socket.setTimeout(() => socket.close(), HOLD_S * 1000);
  });
  check(res, { 'subscribe answered 101': (r) => r && r.status === 101 });
  check(got, { 'subscriber received messages': (n) => n > 0 });
}
