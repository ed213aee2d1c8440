/* A stand-in for Genesys Widgets on the demo pages, NOT part of the engine: the same bus API
 * (window._genesys.widgets.bus, alias CXBus: registerPlugin, subscribe, publish, command) and a
 * WebChat that opens a small panel showing the attached data it was given, so that the whole
 * hand-off can be seen without a Genesys tenant. Real sites load the real Widgets instead. */
(function () {
  'use strict';
  var subscribers = {}, commands = {};
  function publish(name, data) {
    (subscribers[name] || []).slice().forEach(function (fn) {
      try { fn({event: name, data: data}); } catch (e) { console.error(e); }
    });
  }
  function subscribe(name, fn) { (subscribers[name] = subscribers[name] || []).push(fn); }
  function command(name, options) {
    var fn = commands[name];
    var p = fn ? Promise.resolve().then(function () { return fn(options || {}); })
               : Promise.reject(new Error('no command ' + name));
    p.done = function (cb) { p.then(cb); return p; };   // the jQuery-style API Widgets has
    p.fail = function (cb) { p.catch(cb); return p; };
    return p;
  }
  var bus = {
    subscribe: subscribe, publish: publish, command: command, loadPlugin: function () {},
    registerPlugin: function (plugin) {
      return {
        subscribe: subscribe, command: command,
        publish: function (event, data) { publish(plugin + '.' + event, data); },
        registerCommand: function (cmd, fn) { commands[plugin + '.' + cmd] = fn; }
      };
    }
  };
  var g = window._genesys = window._genesys || {};
  g.widgets = g.widgets || {};
  g.widgets.bus = bus;
  g.widgets.webchat = g.widgets.webchat || {transport: {async: {enabled: false}}};
  window.CXBus = bus;

  var panel = null;
  function say(who, text) {
    var p = document.createElement('p');
    p.className = 'demo-chat-' + who;
    p.textContent = (who === 'agent' ? 'Agent: ' : who === 'system' ? '' : 'You: ') + text;
    panel.querySelector('.demo-chat-log').appendChild(p);
  }
  commands['WebChat.open'] = function (options) {
    if (panel) return {};
    panel = document.createElement('section');
    panel.id = 'demo-chat';
    panel.setAttribute('aria-label', 'Chat (demo)');
    panel.style.cssText = 'position:fixed;right:1rem;bottom:1rem;width:20rem;background:#fff;' +
      'border-radius:10px;box-shadow:0 8px 30px #0004;padding:1rem;font:14px system-ui;z-index:2147483001';
    panel.innerHTML = '<strong>Chat (demo Widgets)</strong><pre class="demo-chat-data" ' +
      'style="font-size:12px;background:#f4f4f4;padding:.5rem;white-space:pre-wrap"></pre>' +
      '<div class="demo-chat-log"></div>' +
      '<button type="button" data-demo="finalize">Agent finishes (Finalizing)</button> ' +
      '<button type="button" data-demo="end">End chat</button>';
    panel.querySelector('.demo-chat-data').textContent =
      'userData sent to the agent:\n' + JSON.stringify(options.userData || {}, null, 2);
    panel.querySelector('[data-demo=end]').onclick = function () { command('WebChat.endChat'); };
    panel.querySelector('[data-demo=finalize]').onclick = function () {
      publish('WebChatService.messageReceived', {originalMessages: [{
        type: 'System', event: 'InteractionStateChange', data: {interactionState: 'Finalizing'}
      }]});
    };
    document.body.appendChild(panel);
    say('agent', 'Hello! I can see you were looking at ' + document.title + '. How can I help?');
    publish('WebChat.opened', {});
    publish('WebChatService.started', {userData: options.userData || {}});
    return {};
  };
  commands['WebChat.injectMessage'] = function (options) {
    if (panel) say('system', options.text || '');
    return {};
  };
  commands['WebChat.endChat'] = function () {
    if (!panel) return {};
    panel.remove();
    panel = null;
    publish('WebChatService.ended', {});
    publish('WebChat.closed', {});
    return {};
  };
})();
