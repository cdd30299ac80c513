// gpubill customer portal: the one script. The pages work without it; it only keeps the usage page fresh:
// while the tab is visible, the section #live[data-refresh-ms] is fetched again from this server and swapped
// in place (no reload, scroll and focus kept), for at most MAX_MS after the last interaction.
(function () {
  "use strict";
  var MAX_MS = 30 * 60 * 1000;
  var live = document.getElementById("live");
  if (!live || !live.dataset.refreshMs || !window.fetch || !window.DOMParser) { return; }
  var every = Math.max(1000, parseInt(live.dataset.refreshMs, 10) || 2000);
  var touched = Date.now();
  var busy = false;
  ["keydown", "pointerdown", "scroll"].forEach(function (name) {
    window.addEventListener(name, function () { touched = Date.now(); }, { passive: true });
  });
  function openDetails() {
    var open = [];
    live.querySelectorAll("details").forEach(function (d, i) { if (d.open) { open.push(i); } });
    return open;
  }
  function refresh() {
    if (busy || document.hidden || Date.now() - touched > MAX_MS) { return; }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store", headers: { "X-Portal-Refresh": "1" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) {
        if (!text) { return; }
        var next = new DOMParser().parseFromString(text, "text/html").getElementById("live");
        if (!next) { return; }
        var open = openDetails();
        live.innerHTML = next.innerHTML;
        live.querySelectorAll("details").forEach(function (d, i) { if (open.indexOf(i) >= 0) { d.open = true; } });
      })
      .catch(function () { /* offline for a moment: the next tick tries again */ })
      .then(function () { busy = false; });
  }
  window.setInterval(refresh, every);
}());
