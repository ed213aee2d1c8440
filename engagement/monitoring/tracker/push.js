/* push: once a page has sent its PageEntered it opens EventSource(stream?visitID&pageID&since=N):
 * frames {"id": n, "channel": "...", "data": {...}} with per-visit increasing ids. N is the
 * replay point in localStorage (<prefix>seq_<visitID>, the highest id any page of the visit
 * handled); within a document a high-water mark skips duplicates, so a message to the visit is
 * handled once by every open tab, and once across a reload. Channels: see HANDLERS; any other
 * is published on the bus under its own name. Off with CFG.push = false. */
/* global PFX, appendContent, endpoint, engage, engaging, eq, guard, lsGet, lsSet, pageID, pub, removeContent, visitID */
/* exported pageLeft, stream */
var es,
  esTimer,
  esBack,
  esPage,
  seen = 0,
  seenVisit;
function seqKey() {
  return PFX + 'seq_' + visitID;
}
function unstream() {
  clearTimeout(esTimer);
  if (es) es.close();
  es = null;
}
function pageLeft() {
  // the next page (or this one, back from the cache) opens its own
  unstream();
  esPage = 0;
}
function stream(force) {
  if (CFG.push === false || !w.EventSource || (!force && esPage === pageID) || !engaging()) return;
  unstream();
  if (seenVisit !== visitID) {
    seenVisit = visitID;
    seen = +lsGet(seqKey()) || 0;
  }
  esPage = pageID;
  var v = visitID,
    s = (es = new EventSource(
      endpoint('stream') + '?visitID=' + visitID + '&pageID=' + pageID + '&since=' + seen
    ));
  s.onopen = function () {
    esBack = 0;
  };
  // consent withdrawn in another tab: engaging() closes the stream (so the browser does not
  // reconnect it either) before a message is handled or a retry made
  s.onmessage = guard(function (e) {
    if (engaging() && s === es && v === visitID) message(JSON.parse(e.data), +e.lastEventId);
  });
  s.onerror = guard(function () {
    // CONNECTING: the browser retries by itself; CLOSED: we do
    if (!engaging() || s !== es || s.readyState !== 2) return;
    esBack = Math.min(esBack * 2 || CFG.retryBaseMs, CFG.retryMaxMs);
    esTimer = setTimeout(
      guard(function () {
        stream(1);
      }),
      esBack
    );
  });
}
function handled() {
  lsSet(seqKey(), Math.max(seen, +lsGet(seqKey()) || 0));
}
function message(m, lastID) {
  var n = m.id != null ? +m.id : lastID || 0; // id 0: handled by every page
  if (n) {
    if (n <= seen) return; // seen starts at the stored replay point: reloads skip what was handled
    seen = n;
  }
  try {
    handle(m.channel, m.data, n);
  } finally {
    // While engage.js loads, what it is to run waits in eq, and the replay point waits behind
    // it: a page left meanwhile leaves the invitation to the next page, which gets it again.
    if (n) eq.length ? eq.push(handled) : handled();
  }
}
var HANDLERS = {
  // channel -> handler(data, message id)
  'gpe.appendContent': appendContent,
  'gpe.removeContent': removeContent,
  'gpe.publish': function (o) {
    pub(o.event, o.data);
    w.dispatchEvent(new CustomEvent('engagement', {detail: {event: o.event, data: o.data}}));
  },
  'gpe.invite': toEngage('invite'),
  'gpe.closeInvite': toEngage('close'),
  'gpe.engaged': toEngage('follow') // the visit's live chat
};
function toEngage(f) {
  // a channel handled by engage.js's module function f
  return function (o) {
    engage(function (m) {
      m[f](o);
    });
  };
}
function handle(c, x, n) {
  if ({}.hasOwnProperty.call(HANDLERS, c)) HANDLERS[c](x || {}, n);
  else pub(c, x);
}
