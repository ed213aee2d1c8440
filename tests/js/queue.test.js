'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const {load, partsInOrder, config, page, clock} = require('./load');

// commands.js (and the bus) with what they take from the visit stubbed: sent events recorded.
function commands(cfg) {
  const {w, d} = page('https://www.shop.test/');
  const sent = [];
  const warned = [];
  const t = load(
    ['core.js', 'bus.js', 'commands.js'],
    {
      w,
      d,
      CFG: config(cfg),
      console: {warn: (...a) => warned.push(a.slice(1).join(' ')), error: () => {}},
      send: (name, data, type) => sent.push({name, data, type, lang: t.lang}),
      ensureVisit: () => false,
      enterPage: () => {},
      curRef: '',
      ids: () => ({visitID: 'V', pageID: 'P', globalVisitID: 'G'})
    },
    ['run', 'runQueued', 'lang', 'bus']
  );
  return {t, sent, warned};
}

test('commands pushed before the script loaded run in order, config ones first', () => {
  const {t, sent} = commands();
  const queued = [
    ['event', 'First'],
    ['event', 'Second', {data: {n: 2}}],
    ['config', {languageCode: 'fr-CA'}],
    ['sendSignIn', {data: {customerID: 'C-1'}}]
  ];
  t.runQueued(queued, true);
  assert.equal(t.lang, 'fr-CA');
  assert.deepEqual(sent, []);
  t.runQueued(queued, false);
  assert.deepEqual(sent, [
    {name: 'First', data: undefined, type: undefined, lang: 'fr-CA'},
    {name: 'Second', data: {n: 2}, type: undefined, lang: 'fr-CA'},
    {name: 'SignIn', data: {customerID: 'C-1'}, type: 'SYSTEM', lang: 'fr-CA'}
  ]);
});

test('an unknown command warns once and the queue goes on; so does one that throws', () => {
  const {t, sent, warned} = commands();
  let ids = null;
  t.runQueued(
    [
      ['nope'],
      'not a command',
      ['nope', 1],
      ['getIDs', () => { throw new Error('site bug'); }], // prettier-ignore
      ['subscribe', 'X', (data) => sent.push({bus: data})],
      ['publish', 'X', 1],
      ['getIDs', (x) => (ids = x)],
      ['event', 'After']
    ],
    false
  );
  assert.deepEqual(warned, ['unknown command nope', 'unknown command n']); // a string: its first letter
  assert.deepEqual(ids, {visitID: 'V', pageID: 'P', globalVisitID: 'G'});
  assert.deepEqual(sent, [
    {bus: 1},
    {name: 'After', data: undefined, type: undefined, lang: 'en-GB'}
  ]);
});

test("GWE 8.1 forms: ['event', {eventName, ...}] and the send* commands", () => {
  const {t, sent} = commands();
  t.runQueued(
    [
      ['event', {eventName: 'AddToCart', data: {sku: 'WH15'}}],
      ['event', {eventName: 'Pairs', price: 3}],
      ['sendUserInfo', {firstName: 'Ada'}],
      ['sendSignOut']
    ],
    false
  );
  t.run(['config', {languageCode: 'x'.repeat(50)}]);
  assert.deepEqual(
    sent.map((e) => [e.name, e.data, e.type]),
    [
      ['AddToCart', {sku: 'WH15'}, undefined],
      ['Pairs', {price: 3}, undefined],
      ['UserInfo', {firstName: 'Ada'}, 'SYSTEM'],
      ['SignOut', {}, 'SYSTEM']
    ]
  );
  assert.equal(t.lang, 'x'.repeat(35)); // cut to maxLanguageChars
});

// The whole tracker, joined in tracker.py's order, on a page whose _gt queue was filled first.
test('the whole tracker: the queue runs after start, in order, then _gt.push runs at once', async () => {
  const {w, d} = page('https://www.shop.test/p?utm_source=news');
  const posted = [];
  w._gt = [['event', 'Early', {data: {n: 1}}], ['config', {languageCode: 'de'}], ['bogus']];
  w.fetch = (url, init) => {
    posted.push({url, events: JSON.parse(init.body).events});
    return Promise.resolve({ok: true, status: 200});
  };
  const timers = clock();
  const t = load(
    partsInOrder(),
    {
      w,
      d,
      CFG: config(),
      setTimeout: timers.setTimeout,
      clearTimeout: timers.clearTimeout,
      console: {warn: () => {}}
    },
    ['start']
  );
  t.start();
  const api = w._gt;
  assert.equal(typeof api.push, 'function');
  api.push(['event', 'Late']);
  assert.equal(timers.runNext(), 50); // flushDelayMs
  await new Promise(setImmediate);
  assert.deepEqual(
    posted.map((p) => p.url),
    ['https://engine.test/monitoring/events']
  );
  const events = posted[0].events;
  assert.deepEqual(
    events.map((e) => [e.eventType, e.eventName, e.languageCode]),
    [
      ['SYSTEM', 'VisitStarted', 'de'],
      ['SYSTEM', 'PageEntered', 'de'],
      ['BUSINESS', 'Early', 'de'],
      ['BUSINESS', 'Late', 'de']
    ]
  );
  assert.deepEqual(events[1].data.utm, {source: 'news'});
  assert.equal(new Set(events.map((e) => e.pageID)).size, 1);

  load(partsInOrder(), {w, d, CFG: config(), console: {warn: () => {}}}, ['start']).start();
  assert.equal(w._gt, api); // loaded twice: the first instance stays
});
