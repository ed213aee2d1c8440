/* invitations: engage.js, loaded with the first one (or when one waits in localStorage, or a
 * live chat is followed). Invitations are shared by the visit's tabs in localStorage
 * (<prefix>invite, <prefix>answered); the tab named by <prefix>focus renders it. What engage.js
 * may use of the tracker is ENGAGE (engage-api.js), nothing else. */
/* global PFX, endpoint, guard, lsGet, lsSet, pageID */
/* exported E, FK, IK, claim, engage, engageReady, eq, fk, leaving, loadScript, pendingInvite, setLeaving */
var IK = PFX + 'invite',
  FK = PFX + 'focus',
  leaving = 0,
  fk,
  E,
  eq = [];
function engage(fn) {
  // run fn with the invitation module, loading it the first time
  if (E) return fn(E);
  if (eq.push(fn) < 2) loadScript('engage');
}
function loadScript(name) {
  // one of the engine's scripts (engage.js, crossdomain.js); inserted scripts run async
  var s = d.createElement('script');
  s.src = endpoint(name);
  d.head.appendChild(s);
}
function engageReady(m) {
  // engage.js has loaded: run what waited for it
  if (E) return; // loaded twice: the first one stays
  E = m;
  eq.splice(0).forEach(function (fn) {
    guard(fn)(m);
  });
}
function setLeaving(v) {
  leaving = v;
}
function sync() {
  if (E) E.sync();
}
function pendingInvite() {
  // one is waiting (another page or tab got it): load what shows it
  if (E || lsGet(IK))
    engage(function (m) {
      m.sync();
    });
}
function claim(force) {
  // this tab is the one the visitor looks at
  if (force || d.visibilityState === 'visible') {
    lsSet(FK, (fk = pageID));
    sync();
  }
}
