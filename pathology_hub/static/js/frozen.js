// Frozen-section lane: ticks every minutes clock on the page, and keeps the alarm of a paged
// pathologist up (polling for new pages every 15 s) with an audible tone made by the Web Audio
// API (no sound file).  Browsers only let a page play sound after a click or key press, so the
// tone starts with the first gesture anywhere on the page, or with the "Sound on" button.
// An external file because the CSP forbids inline scripts.
(function () {
  "use strict";

  function fill(text, m, t) { return text.replace("{m}", m).replace("{t}", t); }

  function tick(el) {
    var submitted = Date.parse(el.getAttribute("data-submitted"));
    var stopped = el.getAttribute("data-stopped");
    var end = stopped ? Date.parse(stopped) : Date.now();
    var target = parseFloat(el.getAttribute("data-target")) || 20;
    var amber = parseFloat(el.getAttribute("data-amber")) || 0.75;
    var minutes = Math.max(0, Math.floor((end - submitted) / 60000));
    var level = minutes >= target ? "red" : minutes >= amber * target ? "amber" : "ok";
    el.classList.remove("frozen-clock-ok", "frozen-clock-amber", "frozen-clock-red");
    el.classList.add("frozen-clock-" + level);
    el.setAttribute("data-level", level);
    var text = el.querySelector(".frozen-clock-text");
    if (text) {
      text.textContent = fill(el.getAttribute(stopped ? "data-stopped-text" : "data-running-text"), minutes, target);
    }
  }

  function tickAll() {
    Array.prototype.forEach.call(document.querySelectorAll(".frozen-clock[data-submitted]"), tick);
  }
  tickAll();
  setInterval(tickAll, 5000);

  var root = document.getElementById("frozen-alarm");
  if (!root) { return; }
  var list = document.getElementById("frozen-alarm-list");
  var soundButton = document.getElementById("frozen-sound");
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var audio = null;

  function ctx() {
    var Ctor = window.AudioContext || window.webkitAudioContext;
    if (!Ctor) { return null; }
    if (!audio) { audio = new Ctor(); }
    if (audio.state === "suspended") { audio.resume(); }
    return audio;
  }

  // Three short rising beeps (880, 988, 1175 Hz): distinct from a phone ring, audible in a theatre.
  function beep() {
    var ac = audio;
    if (!ac || ac.state !== "running") { return; }
    [880, 988, 1175].forEach(function (freq, i) {
      var osc = ac.createOscillator();
      var gain = ac.createGain();
      var start = ac.currentTime + i * 0.22;
      osc.type = "square";
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, start);
      gain.gain.exponentialRampToValueAtTime(0.25, start + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.18);
      osc.connect(gain);
      gain.connect(ac.destination);
      osc.start(start);
      osc.stop(start + 0.2);
    });
    root.setAttribute("data-beeps", String(parseInt(root.getAttribute("data-beeps") || "0", 10) + 1));
  }

  function active() { return !root.hidden && list.children.length > 0; }

  function enableSound() { ctx(); if (active()) { beep(); } }
  soundButton.addEventListener("click", enableSound);
  ["click", "keydown", "touchstart"].forEach(function (name) {
    document.addEventListener(name, function () { if (active()) { ctx(); } }, { once: true, capture: true });
  });
  setInterval(function () { if (active()) { beep(); } }, 4000);

  function item(a) {
    var li = document.createElement("li");
    li.setAttribute("data-page-id", a.id);
    li.setAttribute("data-testid", "frozen-alarm-item");
    var title = document.createElement("span");
    title.className = "frozen-alarm-case";
    title.textContent = root.getAttribute("data-case-text").replace("{case}", a["case"]);
    li.appendChild(title);
    if (a.clock) {
      var clock = document.createElement("span");
      clock.className = "frozen-clock";
      clock.setAttribute("data-testid", "frozen-clock");
      clock.setAttribute("data-submitted", a.clock.submitted_at);
      clock.setAttribute("data-stopped", a.clock.stopped_at || "");
      clock.setAttribute("data-target", a.clock.target_minutes);
      clock.setAttribute("data-running-text", root.getAttribute("data-running-text"));
      clock.setAttribute("data-stopped-text", root.getAttribute("data-stopped-text"));
      clock.innerHTML = '<span class="frozen-clock-dot" aria-hidden="true"></span><span class="frozen-clock-text"></span>';
      li.appendChild(document.createTextNode(" "));
      li.appendChild(clock);
      tick(clock);
    }
    if (a.fallback) {
      var fb = document.createElement("span");
      fb.className = "frozen-alarm-fallback";
      fb.setAttribute("data-testid", "frozen-fallback");
      fb.textContent = root.getAttribute("data-fallback-text");
      li.appendChild(document.createTextNode(" "));
      li.appendChild(fb);
    }
    var sms = document.createElement("span");
    sms.className = "muted";
    sms.textContent = " " + root.getAttribute("data-sms-label") + ": " + (root.getAttribute("data-sms-" + a.sms_status) || a.sms_status) + " ";
    li.appendChild(sms);
    var open = document.createElement("a");
    open.className = "button";
    open.href = root.getAttribute("data-detail-url").replace(/0$/, String(a.consultation_id));
    open.textContent = root.getAttribute("data-open-text");
    li.appendChild(open);
    var ack = document.createElement("button");
    ack.type = "button";
    ack.className = "button primary";
    ack.setAttribute("data-testid", "frozen-ack");
    ack.textContent = root.getAttribute("data-ack-text");
    ack.addEventListener("click", function () { acknowledge(a.id, li); });
    li.appendChild(document.createTextNode(" "));
    li.appendChild(ack);
    return li;
  }

  function acknowledge(id, li) {
    fetch(root.getAttribute("data-ack-url").replace(/\/0\/ack$/, "/" + id + "/ack"), {
      method: "POST", credentials: "same-origin",
      headers: { "X-CSRFToken": csrf, "Accept": "application/json" }
    }).then(function (r) {
      if (r.ok) { li.remove(); root.hidden = list.children.length === 0; }
    });
  }

  function refresh() {
    fetch(root.getAttribute("data-url"), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        var known = {};
        Array.prototype.forEach.call(list.children, function (li) { known[li.getAttribute("data-page-id")] = li; });
        var wanted = {};
        data.alarms.forEach(function (a) {
          wanted[String(a.id)] = true;
          if (!known[String(a.id)]) { list.insertBefore(item(a), list.firstChild); }
        });
        Object.keys(known).forEach(function (id) { if (!wanted[id]) { known[id].remove(); } });
        var wasHidden = root.hidden;
        root.hidden = list.children.length === 0;
        if (wasHidden && !root.hidden) { beep(); }
      });
  }
  setInterval(refresh, 15000);
})();
