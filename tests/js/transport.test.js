'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const {load, config, page, clock} = require('./load');

// transport.js with a fetch the test answers, its own clock, and Math.random = 0.5; consent to
// engage as consent.js would find it now (its engaging()), which the test may withdraw.
function transport(cfg, {beacon} = {}) {
  const consent = {engaging: true};
  const {w, d} = page('https://www.shop.test/');
  const calls = [];
  w.fetch = (url, init) =>
    new Promise((resolve, reject) =>
      calls.push({url, init, body: JSON.parse(init.body), resolve, reject})
    );
  const beacons = [];
  const N =
    beacon === undefined ? w.navigator : Object.assign(w.navigator, {sendBeacon: beacon(beacons)});
  const timers = clock();
  const warned = [];
  const t = load(
    ['core.js', 'storage.js', 'transport.js'],
    {
      w,
      d,
      CFG: config(cfg),
      N,
      pageID: 'P1',
      engaging: () => consent.engaging,
      stream: () => {},
      setTimeout: timers.setTimeout,
      clearTimeout: timers.clearTimeout,
      Math: Object.create(Math, {random: {value: () => 0.5}}),
      console: {warn: (...a) => warned.push(a.slice(1).join(' '))}
    },
    ['enqueue', 'flush', 'flushOnExit', 'openQueue', 'retryNow', 'buf', 'backoff']
  );
  t.openQueue('P1');
  return {t, w, calls, timers, beacons, warned, consent};
}
const ev = (n) => ({eventID: 'E' + n, eventName: 'N' + n, pageID: 'P1', timestamp: n});
const names = (events) => events.map((e) => e.eventID);
const answer = async (call, status) => {
  call.resolve({ok: status < 300, status, text: () => Promise.resolve('why')});
  await new Promise(setImmediate);
};
const fail = async (call) => {
  call.reject(new TypeError('network'));
  await new Promise(setImmediate);
};

test('events go in batches of batchEvents, in order, one request at a time', async () => {
  const {t, calls, timers} = transport({batchEvents: 2});
  [1, 2, 3].forEach((n) => t.enqueue(ev(n)));
  assert.deepEqual(
    timers.pending().map((x) => x.ms),
    [50]
  );
  timers.runNext();
  assert.equal(calls.length, 1);
  assert.equal(calls[0].url, 'https://engine.test/monitoring/events');
  assert.equal(calls[0].init.headers['Content-Type'], 'text/plain;charset=UTF-8');
  assert.deepEqual(names(calls[0].body.events), ['E1', 'E2']);
  t.flush(); // a second flush while one is in flight sends nothing
  assert.equal(calls.length, 1);
  await answer(calls[0], 200);
  timers.runNext();
  assert.deepEqual(names(calls[1].body.events), ['E3']);
  await answer(calls[1], 200);
  assert.deepEqual(t.buf, []);
});

test('a failing engine is retried with backoff that doubles up to retryMaxMs, then resets', async () => {
  const {t, calls, timers} = transport({retryMaxMs: 4000});
  t.enqueue(ev(1));
  timers.runNext();
  const delays = [];
  for (let i = 0; i < 4; i++) {
    await (i % 2 ? answer(calls[i], 503) : fail(calls[i]));
    delays.push(timers.runNext());
  }
  assert.deepEqual(delays, [1150, 2150, 4150, 4150]); // retryBaseMs doubling, + jitter (0.5 * 300)
  assert.deepEqual(
    calls.map((c) => names(c.body.events)),
    [['E1'], ['E1'], ['E1'], ['E1'], ['E1']]
  );
  t.enqueue(ev(2)); // kept behind E1, in order
  await answer(calls[4], 200);
  assert.equal(t.backoff, 0);
  timers.runNext();
  assert.deepEqual(names(calls[5].body.events), ['E2']);
});

test('a retry finds consent withdrawn (in another tab): nothing more is sent', async () => {
  const {t, calls, timers, consent} = transport();
  t.enqueue(ev(1));
  timers.runNext();
  await fail(calls[0]);
  consent.engaging = false;
  timers.runNext(); // the retry
  t.flush(); // the page hidden, the browser back online...
  assert.equal(calls.length, 1);
});

