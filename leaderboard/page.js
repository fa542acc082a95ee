// Sortable leaderboard table: click a header to sort by it (again to reverse). Numeric columns
// (data-type="num") sort by each cell's data-v number; empty cells always go last. Text columns
// sort with numeric-aware collation, so "R10" comes after "R2".
//
// Self-test hook for headless browsers (tests/test_browser.py): with the URL hash
// #selftest-sort=<column key>, once the page has loaded the script clicks that column's header
// twice and writes the row order before and after each click, the images' natural widths, the
// document title and any script error as JSON into <pre id="selftest-result">. Without that hash
// it does nothing.
(function () {
  "use strict";
  var errors = [];
  window.addEventListener("error", function (e) { errors.push(String(e.message)); });

  var table = document.getElementById("leaderboard");
  if (!table) { return; }
  var tbody = table.tBodies[0];
  var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);

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

  var prefix = "#selftest-sort=";
  if (location.hash.indexOf(prefix) !== 0) { return; }
  var wanted = decodeURIComponent(location.hash.slice(prefix.length));

  function order() {
    return Array.prototype.map.call(tbody.rows, function (row) { return row.getAttribute("data-id"); });
  }

  window.addEventListener("load", function () {
    var result = { column: wanted, found: false, title: document.title, before: order(), images: [],
                   errors: errors };
    var th = headers.filter(function (h) { return h.getAttribute("data-key") === wanted; })[0];
    if (th) {
      result.found = true;
      th.click();
      result.first = order();
      result.first_sort = th.getAttribute("aria-sort");
      th.click();
      result.second = order();
      result.second_sort = th.getAttribute("aria-sort");
    }
    result.images = Array.prototype.map.call(document.images, function (img) {
      return { alt: img.alt, complete: img.complete, naturalWidth: img.naturalWidth };
    });
    document.getElementById("selftest-result").textContent = JSON.stringify(result);
  });
})();
