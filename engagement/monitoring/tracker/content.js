/* content: gpe.appendContent / removeContent. HTML is fetched only from the engine and
 * CFG.contentOrigins, credentials omitted, and sanitized. Trusted mode (setting
 * trusted_content, off by default): HTML from CFG.trustedOrigins runs its scripts, remade with
 * the nonce of this script's own tag (legacy GWE invite.html widgets). */
/* global BASE, L, NONCE, fill, frag, pub, warn */
/* exported allowed, appendContent, engineURL, getHTML, removeContent */
function allowed(u) {
  var o = (CFG.contentOrigins || []).slice();
  try {
    o.push(new URL(BASE).origin);
  } catch (e) {
    /* no base */
  }
  try {
    return o.indexOf(new URL(u, L.href).origin) >= 0;
  } catch (e) {
    return false;
  }
}
function engineURL(u) {
  // an invitation is on the engine: a relative URL is relative to it
  try {
    return new URL(u, BASE + '/').href;
  } catch (e) {
    return '';
  }
}
function getHTML(u, method) {
  return w
    .fetch(new URL(u, L.href).href, {
      method: method === 'POST' ? 'POST' : 'GET',
      credentials: 'omit'
    })
    .then(function (r) {
      if (!r.ok) throw Error('HTTP ' + r.status + ' ' + u);
      return r.text();
    });
}
function trusted(u) {
  // trusted mode (off by default): only the configured content origins
  try {
    return (CFG.trustedOrigins || []).indexOf(new URL(u, L.href).origin) >= 0;
  } catch (e) {
    return false;
  }
}
function fillTrusted(el, html, u) {
  // a legacy GWE widget (invite.html): its scripts run
  el.replaceChildren(frag(html));
  el.querySelectorAll('script').forEach(function (old) {
    // parsed scripts never run: remake them
    var s = d.createElement('script');
    [].slice.call(old.attributes).forEach(function (a) {
      s.setAttribute(a.name, a.value);
    });
    if (old.getAttribute('src')) s.src = new URL(old.getAttribute('src'), u).href;
    s.async = false; // in document order, as the page would have run them
    if (NONCE) s.nonce = NONCE;
    s.text = old.text;
    old.replaceWith(s);
  });
}
function byAttr(attr, val, fn) {
  d.querySelectorAll('[' + attr + ']').forEach(function (e) {
    if (e.getAttribute(attr) === String(val)) fn(e);
  });
}
function appendContent(o, n) {
  var u = o.url,
    id = String(o.id != null ? o.id : n),
    box = o.container || 'body';
  if (!allowed(u)) {
    warn('origin not allowed:', u);
    return pub('Content.refused', {url: u});
  }
  getHTML(u, o.method)
    .then(function (html) {
      var div = d.createElement('div');
      div.setAttribute('data-eng-content', id);
      if (trusted(u)) fillTrusted(div, html, new URL(u, L.href).href);
      else fill(div, html);
      d.querySelector(box).appendChild(div);
      pub('Content.appended', {url: u, id: id, container: box});
    })
    .catch(function (e) {
      warn(e);
      pub('Content.failed', {url: u, id: id});
    });
}
function removeContent(o) {
  byAttr('data-eng-content', o.id, function (e) {
    e.remove();
  });
}
