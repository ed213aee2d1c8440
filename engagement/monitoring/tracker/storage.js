/* storage: localStorage, which may be disabled or full; every call survives that. */
/* global PFX */
/* exported LS, allowStorage, clearStorage, lsGet, lsJSON, lsSet */
var LS = (function () {
  try {
    return w.localStorage;
  } catch (e) {
    return null;
  }
})();
function lsGet(k) {
  try {
    return LS.getItem(k);
  } catch (e) {
    return null;
  }
}
function lsSet(k, v) {
  try {
    v == null ? LS.removeItem(k) : LS.setItem(k, typeof v === 'string' ? v : JSON.stringify(v));
  } catch (e) {
    /* disabled, full */
  }
}
function lsJSON(k) {
  try {
    return JSON.parse(LS.getItem(k));
  } catch (e) {
    return null;
  }
}
var LS_OK = LS; // the browser's, kept while consent does not allow storing (consent.js)
function allowStorage(on) {
  LS = on ? LS_OK : null;
}
function clearStorage() {
  // every key of the tracker's (its prefix), none of the site's
  try {
    for (var i = LS_OK.length - 1, k; i >= 0; i--)
      if ((k = LS_OK.key(i)) && !k.indexOf(PFX)) LS_OK.removeItem(k);
  } catch (e) {
    /* disabled */
  }
}
