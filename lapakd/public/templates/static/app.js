/* Filters and search for index.html. The plain list works without this file.
   Citizen text is only ever inserted with textContent, never as HTML. */
(function () {
  "use strict";
  var form = document.getElementById("filter");
  var tbody = document.getElementById("rows");
  if (!form || !tbody) { return; }
  var meta = JSON.parse(document.getElementById("meta").textContent);
  var embedded = JSON.parse(document.getElementById("embedded").textContent);
  var F = {};
  meta.fields.forEach(function (name, i) { F[name] = i; });
  var original = Array.prototype.slice.call(tbody.children);
  var info = document.getElementById("info");
  var pages = document.getElementById("pages");
  var LIMIT = 300;
  // Small sites embed every row. Larger ones publish the search rows in shards
  // (data/cari/<n>.json, newest first, listed with their facet values in data/cari/index.json):
  // a filter loads only the shards that can match, and a search stops at a page of hits.
  var shardIndex = null;
  var shards = {};
  var generation = 0;

  function getJSON(url) {
    return fetch(url).then(function (r) {
      if (!r.ok) { throw new Error(url + ": " + r.status); }
      return r.json();
    });
  }

  function index() {
    if (!shardIndex) { shardIndex = getJSON("data/cari/index.json"); }
    return shardIndex;
  }

  function shard(entry) {
    if (!shards[entry.n]) {
      shards[entry.n] = getJSON("data/cari/" + entry.n + ".json?v=" + entry.key)
        .then(function (j) { return j.rows; });
    }
    return shards[entry.n];
  }

  function mayMatch(entry, w) {
    for (var k in w.f) {
      if ((entry.has[k] || []).indexOf(w.f[k]) < 0) { return false; }
    }
    return !(w.overdue && !entry.overdue);
  }

  // Calls found(hits, done) as shards arrive; stops at LIMIT hits unless `all`.
  function search(w, all, found) {
    if (meta.complete) {
      found(embedded.filter(function (r) { return matches(r, w); }), true);
      return Promise.resolve();
    }
    var mine = ++generation;
    var hits = [];
    return index().then(function (ix) {
      var todo = ix.shards.filter(function (e) { return mayMatch(e, w); });
      function next(i) {
        if (mine !== generation) { return null; }
        if (i >= todo.length || (!all && hits.length >= LIMIT)) {
          found(hits, i >= todo.length);
          return null;
        }
        if (i === 0) { info.textContent = "Memuat data aduan…"; }
        return shard(todo[i]).then(function (rows) {
          if (mine !== generation) { return null; }
          rows.forEach(function (r) { if (matches(r, w)) { hits.push(r); } });
          return next(i + 1);
        });
      }
      return next(0);
    });
  }

  function label(map, v) { return (map && Object.prototype.hasOwnProperty.call(map, v)) ? map[v] : v; }

  function date(iso) {
    try {
      return new Date(iso).toLocaleDateString("id-ID",
        {timeZone: "Asia/Jakarta", day: "numeric", month: "short", year: "numeric"});
    } catch (e) { return iso.slice(0, 10); }
  }

  function cell(tr, name, text) {
    var td = document.createElement("td");
    td.setAttribute("data-label", name);
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function row(r) {
    var tr = document.createElement("tr");
    var td = cell(tr, "Nomor", "");
    var a = document.createElement("a");
    a.href = "aduan/" + encodeURIComponent(r[F.id]) + ".html";
    a.title = r[F.snippet];
    a.textContent = r[F.id];
    td.appendChild(a);
    cell(tr, "Tanggal", date(r[F.received_at]));
    cell(tr, "Saluran", label(meta.channel, r[F.channel]));
    cell(tr, "Kategori", r[F.category] || "-");
    cell(tr, "Instansi", r[F.agencies].map(function (k) { return label(meta.agency, k); }).join(", ") || "-");
    cell(tr, "Kecamatan", r[F.kecamatan] || "-");
    var st = cell(tr, "Status", "");
    var span = document.createElement("span");
    span.className = "st st-" + String(r[F.status]).replace(/[^a-z_]/g, "");
    span.textContent = label(meta.status, r[F.status]);
    st.appendChild(span);
    if (r[F.overdue]) {
      var late = document.createElement("span");
      late.className = "late";
      late.textContent = "lewat tenggat";
      st.appendChild(document.createTextNode(" "));
      st.appendChild(late);
    }
    return tr;
  }

  function wanted() {
    var w = {q: document.getElementById("q").value.trim().toLowerCase(), f: {}};
    Array.prototype.forEach.call(form.querySelectorAll("select"), function (s) {
      if (s.value) { w.f[s.getAttribute("data-field")] = s.value; }
    });
    w.overdue = document.getElementById("f-overdue").checked;
    return w;
  }

  function matches(r, w) {
    for (var k in w.f) {
      if (k === "agency") { if (r[F.agencies].indexOf(w.f[k]) < 0) { return false; } }
      else if (String(r[F[k]]) !== w.f[k]) { return false; }
    }
    if (w.overdue && !r[F.overdue]) { return false; }
    if (w.q) {
      var hay = (r[F.id] + " " + r[F.snippet] + " " + (r[F.category] || "") + " " +
                 (r[F.kecamatan] || "")).toLowerCase();
      if (hay.indexOf(w.q) < 0) { return false; }
    }
    return true;
  }

  function show(hits, done) {
    var frag = document.createDocumentFragment();
    hits.slice(0, LIMIT).forEach(function (r) { frag.appendChild(row(r)); });
    tbody.replaceChildren(frag);
    pages.hidden = true;
    info.replaceChildren();
    if (done) {
      info.textContent = hits.length + " aduan cocok" +
        (hits.length > LIMIT ? " (ditampilkan " + LIMIT + " terbaru)" : "") + ".";
      return;
    }
    info.textContent = "Lebih dari " + LIMIT + " aduan cocok (ditampilkan " + LIMIT +
      " terbaru). ";
    var more = document.createElement("button");
    more.type = "button";
    more.id = "count-all";
    more.textContent = "Hitung semua";
    more.addEventListener("click", function () {
      info.textContent = "Menghitung…";
      search(wanted(), true, show).catch(failed);
    });
    info.appendChild(more);
  }

  function failed() { info.textContent = "Data aduan tidak dapat dimuat."; }

  function apply() {
    var w = wanted();
    var active = w.q || w.overdue || Object.keys(w.f).length;
    if (!active) {
      generation++;
      tbody.replaceChildren.apply(tbody, original);
      pages.hidden = false;
      info.textContent = "";
      return;
    }
    search(w, false, show).catch(failed);
  }

  var timer = null;
  form.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(apply, 150); });
  form.addEventListener("change", apply);
  form.addEventListener("submit", function (e) { e.preventDefault(); apply(); });
  form.hidden = false;
  // Links like index.html?kecamatan=Sokaraja (the map's kecamatan pages) open filtered.
  var params = new URLSearchParams(location.search);
  var preset = false;
  Array.prototype.forEach.call(form.querySelectorAll("select"), function (s) {
    var v = params.get(s.getAttribute("data-field"));
    if (v && Array.prototype.some.call(s.options, function (o) { return o.value === v; })) {
      s.value = v;
      preset = true;
    }
  });
  if (preset) { apply(); }
})();
