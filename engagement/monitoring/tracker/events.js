/* events: the GWE envelope, cut to the engine's bounds, handed to the transport. */
/* global L, SYS, curRef, enqueue, ensureVisit, enterPage, gvid, lang, pageID, sending, uuid, visitID, warn */
/* exported emit, send */
function emit(type, name, data, url) {
  if (!sending()) return; // nothing is sent before consent (consent.js)
  var copy = {},
    s;
  if (data && typeof data === 'object' && !Array.isArray(data)) {
    try {
      s = JSON.stringify(data);
      copy = JSON.parse(s);
    } catch (e) {
      warn('bad event data', name, e);
    }
  }
  // The engine refuses a batch holding an oversized event: drop that one alone.
  if (s && s.length > CFG.maxDataBytes) return warn('event data too large', name);
  enqueue({
    eventType: type,
    eventName: name,
    eventID: uuid(),
    pageID: pageID,
    visitID: visitID,
    globalVisitID: gvid,
    timestamp: Date.now(),
    url: (url || L.href).slice(0, CFG.maxUrlChars),
    category: '',
    languageCode: lang,
    data: copy
  });
}
// Public way to raise an event (commands, declared events, engage.js): keeps the visit alive first.
function send(name, data, type) {
  if (ensureVisit()) enterPage(curRef);
  emit(type || (SYS[name] ? 'SYSTEM' : 'BUSINESS'), name, data);
}
