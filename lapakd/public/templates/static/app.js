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
  var data = meta.complete ? embedded : null;
  var loading = null;
  var LIMIT = 300;

  function load() {
    if (data) { return Promise.resolve(data); }
    if (!loading) {
      info.textContent = "Memuat data aduan…";
      loading = fetch("data/cari.json").then(function (r) { return r.json(); })
        .then(function (j) { data = j.rows; return data; });
    }
    return loading;
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

  function apply() {
    var w = wanted();
    var active = w.q || w.overdue || Object.keys(w.f).length;
    if (!active) {
      tbody.replaceChildren.apply(tbody, original);
      pages.hidden = false;
      info.textContent = "";
      return;
    }
    load().then(function (rows) {
      var w2 = wanted();
      var hits = rows.filter(function (r) { return matches(r, w2); });
      var frag = document.createDocumentFragment();
      hits.slice(0, LIMIT).forEach(function (r) { frag.appendChild(row(r)); });
      tbody.replaceChildren(frag);
      pages.hidden = true;
      info.textContent = hits.length + " aduan cocok" +
        (hits.length > LIMIT ? " (ditampilkan " + LIMIT + " terbaru)" : "") + ".";
    }, function () { info.textContent = "Data aduan tidak dapat dimuat."; });
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
