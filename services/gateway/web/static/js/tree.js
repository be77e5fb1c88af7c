// The Tree page: collapse or expand every Objective at once (each one also folds on its own).
(function () {
  "use strict";
  function setAll(open) {
    document.querySelectorAll("#tree details").forEach(function (d) { d.open = open; });
  }
  [["collapse-all", false], ["expand-all", true]].forEach(function (pair) {
    var button = document.getElementById(pair[0]);
    if (!button) return;
    button.hidden = false;
    button.addEventListener("click", function () { setAll(pair[1]); });
  });
})();
