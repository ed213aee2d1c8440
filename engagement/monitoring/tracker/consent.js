/* consent: with CFG.consentMode nothing is stored in the browser and nothing is sent until the
 * site pushes ['consent', {analytics: true, engagement: true}]. analytics: the IDs may be kept
 * in cookies and localStorage (else they live in memory, one visit per page); engagement:
 * events go to the engine and invitations come back. The choice is remembered in the
 * <prefix>consent cookie only once analytics is granted; withdrawing deletes every cookie and
 * key the tracker wrote (and asks the engine to drop its own cookie). docs/privacy.md. */
/* global PFX, allowCookies, allowStorage, begun, claim, clearStorage, curRef, deleteCookie, dropQueued, endpoint, ensureVisit, enterPage, getCookie, pageLeft, pendingInvite, prepare, restartVisit, setCookie, visitCookies, warn */
/* exported CONSENT, engaging, mayEngage, mayStore, sending, setConsent */
var CK_CONSENT = PFX + 'consent',
  CONSENT = {analytics: true, engagement: true},
  unsent = false, // events were dropped for want of consent: the visit starts anew once sent
  kept; // consent_mode: the choice in the consent cookie as this page last read or wrote it
if (CFG.consentMode) setFlags((kept = getCookie(CK_CONSENT)) || ''); // from an earlier page
allowCookies(mayStore());
allowStorage(mayStore());

function setFlags(c) {
  // 'a' analytics, 'e' engagement
  CONSENT.analytics = /a/.test(c);
  CONSENT.engagement = /e/.test(c);
}
function mayStore() {
  return CONSENT.analytics;
}
function mayEngage() {
  return CONSENT.engagement;
}
function engaging() {
  // may anything go to the engine now? (events, the push stream) Another tab of the site may
  // have changed the choice since this page last read or wrote the consent cookie (a withdrawal
  // deleted it) and its storage event not be here yet (nor ever come, from another subdomain
  // or when only engagement was withdrawn): follow the cookie, not this page's memory
  var c = getCookie(CK_CONSENT);
  if (kept && c !== kept) setConsent({analytics: !!c, engagement: /e/.test(c)});
  return mayEngage();
}
function sending() {
  // may an event go out now? (events.js)
  if (!engaging()) unsent = true;
  return mayEngage();
}
function setConsent(o) {
  var a = mayStore(),
    e = mayEngage(),
    n = Object.assign({}, CONSENT, o);
  setFlags((n.analytics ? 'a' : '') + (n.engagement ? 'e' : ''));
  if (a && !mayStore()) {
    // withdrawn: every cookie and key this tracker wrote, and the engine's cookie
    ['visit', 'gvid', 'consent'].forEach(function (c) {
      deleteCookie(PFX + c);
    });
    clearStorage();
    if (CFG.firstPartyCookie && w.fetch)
      w.fetch(endpoint('visitorForget'), {method: 'POST', credentials: 'include'}).catch(warn);
    allowCookies(false);
    allowStorage(false);
    visitCookies(false);
  }
  if (!a && mayStore()) {
    allowCookies(true);
    allowStorage(true);
    if (!unsent) visitCookies(true);
  }
  if (mayStore() && CFG.consentMode)
    setCookie(CK_CONSENT, 'a' + (mayEngage() ? 'e' : ''), CFG.gvidCookieMaxAgeS);
  kept = getCookie(CK_CONSENT); // none without consent_mode
  if (e && !mayEngage()) {
    pageLeft(); // the push stream closes
    dropQueued();
  }
  if (!e && mayEngage() && begun) {
    // the engine hears of this page now
    if (unsent) restartVisit();
    unsent = false;
    prepare(function () {
      ensureVisit();
      enterPage(curRef);
      claim();
      pendingInvite();
    });
  }
}
