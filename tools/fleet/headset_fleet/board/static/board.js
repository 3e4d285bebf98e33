// Floor board: swaps in the rows the server pushes over Server-Sent Events (no polling),
// keeps call and hold timers ticking from data-since (epoch seconds, server clock),
// colours holds at the warn/limit thresholds, sorts and filters by site.
(function () {
  "use strict";
  var body = document.body;
  var rowsEl = document.getElementById("rows");
  var summaryEl = document.getElementById("summary");
  var alertsEl = document.getElementById("alerts");
  var conn = document.getElementById("conn");
  var warnS = parseFloat(body.dataset.warn), limitS = parseFloat(body.dataset.limit);
  var sound = body.dataset.sound === "1";
  var offsetS = parseFloat(body.dataset.now) - Date.now() / 1000;  // server clock - browser clock
  var params = new URLSearchParams(location.search);
  var siteFilter = params.get("site") || "";
  var sortKey = params.get("sort") || "desk";
  var lang = params.get("lang") || (body.className.indexOf("lang-zh") >= 0 ? "zh" : "en");
  var bench = params.get("bench") === "1";
  var rows = new Map();  // data-k -> <tr>
  var visible = new Set();  // rows in or near the viewport: the only ones whose timers tick
  var needSort = true;
  var seen = "IntersectionObserver" in window ? new IntersectionObserver(function (entries) {
    entries.forEach(function (e) { if (e.isIntersecting) visible.add(e.target); else visible.delete(e.target); });
  }, {rootMargin: "200px"}) : null;
  window.boardLatencies = [];  // with ?bench=1: seconds from an event's ts to its row on screen
  window.boardUpdates = 0;

  function nowS() { return Date.now() / 1000 + offsetS; }

  function fmt(s) {
    s = Math.max(0, Math.floor(s));
    if (s < 60) return s + " s";
    var h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), r = s % 60;
    var mm = (h ? (m < 10 ? "0" : "") : "") + m, ss = (r < 10 ? "0" : "") + r;
    return h ? h + ":" + mm + ":" + ss : mm + ":" + ss;
  }

  var CALL = 3, HOLD = 4;  // cell indexes (render.row_parts)

  function tickCell(td, now) {
    var since = parseFloat(td.dataset.since);
    if (isNaN(since)) return;
    var s = now - since, text = fmt(s);
    if (td.textContent !== text) td.textContent = text;
    if (td.classList.contains("hold")) {
      td.classList.toggle("limit", s >= limitS);
      td.classList.toggle("warn", s >= warnS && s < limitS);
    }
  }

  function tickRow(tr, now) {
    if (tr.cells[CALL].dataset.since) tickCell(tr.cells[CALL], now);
    if (tr.cells[HOLD].dataset.since) tickCell(tr.cells[HOLD], now);
  }

  function holdS(tr, now) {
    var since = tr.cells[HOLD].dataset.since;
    return since ? now - parseFloat(since) : -1;
  }

  function callS(tr, now) {
    var since = tr.cells[CALL].dataset.since;
    return since ? now - parseFloat(since) : -1;
  }

  function compare(a, b) {
    var now = nowS(), d = 0;
    var an = a.dataset.name, bn = b.dataset.name;
    if (sortKey === "site") d = a.dataset.site.localeCompare(b.dataset.site);
    else if (sortKey === "hold") d = holdS(b, now) - holdS(a, now);
    else if (sortKey === "call") d = callS(b, now) - callS(a, now);
    else if (sortKey === "status") d = a.dataset.online - b.dataset.online;
    else if (sortKey === "faults") d = b.dataset.faults - a.dataset.faults;
    else if (sortKey === "outbox") d = b.dataset.outbox - a.dataset.outbox;
    return d || an.localeCompare(bn) || a.dataset.k.localeCompare(b.dataset.k);
  }

  function resort() {
    needSort = false;
    var list = Array.prototype.slice.call(rowsEl.children);
    var sorted = list.slice().sort(compare);
    for (var i = 0; i < sorted.length; i++) {
      if (sorted[i] !== list[i]) {
        var frag = document.createDocumentFragment();
        sorted.forEach(function (tr) { frag.appendChild(tr); });
        rowsEl.appendChild(frag);
        return;
      }
    }
  }

  function filterRow(tr) {
    var hide = siteFilter !== "" && tr.dataset.site !== siteFilter;
    if (tr.hidden !== hide) tr.hidden = hide;
  }

  window.boardApplyMs = 0;
  // A row update is [key, row class, {data attributes}, [[cell class, data-since, inner HTML], ...]]
  // (a whole row), or [key, row class, {changed attributes}, {cell index: cell}] (only what changed
  // since the version this page has); only what differs from what the page shows is touched.
  function applyRows(json) {
    var t0 = performance.now(), now = nowS(), wall = Date.now() / 1000;
    var list = JSON.parse(json);
    for (var n = 0; n < list.length; n++) {
      var key = list[n][0], cls = list[n][1], attrs = list[n][2], cells = list[n][3];
      var tr = rows.get(key);
      if (!tr && !Array.isArray(cells)) continue;  // a change to a row this page never had
      if (!tr) {
        tr = document.createElement("tr");
        tr.dataset.k = key;
        for (var c = 0; c < cells.length; c++) tr.appendChild(document.createElement("td"));
        tr.inner = [];
        rowsEl.appendChild(tr);
        rows.set(key, tr);
        if (seen) seen.observe(tr);
        needSort = true;
      }
      if (tr.className !== cls) tr.className = cls;
      for (var a in attrs) if (tr.dataset[a] !== attrs[a]) tr.dataset[a] = attrs[a];
      if (!tr.inner) tr.inner = [];
      var whole = Array.isArray(cells), idx = whole ? null : Object.keys(cells);
      for (var j = 0, m = whole ? cells.length : idx.length; j < m; j++) {
        var i = whole ? j : +idx[j], td = tr.cells[i], cell = cells[whole ? j : idx[j]];
        if (td.className !== cell[0]) td.className = cell[0];
        if (cell[1]) {  // a running timer: its text is the page's own, from data-since (tickRow)
          if (td.dataset.since !== cell[1]) td.dataset.since = cell[1];
          tr.inner[i] = null;
        } else {
          if (td.dataset.since) delete td.dataset.since;
          if (tr.inner[i] !== cell[2]) { td.innerHTML = cell[2]; tr.inner[i] = cell[2]; }
        }
      }
      filterRow(tr);
      tickRow(tr, now);
      if (bench && attrs.ev) window.boardLatencies.push(wall - parseFloat(attrs.ev));
      window.boardUpdates++;
    }
    window.boardApplyMs += performance.now() - t0;
  }

  Array.prototype.forEach.call(rowsEl.children, function (tr) {
    rows.set(tr.dataset.k, tr);
    filterRow(tr);
    if (seen) seen.observe(tr); else visible.add(tr);
  });

  function beep() {
    try {
      var ctx = new (window.AudioContext || window.webkitAudioContext)();
      var o = ctx.createOscillator();
      o.frequency.value = 880;
      o.connect(ctx.destination);
      o.start();
      o.stop(ctx.currentTime + 0.25);
    } catch (e) { /* no audio: the visual alert stays */ }
  }

  function applyAlerts(html) {
    var known = {};
    Array.prototype.forEach.call(alertsEl.children, function (li) { known[li.dataset.id] = true; });
    alertsEl.innerHTML = html;
    var fresh = false;
    Array.prototype.forEach.call(alertsEl.children, function (li) {
      if (!known[li.dataset.id]) { li.classList.add("new"); fresh = true; }
    });
    if (fresh && sound) beep();
  }

  function connect() {
    var es = new EventSource("events");
    es.onopen = function () { conn.textContent = "live"; conn.className = "conn live"; };
    es.onerror = function () {
      conn.textContent = "reconnecting…"; conn.className = "conn down";
      fetch("session", {credentials: "same-origin"}).then(function (r) {
        if (r.status === 401) location.href = "login";
      }).catch(function () {});
    };
    es.addEventListener("now", function (e) { offsetS = parseFloat(e.data) - Date.now() / 1000; });
    es.addEventListener("rows", function (e) { applyRows(e.data); });
    es.addEventListener("reset", function () {
      rowsEl.innerHTML = ""; rows.clear(); visible.clear();
      if (seen) seen.disconnect();
    });
    es.addEventListener("summary", function (e) { summaryEl.innerHTML = e.data; });
    es.addEventListener("alerts", function (e) { applyAlerts(e.data); });
  }

  document.getElementById("lang").value = lang;
  ["site", "sort", "lang"].forEach(function (id) {
    document.getElementById(id).addEventListener("change", function () {
      var p = new URLSearchParams(location.search);
      p.set(id, this.value);
      history.replaceState(null, "", "?" + p.toString());
      if (id === "site") { siteFilter = this.value; rows.forEach(filterRow); }
      if (id === "sort") { sortKey = this.value; resort(); }
      if (id === "site") { var now = nowS(); rows.forEach(function (tr) { tickRow(tr, now); }); }
      if (id === "lang") { lang = this.value; body.classList.remove("lang-en", "lang-zh"); body.classList.add("lang-" + lang); }
    });
  });

  var ticks = 0;
  setInterval(function () {
    var now = nowS();
    (seen ? visible : rows).forEach(function (tr) { if (!tr.hidden) tickRow(tr, now); });
    ticks++;
    if (needSort || ((sortKey === "hold" || sortKey === "call") && ticks % 2 === 0)) resort();
  }, 1000);
  connect();
})();
