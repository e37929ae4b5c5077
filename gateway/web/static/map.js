// citygate, the one map: htmx's SSE extension swaps each site's counts in the list as they
// change; this script moves the site's marker on the map along with them, and says whether
// the live stream is connected. No other script runs on the page.
(function () {
  "use strict";
  var live = document.getElementById("live");
  function say(text, state) {
    if (live) { live.textContent = text; live.setAttribute("data-state", state); }
  }
  document.body.addEventListener("htmx:sseOpen", function () { say("实时 · live", "open"); });
  document.body.addEventListener("htmx:sseError", function () {
    say("正在重新连接 · reconnecting", "error");
  });
  document.body.addEventListener("htmx:sseMessage", function (e) {
    var cell = e.target;
    var id = cell.getAttribute("data-site");
    var counts = cell.querySelector("[data-level]");
    var marker = id && document.getElementById("m-" + id);
    if (!counts || !marker) { return; }
    marker.setAttribute("class", "site lvl-" + counts.getAttribute("data-level"));
    var text = marker.querySelector("text");
    if (text) { text.textContent = counts.getAttribute("data-free"); }
  });
})();
