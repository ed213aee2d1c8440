/* focus: cumulative focused time on the page (FocusChanged events), and the business events a
 * strategy file declares (CFG.declaredEvents: {name, trigger: click|submit|timer, selector,
 * delayMs (focused time), values: {key: css}}), raised without site code. */
/* global guard, on, send, warn */
/* exported resetFocusTime, setFocus, setupDeclaredEvents */
var focused = d.hasFocus(),
  focusAcc = 0,
  focusSince = Date.now();
var timerDefs = [],
  timerFired = {},
  timerHandle = 0;
function focusMs() {
  return focusAcc + (focused ? Date.now() - focusSince : 0);
}
function resetFocusTime() {
  focusAcc = 0;
  focusSince = Date.now();
  timerFired = {};
  armTimers();
}
function setFocus(f) {
  if (f === focused) return;
  focusAcc = focusMs();
  focusSince = Date.now();
  focused = f;
  send('FocusChanged', {focused: f}, 'SYSTEM');
  armTimers();
}

function collect(values) {
  var o = {};
  Object.keys(values || {}).forEach(function (k) {
    var el = null;
    try {
      el = d.querySelector(values[k]);
    } catch (e) {
      warn('bad selector', values[k]);
    }
    o[k] = !el
      ? null
      : /^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName)
        ? el.value
        : (el.textContent || '').trim();
  });
  return o;
}
function fireDeclared(def) {
  send(def.name, collect(def.values), 'BUSINESS');
}
function armTimers() {
  clearTimeout(timerHandle);
  timerHandle = 0;
  if (!focused || !timerDefs.length) return;
  var t = focusMs(),
    next = Infinity;
  timerDefs.forEach(function (def, i) {
    var delay = +def.delayMs || 0; // 0 is left out of the config: every byte is in every page
    if (timerFired[i]) return;
    if (delay <= t) {
      timerFired[i] = 1;
      fireDeclared(def);
    } else next = Math.min(next, delay - t);
  });
  if (next < Infinity) timerHandle = setTimeout(guard(armTimers), next + 5);
}
function setupDeclaredEvents(list) {
  if (!Array.isArray(list) || !list.length) return;
  ['click', 'submit'].forEach(function (type) {
    var defs = list.filter(function (x) {
      return x && x.trigger === type && x.name && x.selector;
    });
    if (defs.length)
      on(
        d,
        type,
        function (e) {
          var t = e.target;
          if (!t || !t.closest) return;
          defs.forEach(function (def) {
            var hit = false;
            try {
              hit = !!t.closest(def.selector);
            } catch (x) {
              warn('bad selector', def.selector);
            }
            if (hit) fireDeclared(def);
          });
        },
        true
      );
  });
  timerDefs = list.filter(function (x) {
    return x && x.trigger === 'timer' && x.name;
  });
  armTimers();
}
