/* spa: a single-page app's navigation (history.pushState, the back button) is a new page. */
/* global L, emit, ensureVisit, enterPage, on, warn */
/* exported markPage, wrapHistory */
function hrefNoHash() {
  return L.href.split('#')[0];
}
var lastUrl, lastHref;
function markPage() {
  lastUrl = hrefNoHash();
  lastHref = L.href;
}
function checkNav() {
  var u = hrefNoHash();
  if (u === lastUrl) {
    lastHref = L.href;
    return;
  }
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
        else markPage(); // replaceState: same page
      } catch (e) {
        warn(e);
      }
      return r;
    };
  });
  on(w, 'popstate', checkNav);
}
