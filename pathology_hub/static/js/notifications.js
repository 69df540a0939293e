// The notification bell: polls the unread count every 30 s, lists recent notifications on click
// and marks them read. An external file because the CSP forbids inline scripts.
(function () {
  "use strict";
  var root = document.getElementById("notif");
  if (!root) { return; }
  var bell = document.getElementById("notif-bell");
  var count = document.getElementById("notif-count");
  var panel = document.getElementById("notif-panel");
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var latest = [];

  function render() {
    panel.textContent = "";
    if (!latest.length) {
      var empty = document.createElement("span");
      empty.className = "muted";
      empty.textContent = root.getAttribute("data-empty");
      panel.appendChild(empty);
      return;
    }
    latest.forEach(function (n) {
      var a = document.createElement("a");
      a.href = n.url || "#";
      a.className = "notif-item" + (n.read ? " read" : "");
      a.textContent = n.text;
      panel.appendChild(a);
    });
    var mark = document.createElement("button");
    mark.type = "button";
    mark.className = "linklike";
    mark.textContent = root.getAttribute("data-mark-all");
    mark.addEventListener("click", function () {
      fetch(root.getAttribute("data-read-url"), {
        method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRFToken": csrf},
        body: JSON.stringify({all: true})
      }).then(poll);
    });
    panel.appendChild(mark);
  }

  function poll() {
    return fetch(root.getAttribute("data-url"), {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        count.textContent = String(data.unread);
        count.classList.toggle("badge-urgent", data.unread > 0);
        latest = data.notifications || [];
        if (!panel.hidden) { render(); }
      })
      .catch(function () { /* offline: try again at the next tick */ });
  }

  bell.addEventListener("click", function () {
    panel.hidden = !panel.hidden;
    bell.setAttribute("aria-expanded", String(!panel.hidden));
    if (!panel.hidden) { render(); }
  });
  poll();
  window.setInterval(poll, 30000);
})();
