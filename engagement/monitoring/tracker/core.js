/* core: what every other part uses. The joiner (tracker.py) wraps all the parts, in its
 * fixed order, in one function (w = window, d = document, CFG = the engine's config). */
/* exported BASE, HEX32, L, N, NONCE, PFX, SYS, endpoint, guard, lang, nowS, on, setLanguage, uuid, warn */
var PFX = CFG.cookiePrefix;
var SYS = {SignIn: 1, SignOut: 1, UserInfo: 1};
var L = w.location,
  N = w.navigator;
var lang;
function setLanguage(code) {
  lang = String(code || '').slice(0, CFG.maxLanguageChars);
}
setLanguage(CFG.languageCode || N.language); // ['config', {languageCode}] overrides it

function warn() {
  try {
    console.warn.apply(console, ['[engagement]'].concat([].slice.call(arguments)));
  } catch (e) {
    /* no console */
  }
}
// Wrap a listener/entry point so that nothing ever throws into the page.
function guard(fn) {
  return function () {
    try {
      return fn.apply(this, arguments);
    } catch (e) {
      warn(e);
    }
  };
}
function on(target, type, fn, capture) {
  target.addEventListener(type, guard(fn), !!capture);
}
function nowS() {
  return Math.floor(Date.now() / 1000);
}

// ---- base URL, from this script's own src ------------------------------------------------
function scriptSrc() {
  var s = d.currentScript,
    own = CFG.paths.tracker;
  if (s && s.src) return s.src;
  var all = d.getElementsByTagName('script');
  for (var i = all.length - 1; i >= 0; i--) {
    var p = (all[i].src || '').split(/[?#]/)[0];
    if (p.slice(-own.length) === own) return all[i].src;
  }
  return '';
}
var NONCE = (d.currentScript && d.currentScript.nonce) || ''; // the page's CSP nonce, if any
var BASE = scriptSrc()
  .split(/[?#]/)[0]
  .replace(/\/[^/]*$/, '');
// The engine's URL for one of its routes (CFG.paths, from its route table).
function endpoint(name, attemptID) {
  return BASE + CFG.paths[name].replace('{attemptID}', encodeURIComponent(attemptID || ''));
}

// ---- IDs: UUID4 as 32 upper-case hex characters -------------------------------------------
function uuid() {
  var c = w.crypto,
    b = new Uint8Array(16),
    s = '',
    i;
  if (c && c.randomUUID) return c.randomUUID().replace(/-/g, '').toUpperCase();
  if (c && c.getRandomValues) c.getRandomValues(b);
  else for (i = 0; i < 16; i++) b[i] = (Math.random() * 256) | 0;
  b[6] = (b[6] & 15) | 64; // version 4
  b[8] = (b[8] & 63) | 128; // RFC 4122 variant
  for (i = 0; i < 16; i++) s += (b[i] + 256).toString(16).slice(1);
  return s.toUpperCase();
}
var HEX32 = /^[0-9A-F]{32}$/;
