// Live updates by Server-Sent Events: the server sends each change already rendered (a grid cell, a timeline row),
// so this only puts it in place. Without JavaScript the pages are complete; a reload shows the same.
(function () {
  "use strict";
  var body = document.body;
  var status = document.getElementById("live-status");
  if (!window.EventSource || !body.dataset.view) { return; }
  var source = new EventSource("/live?" + (body.dataset.live || ""));
  var seen = 0;
  function say(text) { if (status) { status.textContent = text; } }
  source.addEventListener("open", function () { say("live: connected"); });
  source.addEventListener("error", function () { say("live: reconnecting…"); });
  source.addEventListener("entry", function (event) {
    var message = JSON.parse(event.data);
    seen += 1;
    Object.keys(message.cells || {}).forEach(function (id) {
      var cell = document.getElementById(id);
      if (cell) { cell.outerHTML = message.cells[id]; }
    });
    var gridEmpty = document.getElementById("grid-empty");
    if (gridEmpty && message.cells) { gridEmpty.remove(); }
    var rows = document.getElementById("timeline-rows");
    if (rows && message.row) {
      rows.insertAdjacentHTML("afterbegin", message.row);
      if (rows.firstElementChild) { rows.firstElementChild.classList.add("fresh"); }
      var empty = document.getElementById("timeline-empty");
      if (empty) { empty.remove(); }
    }
    if (message.reload) {
      fetch(location.href, { headers: { "Accept": "text/html" } })
        .then(function (response) { return response.text(); })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("main");
          var main = document.getElementById("main");
          if (fresh && main) { main.innerHTML = fresh.innerHTML; }
        });
    }
    say("live: " + seen + " update" + (seen === 1 ? "" : "s") + " since this page loaded");
  });
})();
