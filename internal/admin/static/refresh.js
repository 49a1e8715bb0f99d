// Refreshes the parts of the status page marked data-refresh every few
// seconds, in place: the paste box is never replaced, so what the user is
// typing there stays.
(function () {
  "use strict";
  var every = 3000;
  var busy = false;

  function refresh() {
    if (busy || document.hidden) {
      return;
    }
    busy = true;
    fetch("/", { cache: "no-store", credentials: "same-origin" })
      .then(function (res) {
        if (!res.ok) {
          throw new Error("HTTP " + res.status);
        }
        return res.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-refresh]").forEach(function (el) {
          var next = fresh.getElementById(el.id);
          if (next) {
            el.replaceWith(document.importNode(next, true));
          }
        });
      })
      .catch(function () {
        var el = document.getElementById("updated");
        if (el) {
          el.textContent = "serve is not answering; the status below may be out of date.";
          el.className = "error";
        }
      })
      .finally(function () {
        busy = false;
      });
  }

  setInterval(refresh, every);
  document.addEventListener("visibilitychange", refresh);
})();
