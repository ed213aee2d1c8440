/*
 * Engagement browser tracker (GWE Monitoring JS API compatible).
 *
 * Site owners add this snippet to every page (no build step):
 *
 *   <script>
 *     window._gt = window._gt || [];
 *     (function (d) { var s = d.createElement('script'); s.async = true;
 *       s.src = 'http://ENGINE_HOST:9081/tracker.js'; d.head.appendChild(s); })(document);
 *   </script>
 *
 * Then, anywhere (before or after the script has loaded):
 *   _gt.push(['event', 'AddToCart', {data: {price: 600}}]);   // BUSINESS event
 *   _gt.push(['event', 'SignIn', {data: {...}}]);              // SignIn/SignOut/UserInfo: SYSTEM
 *   _gt.push(['getIDs', function (ids) { ids.visitID; ids.pageID; ids.globalVisitID; }]);
 *   _gt.ids()  // same object, synchronously (after load)
 * Older GWE sites: ['event', {eventName: 'X', data: {...}}] (8.1; or the pairs beside eventName),
 *   ['sendUserInfo'|'sendSignIn'|'sendSignOut', {...}] (system events), ['config', {languageCode}]
 *   (overrides navigator.language; queued ones apply before the first page's events).
 *
 * The engine base URL is this script's own src without "/tracker.js"; events are POSTed to
 * BASE + "/monitoring/events" as text/plain JSON (a CORS simple request, no preflight).
 * Cookies (<prefix>visit, <prefix>gvid) hold only random IDs and a timestamp, no personal data;
 * they are scoped to the parent domain so that www.site.com and store.site.com share the visit.
 * While the engine is unreachable, events are kept (bounded), mirrored to localStorage
 * (<prefix>q_<pageID>) and re-sent later, possibly by the next page; the server dedupes by eventID.
 *
 * Push (config "push", default true): once a page has sent its PageEntered it opens
 *   EventSource(BASE + "/notifications/stream?visitID=V&pageID=P&since=N"), frames
 *   {"id": n, "channel": "...", "data": {...}} with per-visit increasing ids. N is the replay
 *   point stored in localStorage (<prefix>seq_<visitID>, highest id handled by any page of the
 *   visit); within a document a high-water mark skips duplicates, so a message addressed to the
 *   visit is handled once by every open tab, and once across a reload.
 * Channels: gpe.appendContent, gpe.removeContent, gpe.publish, gpe.invite, gpe.closeInvite,
 *   gpe.engaged (first frame, no id: the visit's live chat, which engage.js follows); any
 *   other channel is published on the bus under its own name. HTML is fetched only from
 *   cfg.contentOrigins (plus the engine's origin), credentials omitted, sanitized before it is
 *   inserted: Element.setHTML (the browser's Sanitizer) where present, else a walk of a
 *   <template> (inert: nothing runs or loads); either way no script, frame, object or embed,
 *   no on* attribute, no javascript:/data: URL in href, src, action, formaction, xlink:href.
 *   Trusted mode (setting trusted_content, off by default): HTML from cfg.trustedOrigins runs its
 *   scripts, remade with the nonce of this script's own tag (legacy GWE invite.html widgets).
 * Invitations: shared by tabs in localStorage (<prefix>invite, <prefix>answered); the tab named by
 *   <prefix>focus renders it. Dispositions: GET BASE/dispositions/<attemptID>?visitID&pageID&code
 *   with code shown|interacting|accepted|declined|closed|timed_out|failed.
 * Bus: _gt.bus.subscribe(name|'*', fn(data, name)) -> token, unsubscribe(token),
 *   publish(name, data); or _gt.push(['subscribe', name, fn]), _gt.push(['publish', name, data]).
 *
 * The server replaces the config token below with a JSON object when it serves this file.
 */
