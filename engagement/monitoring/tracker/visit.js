/* visit: the visit and page this document belongs to, kept alive by the visit cookie; a visit
 * idle for CFG.visitTimeoutS is over and the next event starts a new one. */
/* global FK, HEX32, L, N, PFX, claim, deleteCookie, emit, fk, getCookie, lsGet, nowS, resetFocusTime, setCookie, uuid */
/* exported continueVisit, curRef, ensureVisit, enterPage, gvid, ids, newPage, pageID, restartVisit, useGvid, visitCookies, visitID */
var visitID,
  pageID,
  gvid,
  returning,
  curRef = d.referrer;
var memVisit = null,
  cookiesWork = true; // in-memory fallback when cookies are disabled
var freshPage = false; // pageID made, its PageEntered not sent yet
var given = null; // {id, returning}: the globalVisitID from the engine's cookie or a link
function useGvid(id, returning) {
  given = {id: id, returning: returning};
  gvid = id;
}
function continueVisit(v, g) {
  // a visit of a linked domain goes on here (arrival.js)
  visitID = v;
  useGvid(g, true);
  writeVisit();
  if (!CFG.firstPartyCookie) setCookie(PFX + 'gvid', g, CFG.gvidCookieMaxAgeS);
}
function restartVisit() {
  // the engine never heard of this visit (consent came later): the next event starts one
  visitID = memVisit = null;
  deleteCookie(PFX + 'visit');
}
function visitCookies(on) {
  // consent to store given (or withdrawn): the visit moves to cookies (or memory)
  cookiesWork = on;
  if (on && visitID) {
    writeVisit();
    if (!given) setCookie(PFX + 'gvid', gvid, CFG.gvidCookieMaxAgeS);
  }
}
function readVisit() {
  var m = /^([0-9A-F]{32})\.(\d+)$/.exec(getCookie(PFX + 'visit') || '');
  return m ? {id: m[1], t: +m[2]} : cookiesWork ? null : memVisit;
}
function writeVisit() {
  memVisit = {id: visitID, t: nowS()};
  setCookie(PFX + 'visit', visitID + '.' + memVisit.t); // session cookie
}
function newPage() {
  // pageID made, its PageEntered not sent yet
  pageID = uuid();
  freshPage = true;
}
function ids() {
  return {visitID: visitID, pageID: pageID, globalVisitID: gvid};
}

function loadGvid() {
  // true if this browser already had one
  if (given) return ((gvid = given.id), given.returning);
  var g = getCookie(PFX + 'gvid');
  if (HEX32.test(g || '')) return !!(gvid = g);
  gvid = uuid();
  setCookie(PFX + 'gvid', gvid, CFG.gvidCookieMaxAgeS);
  return false;
}
// Make sure a live visit exists. Returns true if the visit changed (new one begun here, or
// begun by another tab), in which case the caller must enter a new page.
function ensureVisit() {
  var v = readVisit(),
    t = nowS();
  if (v && t - v.t < CFG.visitTimeoutS) {
    if (!gvid) loadGvid();
    var changed = v.id !== visitID;
    visitID = v.id;
    if (t - v.t >= CFG.visitCookieRefreshS) writeVisit(); // LASTSEEN, not on every event
    return changed;
  }
  returning = loadGvid();
  visitID = uuid();
  newPage(); // a new visit starts on a new page: VisitStarted and PageEntered share it
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
  var o = {},
    q = new URLSearchParams(L.search);
  ['source', 'medium', 'campaign', 'term', 'content'].forEach(function (k) {
    var v = q.get('utm_' + k);
    if (v != null) o[k] = v;
  });
  return o;
}
function enterPage(ref) {
  if (!freshPage) pageID = uuid();
  freshPage = false;
  curRef = ref;
  resetFocusTime();
  emit('SYSTEM', 'PageEntered', {
    title: d.title.slice(0, CFG.maxTitleChars),
    referrer: (ref || '').slice(0, CFG.maxUrlChars),
    timezoneOffset: new Date().getTimezoneOffset(),
    utm: utm(),
    focused: d.hasFocus()
  });
  if (fk && lsGet(FK) === fk) claim(1); // this tab held the focus key: the new page does
}
