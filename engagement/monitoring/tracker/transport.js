/* transport: a bounded buffer (CFG.maxBufferEvents, oldest dropped), mirrored to localStorage
 * (<prefix>q_<pageID>) so the next page re-sends what an outage kept; batches of
 * CFG.batchEvents POSTed as text/plain (a CORS simple request); on failure, retried with
 * backoff (CFG.retryBaseMs doubling to CFG.retryMaxMs, plus up to CFG.retryJitterMs); on page
 * exit, sendBeacon. The engine drops duplicates by eventID. */
/* global LS, N, PFX, endpoint, engaging, guard, pageID, stream, warn */
/* exported backoff, dropQueued, enqueue, flush, flushOnExit, openQueue, retryNow */
var buf = [],
  timer = 0,
  inflight = false,
  backoff = 0,
  qkey;

function persist() {
  try {
    if (buf.length) LS.setItem(qkey, JSON.stringify(buf));
    else LS.removeItem(qkey);
  } catch (e) {
    /* storage disabled or full */
  }
}
function openQueue(id) {
  // this document's queue key, then what earlier pages left
  qkey = PFX + 'q_' + id;
  adopt();
}
function adopt() {
  // take over events left by earlier pages (or other tabs) during an outage
  var got = [],
    keys = [],
    i,
    k;
  try {
    for (i = 0; i < LS.length; i++) {
      k = LS.key(i);
      if (k && k.indexOf(PFX + 'q_') === 0 && k !== qkey) keys.push(k);
    }
    keys.forEach(function (k) {
      var a;
      try {
        a = JSON.parse(LS.getItem(k));
      } catch (e) {
        a = null;
      }
      LS.removeItem(k);
      if (Array.isArray(a))
        a.forEach(function (ev) {
          if (ev && ev.eventID) got.push(ev);
        });
    });
  } catch (e) {
    /* storage disabled */
  }
  got
    .sort(function (a, b) {
      return a.timestamp - b.timestamp;
    })
    .forEach(keep);
}
function keep(ev) {
  while (buf.length >= CFG.maxBufferEvents) buf.shift();
  buf.push(ev);
}
function enqueue(ev) {
  keep(ev);
  persist();
  schedule(CFG.flushDelayMs);
}
function schedule(ms) {
  if (!timer && !inflight && buf.length) timer = setTimeout(guard(flush), ms);
}
function removeSent(batch) {
  var sent = new Set(batch);
  buf = buf.filter(function (ev) {
    return !sent.has(ev);
  });
  persist();
}
function retryIn() {
  // the next backoff, which grows with each failure in a row
  backoff = Math.min(backoff ? backoff * 2 : CFG.retryBaseMs, CFG.retryMaxMs);
  return backoff + Math.random() * CFG.retryJitterMs;
}
var EVENT_POST = {
  method: 'POST',
  headers: {'Content-Type': 'text/plain;charset=UTF-8'},
  credentials: 'omit',
  mode: 'cors'
};
function flush() {
  clearTimeout(timer);
  timer = 0;
  if (inflight || !buf.length || !w.fetch || !engaging()) return; // withdrawn: buf dropped
  var batch = buf.slice(0, CFG.batchEvents),
    body = JSON.stringify({events: batch}),
    p = pageID,
    entered = batch.some(function (ev) {
      return ev.pageID === p && ev.eventName === 'PageEntered';
    });
  inflight = true;
  function done(ok) {
    inflight = false;
    if (entered && p === pageID) stream();
    if (ok) {
      backoff = 0;
      schedule(0);
    } else {
      timer = setTimeout(guard(flush), retryIn());
    }
  }
  w.fetch(
    endpoint('events'),
    Object.assign({body: body, keepalive: body.length < CFG.keepaliveMaxBytes}, EVENT_POST)
  )
    .then(function (r) {
      if (r.ok) {
        removeSent(batch);
      } else if (r.status >= 500 || r.status === 429) {
        return done(false);
      } else {
        // other 4xx: a bug, retrying won't help
        removeSent(batch);
        r.text().then(
          function (t) {
            warn('events rejected (' + r.status + '):', t);
          },
          function () {}
        );
      }
      done(true);
    })
    .catch(function () {
      done(false);
    });
}
function retryNow() {
  // the browser is back online: no need to wait for the backoff
  backoff = 0;
  flush();
}
function beacon(body) {
  try {
    if (N.sendBeacon)
      return N.sendBeacon(
        endpoint('events'),
        new Blob([body], {type: EVENT_POST.headers['Content-Type']})
      );
    w.fetch(endpoint('events'), Object.assign({body: body, keepalive: true}, EVENT_POST)).catch(
      function () {}
    );
    return true;
  } catch (e) {
    return false;
  }
}
// Page is going away: send everything with sendBeacon. If the engine was failing (backoff) or
// a beacon is refused, the events stay in localStorage for the next page to re-send.
function flushOnExit() {
  clearTimeout(timer);
  timer = 0;
  var i,
    chunk,
    sent = [];
  for (i = 0; i < buf.length; i += CFG.batchEvents) {
    chunk = buf.slice(i, i + CFG.batchEvents);
    if (!beacon(JSON.stringify({events: chunk}))) break;
    sent = sent.concat(chunk);
  }
  if (backoff) persist();
  else removeSent(sent);
}
function dropQueued() {
  // consent to send withdrawn: what waits is not sent
  buf = [];
  persist();
}
