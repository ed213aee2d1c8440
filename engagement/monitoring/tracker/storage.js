/* storage: localStorage, which may be disabled or full; every call survives that. */
/* exported LS, lsGet, lsJSON, lsSet */
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
