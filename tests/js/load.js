// Loads tracker parts as tracker.py joins them, for node's test runner: the parts' text inside
// one function whose parameters are the browser stand-ins (w, d, CFG...) and whatever the parts
// take from parts not loaded. Returns live views (getters/setters) of the names asked for.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');

const ROOT = path.join(__dirname, '..', '..');
const PARTS_DIR = path.join(ROOT, 'engagement', 'monitoring', 'tracker');

// The order tracker.py joins them in (its PARTS tuple), for loading the whole tracker.
function partsInOrder() {
  const py = fs.readFileSync(path.join(ROOT, 'engagement', 'monitoring', 'tracker.py'), 'utf8');
  const block = py.slice(py.indexOf('PARTS = ('), py.indexOf(')\n', py.indexOf('PARTS = (')));
  return [...block.matchAll(/"([\w-]+\.js)"/g)].map((m) => m[1]);
}

function load(parts, env, names) {
  const params = Object.keys(env);
  const body = parts.map((p) => fs.readFileSync(path.join(PARTS_DIR, p), 'utf8')).join('\n');
  const views = names.map((n) => `get ${n}() { return ${n}; }, set ${n}(v) { ${n} = v; }`);
  const src = `(function (${params.join(', ')}) {\n'use strict';\n${body}\nreturn {${views.join(',\n')}};\n})`;
  return vm.runInThisContext(src, {filename: 'tracker:' + parts.join('+')})(
    ...params.map((k) => env[k])
  );
}

// A config as the engine sends it (small numbers where a test wants to reach a bound).
function config(over) {
  return Object.assign(
    {
      paths: {
        tracker: '/tracker.js',
        events: '/monitoring/events',
        stream: '/notifications/stream',
        engage: '/engage.js',
        disposition: '/dispositions/{attemptID}',
        callbacks: '/callbacks',
        chats: '/chats'
      },
      cookiePrefix: '_eng_',
      gvidCookieMaxAgeS: 63072000,
      visitCookieRefreshS: 10,
      visitTimeoutS: 1800,
      flushDelayMs: 50,
      maxBufferEvents: 500,
      retryBaseMs: 1000,
      retryMaxMs: 30000,
      retryJitterMs: 300,
      keepaliveMaxBytes: 60000,
      dispositionRetries: 2,
      maxDataBytes: 16384,
      batchEvents: 50,
      maxUrlChars: 4096,
      maxTitleChars: 1000,
      maxLanguageChars: 35,
      push: false
    },
    over
  );
}

// document.cookie as a browser keeps it: attributes read, a refused domain ignored, max-age=0
// deletes; every write is recorded with its attributes.
function cookieJar(host, refused = ['test', 'com']) {
  const jar = new Map();
  const writes = [];
  return {
    writes,
    get cookie() {
      return [...jar.values()].map((c) => c.name + '=' + c.value).join('; ');
    },
    set cookie(text) {
      const [pair, ...rest] = text.split(/;\s*/);
      const i = pair.indexOf('=');
      const attrs = {};
      for (const a of rest) {
        const j = a.indexOf('=');
        attrs[(j < 0 ? a : a.slice(0, j)).toLowerCase()] = j < 0 ? true : a.slice(j + 1);
      }
      const c = {name: pair.slice(0, i), value: pair.slice(i + 1), attrs};
      const dom = attrs.domain || '';
      if (dom && (refused.includes(dom) || !(host === dom || host.endsWith('.' + dom)))) return;
      writes.push(c);
      const key = c.name + '|' + dom;
      if (attrs['max-age'] !== undefined && +attrs['max-age'] <= 0) jar.delete(key);
      else jar.set(key, c);
    }
  };
}

// localStorage as a Map.
function storage() {
  const m = new Map();
  return {
    get length() {
      return m.size;
    },
    key: (i) => [...m.keys()][i] ?? null,
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => m.set(k, String(v)),
    removeItem: (k) => m.delete(k),
    map: m
  };
}

// setTimeout/clearTimeout that only run when the test says so.
function clock() {
  const timers = new Map();
  let n = 0;
  return {
    setTimeout: (fn, ms) => (timers.set(++n, {fn, ms}), n),
    clearTimeout: (id) => timers.delete(id),
    pending: () => [...timers.values()],
    runNext() {
      const [id, t] = [...timers.entries()][0];
      timers.delete(id);
      t.fn();
      return t.ms;
    }
  };
}

module.exports = {load, partsInOrder, config, cookieJar, storage, clock};

// A page at `href` with the tracker's script tag on the engine: window and document stand-ins.
function page(href, {cookies} = {}) {
  const u = new URL(href);
  const d = cookies || cookieJar(u.hostname);
  Object.assign(d, {
    currentScript: {src: 'https://engine.test/tracker.js', nonce: ''},
    referrer: '',
    title: 'A page',
    visibilityState: 'visible',
    getElementsByTagName: () => [],
    hasFocus: () => true,
    addEventListener: () => {}
  });
  const w = {
    location: {href, protocol: u.protocol, hostname: u.hostname, search: u.search},
    navigator: {language: 'en-GB', userAgent: 'node'},
    crypto: globalThis.crypto,
    localStorage: storage(),
    history: {},
    addEventListener: () => {}
  };
  return {w, d};
}
module.exports.page = page;