(function (w, d) {
  'use strict';
  if (w._gt && w._gt._internal) return; // loaded twice: keep the first instance

  var CFG = __ENGAGEMENT_CONFIG__;
  var PFX = CFG.cookiePrefix || '_eng_';
  var TIMEOUT = +CFG.visitTimeoutS || 1800;
  var MAXBUF = +CFG.maxBufferEvents || 500;
  var CHUNK = +CFG.batchEvents || 50;
  var URL_MAX = +CFG.maxUrlChars || 4096, TITLE_MAX = +CFG.maxTitleChars || 1000;
  var SYS = {SignIn: 1, SignOut: 1, UserInfo: 1};
  var L = w.location, N = w.navigator;
  var lang = (CFG.languageCode || N.language || '').slice(0, +CFG.maxLanguageChars || 35); // ['config', {languageCode}] overrides it

  function warn() {
    try { console.warn.apply(console, ['[engagement]'].concat([].slice.call(arguments))); } catch (e) { /* no console */ }
  }
  // Wrap a listener/entry point so that nothing ever throws into the page.
  function guard(fn) {
    return function () {
      try { return fn.apply(this, arguments); } catch (e) { warn(e); }
    };
  }
  function on(target, type, fn, capture) { target.addEventListener(type, guard(fn), !!capture); }
  function nowS() { return Math.floor(Date.now() / 1000); }

  // ---- base URL, from this script's own src ------------------------------------------------
  function scriptSrc() {
    var s = d.currentScript;
    if (s && s.src) return s.src;
    var all = d.getElementsByTagName('script');
    for (var i = all.length - 1; i >= 0; i--) {
      if (/\/tracker\.js$/.test((all[i].src || '').split(/[?#]/)[0])) return all[i].src;
    }
    return '';
  }
  var NONCE = (d.currentScript && d.currentScript.nonce) || ''; // the page's CSP nonce, if any
  var BASE = scriptSrc().split(/[?#]/)[0].replace(/\/[^\/]*$/, '');
  var URL_EVENTS = BASE + '/monitoring/events';

  // ---- IDs: UUID4 as 32 upper-case hex characters -------------------------------------------
  function uuid() {
    var c = w.crypto, b = new Uint8Array(16), s = '', i;
    if (c && c.randomUUID) return c.randomUUID().replace(/-/g, '').toUpperCase();
    if (c && c.getRandomValues) c.getRandomValues(b);
    else for (i = 0; i < 16; i++) b[i] = Math.random() * 256 | 0;
    b[6] = b[6] & 15 | 64;   // version 4
    b[8] = b[8] & 63 | 128;  // RFC 4122 variant
    for (i = 0; i < 16; i++) s += (b[i] + 256).toString(16).slice(1);
    return s.toUpperCase();
  }
  var HEX32 = /^[0-9A-F]{32}$/;

  // ---- cookies -------------------------------------------------------------------------------
  function getCookie(name) {
    var a = d.cookie ? d.cookie.split(/;\s*/) : [], i, j;
    for (i = 0; i < a.length; i++) {
      j = a[i].indexOf('=');
      if (a[i].slice(0, j) === name) return a[i].slice(j + 1);
    }
    return null;
  }
  function rawSet(name, value, domain, maxAge) {
    d.cookie = name + '=' + value + '; path=/; SameSite=Lax' +
      (domain ? '; domain=' + domain : '') +
      (maxAge != null ? '; max-age=' + maxAge : '') +
      (L.protocol === 'https:' ? '; Secure' : '');
  }
  var cookieDomain; // cached: '' = host-only
  function domain() {
    if (cookieDomain !== undefined) return cookieDomain;
    cookieDomain = '';
    if (CFG.cookieDomain) return (cookieDomain = CFG.cookieDomain);
    var h = L.hostname;
    if (!/^https?:$/.test(L.protocol) || !h || h === 'localhost' ||
        /^[\d.]+$/.test(h) || h.indexOf(':') >= 0 || h.charAt(0) === '[') return cookieDomain;
    // Shortest suffix the browser accepts: "test", then "shop.test", then "www.shop.test"...
    var parts = h.split('.'), probe = PFX + 'probe', tok = uuid(), i, dom;
    for (i = parts.length - 1; i >= 0; i--) {
      dom = parts.slice(i).join('.');
      rawSet(probe, tok, dom);
      if (getCookie(probe) === tok) {
        rawSet(probe, '', dom, 0);
        return (cookieDomain = dom);
      }
    }
    return cookieDomain;
  }
  function setCookie(name, value, maxAge) { rawSet(name, value, domain(), maxAge); }

  // ---- visit state ---------------------------------------------------------------------------
  var visitID, pageID, gvid, returning, curRef = d.referrer;
  var memVisit = null, cookiesWork = true; // in-memory fallback when cookies are disabled
  function readVisit() {
    var m = /^([0-9A-F]{32})\.(\d+)$/.exec(getCookie(PFX + 'visit') || '');
    return m ? {id: m[1], t: +m[2]} : (cookiesWork ? null : memVisit);
  }
  function writeVisit() {
    memVisit = {id: visitID, t: nowS()};
    setCookie(PFX + 'visit', visitID + '.' + memVisit.t); // session cookie
  }
  function ids() { return {visitID: visitID, pageID: pageID, globalVisitID: gvid}; }

  // Make sure a live visit exists. Returns true if the visit changed (new one begun here, or
  // begun by another tab), in which case the caller must enter a new page.
  function loadGvid() { // true if this browser already had one
    var g = getCookie(PFX + 'gvid');
    if (HEX32.test(g || '')) return !!(gvid = g);
    gvid = uuid();
    setCookie(PFX + 'gvid', gvid, 63072000); // 2 years
    return false;
  }
  function ensureVisit() {
    var v = readVisit(), t = nowS();
    if (v && t - v.t < TIMEOUT) {
      if (!gvid) loadGvid();
      var changed = v.id !== visitID;
      visitID = v.id;
      if (t - v.t >= 10) writeVisit(); // LASTSEEN, at most every ~10 s
      return changed;
    }
    returning = loadGvid();
    visitID = uuid();
    pageID = uuid(); // a new visit starts on a new page: VisitStarted and PageEntered share it
    freshPage = true;
    writeVisit();
    if (cookiesWork && !readVisit()) cookiesWork = false;
    emit('SYSTEM', 'VisitStarted', {
      timezoneOffset: new Date().getTimezoneOffset(),
      returning: returning,
      userAgent: N.userAgent
    });
    return true;
  }

  function utm() {
    var o = {}, q = new URLSearchParams(L.search);
    ['source', 'medium', 'campaign', 'term', 'content'].forEach(function (k) {
      var v = q.get('utm_' + k);
      if (v != null) o[k] = v;
    });
    return o;
  }
  var pageHooks = [];
  var freshPage = false; // pageID made, its PageEntered not sent yet
  function enterPage(ref) {
    if (!freshPage) pageID = uuid();
    freshPage = false;
    curRef = ref;
    resetFocusTime();
    emit('SYSTEM', 'PageEntered', {
      title: d.title.slice(0, TITLE_MAX), referrer: (ref || '').slice(0, URL_MAX), timezoneOffset: new Date().getTimezoneOffset(),
      utm: utm(), focused: d.hasFocus()
    });
    if (fk && lsGet(FK) === fk) claim(1); // this tab held the focus key: the new page does
    pageHooks.forEach(function (fn) { try { fn(ids()); } catch (e) { warn(e); } });
  }

  // ---- events --------------------------------------------------------------------------------
  function emit(type, name, data, url) {
    var copy = {}, s;
    if (data && typeof data === 'object' && !Array.isArray(data)) {
      try { s = JSON.stringify(data); copy = JSON.parse(s); } catch (e) { warn('bad event data', name, e); }
    }
    // The engine refuses a batch holding an oversized event: drop that one alone.
    if (s && s.length > CFG.maxDataBytes) return warn('event data too large', name);
    enqueue({
      eventType: type, eventName: name, eventID: uuid(), pageID: pageID, visitID: visitID,
      globalVisitID: gvid, timestamp: Date.now(), url: (url || L.href).slice(0, URL_MAX), category: '',
      languageCode: lang, data: copy
    });
  }
  // Public way to raise an event (also _internal.send): keeps the visit alive first.
  function send(name, data, type) {
    if (ensureVisit()) enterPage(curRef);
    emit(type || (SYS[name] ? 'SYSTEM' : 'BUSINESS'), name, data);
  }

  // ---- transport: buffer, batching, retry with backoff, localStorage mirror --------------------
  var buf = [], timer = 0, inflight = false, backoff = 0, dropped = 0, qkey;
  var LS = (function () { try { return w.localStorage; } catch (e) { return null; } })();

  function persist() {
    try {
      if (buf.length) LS.setItem(qkey, JSON.stringify(buf));
      else LS.removeItem(qkey);
    } catch (e) { /* storage disabled or full */ }
  }
  function adopt() { // take over events left by earlier pages (or other tabs) during an outage
    var got = [], keys = [], i, k;
    try {
      for (i = 0; i < LS.length; i++) {
        k = LS.key(i);
        if (k && k.indexOf(PFX + 'q_') === 0 && k !== qkey) keys.push(k);
      }
      keys.forEach(function (k) {
        var a;
        try { a = JSON.parse(LS.getItem(k)); } catch (e) { a = null; }
        LS.removeItem(k);
        if (Array.isArray(a)) a.forEach(function (ev) { if (ev && ev.eventID) got.push(ev); });
      });
    } catch (e) { /* storage disabled */ }
    got.sort(function (a, b) { return a.timestamp - b.timestamp; }).forEach(push);
  }
  function push(ev) {
    while (buf.length >= MAXBUF) { buf.shift(); dropped++; }
    buf.push(ev);
  }
  function enqueue(ev) {
    push(ev);
    persist();
    schedule(+CFG.flushDelayMs || 0);
  }
  function schedule(ms) {
    if (!timer && !inflight && buf.length) timer = setTimeout(guard(flush), ms);
  }
  function removeSent(batch) {
    var sent = new Set(batch);
    buf = buf.filter(function (ev) { return !sent.has(ev); });
    persist();
  }
  function flush() {
    clearTimeout(timer);
    timer = 0;
    if (inflight || !buf.length || !w.fetch) return;
    var batch = buf.slice(0, CHUNK), body = JSON.stringify({events: batch}), p = pageID,
      entered = batch.some(function (ev) { return ev.pageID === p && ev.eventName === 'PageEntered'; });
    inflight = true;
    function done(ok) {
      inflight = false;
      if (entered && p === pageID) stream();
      if (ok) {
        backoff = 0;
        schedule(0);
      } else {
        backoff = Math.min(backoff ? backoff * 2 : 1000, 30000);
        timer = setTimeout(guard(flush), backoff + Math.random() * 300);
      }
    }
    w.fetch(URL_EVENTS, {
      method: 'POST', body: body, headers: {'Content-Type': 'text/plain;charset=UTF-8'},
      credentials: 'omit', keepalive: body.length < 60000, mode: 'cors'
    }).then(function (r) {
      if (r.ok) {
        removeSent(batch);
      } else if (r.status >= 500 || r.status === 429) {
        return done(false);
      } else { // other 4xx: a bug, retrying won't help
        removeSent(batch);
        r.text().then(function (t) { warn('events rejected (' + r.status + '):', t); }, function () {});
      }
      done(true);
    }).catch(function () { done(false); });
  }
  function beacon(body) {
    try {
      if (N.sendBeacon) return N.sendBeacon(URL_EVENTS, new Blob([body], {type: 'text/plain;charset=UTF-8'}));
      w.fetch(URL_EVENTS, {method: 'POST', body: body, headers: {'Content-Type': 'text/plain;charset=UTF-8'},
        credentials: 'omit', keepalive: true, mode: 'cors'}).catch(function () {});
      return true;
    } catch (e) { return false; }
  }
  // Page is going away: send everything with sendBeacon. If the engine was failing (backoff) or
  // a beacon is refused, the events stay in localStorage for the next page to re-send.
  function flushOnExit() {
    clearTimeout(timer);
    timer = 0;
    var i, chunk, sent = [];
    for (i = 0; i < buf.length; i += CHUNK) {
      chunk = buf.slice(i, i + CHUNK);
      if (!beacon(JSON.stringify({events: chunk}))) break;
      sent = sent.concat(chunk);
    }
    if (backoff) persist();
    else removeSent(sent);
  }

  // ---- focus, cumulative focused time ---------------------------------------------------------
  var focused = d.hasFocus(), focusAcc = 0, focusSince = Date.now();
  function focusMs() { return focusAcc + (focused ? Date.now() - focusSince : 0); }
  function resetFocusTime() {
    focusAcc = 0;
    focusSince = Date.now();
    timerFired = {};
    armTimers();
  }
  function setFocus(f) {
    if (f === focused) return;
    focusAcc = focusMs();
    focusSince = Date.now();
    focused = f;
    send('FocusChanged', {focused: f}, 'SYSTEM');
    armTimers();
  }

  // ---- declared business events (from the engine's config) ------------------------------------
  // Each item: {name, trigger: "click"|"submit"|"timer", selector, delayMs, values: {key: css}}.
  var timerDefs = [], timerFired = {}, timerHandle = 0;
  function collect(values) {
    var o = {};
    Object.keys(values || {}).forEach(function (k) {
      var el = null;
      try { el = d.querySelector(values[k]); } catch (e) { warn('bad selector', values[k]); }
      o[k] = !el ? null : /^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName) ? el.value : (el.textContent || '').trim();
    });
    return o;
  }
  function fireDeclared(def) { send(def.name, collect(def.values), 'BUSINESS'); }
  function armTimers() {
    clearTimeout(timerHandle);
    timerHandle = 0;
    if (!focused || !timerDefs.length) return;
    var t = focusMs(), next = Infinity;
    timerDefs.forEach(function (def, i) {
      var delay = def.delayMs == null ? 30000 : +def.delayMs;
      if (timerFired[i]) return;
      if (delay <= t) { timerFired[i] = 1; fireDeclared(def); }
      else next = Math.min(next, delay - t);
    });
    if (next < Infinity) timerHandle = setTimeout(guard(armTimers), next + 5);
  }
  function setupDeclaredEvents(list) {
    if (!Array.isArray(list) || !list.length) return;
    ['click', 'submit'].forEach(function (type) {
      var defs = list.filter(function (x) { return x && x.trigger === type && x.name && x.selector; });
      if (defs.length) on(d, type, function (e) {
        var t = e.target;
        if (!t || !t.closest) return;
        defs.forEach(function (def) {
          var hit = false;
          try { hit = !!t.closest(def.selector); } catch (x) { warn('bad selector', def.selector); }
          if (hit) fireDeclared(def);
        });
      }, true);
    });
    timerDefs = list.filter(function (x) { return x && x.trigger === 'timer' && x.name; });
    armTimers();
  }

  // ---- single-page apps --------------------------------------------------------------------
  function hrefNoHash() { return L.href.split('#')[0]; }
  var lastUrl, lastHref;
  function checkNav() {
    var u = hrefNoHash();
    if (u === lastUrl) { lastHref = L.href; return; }
    emit('SYSTEM', 'PageExited', {}, lastHref);
    var prev = lastHref;
    lastUrl = u;
    lastHref = L.href;
    ensureVisit();
    enterPage(prev);
  }
  function wrapHistory() {
    var H = w.history;
    ['pushState', 'replaceState'].forEach(function (m) {
      var orig = H[m];
      if (typeof orig !== 'function') return;
      H[m] = function () {
        var r = orig.apply(this, arguments);
        try {
          if (m === 'pushState') checkNav();
          else { lastUrl = hrefNoHash(); lastHref = L.href; } // replaceState: same page
        } catch (e) { warn(e); }
        return r;
      };
    });
    on(w, 'popstate', checkNav);
  }

  // ---- bus (in the spirit of Genesys Widgets' CXBus) ------------------------------------------
  var subs = new Map(), subN = 0;
  var bus = {
    subscribe: function (name, fn) {
      if (typeof fn !== 'function') return 0;
      subs.set(++subN, [name, fn]);
      return subN;
    },
    unsubscribe: function (token) { return subs.delete(token); },
    publish: function (name, data) {
      [...subs.values()].forEach(function (s) {
        if (s[0] === name || s[0] === '*') try { s[1](data, name); } catch (e) { warn(e); }
      });
    }
  };
  var pub = bus.publish;

  // ---- localStorage helpers ----------------------------------------------------------------------
  function lsGet(k) { try { return LS.getItem(k); } catch (e) { return null; } }
  function lsSet(k, v) {
    try { v == null ? LS.removeItem(k) : LS.setItem(k, typeof v === 'string' ? v : JSON.stringify(v)); } catch (e) { /* disabled, full */ }
  }
  function lsJSON(k) { try { return JSON.parse(LS.getItem(k)); } catch (e) { return null; } }

  // ---- fetching HTML from allowed origins -------------------------------------------------------
  function allowed(u) {
    var o = (CFG.contentOrigins || []).slice();
    try { o.push(new URL(BASE).origin); } catch (e) { /* no base */ }
    try { return o.indexOf(new URL(u, L.href).origin) >= 0; } catch (e) { return false; }
  }
  function engineURL(u) { // an invitation is on the engine: a relative URL is relative to it
    try { return new URL(u, BASE + '/').href; } catch (e) { return ''; }
  }
  function getHTML(u, method) {
    return w.fetch(new URL(u, L.href).href, {method: method === 'POST' ? 'POST' : 'GET', credentials: 'omit'})
      .then(function (r) { if (!r.ok) throw Error('HTTP ' + r.status + ' ' + u); return r.text(); });
  }
  function frag(html) { // a <template> parses without running scripts
    var t = d.createElement('template');
    t.innerHTML = html;
    return t.content;
  }
  var BAD_TAG = /^(script|iframe|frame|frameset|object|embed|base|meta|link|template|animate|animatemotion|animatetransform|set)$/i;
  var URL_ATTR = /^(href|src|action|formaction|xlink:href|data|poster|background)$/i;
  function strip(root) { // in the template's inert document, before anything runs or loads
    root.querySelectorAll('*').forEach(function (e) {
      if (BAD_TAG.test(e.localName)) return e.remove();
      [].slice.call(e.attributes).forEach(function (a) {
        if (/^on/i.test(a.name) || URL_ATTR.test(a.name) &&
            /^(javascript|data|vbscript):/i.test(a.value.replace(/[\x00-\x20]/g, ''))) e.removeAttribute(a.name);
      });
    });
    return root;
  }
  function fill(el, html) { // the browser's Sanitizer where present (it keeps data: URLs)
    if (el.setHTML) try { el.setHTML(html, {sanitizer: {}}); return strip(el); } catch (e) { warn(e); }
    el.replaceChildren(strip(frag(html)));
  }
  function trusted(u) { // trusted mode (off by default): only the configured content origins
    try { return (CFG.trustedOrigins || []).indexOf(new URL(u, L.href).origin) >= 0; } catch (e) { return false; }
  }
  function fillTrusted(el, html, u) { // a legacy GWE widget (invite.html): its scripts run
    el.replaceChildren(frag(html));
    el.querySelectorAll('script').forEach(function (old) { // parsed scripts never run: remake them
      var s = d.createElement('script');
      [].slice.call(old.attributes).forEach(function (a) { s.setAttribute(a.name, a.value); });
      if (old.getAttribute('src')) s.src = new URL(old.getAttribute('src'), u).href;
      s.async = false; // in document order, as the page would have run them
      if (NONCE) s.nonce = NONCE;
      s.text = old.text;
      old.replaceWith(s);
    });
  }
  function byAttr(attr, val, fn) {
    d.querySelectorAll('[' + attr + ']').forEach(function (e) { if (e.getAttribute(attr) === String(val)) fn(e); });
  }

  // ---- push stream -------------------------------------------------------------------------------
  var es = null, esTimer = 0, esBack = 0, esPage, seen = 0, seenVisit;
  function seqKey() { return PFX + 'seq_' + visitID; }
  function unstream() {
    clearTimeout(esTimer);
    if (es) es.close();
    es = null;
  }
  function stream(force) {
    if (CFG.push === false || !w.EventSource || (!force && esPage === pageID)) return;
    unstream();
    if (seenVisit !== visitID) { seenVisit = visitID; seen = +lsGet(seqKey()) || 0; }
    esPage = pageID;
    var v = visitID, s = es = new EventSource(BASE + '/notifications/stream?visitID=' + visitID + '&pageID=' + pageID + '&since=' + seen);
    s.onopen = function () { esBack = 0; };
    s.onmessage = guard(function (e) { if (s === es && v === visitID) message(JSON.parse(e.data), +e.lastEventId); });
    s.onerror = guard(function () { // CONNECTING: the browser retries by itself; CLOSED: we do
      if (s !== es || s.readyState !== 2) return;
      esBack = Math.min(esBack * 2 || 1000, 30000);
      esTimer = setTimeout(guard(function () { stream(1); }), esBack);
    });
  }
  function message(m, lastID) {
    var n = m.id != null ? +m.id : lastID || 0, k = seqKey(); // id 0: handled by every page
    if (n) {
      if (n <= seen) return; // seen starts at the stored replay point: reloads skip what was handled
      seen = n;
    }
    try {
      handle(m.channel, m.data, n);
    } finally {
      if (n) lsSet(k, String(Math.max(n, +lsGet(k) || 0)));
    }
  }
  function handle(c, x, n) {
    var o = x || {};
    if (c === 'gpe.appendContent') appendContent(o, n);
    else if (c === 'gpe.removeContent') byAttr('data-eng-content', o.id, function (e) { e.remove(); });
    else if (c === 'gpe.publish') {
      pub(o.event, o.data);
      w.dispatchEvent(new CustomEvent('engagement', {detail: {event: o.event, data: o.data}}));
    } else if (c === 'gpe.invite') engage(function (m) { m.invite(o); });
    else if (c === 'gpe.closeInvite') engage(function (m) { m.close(o); });
    else if (c === 'gpe.engaged') engage(function (m) { m.follow(o); }); // the visit's live chat
    else pub(c, x);
  }
  function appendContent(o, n) {
    var u = o.url, id = String(o.id != null ? o.id : n), box = o.container || 'body';
    if (!allowed(u)) {
      warn('origin not allowed:', u);
      return pub('Content.refused', {url: u});
    }
    getHTML(u, o.method).then(function (html) {
      var div = d.createElement('div');
      div.setAttribute('data-eng-content', id);
      if (trusted(u)) fillTrusted(div, html, new URL(u, L.href).href);
      else fill(div, html);
      d.querySelector(box).appendChild(div);
      pub('Content.appended', {url: u, id: id, container: box});
    }).catch(function (e) { warn(e); pub('Content.failed', {url: u, id: id}); });
  }

  // ---- invitations: engage.js, loaded with the first one ------------------------------------
  var IK = PFX + 'invite', FK = PFX + 'focus', leaving = 0, fk, E, eq = [];
  function engage(fn) { // run fn with the invitation module, loading it the first time
    if (E) return fn(E);
    if (eq.push(fn) > 1) return;
    var s = d.createElement('script');
    s.async = true;
    s.src = BASE + '/engage.js';
    d.head.appendChild(s);
  }
  function sync() { if (E) E.sync(); }
  function pendingInvite() { // one is waiting (another page or tab got it): load what shows it
    if (E) E.sync();
    else if (lsGet(IK)) engage(function (m) { m.sync(); });
  }
  function claim(force) { // this tab is the one the visitor looks at
    if (force || d.visibilityState === 'visible') {
      lsSet(FK, fk = pageID);
      sync();
    }
  }

  // ---- commands: a map, name -> handler(args after the name) -----------------------------------
  function options(o) { // GWE 8.1 options: {data: {...}} or the key/value pairs themselves
    if (!o || typeof o !== 'object') return {};
    if (o.data && typeof o.data === 'object') return o.data;
    var r = {};
    Object.keys(o).forEach(function (k) { if (k !== 'eventName') r[k] = o[k]; });
    return r;
  }
  function legacy(name) { return function (o) { send(name, options(o), 'SYSTEM'); }; }
  var COMMANDS = {
    event: function (name, o) {
      // 8.5: ['event', 'Name', {data: {...}}]; 8.1: ['event', {eventName: 'Name', data | pairs...}]
      if (name && typeof name === 'object') return COMMANDS.event(name.eventName, {data: options(name)});
      if (typeof name !== 'string' || !name) return warn('event needs a name');
      send(name, (o || {}).data);
    },
    getIDs: function (cb) {
      if (ensureVisit()) enterPage(curRef);
      if (typeof cb === 'function') {
        try { cb(ids()); } catch (e) { try { console.error(e); } catch (x) { /* nothing */ } }
      }
    },
    config: function (o) { if (o && typeof o.languageCode === 'string') lang = o.languageCode.slice(0, +CFG.maxLanguageChars || 35); },
    sendUserInfo: legacy('UserInfo'), // GWE 8.1 system-event commands
    sendSignIn: legacy('SignIn'),
    sendSignOut: legacy('SignOut'),
    subscribe: function (name, fn) { bus.subscribe(name, fn); },
    publish: function (name, data) { bus.publish(name, data); }
  };
  var warned = {};
  function run(cmd) {
    try {
      var c = cmd && cmd[0], fn = typeof c === 'string' && COMMANDS.hasOwnProperty(c) && COMMANDS[c];
      if (fn) fn.apply(null, [].slice.call(cmd, 1));
      else if (!warned[c]) {
        warned[c] = 1;
        warn('unknown command', c);
      }
    } catch (e) { warn(e); }
  }

  // ---- start -----------------------------------------------------------------------------------
  try {
    var queued = w._gt;
    var api = {
      push: function () { for (var i = 0; i < arguments.length; i++) run(arguments[i]); },
      ids: function () { return ids(); },
      bus: bus
    };
    // UNSTABLE, for the engine's own widgets (push stream, notification channels); not an API.
    Object.defineProperty(api, '_internal', {enumerable: false, value: {
      send: function (name, data, type) { try { send(name, data, type); } catch (e) { warn(e); } },
      cfg: CFG,
      base: BASE,
      bus: bus,
      ids: ids,
      onPage: function (fn) { pageHooks.push(fn); if (pageID) fn(ids()); }, // called on each new page
      stats: function () { return {buffered: buf.length, dropped: dropped, backoffMs: backoff}; },
      flush: function () { guard(flush)(); },
      k: {BASE: BASE, CFG: CFG, PFX: PFX, IK: IK, FK: FK, ids: ids, pub: pub, on: on, guard: guard,
        warn: warn, lsGet: lsGet, lsSet: lsSet, lsJSON: lsJSON, allowed: allowed, engineURL: engineURL,
        getHTML: getHTML, frag: frag, leaving: function () { return leaving; },
        ready: function (m) { E = m; eq.splice(0).forEach(function (fn) { guard(fn)(m); }); }}
    }});

    if (queued && queued.length) [].slice.call(queued).forEach(function (c) { if (c && c[0] === 'config') run(c); });
    pageID = uuid();
    freshPage = true;
    qkey = PFX + 'q_' + pageID; // fixed for this document's lifetime
    adopt();
    lastUrl = hrefNoHash();
    lastHref = L.href;
    ensureVisit();
    enterPage(d.referrer);
    w._gt = api;
    if (queued && queued.length) [].slice.call(queued).forEach(function (c) { if (!c || c[0] !== 'config') run(c); });

    on(w, 'focus', function (e) { if (e.target === w) { claim(1); setFocus(true); } });
    on(w, 'blur', function (e) { if (e.target === w) setFocus(false); });
    on(w, 'pagehide', function () {
      leaving = 1;
      emit('SYSTEM', 'PageExited', {});
      flushOnExit();
      unstream();
      esPage = 0;
      if (lsGet(FK) === pageID) lsSet(FK, null); // the next tab to get focus claims it
    });
    on(w, 'pageshow', function (e) { // back from the back/forward cache: a new page
      leaving = 0;
      if (!e.persisted) return;
      ensureVisit();
      enterPage(curRef);
      claim();
    });
    on(d, 'visibilitychange', function () {
      if (d.visibilityState === 'visible') claim();
      else if (!backoff) flush();
    });
    on(w, 'storage', function (e) {
      if (e.key == null || e.key === IK || e.key === FK) pendingInvite();
    });
    on(d, 'keydown', function (e) { if (E) E.keys(e); }, true);
    claim();
    pendingInvite();
    if (lsGet(PFX + 'chat')) engage(function (m) { m.follow(); }); // a chat to follow here too
    on(w, 'online', function () { backoff = 0; flush(); });
    wrapHistory();
    setupDeclaredEvents(CFG.declaredEvents);
  } catch (e) {
    warn('tracker failed to start', e);
  }
})(window, document);
