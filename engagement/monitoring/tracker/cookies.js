/* cookies: only random IDs and a time. <prefix>visit (session cookie: visitID.lastSeen),
 * <prefix>gvid (globalVisitID, CFG.gvidCookieMaxAgeS), scoped to the parent domain so that
 * www.site.com and store.site.com share the visit; host-only on localhost and IP addresses. */
/* global L, PFX, uuid */
/* exported allowCookies, deleteCookie, getCookie, setCookie */
var cookiesAllowed = true; // false while consent does not allow storing (consent.js)
function allowCookies(on) {
  cookiesAllowed = on;
  cookieDomain = undefined;
}
function getCookie(name) {
  if (!cookiesAllowed) return null;
  var a = d.cookie ? d.cookie.split(/;\s*/) : [],
    i,
    j;
  for (i = 0; i < a.length; i++) {
    j = a[i].indexOf('=');
    if (a[i].slice(0, j) === name) return a[i].slice(j + 1);
  }
  return null;
}
function rawSet(name, value, domain, maxAge) {
  if (!cookiesAllowed && maxAge !== 0) return; // deleting is always allowed
  d.cookie =
    name +
    '=' +
    value +
    '; path=/; SameSite=Lax' +
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
  // host-only: not http(s), localhost, IPv4, IPv6 (its hostname is [...] with colons)
  if (!/^https?:$/.test(L.protocol) || !h || h === 'localhost' || /^[\d.]+$|:/.test(h))
    return cookieDomain;
  // Shortest suffix the browser accepts: "test", then "shop.test", then "www.shop.test"...
  var parts = h.split('.'),
    probe = PFX + 'probe',
    tok = uuid(),
    i,
    dom;
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
function setCookie(name, value, maxAge) {
  rawSet(name, value, domain(), maxAge);
}
function deleteCookie(name) {
  rawSet(name, '', domain(), 0);
  rawSet(name, '', '', 0);
}
