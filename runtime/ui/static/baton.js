// Live pages: the server's event stream says when something changed, and each live part
// of the page fetches itself again (hx-trigger="baton:changed from:body").
(function () {
  "use strict";
  function listen() {
    var source = document.body.dataset.events;
    if (!source || !window.EventSource) {
      return;
    }
    var events = new EventSource(source);
    events.addEventListener("changed", function () {
      htmx.trigger(document.body, "baton:changed");
    });
    events.addEventListener("busy", function () {
      events.close();
    });
    events.addEventListener("refused", function () {
      events.close();
    });
    window.addEventListener("pagehide", function () {
      events.close();
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", listen);
  } else {
    listen();
  }
})();
