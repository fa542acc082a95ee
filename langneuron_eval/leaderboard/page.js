// Sortable tables: click a header to sort by it (again to reverse). Numeric columns
// (data-type="num") sort by each cell's data-v number; empty cells always go last. Text columns
// sort with numeric-aware collation, so "R10" comes after "R2". Every table.sortable (the views)
// and the configuration table (#leaderboard) sort this way.
//
// Self-test hook for headless browsers (tests/test_browser.py): with a URL hash starting
// #selftest, once the page has loaded the script writes what a reader would see as JSON into
// <pre id="selftest-result">: the first table (its id, headers, first column, position against the
// viewport), the text of every rendered cell, the page's scroll width, the images' natural widths,
// the document title and any script error. With #selftest-sort=<column key> it also clicks that
// column's header of #leaderboard twice and records the row order before and after each click.
// Without such a hash it does nothing.
(function () {
  "use strict";
  var errors = [];
  window.addEventListener("error", function (e) { errors.push(String(e.message)); });

  function cellKey(row, index, numeric) {
    var cell = row.cells[index];
    if (!cell) { return null; }
    if (numeric) {
      var raw = cell.getAttribute("data-v");
      if (raw === null || raw === "") { return null; }
      var n = parseFloat(raw);
      return isNaN(n) ? null : n;
    }
    var text = cell.textContent.trim();
    return text === "" ? null : text;
  }

  function makeSortable(table) {
    var tbody = table.tBodies[0];
    var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);

    function sortBy(index, descending) {
      var numeric = headers[index].getAttribute("data-type") === "num";
      var rows = Array.prototype.slice.call(tbody.rows).map(function (row, position) {
        return { row: row, key: cellKey(row, index, numeric), position: position };
      });
      rows.sort(function (a, b) {
        if (a.key === null && b.key === null) { return a.position - b.position; }
        if (a.key === null) { return 1; }
        if (b.key === null) { return -1; }
        var c = numeric ? a.key - b.key : a.key.localeCompare(b.key, undefined, { numeric: true });
        if (descending) { c = -c; }
        return c !== 0 ? c : a.position - b.position;
      });
      rows.forEach(function (item) { tbody.appendChild(item.row); });
      headers.forEach(function (th, i) {
        th.setAttribute("aria-sort", i === index ? (descending ? "descending" : "ascending") : "none");
      });
    }

    headers.forEach(function (th, index) {
      th.tabIndex = 0;
      function activate() { sortBy(index, th.getAttribute("aria-sort") === "ascending"); }
      th.addEventListener("click", activate);
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); activate(); }
      });
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.sortable, table#leaderboard"), makeSortable);

  if (location.hash.indexOf("#selftest") !== 0) { return; }
  var prefix = "#selftest-sort=";
  var wanted = location.hash.indexOf(prefix) === 0 ? decodeURIComponent(location.hash.slice(prefix.length)) : null;
  var config = document.getElementById("leaderboard");

  function texts(nodes) {
    return Array.prototype.map.call(nodes, function (n) { return n.textContent.trim(); });
  }

  function order() {
    return Array.prototype.map.call(config.tBodies[0].rows, function (row) { return row.getAttribute("data-id"); });
  }

  function firstTable() {
    var table = document.querySelector("table");
    if (!table) { return null; }
    var rect = table.getBoundingClientRect();
    return { id: table.id, className: table.className, headers: texts(table.tHead.rows[0].cells),
             first_column: Array.prototype.map.call(table.tBodies[0].rows, function (r) {
               return r.cells[0].textContent.trim(); }),
             top: rect.top, bottom: rect.bottom, viewport_height: window.innerHeight,
             viewport_width: window.innerWidth };
  }

  function sortTwice(result) {
    var headers = Array.prototype.slice.call(config.tHead.rows[0].cells);
    var th = headers.filter(function (h) { return h.getAttribute("data-key") === wanted; })[0];
    result.column = wanted;
    result.found = Boolean(th);
    result.before = order();
    if (!th) { return; }
    th.click();
    result.first = order();
    result.first_sort = th.getAttribute("aria-sort");
    th.click();
    result.second = order();
    result.second_sort = th.getAttribute("aria-sort");
  }

  window.addEventListener("load", function () {
    var result = { title: document.title, errors: errors, first_table: firstTable(),
                   page_width: document.documentElement.scrollWidth,
                   visible_cells: texts(Array.prototype.filter.call(document.querySelectorAll("th, td"),
                     function (c) {  // inside a closed <details> a cell has boxes but is not rendered
                       return c.checkVisibility ? c.checkVisibility() : c.getClientRects().length > 0;
                     })) };
    if (wanted !== null && config) { sortTwice(result); }
    result.images = Array.prototype.map.call(document.images, function (img) {
      return { alt: img.alt, complete: img.complete, naturalWidth: img.naturalWidth };
    });
    document.getElementById("selftest-result").textContent = JSON.stringify(result);
  });
})();
