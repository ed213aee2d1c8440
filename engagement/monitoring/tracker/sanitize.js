/* sanitize: HTML from a content server never runs. Element.setHTML (the browser's Sanitizer)
 * where present, else a walk of an inert <template>; either way no script, frame, object or
 * embed, no on* attribute, no javascript:/data: URL in href, src, action, formaction, xlink:href. */
/* global warn */
/* exported fill, frag */
function frag(html) {
  // a <template> parses without running scripts
  var t = d.createElement('template');
  t.innerHTML = html;
  return t.content;
}
var BAD_TAG =
  /^(script|iframe|frame|frameset|object|embed|base|meta|link|template|animate|animatemotion|animatetransform|set)$/i;
// eslint-disable-next-line no-control-regex -- tabs, newlines and controls inside hide 'javascript:'
var SPACES = /[\x00-\x20]/g;
var URL_ATTR = /^(href|src|action|formaction|xlink:href|data|poster|background)$/i;
function strip(root) {
  // in the template's inert document, before anything runs or loads
  root.querySelectorAll('*').forEach(function (e) {
    if (BAD_TAG.test(e.localName)) return e.remove();
    [].slice.call(e.attributes).forEach(function (a) {
      if (
        /^on/i.test(a.name) ||
        (URL_ATTR.test(a.name) && /^(javascript|data|vbscript):/i.test(a.value.replace(SPACES, '')))
      )
        e.removeAttribute(a.name);
    });
  });
  return root;
}
function fill(el, html) {
  // the browser's Sanitizer where present (it keeps data: URLs)
  if (el.setHTML)
    try {
      el.setHTML(html, {sanitizer: {}});
      return strip(el);
    } catch (e) {
      warn(e);
    }
  el.replaceChildren(strip(frag(html)));
}
