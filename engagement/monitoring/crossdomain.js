/* engagement across domains: loaded by tracker.js on pages of linked_domains, on a page reached
 * with a link token, with first_party_cookie, and where the site asks for Widgets' chat session.
 * Reaches the tracker only through window._gt.engage.
 *
 * Arriving (before the tracker's first event): the link token is redeemed (the same visit goes
 * on; refused, a new one starts) and, with first_party_cookie, the globalVisitID is asked of the
 * engine, which keeps it in its own HttpOnly cookie.
 *
 * Links and forms to another linked domain: a plain click (or a submit) waits for a single-use
 * token from the engine (at most prepareWaitMs) and goes on with <prefix>link=token in the URL,
 * which the tracker there redeems. A click with a modifier or to another window goes as it is.
 *
 * Widgets' asynchronous chat session, kept with the visitor on the engine instead of a cookie:
 *   _gt.push(['chatSession', function (session) {
 *     _genesys.widgets.webchat.transport.async = {enabled: true,
 *       getSessionData: session.save, setSessionData: session.restore};
 *     // ...then load Widgets
 *   }]);
 * The callback runs once the saved session (if any) is loaded. */
/* global __CROSSDOMAIN_PATHS__ */
(function (w, d) {
  'use strict';
  var T = w._gt && w._gt.engage;
  if (!T) return;
  var P = __CROSSDOMAIN_PATHS__; // this script's routes, from the engine's route table
  var linkKey; // the chat session key a link token brought
  var CFG = T.config,
    L = w.location,
    PARAM = T.linkParam,
    KEY = CFG.cookiePrefix + 'key',
    memKey;

  function granted(k) {
    // the choice as the consent cookie says now: another tab of the site may have changed it
    T.engaging();
    return T.consent[k];
  }
  function post(url, body, credentials) {
    // a promise of the JSON answer, or null; text/plain: a CORS simple request
    return w
      .fetch(T.base + url, {
        method: 'POST',
        body: JSON.stringify(body),
        headers: {'Content-Type': 'text/plain;charset=UTF-8'},
        credentials: credentials || 'omit'
      })
      .then(function (r) {
        return r.ok ? r.json() : null;
      })
      .catch(function () {
        return null;
      });
  }

  // The visitor's chat session key: kept in localStorage (memory without storage consent).
  function chatKey(make) {
    var k = memKey || linkKey || T.store.get(KEY);
    if (!/^[0-9A-F]{32}$/.test(k || '')) k = make ? T.uuid() : null;
    if (k) T.store.set(KEY, (memKey = k));
    return k || undefined;
  }

  // A link token leaves the address bar as soon as this script runs (not shared, not
  // bookmarked, not read by the page's other scripts), even while consent is awaited: it is
  // kept here until arrive() redeems it, once.
  var held = (function () {
    var q = new URLSearchParams(L.search),
      token = q.get(PARAM);
    if (token) {
      q.delete(PARAM);
      try {
        w.history.replaceState(w.history.state, '', L.pathname + (q + '' ? '?' + q : '') + L.hash);
      } catch (e) {
        /* sandboxed */
      }
    }
    return token;
  })();

  // Before the tracker's first event (its prepare()): a link token redeemed, then the
  // globalVisitID from the engine's own HttpOnly cookie (first_party_cookie); done() after both.
  function arrive(done) {
    var token = held,
      steps = Promise.resolve();
    held = null;
    if (token) {
      steps = post(P.linkRedeem, {token: token}).then(function (j) {
        if (!j) return; // refused: a new visit starts
        T.continueVisit(j.visitID, j.globalVisitID);
        linkKey = j.key;
      });
    }
    if (CFG.firstPartyCookie && granted('analytics')) {
      steps = steps.then(function () {
        var mine = T.ids().globalVisitID || T.cookie(CFG.cookiePrefix + 'gvid');
        var body = /^[0-9A-F]{32}$/.test(mine || '') ? {globalVisitID: mine} : {};
        return post(P.visitorId, body, 'include').then(function (j) {
          if (!j) return;
          T.useGvid(j.globalVisitID, j.returning);
          T.deleteCookie(CFG.cookiePrefix + 'gvid'); // the engine's cookie holds it now
        });
      });
    }
    steps.then(done, done);
  }

  function linkedDomain(host) {
    host = (host || '').toLowerCase();
    return (CFG.linkedDomains || []).filter(function (x) {
      return host === x || host.slice(-x.length - 1) === '.' + x;
    })[0];
  }
  function crossing(url) {
    // the URL, if it leads to another linked domain than this page's
    try {
      var u = new URL(url, L.href),
        there = linkedDomain(u.hostname);
      return /^https?:$/.test(u.protocol) && there && there !== linkedDomain(L.hostname) ? u : null;
    } catch (e) {
      return null;
    }
  }
  function follow(u, then) {
    // then(href) once a token is there, or without one if none comes
    var once = 0,
      ids = T.ids();
    function go(j) {
      if (!once++) {
        if (j && j.token) u.searchParams.set(PARAM, j.token);
        then(u.href);
      }
    }
    if (T.engaging() && ids.visitID) {
      post(P.linkIssue, {
        visitID: ids.visitID,
        globalVisitID: ids.globalVisitID,
        key: chatKey()
      }).then(go, go);
    } else go(null);
    setTimeout(go, CFG.prepareWaitMs); // never hold the visitor up
  }
  if ((CFG.linkedDomains || []).length) {
    T.listen(d, 'click', function (e) {
      var a = e.target && e.target.closest && e.target.closest('a[href]'),
        u;
      if (
        !a ||
        e.defaultPrevented ||
        e.button ||
        e.metaKey ||
        e.ctrlKey ||
        e.shiftKey ||
        e.altKey ||
        (a.target && a.target !== '_self') ||
        !(u = crossing(a.href))
      )
        return;
      e.preventDefault();
      follow(u, function (href) {
        L.href = href;
      });
    });
    T.listen(d, 'submit', function (e) {
      var f = e.target,
        u;
      if (
        !f ||
        e.defaultPrevented ||
        (f.target && f.target !== '_self') ||
        !(u = crossing(f.action))
      )
        return;
      e.preventDefault();
      follow(u, function (href) {
        var t = new URL(href).searchParams.get(PARAM),
          i;
        if (t && f.method.toLowerCase() === 'get') {
          // a GET form replaces the action's query
          i = d.createElement('input');
          i.type = 'hidden';
          i.name = PARAM;
          i.value = t;
          f.appendChild(i);
        } else if (t) f.action = href;
        HTMLFormElement.prototype.submit.call(f);
      });
    });
  }

  function chatSession(cb) {
    if (typeof cb !== 'function') return T.warn('chatSession needs a function');
    var saved = null,
      key = chatKey(),
      ids = T.ids(),
      session = {
        save: function (data) {
          // Widgets' getSessionData(sessionData, Cookie, CookieOptions)
          var now = T.ids();
          saved = data == null ? null : JSON.stringify(data);
          if (T.engaging() && now.visitID) {
            post(P.chatSave, {
              visitID: now.visitID,
              globalVisitID: now.globalVisitID,
              key: chatKey(1),
              data: data == null ? null : data
            });
          }
        },
        restore: function () {
          return saved;
        } // Widgets' setSessionData(Open, Cookie, CookieOptions)
      };
    var loaded =
      key && T.engaging()
        ? post(P.chatLoad, {globalVisitID: ids.globalVisitID, key: key})
        : Promise.resolve(null);
    loaded.then(function (j) {
      if (j && j.data != null) saved = JSON.stringify(j.data);
      T.guard(cb)(session);
    });
  }
  T.crossdomainReady({arrive: arrive, chatSession: chatSession});
})(window, document);
