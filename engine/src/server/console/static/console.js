// phasegate console: live pages. Every page works without this script;
// with it, the main content is refreshed when the server says an event was
// made durable (server-sent events), except while someone is typing in a
// form, when a notice offers the refresh instead.
(function () {
  "use strict";
  var main = document.getElementById("main");
  if (!main || !main.hasAttribute("data-live") || !window.EventSource) { return; }
  var instance = main.getAttribute("data-live");
  var note = document.querySelector(".live-note");
  var url = "/console/events" + (instance ? "?instance=" + encodeURIComponent(instance) : "");
  var pending = null;
  function busy() {
    var active = document.activeElement;
    if (active && main.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) { return true; }
    return Array.prototype.some.call(main.querySelectorAll("textarea, input:not([type=hidden])"), function (field) { return field.value !== ""; });
  }
  function refresh() {
    pending = null;
    if (busy()) {
      note.textContent = "This page has changed: reload to see it.";
      note.hidden = false;
      return;
    }
    fetch(window.location.href, { credentials: "same-origin" }).then(function (response) {
      return response.ok ? response.text() : null;
    }).then(function (html) {
      if (!html) { return; }
      var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("main");
      if (fresh) {
        main.innerHTML = fresh.innerHTML;
        main.setAttribute("data-updated", String(Date.now()));
      }
    });
  }
  var source = new EventSource(url);
  source.addEventListener("durable", function () {
    if (pending === null) { pending = window.setTimeout(refresh, 250); }
  });
})();
