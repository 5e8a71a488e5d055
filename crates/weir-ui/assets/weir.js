// weir UI behaviour: no inline script anywhere (the Content-Security-Policy forbids it).
(function () {
  "use strict";
  var base = document.body.getAttribute("data-base") || "";

  // KFP's hash links (kfp.Client prints host/#/runs/details/<id>) land on the real pages.
  var hash = location.hash;
  var routes = [
    [/^#\/runs\/details\/([^/?#]+)/, function (m) { return "/runs/" + m[1]; }],
    [/^#\/pipelines\/details\/([^/?#]+)\/version\/([^/?#]+)/, function (m) { return "/pipelines/" + m[1] + "/versions/" + m[2]; }],
    [/^#\/pipelines\/details\/([^/?#]+)/, function (m) { return "/pipelines/" + m[1]; }],
    [/^#\/experiments\/details\/([^/?#]+)/, function (m) { return "/experiments/" + m[1]; }],
    [/^#\/recurringrun\/details\/([^/?#]+)/, function (m) { return "/recurring-runs/" + m[1]; }],
    [/^#\/(runs|pipelines|experiments|recurringruns?)\/?$/, function (m) { return "/" + m[1].replace(/^recurringruns?$/, "recurring-runs"); }],
  ];
  for (var i = 0; i < routes.length; i++) {
    var m = routes[i][0].exec(hash);
    if (m) { location.replace(base + routes[i][1](m)); return; }
  }

  // Select-all for bulk actions.
  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t.matches && t.matches("input[data-select-all]")) {
      document.querySelectorAll("input[name='" + t.getAttribute("data-select-all") + "']").forEach(function (box) { box.checked = t.checked; });
    }
  });

  // Confirmation for destructive forms.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    var submitter = e.submitter;
    var text = (submitter && submitter.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
    if (text && !window.confirm(text)) { e.preventDefault(); }
  }, true);

  // The new-run form: one-off or recurring, cron or interval.
  function syncKind() {
    document.querySelectorAll("[data-show-when]").forEach(function (el) {
      var parts = el.getAttribute("data-show-when").split("=");
      var input = document.querySelector("[name='" + parts[0] + "']:checked") || document.querySelector("select[name='" + parts[0] + "']");
      var on = input && input.value === parts[1];
      el.classList.toggle("hidden", !on);
      el.querySelectorAll("input, select, textarea").forEach(function (c) { c.disabled = !on; });
    });
  }
  document.addEventListener("change", syncKind);
  syncKind();

  // Live updates over server-sent events: the graph and header of a running run, a log's tail.
  document.querySelectorAll("[data-live]").forEach(function (el) {
    var source = new EventSource(el.getAttribute("data-live"));
    source.addEventListener("replace", function (e) {
      var data = JSON.parse(e.data);
      Object.keys(data).forEach(function (id) {
        var target = document.getElementById(id);
        if (target) { target.innerHTML = data[id]; }
      });
    });
    source.addEventListener("append", function (e) {
      var log = el.querySelector("pre") || el;
      var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.appendChild(document.createTextNode(JSON.parse(e.data)));
      if (atBottom) { log.scrollTop = log.scrollHeight; }
    });
    source.addEventListener("done", function () {
      source.close();
      el.setAttribute("data-done", "true");
    });
  });
})();
