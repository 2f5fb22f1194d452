// Click a heading marked data-sort to sort its table by that column (numbers by data-value, best first;
// text A to Z); click again to reverse. Without JavaScript the table keeps its own order.
for (const table of document.querySelectorAll("table.sortable")) {
  const headings = table.querySelectorAll("th[data-sort]");
  for (const th of headings) {
    th.tabIndex = 0;
    const sort = () => {
      const numeric = th.dataset.sort === "number";
      const first = numeric ? "descending" : "ascending";
      const dir = th.getAttribute("aria-sort") === first ? (numeric ? "ascending" : "descending") : first;
      for (const h of headings) h.removeAttribute("aria-sort");
      th.setAttribute("aria-sort", dir);
      const col = th.cellIndex, body = table.tBodies[0];
      const key = (row) => {
        const cell = row.cells[col];
        if (!numeric) return cell.textContent.trim().toLowerCase();
        const v = parseFloat(cell.dataset.value);
        return Number.isNaN(v) ? -Infinity : v;
      };
      const rows = Array.from(body.rows);
      rows.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0) * (dir === "ascending" ? 1 : -1));
      for (const row of rows) body.appendChild(row);
    };
    th.addEventListener("click", sort);
    th.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); } });
  }
}
