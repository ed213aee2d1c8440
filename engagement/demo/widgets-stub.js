/* A stand-in for Genesys Widgets on the demo pages, NOT part of the engine: the same bus API
 * (window._genesys.widgets.bus, alias CXBus: registerPlugin, subscribe, publish, command) and a
 * WebChat that opens a small panel showing the attached data it was given, so that the whole
 * hand-off can be seen without a Genesys tenant. Real sites load the real Widgets instead.
 *
 * Like Widgets, a chat survives navigation: its session is kept in sessionStorage, and each new
 * page restores it once loaded (WebChatService.restored; restoreTimeout after 60 s away;
 * restoreFailed if the session cannot be read). WebChat.open fails while a chat is open;
 * WebChatService.updateUserData adds data to the open chat. Extensions in
 * _genesys.widgets.extensions run when it starts, as Widgets runs them. */
(function () {
  'use strict';
  var SESSION_KEY = 'demo-widgets-chat';
  var RESTORE_TIMEOUT_MS = 60000; // Widgets' default: away longer, the chat is not restored
  var RESTORE_DELAY_MS = 200; // restoring asks the chat server first; so does this stand-in
  var subscribers = {}, commands = {}, plugins = {};
  function publish(name, data) {
    (subscribers[name] || []).slice().forEach(function (s) {
      try { s.fn({event: name, data: data}); } catch (e) { console.error(e); }
    });
  }
  function subscribe(name, fn, owner) {
    (subscribers[name] = subscribers[name] || []).push({fn: fn, owner: owner || ''});
  }
  function command(name, options) {
    var fn = commands[name];
    var p = fn ? Promise.resolve().then(function () { return fn(options || {}); })
               : Promise.reject(new Error('no command ' + name));
    p.done = function (cb) { p.then(cb, function () {}); return p; }; // Widgets' jQuery-style API
    p.fail = function (cb) { p.catch(cb); return p; };
    return p;
  }
  var bus = {
    subscribe: subscribe, publish: publish, command: command, loadPlugin: function () {},
    registerPlugin: function (plugin) { // a plugin name is registered once (CXBus returns false)
      if (plugins[plugin]) return false;
      return (plugins[plugin] = {
        subscribe: function (name, fn) { subscribe(name, fn, plugin); },
        unsubscribe: function (name) { // this plugin's subscriptions to that event
          subscribers[name] = (subscribers[name] || []).filter(function (s) { return s.owner !== plugin; });
        },
        command: function (name, options) { return bus.command(name, options); },
        publish: function (event, data) { publish(plugin + '.' + event, data); },
        registerCommand: function (cmd, fn) { commands[plugin + '.' + cmd] = fn; }
      });
    }
  };
  var g = window._genesys = window._genesys || {};
  g.widgets = g.widgets || {};
  g.widgets.bus = bus;
  g.widgets.webchat = g.widgets.webchat || {};
  g.widgets.webchat.transport = g.widgets.webchat.transport || {async: {enabled: false}};
  window.CXBus = bus;

  var panel = null, session = null; // session: {userData, form, savedAt}
  function save() {
    try {
      if (session) sessionStorage.setItem(SESSION_KEY, JSON.stringify(Object.assign(session, {savedAt: Date.now()})));
      else sessionStorage.removeItem(SESSION_KEY);
    } catch (e) { /* storage disabled: the chat lives on this page only */ }
  }
  function say(who, text) {
    var p = document.createElement('p');
    p.className = 'demo-chat-' + who;
    p.textContent = (who === 'agent' ? 'Agent: ' : who === 'system' ? '' : 'You: ') + text;
    panel.querySelector('.demo-chat-log').appendChild(p);
  }
  function showData() {
    panel.querySelector('.demo-chat-data').textContent = 'userData sent to the agent:\n' +
      JSON.stringify(session.userData, null, 2) +
      (session.form ? '\nform: ' + JSON.stringify(session.form) : '');
  }
  function draw() {
    panel = document.createElement('section');
    panel.id = 'demo-chat';
    panel.setAttribute('aria-label', 'Chat (demo)');
    panel.style.cssText = 'position:fixed;right:1rem;bottom:1rem;width:20rem;background:#fff;' +
      'border-radius:10px;box-shadow:0 8px 30px #0004;padding:1rem;font:14px system-ui;z-index:2147482999'; // under invitations
    panel.innerHTML = '<strong>Chat (demo Widgets)</strong><pre class="demo-chat-data" ' +
      'style="font-size:12px;background:#f4f4f4;padding:.5rem;white-space:pre-wrap"></pre>' +
      '<div class="demo-chat-log"></div>' +
      '<button type="button" data-demo="finalize">Agent finishes (Finalizing)</button> ' +
      '<button type="button" data-demo="end">End chat</button>';
    showData();
    panel.querySelector('[data-demo=end]').onclick = function () { command('WebChat.endChat'); };
    panel.querySelector('[data-demo=finalize]').onclick = function () {
      publish('WebChatService.messageReceived', {originalMessages: [{
        type: 'System', event: 'InteractionStateChange', data: {interactionState: 'Finalizing'}
      }]});
    };
    document.body.appendChild(panel);
  }
  commands['WebChat.open'] = function (options) {
    if (session) throw new Error('WebChat already opened');
    session = {userData: options.userData || {}, form: options.form || null};
    save();
    draw();
    say('agent', 'Hello! I can see you were looking at ' + document.title + '. How can I help?');
    publish('WebChat.opened', {});
    publish('WebChatService.started', {userData: session.userData});
    publish('WebChatService.agentConnected', {agents: {demo: {name: 'Agent'}}, numAgentsConnected: 1});
    return {};
  };
  commands['WebChatService.updateUserData'] = function (data) {
    if (!session) throw new Error('no chat session');
    Object.assign(session.userData, data);
    save();
    if (panel) showData();
    return {};
  };
  commands['WebChat.injectMessage'] = function (options) {
    if (panel) say('system', options.text || '');
    return {};
  };
  commands['WebChat.endChat'] = function () {
    if (!session) return {};
    if (panel) panel.remove();
    panel = session = null;
    save();
    publish('WebChatService.ended', {});
    publish('WebChat.closed', {});
    return {};
  };

  function restore() { // on a new page of the site: the chat goes on where it was
    var raw = null, s = null;
    if (session) return; // a chat opened on this page already
    try { raw = sessionStorage.getItem(SESSION_KEY); } catch (e) { return; }
    if (!raw) return;
    try { s = JSON.parse(raw); } catch (e) { /* unreadable */ }
    if (!s || typeof s.userData !== 'object') {
      sessionStorage.removeItem(SESSION_KEY);
      return publish('WebChatService.restoreFailed', {});
    }
    if (Date.now() - s.savedAt > RESTORE_TIMEOUT_MS) {
      sessionStorage.removeItem(SESSION_KEY);
      return publish('WebChatService.restoreTimeout', {});
    }
    session = s;
    draw();
    say('system', 'Chat restored.');
    publish('WebChatService.restored', {});
  }
  // Widgets extensions (the documented way to extend Widgets) start with Widgets.
  Object.keys(g.widgets.extensions || {}).forEach(function (name) {
    try { g.widgets.extensions[name](null, bus, {}); } catch (e) { console.error(e); }
  });
  if (document.readyState === 'complete') setTimeout(restore, RESTORE_DELAY_MS); // loaded late
  else window.addEventListener('load', function () { setTimeout(restore, RESTORE_DELAY_MS); });
  window.addEventListener('pagehide', save); // the time away counts from here
})();
