/* bus: in the spirit of Genesys Widgets' CXBus. subscribe(name | '*', fn(data, name)) -> token,
 * unsubscribe(token), publish(name, data); a subscriber that throws does not stop the others. */
/* global warn */
/* exported bus, pub */
var subs = new Map(),
  subN = 0;
var bus = {
  subscribe: function (name, fn) {
    if (typeof fn !== 'function') return 0;
    subs.set(++subN, [name, fn]);
    return subN;
  },
  unsubscribe: function (token) {
    return subs.delete(token);
  },
  publish: function (name, data) {
    [...subs.values()].forEach(function (s) {
      if (s[0] === name || s[0] === '*')
        try {
          s[1](data, name);
        } catch (e) {
          warn(e);
        }
    });
  }
};
var pub = bus.publish;
