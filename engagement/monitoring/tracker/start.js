/* start: called once by the joiner after every part is defined. Takes over the _gt queue,
 * enters the page and listens to what the page does. */
/* global E, ENGAGE, FK, IK, PFX, backoff, bus, claim, crossdomain, curRef, emit, engage, engaging, ensureVisit, enterPage, flush, flushOnExit, ids, lsGet, lsSet, markPage, newPage, on, openQueue, pageID, pageLeft, pendingInvite, prepare, pushed, retryNow, runQueued, setFocus, setLeaving, setupDeclaredEvents, wrapHistory */
/* exported begun, start */
var begun = false; // the page was entered (the engine hears of it once consent allows)
function start() {
  if (w._gt && w._gt.engage) return; // loaded twice: keep the first instance
  var queued = w._gt;
  var api = {
    push: function () {
      for (var i = 0; i < arguments.length; i++) pushed(arguments[i]);
    },
    ids: ids,
    bus: bus
  };
  Object.defineProperty(api, 'engage', {enumerable: false, value: ENGAGE});

  runQueued(queued, true);
  w._gt = api;
  prepare(function () {
    begin(queued); // once a linked domain's visit and the engine's cookie are known
  });
}
function begin(queued) {
  begun = true;
  newPage();
  openQueue(pageID); // fixed for this document's lifetime
  markPage();
  ensureVisit();
  enterPage(d.referrer);
  runQueued(queued, false);

  on(w, 'focus', function (e) {
    if (e.target === w) {
      claim(1);
      setFocus(true);
    }
  });
  on(w, 'blur', function (e) {
    if (e.target === w) setFocus(false);
  });
  on(w, 'pagehide', function () {
    setLeaving(1);
    emit('SYSTEM', 'PageExited', {});
    flushOnExit();
    pageLeft();
    if (lsGet(FK) === pageID) lsSet(FK, null); // the next tab to get focus claims it
  });
  on(w, 'pageshow', function (e) {
    // back from the back/forward cache: a new page
    setLeaving(0);
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
    engaging(); // a withdrawal in another tab cleared the keys: the push stream closes here too
    if (e.key == null || e.key === IK || e.key === FK) pendingInvite();
  });
  on(
    d,
    'keydown',
    function (e) {
      if (E) E.keys(e);
    },
    true
  );
  claim();
  pendingInvite();
  if (lsGet(PFX + 'chat'))
    engage(function (m) {
      m.follow();
    }); // a chat to follow here too
  on(w, 'online', retryNow);
  wrapHistory();
  setupDeclaredEvents(CFG.declaredEvents);
  if ((CFG.linkedDomains || []).length) crossdomain(function () {}); // decorates links
}
