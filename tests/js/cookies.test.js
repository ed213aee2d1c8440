'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const {load, config, cookieJar, page} = require('./load');

function cookies(href, cfg, jar) {
  const {w, d} = page(href, {cookies: jar});
  const t = load(['core.js', 'cookies.js'], {w, d, CFG: config(cfg)}, [
    'getCookie',
    'setCookie',
    'domain'
  ]);
  return {t, d};
}
const last = (d) => d.writes[d.writes.length - 1];

test('getCookie reads a cookie by its exact name', () => {
  const jar = cookieJar('www.shop.test');
  jar.cookie = 'x_eng_visit=1';
  jar.cookie = '_eng_visit=ABC.5';
  jar.cookie = '_eng_visitor=2';
  const {t} = cookies('https://www.shop.test/', {}, jar);
  assert.equal(t.getCookie('_eng_visit'), 'ABC.5');
  assert.equal(t.getCookie('_eng_gvid'), null);
});

test('cookies are path=/ and SameSite=Lax, and Secure on https pages only', () => {
  let {t, d} = cookies('https://www.shop.test/cart');
  t.setCookie('_eng_x', 'v', 60);
  assert.deepEqual(last(d), {
    name: '_eng_x',
    value: 'v',
    attrs: {path: '/', samesite: 'Lax', domain: 'shop.test', 'max-age': '60', secure: true}
  });
  ({t, d} = cookies('http://www.shop.test/cart'));
  t.setCookie('_eng_x', 'v');
  assert.deepEqual(last(d).attrs, {path: '/', samesite: 'Lax', domain: 'shop.test'});
});

test('the cookie domain is the shortest suffix the browser accepts; the probe is removed', () => {
  const {t, d} = cookies('https://www.store.shop.test/');
  assert.equal(t.domain(), 'shop.test'); // 'test' is refused, as a public suffix is
  assert.equal(d.cookie, '');
  const probes = d.writes.filter((c) => c.name === '_eng_probe');
  assert.deepEqual(
    probes.map((c) => [c.attrs.domain, c.attrs['max-age']]),
    [
      ['shop.test', undefined],
      ['shop.test', '0']
    ]
  );
  t.domain();
  assert.equal(d.writes.length, 2); // found once per page
});

test('localhost and IP addresses get host-only cookies; the cookie_domain setting wins', () => {
  for (const href of ['http://localhost:9081/', 'http://127.0.0.1/', 'http://[::1]/']) {
    const {t, d} = cookies(href);
    t.setCookie('_eng_x', 'v');
    assert.equal(last(d).attrs.domain, undefined, href);
    assert.equal(d.writes.length, 1, href);
  }
  const {t, d} = cookies('https://www.shop.test/', {cookieDomain: 'www.shop.test'});
  t.setCookie('_eng_x', 'v');
  assert.deepEqual(
    d.writes.map((c) => c.attrs.domain),
    ['www.shop.test']
  );
});

// The visit: cookies.js under visit.js, with what visit.js takes from later parts stubbed.
function visit(href, jar) {
  const {w, d} = page(href, {cookies: jar});
  const emitted = [];
  const t = load(
    ['core.js', 'cookies.js', 'visit.js'],
    {
      w,
      d,
      CFG: config(),
      emit: (type, name, data) => emitted.push({type, name, data}),
      resetFocusTime: () => {},
      lsGet: () => null,
      claim: () => {},
      fk: undefined,
      FK: '_eng_focus'
    },
    ['ensureVisit', 'ids']
  );
  return {t, d, emitted};
}
const now = () => Math.floor(Date.now() / 1000);
const ID = 'A'.repeat(32);
const GVID = 'B'.repeat(32);

test('a new visit: the visit cookie is a session cookie, the visitor cookie lasts two years', () => {
  const {t, d, emitted} = visit('https://www.shop.test/');
  assert.equal(t.ensureVisit(), true);
  const {visitID, globalVisitID} = t.ids();
  const written = Object.fromEntries(d.writes.map((c) => [c.name, c]));
  assert.equal(written._eng_gvid.value, globalVisitID);
  assert.equal(written._eng_gvid.attrs['max-age'], '63072000');
  assert.match(written._eng_visit.value, new RegExp('^' + visitID + '\\.\\d+$'));
  assert.equal(written._eng_visit.attrs['max-age'], undefined);
  assert.equal(written._eng_visit.attrs.expires, undefined);
  assert.deepEqual(
    emitted.map((e) => [e.name, e.data.returning]),
    [['VisitStarted', false]]
  );
  assert.equal(t.ensureVisit(), false); // the same visit goes on
  assert.equal(t.ids().visitID, visitID);
  assert.equal(emitted.length, 1);
});

test('a visit idle less than visitTimeoutS goes on; longer, a new one starts', () => {
  let jar = cookieJar('www.shop.test');
  jar.cookie = `_eng_gvid=${GVID}; domain=shop.test`;
  jar.cookie = `_eng_visit=${ID}.${now() - 1700}; domain=shop.test`;
  let {t, emitted} = visit('https://www.shop.test/', jar);
  assert.equal(t.ensureVisit(), true); // begun elsewhere: this page joins it
  assert.deepEqual(t.ids().visitID, ID);
  assert.deepEqual(emitted, []);
  const seen = +/_eng_visit=\w+\.(\d+)/.exec(jar.cookie)[1];
  assert.ok(seen > now() - 1700, 'the last-seen time is rewritten');

  jar = cookieJar('www.shop.test');
  jar.cookie = `_eng_gvid=${GVID}; domain=shop.test`;
  jar.cookie = `_eng_visit=${ID}.${now() - 1801}; domain=shop.test`;
  ({t, emitted} = visit('https://www.shop.test/', jar));
  assert.equal(t.ensureVisit(), true);
  assert.notEqual(t.ids().visitID, ID);
  assert.equal(t.ids().globalVisitID, GVID);
  assert.deepEqual(
    emitted.map((e) => [e.name, e.data.returning]),
    [['VisitStarted', true]]
  );
});

test('with cookies disabled the visit lives in the page', () => {
  const jar = cookieJar('www.shop.test', ['test', 'shop.test', 'www.shop.test']);
  Object.defineProperty(jar, 'cookie', {get: () => '', set: () => {}});
  const {t, emitted} = visit('https://www.shop.test/', jar);
  t.ensureVisit();
  const first = t.ids().visitID;
  assert.equal(t.ensureVisit(), false);
  assert.equal(t.ids().visitID, first);
  assert.equal(emitted.length, 1);
});
