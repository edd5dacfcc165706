// Sort and filter the findings table. Rows are rendered by the server; filtering only toggles
// `hidden`, sorting re-appends the same rows, so thousands of rows stay responsive.
(function () {
  "use strict";
  var table = document.getElementById("findings-table");
  if (!table) {
    return;
  }
  var tbody = table.tBodies[0];
  var text = document.getElementById("filter-text");
  var severity = document.getElementById("filter-severity");
  var rule = document.getElementById("filter-rule");
  var status = document.getElementById("filter-status");
  var empty = document.getElementById("filter-empty");
  var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);

  // One entry per row, with its search text computed once: the cells' text and the full URLs
  // of the links (a cell may show a path alone), joined by newlines so that a search never
  // matches across two of them.
  var entries = Array.prototype.map.call(tbody.rows, function (row) {
    var parts = Array.prototype.map.call(row.cells, function (cell) {
      return cell.textContent;
    });
    Array.prototype.forEach.call(row.querySelectorAll("a[href]"), function (link) {
      parts.push(link.getAttribute("href"));
    });
    return {
      row: row,
      text: parts.join("\n").toLowerCase(),
      severity: row.getAttribute("data-severity"),
      rule: row.getAttribute("data-rule"),
    };
  });
  var total = entries.length;

  function plural(count) {
    return count.toLocaleString("en-US") + (count === 1 ? " finding" : " findings");
  }

  function applyFilter() {
    var terms = text.value.toLowerCase().split(/\s+/).filter(Boolean);
    var wantSeverity = severity.value;
    var wantRule = rule.value;
    var shown = 0;
    for (var i = 0; i < entries.length; i++) {
      var entry = entries[i];
      var match =
        (!wantSeverity || entry.severity === wantSeverity) &&
        (!wantRule || entry.rule === wantRule) &&
        terms.every(function (term) {
          return entry.text.indexOf(term) !== -1;
        });
      if (entry.row.hidden === match) {
        entry.row.hidden = !match;
      }
      if (match) {
        shown++;
      }
    }
    status.textContent =
      shown === total ? plural(total) : "Showing " + plural(shown) + " of " + total.toLocaleString("en-US");
    empty.hidden = shown !== 0;
  }

  var pending = 0;
  function scheduleFilter() {
    window.clearTimeout(pending);
    pending = window.setTimeout(applyFilter, 120);
  }

  function sortValue(entry, column) {
    var cell = entry.row.cells[column];
    var value = cell.getAttribute("data-sort");
    return value === null ? cell.textContent.trim() : value;
  }

  function compare(a, b) {
    var x = Number(a);
    var y = Number(b);
    if (a !== "" && b !== "" && !isNaN(x) && !isNaN(y)) {
      return x - y;
    }
    return a < b ? -1 : a > b ? 1 : 0;
  }

  function sortBy(column) {
    var header = headers[column];
    var direction = header.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    var sign = direction === "ascending" ? 1 : -1;
    var keyed = entries.map(function (entry, index) {
      return { entry: entry, key: sortValue(entry, column), index: index };
    });
    keyed.sort(function (a, b) {
      return sign * compare(a.key, b.key) || a.index - b.index;
    });
    entries = keyed.map(function (item) {
      return item.entry;
    });
    // Reorder the rows while their tbody is out of the document: moving thousands of rows
    // inside a rendered table is a hundred times slower.
    var next = tbody.nextSibling;
    table.removeChild(tbody);
    entries.forEach(function (entry) {
      tbody.appendChild(entry.row);
    });
    table.insertBefore(tbody, next);
    headers.forEach(function (other) {
      other.setAttribute("aria-sort", other === header ? direction : "none");
    });
  }

  table.tHead.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-sort-column]");
    if (button) {
      sortBy(Number(button.getAttribute("data-sort-column")));
    }
  });
  text.addEventListener("input", scheduleFilter);
  severity.addEventListener("change", applyFilter);
  rule.addEventListener("change", applyFilter);
  document.getElementById("filters").addEventListener("submit", function (event) {
    event.preventDefault();
    applyFilter();
  });

  // The counts of the rule table show that rule's findings.
  Array.prototype.forEach.call(document.querySelectorAll("[data-filter-rule]"), function (link) {
    link.addEventListener("click", function () {
      rule.value = link.getAttribute("data-filter-rule");
      severity.value = "";
      text.value = "";
      applyFilter();
    });
  });
  // A browser may restore the controls' values (back button): show what they say.
  if (text.value || severity.value || rule.value) {
    applyFilter();
  }
})();
