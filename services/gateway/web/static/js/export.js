// The export page: re-fetches its status fragment until the file is ready or failed.
(function () {
  "use strict";
  var box = document.getElementById("export-status");
  if (!box) return;
  function pending() {
    var state = box.querySelector("[data-job-status]");
    return state && /^(queued|running)$/.test(state.getAttribute("data-job-status"));
  }
  var delay = 500;
  function poll() {
    if (!pending()) return;
    fetch(box.dataset.src, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) { box.innerHTML = html; })
      .catch(function () { delay = Math.min(delay * 2, 8000); })
      .then(function () { delay = Math.min(delay * 1.5, 4000); window.setTimeout(poll, delay); });
  }
  window.setTimeout(poll, delay);
})();
