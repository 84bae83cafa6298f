// how to run: k6 run -e URL=ws://127.0.0.1:8080/echo bench-scripts/k6/ws-echo.js
//
// Each virtual user opens a WebSocket to an echo endpoint, sends MSGS
// numbered text messages one at a time, checks every echo equals what was
// sent, then closes. Options by environment: URL, VUS (20), DURATION (10s),
// MSGS (100 per connection), SIZE (32 bytes per message).
import ws from 'k6/ws';
import { check } from 'k6';
import { Counter, Trend } from 'k6/metrics';

const URL = __ENV.URL || 'ws://127.0.0.1:8080/echo';
const MSGS = parseInt(__ENV.MSGS || '100', 10);
const SIZE = parseInt(__ENV.SIZE || '32', 10);

export const options = {
  vus: parseInt(__ENV.VUS || '20', 10),
  duration: __ENV.DURATION || '10s',
  thresholds: {
    checks: ['rate==1.0'],
    echo_mismatches: ['count==0'],
    echoes: ['count>0'],
    echo_rtt: ['p(99)<100'],
    ws_connecting: ['p(95)<200'],
  },
};

const rtt = new Trend('echo_rtt', true);
const echoes = new Counter('echoes');
const mismatches = new Counter('echo_mismatches');

function payload(vu, iter, n) {
  const head = `${vu}:${iter}:${n}:`;
  return head.length >= SIZE ? head : head + 'x'.repeat(SIZE - head.length);
}

export default function () {
  let n = 0;
  let expected = '';
  let sentAt = 0;
  const res = ws.connect(URL, null, function (socket) {
    const send = () => {
      expected = payload(__VU, __ITER, n);
      sentAt = Date.now();
      socket.send(expected);
    };
    socket.on('open', send);
    socket.on('message', (data) => {
      rtt.add(Date.now() - sentAt);
      echoes.add(1);
      if (data !== expected) {
        mismatches.add(1);
      }
      n += 1;
      if (n < MSGS) {
        send();
      } else {
        socket.close();
      }
    });
    socket.setTimeout(() => socket.close(), 10000);
  });
  check(res, { 'handshake answered 101': (r) => r && r.status === 101 });
  check(n, { 'every message echoed': (got) => got === MSGS });
}
