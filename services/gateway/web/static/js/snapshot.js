// The Snapshot page: ← and → move a week, the owner filter applies on change, the seal's
// verification loads in place, "Open all" for a large, collapsed week. The page works without it.
(function () {
  "use strict";
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
    if (target && /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(target.tagName)) return;
    var link = null;
    if (event.key === "ArrowLeft") link = document.getElementById("previous-week");
    if (event.key === "ArrowRight") link = document.getElementById("next-week");
    if (link) { event.preventDefault(); window.location.assign(link.href); }
  });

  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  var verify = document.getElementById("verify-result");
  if (verify && verify.dataset.src) {
    fetch(verify.dataset.src, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) { verify.innerHTML = html; })
      .catch(function () { /* keep the link */ });
  }

  var expand = document.getElementById("expand-all");
  if (expand) {
    expand.hidden = false;
    expand.addEventListener("click", function () {
      document.querySelectorAll("details[data-objective]").forEach(function (d) { d.open = true; });
    });
  }
})();
