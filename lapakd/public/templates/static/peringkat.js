/* statistik.html: sortable agency tables and the period selector. Without this file every
   period's table is shown, in rank order, with links between them. */
(function () {
  "use strict";
  function value(tr, i, numeric) {
    var td = tr.children[i];
    var v = td ? td.getAttribute("data-v") : null;
    if (v === null) { v = td ? td.textContent : ""; }
    if (!numeric) { return v.toLowerCase(); }
    return v === "" ? null : parseFloat(v);
  }

  function sortBy(table, th, i) {
    var numeric = th.getAttribute("data-type") === "num";
    var dir = th.getAttribute("aria-sort") === "descending" ? "ascending" :
      th.getAttribute("aria-sort") === "ascending" ? "descending" :
      (numeric && i > 0 ? "descending" : "ascending");
    var sign = dir === "ascending" ? 1 : -1;
    var tbody = table.tBodies[0];
    var rows = Array.prototype.slice.call(tbody.rows).filter(function (r) { return r.cells.length > 1; });
    rows.sort(function (a, b) {
      var x = value(a, i, numeric), y = value(b, i, numeric);
      if (x === y) { return 0; }
      if (x === null) { return 1; }   /* "–" (no figure) always last */
      if (y === null) { return -1; }
      return (x < y ? -1 : 1) * sign;
    });
    rows.forEach(function (r) { tbody.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      if (!th.hasAttribute("data-type")) { return; }
      var button = document.createElement("button");
      button.type = "button";
      while (th.firstChild) { button.appendChild(th.firstChild); }
      th.appendChild(button);
      button.addEventListener("click", function () { sortBy(table, th, i); });
    });
  });

  var links = Array.prototype.slice.call(document.querySelectorAll(".periods a[data-period]"));
  if (!links.length) { return; }
  function show(period) {
    var known = links.some(function (a) { return a.getAttribute("data-period") === period; });
    if (!known) { period = links[0].getAttribute("data-period"); }
    links.forEach(function (a) {
      var p = a.getAttribute("data-period");
      var on = p === period;
      a.setAttribute("aria-current", on ? "true" : "false");
      document.getElementById("peringkat-" + p).hidden = !on;
    });
  }
  function fromHash() {
    var m = /^#peringkat-(.+)$/.exec(location.hash);
    return m ? m[1] : null;
  }
  links.forEach(function (a) {
    a.addEventListener("click", function (e) {
      e.preventDefault();
      var p = a.getAttribute("data-period");
      history.replaceState(null, "", "#peringkat-" + p);
      show(p);
    });
  });
  window.addEventListener("hashchange", function () { if (fromHash()) { show(fromHash()); } });
  show(fromHash());
})();
