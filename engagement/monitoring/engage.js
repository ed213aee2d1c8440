/* engagement invitations: loaded by tracker.js with the first invitation of a visit (or when
 * one is waiting in localStorage). Shows it in the tab the visitor uses, reports what the visitor
 * did, and hands an accepted one to the chat or the callback form. It reaches the tracker only
 * through its named interface, window._gt.engage (tracker/engage-api.js). */
(function (w, d) {
  'use strict';
  var T = w._gt && w._gt.engage;
  if (!T) return;
  var CFG = T.config,
    IK = T.keys.invite,
    FK = T.keys.focus,
    AK = T.keys.answered,
    CK = T.keys.chat;
  var pub = T.publish,
    on = T.listen,
    guard = T.guard,
    warn = T.warn;
  // The state the visit's tabs share (invitation, focus, answers, chat) is in localStorage;
  // without it (no consent to store, engagement alone; or the browser's storage off) it lives
  // in this page, which is then the one that shows an invitation.
  var S = T.store,
    M = {},
    shared;
  function stores() {
    if (!T.consent.analytics) return false;
    if (shared == null) {
      S.set(FK + '_probe', '1');
      shared = S.get(FK + '_probe') === '1';
      S.set(FK + '_probe', null);
    }
    return shared;
  }
  function lsGet(k) {
    if (stores()) return S.get(k);
    return k === FK ? P() : k in M ? M[k] : null;
  }
  function lsSet(k, v) {
    if (stores()) S.set(k, v);
    else if (v == null) delete M[k];
    else M[k] = typeof v === 'string' ? v : JSON.stringify(v);
  }
  function lsJSON(k) {
    try {
      return JSON.parse(lsGet(k));
    } catch (e) {
      return null;
    }
  }
  var allowed = T.allowed,
    engineURL = T.engineURL,
    getHTML = T.fetchHTML,
    frag = T.parseHTML;
  function V() {
    return T.ids().visitID;
  }
  function P() {
    return T.ids().pageID;
  }

  var tried = {},
    host = null,
    hostInv,
    autoEl,
    prevFocus,
    pending,
    invTimer;
  function dispo(a, code, then) {
    // GET, retried on network errors; then(answer). Nothing once engagement is withdrawn,
    // here or in another tab of the site (T.engaging() reads the consent cookie)
    if (!T.engaging()) return;
    var u = T.endpoint('disposition', a) + '?visitID=' + V() + '&pageID=' + P() + '&code=' + code,
      n = 0;
    (function go() {
      w.fetch(u, {credentials: 'omit', keepalive: true}) // CORS: the engine needs the Origin
        .then(function (r) {
          return (
            then &&
            r.json().then(
              guard(function (j) {
                then(j, r.status);
              })
            )
          );
        })
        .catch(function () {
          if (n++ < CFG.dispositionRetries) setTimeout(go, CFG.retryBaseMs * n);
        });
    })();
  }
  function tell(s, what, form) {
    var o = {attemptID: s.attemptID, media: s.media, params: s.params, visitID: V(), pageID: P()};
    if (form) o.form = form;
    pub('Invitation.' + what, o);
  }
  function limit(s) {
    return (s.interacting ? CFG.formHoldS : +s.timeoutS || CFG.offerTimeoutS) * 1000;
  }
  function settle(a) {
    // true if attempt a was still open: it is answered now, everywhere
    var s = lsJSON(IK),
      done = lsJSON(AK);
    if (s && s.attemptID === a) lsSet(IK, null);
    if (!Array.isArray(done)) done = [];
    if (!a || done.indexOf(a) >= 0) return false;
    done.push(a);
    lsSet(AK, done.slice(-20));
    return true;
  }
  function finish(s, code, form) {
    if (!T.engaging()) {
      // withdrawn since it showed: the invitation goes, and no answer nor visit data leaves
      if (host) unrender();
      return false;
    }
    var ok = settle(s.attemptID);
    if (ok) {
      dispo(s.attemptID, code);
      tell(s, code === 'timed_out' ? 'timedOut' : code, form);
      if (code === 'accepted' && s.media === 'chat') chat(s);
    }
    sync();
    return ok;
  }

  // ---- the chat, followed on every page of the visit while its attempt lives -------------------
  // Genesys Widgets restores a chat on each page; our Widgets plugin reports what it does. The
  // subscriptions belong to the attempt: once it ends they go, so a chat the visitor opens later
  // by themselves is not counted against it. CK (localStorage) names the attempt followed, so a
  // new page subscribes before Widgets restores; the stream's first frame (gpe.engaged) says it
  // too, for pages without that key (another subdomain).
  var plugin = null,
    following = 0;
  var REPORTS = {
    restored: 'restored',
    started: 'launched',
    agentConnected: 'agent_connected',
    ended: 'completed',
    error: 'error',
    restoreFailed: 'restore_failed',
    restoreTimeout: 'restore_timeout'
  };
  var ENDS = {ended: 1, restoreFailed: 1, restoreTimeout: 1}; // error: the engine's answer says
  function widgets() {
    // our plugin on the Widgets bus; null without Widgets (yet)
    var g = w._genesys,
      gw = g && g.widgets,
      b = (gw && gw.bus) || w.CXBus;
    if (!plugin && b && b.registerPlugin) plugin = b.registerPlugin('Engagement') || null;
    if (!plugin && gw && !gw.bus && !(gw.extensions && gw.extensions.Engagement)) {
      // Widgets configured but not loaded yet: the documented way in, a Widgets extension
      (gw.extensions = gw.extensions || {}).Engagement = guard(function ($, bus) {
        plugin = plugin || bus.registerPlugin('Engagement') || null;
        follow();
      });
    }
    return plugin;
  }
  function live(a) {
    // the engine's answer: stop following an attempt that is over (or unknown)
    return function (j, status) {
      if (
        status === 404 ||
        status === 409 ||
        (status === 200 && !/^(accepted|launched)$/.test(j.state))
      )
        unfollow(a);
    };
  }
  function follow(o) {
    // o: {attemptID, media} from the stream; none: the one named in CK
    var c = o || lsJSON(CK),
      p = widgets(),
      a = c && c.attemptID;
    if (!a || c.media !== 'chat' || a === following) return;
    if (w._genesys && w._genesys.widgets) lsSet(CK, {attemptID: a, media: 'chat'}); // for the next pages
    if (!p) return; // the Widgets extension follows it once Widgets loads
    unfollow();
    following = a;
    lsSet(CK, {attemptID: a, media: 'chat'});
    Object.keys(REPORTS).forEach(function (n) {
      p.subscribe(
        'WebChatService.' + n,
        guard(function () {
          if (following !== a) return;
          if (ENDS[n]) unfollow(a);
          dispo(a, REPORTS[n], live(a));
        })
      );
    });
    p.subscribe(
      'WebChatService.messageReceived',
      guard(function (e) {
        // the agent ends the segment
        var m = ((e && e.data && e.data.originalMessages) || [])
            .filter(function (x) {
              return x.type === 'System' && x.event === 'InteractionStateChange';
            })
            .pop(),
          st = m && m.data && m.data.interactionState;
        if (following !== a || (st !== 'Finalizing' && st !== 'Completed')) return;
        unfollow(a);
        dispo(a, 'completed');
        if (!CFG.chatFinalize) return; // opt-in: what the Widgets documentation suggests
        var t = w._genesys.widgets.webchat && w._genesys.widgets.webchat.transport;
        if (t && t.async && t.async.enabled)
          p.command('WebChat.injectMessage', {
            type: 'text',
            text: CFG.chatFinalize,
            bubble: {time: false}
          });
        else p.command('WebChat.endChat');
      })
    );
  }
  function unfollow(a) {
    // a: only if that is the attempt followed
    if (!following || (a && a !== following)) return;
    following = 0;
    lsSet(CK, null);
    if (plugin.unsubscribe)
      Object.keys(REPORTS)
        .concat('messageReceived')
        .forEach(function (n) {
          plugin.unsubscribe('WebChatService.' + n);
        });
  }
  function failed(p, fn) {
    // a Widgets command's failure: jQuery-style fail(), or a promise
    if (p && p.fail) p.fail(guard(fn));
    else if (p && p.catch) p.catch(guard(fn));
  }

  // ---- hand-off: the chat opens with the visit's data attached ----------------------------------
  function post(name, body) {
    return w
      .fetch(T.endpoint(name), {
        method: 'POST',
        credentials: 'omit',
        body: JSON.stringify(body),
        headers: {'Content-Type': 'application/json'}
      })
      .then(function (r) {
        return r.json().then(function (j) {
          if (!r.ok) throw Error(j.message || r.status);
          return j;
        });
      });
  }
  function chat(s) {
    var a = s.attemptID,
      g = w._genesys,
      wc = g && g.widgets && g.widgets.webchat,
      p = widgets();
    // The site's own userData first: WebChat.open's userData replaces the configured one.
    var ud = Object.assign({}, wc && wc.userData, s.params.userData, s.userData, {
      visitID: V(),
      pageID: P(),
      webengagement: ''
    });
    if (p) {
      follow({attemptID: a, media: 'chat'});
      var opts = {userData: ud};
      if (s.form && Object.keys(s.form).length) opts.form = s.form;
      return failed(p.command('WebChat.open', opts), function () {
        // a chat is open: join it
        p.command('WebChatService.updateUserData', ud);
        dispo(a, 'already_open', live(a));
      });
    }
    var open = function (u) {
      // a window, or a frame in the page if pop-ups are blocked
      if (!w.open(u, '_blank', 'width=420,height=640')) {
        var f = d.createElement('iframe');
        f.src = u;
        f.title = 'Chat';
        f.style.cssText =
          'position:fixed;right:0;bottom:0;width:380px;height:560px;border:0;z-index:2147483001';
        d.body.appendChild(f);
      }
      dispo(a, 'launched');
    };
    function page(chatURL) {
      // the chat page, told what GWE's GMS chat widget was told, and more
      var u = new URL(engineURL(CFG.chatUrl));
      [
        ['visitID', V()],
        ['pageID', P()],
        ['gmsScenario', s.params.gmsScenario || 'CHAT-NOW'],
        ['attemptID', a],
        ['chatURL', chatURL]
      ].forEach(function (kv) {
        if (kv[1]) u.searchParams.set(kv[0], kv[1]);
      });
      return u.href;
    }
    if (!CFG.chatUrl) {
      // nowhere to chat: say so rather than leave the attempt waiting
      warn('no chat: add Widgets or chat_url');
      return dispo(a, 'failed');
    }
    if (CFG.gmsChat)
      return post('chats', {attemptID: a, visitID: V(), pageID: P()}).then(
        function (j) {
          open(page(j.chatURL)); // chatURL: where the page starts the chat (GMS Chat API)
        },
        function (e) {
          pub('Invitation.failed', {attemptID: a, message: e.message});
          w.alert(e.message);
        }
      );
    open(page());
  }
  // Every tab that gets the message publishes Invitation.invited; the first one stores it.
  function invite(o) {
    var a = o.attemptID,
      s = lsJSON(IK),
      done = lsJSON(AK) || [];
    if (!a || done.indexOf(a) >= 0) return;
    if (!s || s.attemptID !== a) {
      s = {
        attemptID: a,
        url: engineURL(o.url),
        media: o.media,
        timeoutS: +o.timeoutS || CFG.offerTimeoutS,
        params: o.params || {},
        userData: o.userData,
        form: o.form,
        shownAt: null
      };
      s.expiresAt = Date.now() + limit(s); // not shown by then: dropped
      lsSet(IK, s);
    }
    tell(s, 'invited');
    sync();
  }
  // Make the DOM match the shared state: render here if this tab holds the focus key.
  function sync() {
    clearTimeout(invTimer);
    var s = lsJSON(IK),
      mine = s && lsGet(FK) === P();
    if (s && !(s.expiresAt > Date.now())) {
      if (s.shownAt) return finish(s, 'timed_out');
      lsSet(IK, null);
      return sync();
    }
    if (host && !(mine && hostInv.attemptID === s.attemptID)) unrender();
    if (!s) return;
    if (mine && !host && pending !== s.attemptID) render(s);
    invTimer = setTimeout(
      guard(sync),
      Math.min(s.expiresAt - Date.now() + (mine ? 20 : 1500), 864e5)
    );
  }
  var FOCUSABLE = 'a[href],button,input,select,textarea,[tabindex],[contenteditable]';
  function focusables() {
    return [...host.querySelectorAll(FOCUSABLE)].filter(function (e) {
      return e.tabIndex >= 0 && !e.disabled && e.getClientRects().length;
    });
  }
  function render(s) {
    // only in the focus tab: a refused URL is reported 'failed' once
    if (!allowed(s.url)) {
      warn('origin not allowed:', s.url);
      return finish(s, 'failed');
    }
    pending = s.attemptID;
    getHTML(s.url)
      .then(function (html) {
        pending = 0;
        var c = lsJSON(IK);
        if (host || !c || c.attemptID !== s.attemptID || lsGet(FK) !== P()) return sync();
        prevFocus = d.activeElement;
        host = d.createElement('div');
        host.className = 'eng-invite-host';
        host.setAttribute('data-eng-attempt', c.attemptID);
        host.tabIndex = -1;
        host.appendChild(frag(html));
        d.body.appendChild(host);
        hostInv = c;
        autoEl = host.querySelector('[autofocus]') || focusables()[0] || host;
        autoEl.focus();
        wire(host, c);
        if (!c.shownAt) {
          c.shownAt = Date.now();
          c.expiresAt = c.shownAt + limit(c);
          lsSet(IK, c);
          dispo(c.attemptID, 'shown');
          tell(c, 'shown');
        }
        sync();
      })
      .catch(function (e) {
        // A navigation cancels the fetch (sometimes before pagehide): try again once, later; if
        // the page is gone by then, the next page shows the invitation.
        if (T.leaving() || !tried[s.attemptID]) {
          tried[s.attemptID] = 1;
          return setTimeout(
            guard(function () {
              pending = 0;
              sync();
            }),
            CFG.retryBaseMs
          );
        }
        pending = 0;
        warn(e);
        finish(s, 'failed');
      });
  }
  function unrender() {
    var had = host.contains(d.activeElement);
    host.remove();
    host = null;
    if (had && prevFocus && prevFocus.focus) prevFocus.focus();
  }
  var ACTIONS = {accept: 'accepted', decline: 'declined', close: 'closed'};
  function wire(h, c) {
    on(h, 'click', function (e) {
      var t = e.target.closest('[data-eng-action]'),
        code = t && ACTIONS[t.getAttribute('data-eng-action')];
      if (!code || h !== host) return;
      if (t.type === 'submit' && t.form && t.form.matches('[data-eng-form]')) return; // the submit does it
      e.preventDefault();
      finish(c, code);
    });
    on(h, 'submit', function (e) {
      var f = e.target,
        o = {};
      if (!f.matches('[data-eng-form]') || h !== host) return;
      e.preventDefault();
      if (!T.engaging()) return unrender(); // a callback form's details do not leave either
      var bad = f.querySelector(':invalid'),
        msg = f.querySelector('[data-eng-error]');
      if (msg) msg.textContent = bad ? bad.validationMessage : '';
      if (bad) return bad.focus(); // novalidate forms: the template shows the error itself
      new FormData(f).forEach(function (v, k) {
        o[k] = {}.hasOwnProperty.call(o, k) ? [].concat(o[k], v) : v;
      });
      if (f.getAttribute('data-eng-form') !== 'callback')
        return finish(c, 'accepted', o) && tell(c, 'submitted', o);
      var note = host; // while it is sent, and then as a confirmation, out of sync()'s hands
      host = null;
      pending = c.attemptID; // nor rendered again meanwhile
      post('callbacks', Object.assign({attemptID: c.attemptID, visitID: V(), pageID: P()}, o)).then(
        function (j) {
          pending = 0;
          f.replaceWith(Object.assign(d.createElement('p'), {textContent: j.message}));
          note.querySelector('[role=dialog]').setAttribute('role', 'status');
          on(note, 'click', function (e) {
            if (e.target.closest('[data-eng-action]')) note.remove();
          });
          setTimeout(function () {
            note.remove();
          }, 1e4);
          if (finish(c, 'accepted', o)) tell(c, 'submitted', o);
        },
        function (e) {
          pending = 0;
          if (msg) msg.textContent = e.message;
          if (host)
            note.remove(); // another invitation took its place
          else host = note; // the visitor corrects and sends again
          sync();
        }
      );
    });
    function busy(e) {
      // the visitor fills the form: the timeout becomes 120 s from now
      if ((e.type === 'focusin' && e.target === autoEl) || !e.target.closest('[data-eng-form]'))
        return;
      var s = lsJSON(IK);
      if (!s || s.attemptID !== c.attemptID || s.interacting) return;
      s.interacting = true;
      s.expiresAt = Date.now() + limit(s);
      lsSet(IK, s);
      dispo(s.attemptID, 'interacting');
      sync();
    }
    on(h, 'focusin', busy);
    on(h, 'input', busy);
  }
  function keys(e) {
    if (!host) return;
    if (e.key === 'Escape') return finish(hostInv, 'closed');
    if (e.key !== 'Tab') return;
    var f = focusables(),
      a = f[0],
      z = f[f.length - 1],
      x = d.activeElement;
    if (!a) return e.preventDefault();
    if (!host.contains(x) || x === host || x === (e.shiftKey ? a : z)) {
      e.preventDefault();
      (e.shiftKey ? z : a).focus();
    }
  }

  function close(o) {
    // gpe.closeInvite: answered or ended elsewhere
    settle(o.attemptID);
    sync();
    if (o.reason !== 'accepted' && o.reason !== 'launched') unfollow(o.attemptID);
  }

  T.ready({invite: invite, close: close, follow: follow, sync: sync, keys: keys});
})(window, document);
