/* arrival: what the first event needs. A page reached by a link from another linked domain
 * carries a single-use token (<prefix>link=...), and with CFG.firstPartyCookie the
 * globalVisitID comes from the engine's own HttpOnly cookie: then prepare() has crossdomain.js
 * redeem the token (same visitID and globalVisitID; refused, a new visit starts) and ask for
 * the cookie, waiting at most CFG.prepareWaitMs before the first event; commands pushed
 * meanwhile wait too. Once crossdomain.js is there (pages of linked domains load it even before
 * consent, and it takes a token out of the address bar at once), it is always asked.
 * crossdomain.js also decorates links and keeps Widgets' chat session. */
/* global L, PFX, guard, loadScript, mayEngage, mayStore, run */
/* exported LINK_PARAM, crossdomain, crossdomainReady, prepare, pushed */
var LINK_PARAM = PFX + 'link',
  holding = false,
  later = [],
  X,
  xq = [];

function prepare(then) {
  // run then() once a link's visit and the engine's cookie are known
  var once = 0,
    token = new URLSearchParams(L.search).has(LINK_PARAM);
  if (!w.fetch || !mayEngage() || !(X || token || (CFG.firstPartyCookie && mayStore())))
    return then();
  holding = true;
  function go() {
    if (once++) return;
    holding = false;
    guard(then)();
    later.splice(0).forEach(run);
  }
  crossdomain(function (m) {
    m.arrive(go);
  });
  setTimeout(go, CFG.prepareWaitMs);
}
function pushed(cmd) {
  // _gt.push: run now, or once prepare() is done
  if (holding) later.push(cmd);
  else run(cmd);
}
function crossdomain(fn) {
  // run fn with crossdomain.js, loading it once
  if (X) return fn(X);
  if (xq.push(fn) < 2) loadScript('crossdomain');
}
function crossdomainReady(m) {
  if (X) return;
  X = m;
  xq.splice(0).forEach(function (fn) {
    guard(fn)(m);
  });
}
