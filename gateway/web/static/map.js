// citygate, the one map: htmx's SSE extension swaps each site's counts in the list as they
// change; this script moves the site's marker on the map along with them, moves the officers'
// and drones' markers (event "field": one marker's position and online state), and says
// whether the live stream is connected. No other script runs on the page.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var live = document.getElementById("live");
  function say(text, state) {
    if (live) { live.textContent = text; live.setAttribute("data-state", state); }
  }
  function site(cell) {
    var id = cell.getAttribute("data-site");
    var counts = cell.querySelector("[data-level]");
    var marker = id && document.getElementById("m-" + id);
    if (!counts || !marker) { return; }
    marker.setAttribute("class", "site lvl-" + counts.getAttribute("data-level"));
    var text = marker.querySelector("text");
    if (text) { text.textContent = counts.getAttribute("data-free"); }
  }
  function field(cell) {
    var mk = cell.querySelector("[data-mk]");
    var layer = document.getElementById("field-marks");
    if (!mk || !layer) { return; }
    var key = mk.getAttribute("data-mk");
    var kind = mk.getAttribute("data-kind");
    if (!/^(o|dr)-[A-Za-z0-9_.-]{1,64}$/.test(key) || (kind !== "officer" && kind !== "drone")) {
      return;
    }
    var x = parseFloat(mk.getAttribute("data-x"));
    var y = parseFloat(mk.getAttribute("data-y"));
    if (!isFinite(x) || !isFinite(y)) { return; }
    var el = document.getElementById(key);
    if (!el) {
      el = document.createElementNS(SVG, kind === "officer" ? "circle" : "path");
      el.setAttribute("id", key);
      if (kind === "officer") { el.setAttribute("r", "8"); }
      else { el.setAttribute("d", "M0 -14 L12 9 L-12 9 Z"); }
      el.appendChild(document.createElementNS(SVG, "title"));
      layer.appendChild(el);
    }
    var cls = kind;
    if (mk.getAttribute("data-on") !== "1") { cls += " off"; }
    if (mk.getAttribute("data-in") !== "1") { cls += " hidden-mark"; }
    el.setAttribute("class", cls);
    el.setAttribute("transform", "translate(" + x + " " + y + ")");
    el.setAttribute("data-moved", String(Date.now()));
    var title = el.querySelector("title");
    if (title) { title.textContent = mk.getAttribute("data-title"); }
  }
  document.body.addEventListener("htmx:sseOpen", function () { say("实时 · live", "open"); });
  document.body.addEventListener("htmx:sseError", function () {
    say("正在重新连接 · reconnecting", "error");
  });
  document.body.addEventListener("htmx:sseMessage", function (e) {
    var cell = e.target;
    if (cell.id === "field-live") { field(cell); } else { site(cell); }
  });
})();