test('429 is retried; another 4xx gives the batch up (retrying cannot help) and warns', async () => {
  const {t, calls, timers, warned} = transport();
  t.enqueue(ev(1));
  timers.runNext();
  await answer(calls[0], 429);
  assert.deepEqual(names(t.buf), ['E1']);
  timers.runNext();
  await answer(calls[1], 400);
  await new Promise(setImmediate);
  assert.deepEqual(t.buf, []);
  assert.deepEqual(warned, ['events rejected (400): why']);
});

test('the buffer keeps the newest maxBufferEvents, mirrored in localStorage for the next page', async () => {
  const {t, w} = transport({maxBufferEvents: 3});
  [1, 2, 3, 4].forEach((n) => t.enqueue(ev(n)));
  assert.deepEqual(names(t.buf), ['E2', 'E3', 'E4']);
  assert.deepEqual(names(JSON.parse(w.localStorage.getItem('_eng_q_P1'))), ['E2', 'E3', 'E4']);

  // The next page takes over what earlier pages left, oldest first, and sends it.
  const next = transport();
  next.w.localStorage.setItem('_eng_q_OLD2', JSON.stringify([ev(7)]));
  next.w.localStorage.setItem('_eng_q_OLD1', JSON.stringify([ev(5), ev(6)]));
  next.w.localStorage.setItem('_eng_q_BAD', '{not json');
  next.t.openQueue('P2');
  assert.deepEqual(names(next.t.buf), ['E5', 'E6', 'E7']);
  assert.deepEqual([...next.w.localStorage.map.keys()], []);
});

test('leaving the page: beacons in batches; nothing is lost when a beacon is refused', () => {
  let accept = 2;
  const {t, w, beacons} = transport(
    {batchEvents: 2},
    {beacon: (log) => (url, blob) => (log.push({url, blob}), accept-- > 0)}
  );
  [1, 2, 3, 4, 5].forEach((n) => t.enqueue(ev(n)));
  t.flushOnExit();
  assert.equal(beacons.length, 3);
  assert.equal(beacons[0].url, 'https://engine.test/monitoring/events');
  assert.equal(beacons[0].blob.type, 'text/plain;charset=utf-8');
  assert.deepEqual(names(t.buf), ['E5']); // refused: left for the next page
  assert.deepEqual(names(JSON.parse(w.localStorage.getItem('_eng_q_P1'))), ['E5']);
});

test('leaving while the engine is failing: the events stay for the next page', async () => {
  const {t, w, calls, timers, beacons} = transport(
    {},
    {beacon: (log) => (url, blob) => (log.push(blob), true)}
  );
  t.enqueue(ev(1));
  timers.runNext();
  await fail(calls[0]);
  t.flushOnExit();
  assert.equal(beacons.length, 1); // tried anyway
  assert.deepEqual(names(JSON.parse(w.localStorage.getItem('_eng_q_P1'))), ['E1']);
});

test('without sendBeacon, leaving sends by fetch with keepalive', () => {
  const {t, calls} = transport();
  t.enqueue(ev(1));
  t.flushOnExit();
  assert.equal(calls.length, 1);
  assert.equal(calls[0].init.keepalive, true);
  assert.deepEqual(t.buf, []);
});

test('keepalive only for bodies under keepaliveMaxBytes', async () => {
  const {t, calls, timers} = transport({keepaliveMaxBytes: 200});
  t.enqueue(ev(1));
  timers.runNext();
  assert.equal(calls[0].init.keepalive, true);
  await answer(calls[0], 200);
  t.enqueue(Object.assign(ev(2), {data: {text: 'x'.repeat(300)}}));
  timers.runNext();
  assert.equal(calls[1].init.keepalive, false);
});

test('back online: retried at once, without waiting for the backoff', async () => {
  const {t, calls, timers} = transport();
  t.enqueue(ev(1));
  timers.runNext();
  await fail(calls[0]);
  assert.equal(t.backoff, 1000);
  t.retryNow();
  assert.equal(calls.length, 2);
  assert.deepEqual(timers.pending(), []);
});
