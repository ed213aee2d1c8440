/* Live visitors: every 2 s, ask /console/visitors.json what changed since the last answer
   (its `version`) and apply it: changed visitors move to the top, those who left go, the
   table keeps the most recently active ones (no library). Time on site ticks here, from the
   engine's clock. Rows are built with textContent only: visit data never becomes markup. */
(function () {
  'use strict';
  var POLL_MS = 2000;
  var body = document.getElementById('visitors');
  if (!body) return;
  var status = document.getElementById('live-status');
  var empty = document.getElementById('no-visitors');
  var version = Number(body.dataset.version) || 0;
  var maxRows = Number(body.dataset.rows) || 100;
  var clockOffsetMs = 0;  // engine clock - this browser's clock

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function duration(seconds) {
    var s = Math.floor(seconds);
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + String(s % 60).padStart(2, '0') + ' s';
    return Math.floor(s / 3600) + ' h ' + String(Math.floor((s % 3600) / 60)).padStart(2, '0') + ' min';
  }

  function row(v) {
    var tr = el('tr');
    tr.dataset.visit = v.visitID;
    tr.dataset.started = String(v.startedAt);
    var who = el('td');
    var link = el('a', '', v.name || v.visitID.slice(0, 8));
    link.href = body.dataset.visitUrl.replace('VISITID', encodeURIComponent(v.visitID));
    who.append(link, ' ', el('span', 'muted', v.identity + (v.returning ? ' · returning' : '')));
    var page = el('td');
    if (v.currentPage) {
      page.append(el('span', 'title', v.currentPage.title || '(untitled)'), ' ',
                  el('span', 'muted url', v.currentPage.url));
    } else {
      page.textContent = '–';
    }
    var categories = el('td');
    Object.keys(v.categories).sort().forEach(function (name) {
      categories.append(el('span', 'tag', name + ' ' + v.categories[name]));
    });
    var engagement = el('td');
    if (v.engagement) {
      engagement.append(el('span', 'state state-' + v.engagement, v.engagement), ' ',
                        el('span', 'muted', v.engagementStrategy));
    } else {
      engagement.append(el('span', 'muted', 'none'));
    }
    tr.append(who, page, el('td', 'num', v.pagesViewed),
              el('td', 'num time-on-site', duration(v.timeOnSiteS)), categories, engagement);
    return tr;
  }

  function rowOf(visitID) {
    return body.querySelector('tr[data-visit="' + CSS.escape(visitID) + '"]');
  }

  function tick() {
    var now = Date.now() + clockOffsetMs;
    Array.prototype.forEach.call(body.rows, function (tr) {
      var cell = tr.querySelector('.time-on-site');
      if (cell) cell.textContent = duration(Math.max(0, now - Number(tr.dataset.started)) / 1000);
    });
  }

  function show(data) {
    clockOffsetMs = data.serverTime - Date.now();
    if (data.full) body.replaceChildren();
    data.gone.forEach(function (visitID) {
      var tr = rowOf(visitID);
      if (tr) tr.remove();
    });
    // Most recent first: insert from the oldest, each on top.
    for (var i = data.visits.length - 1; i >= 0; i--) {
      var old = rowOf(data.visits[i].visitID);
      if (old) old.remove();
      body.insertBefore(row(data.visits[i]), body.firstChild);
    }
    while (body.rows.length > maxRows) body.deleteRow(-1);
    version = data.version;
    tick();
    empty.hidden = data.count > 0;
    status.classList.remove('stale');
    status.textContent = data.count + ' on the site now' +
      (data.count > maxRows ? ' · the ' + maxRows + ' most recently active' : '') +
      ' · updated ' + new Date().toLocaleTimeString();
  }

  function poll() {
    var url = body.dataset.source + '?since=' + encodeURIComponent(version);
    fetch(url, {credentials: 'same-origin', cache: 'no-store'})
      .then(function (r) {
        if (r.status === 401) {  // the session ended: sign in again, then come back here
          window.location.href = body.dataset.loginUrl + '?next=' +
            encodeURIComponent(window.location.pathname);
          throw new Error('signed out');
        }
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.json();
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
