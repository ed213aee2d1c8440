/* engage-api: the one interface between the tracker and engage.js (_gt.engage, not for sites).
 * engage.js reads the tracker only through it, and hands back its module with ready():
 *   config              the engine's config (CFG): chatUrl, gmsChat, chatFinalize, formHoldS...
 *   endpoint(name, id)  URL of an engine route named in config.paths (disposition, chats...)
 *   keys                localStorage keys shared by the visit's tabs: invite, focus, answered, chat
 *   ids()               {visitID, pageID, globalVisitID} now
 *   publish(name, data) on the page's bus;  listen(target, type, fn, capture): a guarded listener
 *   guard(fn), warn(...) nothing throws into the page; warnings go to the console
 *   store               localStorage that survives being disabled: get(k), set(k, v|null), json(k)
 *   allowed(url), engineURL(url), fetchHTML(url), parseHTML(html): content from allowed origins
 *   leaving()           true once the page is being left (pagehide)
 *   engaging()          may anything go to the engine now (the consent cookie, as every tab sees it)
 *   ready(module)       engage.js is loaded: module = {invite(o), close(o), follow(o), sync(), keys(e)}
 * and for crossdomain.js: consent ({analytics, engagement} now), base (the engine's URL),
 * uuid(), cookie(name),
 * deleteCookie(name), continueVisit(visitID, globalVisitID), useGvid(id, returning),
 * linkParam, crossdomainReady({arrive(done), chatSession(cb)}). */
/* global BASE, CONSENT, FK, IK, LINK_PARAM, PFX, allowed, continueVisit, crossdomainReady, deleteCookie, endpoint, engageReady, engaging, engineURL, frag, getCookie, getHTML, guard, ids, leaving, lsGet, lsJSON, lsSet, on, pub, useGvid, uuid, warn */
/* exported ENGAGE */
var ENGAGE = {
  config: CFG,
  endpoint: endpoint,
  keys: {invite: IK, focus: FK, answered: PFX + 'answered', chat: PFX + 'chat'},
  ids: ids,
  publish: pub,
  listen: on,
  guard: guard,
  warn: warn,
  store: {get: lsGet, set: lsSet, json: lsJSON},
  allowed: allowed,
  engineURL: engineURL,
  fetchHTML: getHTML,
  parseHTML: frag,
  leaving: function () {
    return !!leaving;
  },
  ready: engageReady,
  consent: CONSENT,
  engaging: engaging,
  base: BASE,
  uuid: uuid,
  cookie: getCookie,
  deleteCookie: deleteCookie,
  continueVisit: continueVisit,
  useGvid: useGvid,
  linkParam: LINK_PARAM,
  crossdomainReady: crossdomainReady
};
