/* Pacing page: swap in the live part from the engine every 2 s (rendered and escaped by the
   server's templates; parsed with DOMParser, never with innerHTML). */
(function () {
  'use strict';
  var POLL_MS = 2000;
  var box = document.getElementById('pacing');
  if (!box) return;
  var status = document.getElementById('pacing-status');

  function show(html) {
    var fresh = new DOMParser().parseFromString(html, 'text/html').querySelector('.pacing-live');
    if (fresh) box.replaceChildren(document.importNode(fresh, true));
    status.classList.remove('stale');
    status.textContent = 'updated ' + new Date().toLocaleTimeString();
  }

  function poll() {
    fetch(box.dataset.source, {credentials: 'same-origin', cache: 'no-store'})
      .then(function (r) {
        if (r.status === 401) {
          window.location.href = box.dataset.loginUrl + '?next=' +
            encodeURIComponent(window.location.pathname);
          throw new Error('signed out');
        }
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.text();
      })
      .then(show)
      .catch(function () {
        status.classList.add('stale');
        status.textContent = 'engine unreachable: retrying…';
      })
      .then(function () { window.setTimeout(poll, POLL_MS); });
  }

  window.setTimeout(poll, POLL_MS);
})();
