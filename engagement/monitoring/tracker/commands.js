/* commands: the queue. _gt.push([name, ...args]) runs COMMANDS[name](...args); commands pushed
 * before the script loaded run in their order once it starts ('config' and 'consent' ones
 * first, so the first page's events carry them); while prepare() waits, pushes wait too. An unknown command warns once and breaks nothing. */
/* global bus, crossdomain, curRef, ensureVisit, enterPage, ids, send, setConsent, setLanguage, warn */
/* exported run, runQueued */
function options(o) {
  // GWE 8.1 options: {data: {...}} or the key/value pairs themselves
  if (!o || typeof o !== 'object') return {};
  if (o.data && typeof o.data === 'object') return o.data;
  var r = {};
  Object.keys(o).forEach(function (k) {
    if (k !== 'eventName') r[k] = o[k];
  });
  return r;
}
function legacy(name) {
  return function (o) {
    send(name, options(o), 'SYSTEM');
  };
}
var COMMANDS = {
  event: function (name, o) {
    // 8.5: ['event', 'Name', {data: {...}}]; 8.1: ['event', {eventName: 'Name', data | pairs...}]
    if (name && typeof name === 'object')
      return COMMANDS.event(name.eventName, {data: options(name)});
    if (typeof name !== 'string' || !name) return warn('event needs a name');
    send(name, (o || {}).data);
  },
  getIDs: function (cb) {
    if (ensureVisit()) enterPage(curRef);
    if (typeof cb === 'function') {
      try {
        cb(ids());
      } catch (e) {
        try {
          console.error(e);
        } catch (x) {
          /* nothing */
        }
      }
    }
  },
  config: function (o) {
    if (o && typeof o.languageCode === 'string') setLanguage(o.languageCode);
  },
  sendUserInfo: legacy('UserInfo'), // GWE 8.1 system-event commands
  sendSignIn: legacy('SignIn'),
  sendSignOut: legacy('SignOut'),
  consent: function (o) {
    setConsent(o); // consent.js
  },
  chatSession: function (cb) {
    crossdomain(function (m) {
      m.chatSession(cb); // crossdomain.js
    });
  },
  subscribe: bus.subscribe,
  publish: bus.publish
};
var warned = {};
function run(cmd) {
  try {
    var c = cmd && cmd[0],
      fn = typeof c === 'string' && {}.hasOwnProperty.call(COMMANDS, c) && COMMANDS[c];
    if (fn) fn.apply(null, [].slice.call(cmd, 1));
    else if (!warned[c]) {
      warned[c] = 1;
      warn('unknown command', c);
    }
  } catch (e) {
    warn(e);
  }
}
function isConfig(c) {
  return !!c && (c[0] === 'config' || c[0] === 'consent');
}
function runQueued(queued, configs) {
  // configs: true for the 'config' commands, false for the rest
  [].slice.call(queued || []).forEach(function (c) {
    if (isConfig(c) === configs) run(c);
  });
}
