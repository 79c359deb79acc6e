// Live alert queue: polls the page's own fragment and merges the cards in place by alert id,
// so typing, opened evidence and focus survive. Without this script the page is plain HTML
// with an "Uppdatera" link. No third-party code.
(function () {
  "use strict";

  var list = document.getElementById("queue");
  if (!list || !window.fetch) return;

  var fragmentUrl = list.getAttribute("data-fragment-url");
  var pollMs = Math.max(1, Number(list.getAttribute("data-poll-s")) || 10) * 1000;
  var live = document.getElementById("queue-live");
  var count = document.getElementById("queue-count");
  var updated = document.getElementById("queue-updated");
  var empty = document.getElementById("queue-empty");
  var refresh = document.getElementById("queue-refresh");
  var soundBox = document.getElementById("queue-sound");
  var soundOn = document.getElementById("queue-sound-on");
  var SOUND_KEY = "egenmon.queue.criticalSound";
  var NEW_FLAG_MS = 60 * 1000;

  // Cards whose newer version waits because the nurse is working in them (id -> element).
  var pending = new Map();
  // The ids in the order of the last poll (severity, then age), for placing cards.
  var lastOrder = [];
  var timer = null;
  var busy = false;

  // ---- sound (opt-in, remembered in this browser) ----
  var audio = null;

  function storedSound() {
    try {
      return window.localStorage.getItem(SOUND_KEY) === "1";
    } catch (e) {
      return false;
    }
  }

  function storeSound(on) {
    try {
      window.localStorage.setItem(SOUND_KEY, on ? "1" : "0");
    } catch (e) {
      /* private mode: the choice lasts for this page only */
    }
  }

  function audioContext() {
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return null;
    if (!audio) audio = new Ctx();
    // Browsers start audio suspended until a user gesture; resume when we can.
    if (audio.state === "suspended") audio.resume();
    return audio;
  }

  function tone() {
    var ctx = audioContext();
    if (!ctx) return;
    // Two short 880 Hz beeps with soft edges (no click), about half a second in all.
    [0, 0.25].forEach(function (offset) {
      var t0 = ctx.currentTime + offset;
      var osc = ctx.createOscillator();
      var gain = ctx.createGain();
      osc.type = "sine";
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.0001, t0);
      gain.gain.exponentialRampToValueAtTime(0.25, t0 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t0 + 0.18);
      osc.connect(gain).connect(ctx.destination);
      osc.start(t0);
      osc.stop(t0 + 0.2);
    });
    list.setAttribute("data-tones", String(Number(list.getAttribute("data-tones") || 0) + 1));
  }

  if (soundBox && soundOn) {
    soundBox.hidden = false;
    soundOn.checked = storedSound();
    soundOn.addEventListener("change", function () {
      storeSound(soundOn.checked);
      if (soundOn.checked) audioContext(); // this click is the gesture that unlocks audio
    });
    // A stored choice needs one gesture on this page before the browser lets it play.
    var unlock = function () {
      if (soundOn.checked) audioContext();
      document.removeEventListener("pointerdown", unlock);
      document.removeEventListener("keydown", unlock);
    };
    document.addEventListener("pointerdown", unlock);
    document.addEventListener("keydown", unlock);
  }

  // ---- cards ----
  function cards(root) {
    return Array.prototype.filter.call(root.children, function (el) {
      return el.hasAttribute("data-alert-id");
    });
  }

  // A card the nurse is working in: focus inside, text typed, or evidence opened.
  function busyCard(card) {
    if (card.contains(document.activeElement)) return true;
    if (card.querySelector("details[open]")) return true;
    var fields = card.querySelectorAll("textarea, input:not([type]), input[type=text], input[type=search]");
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].value.trim() !== "") return true;
    }
    return false;
  }

  function flag(card, cls, text, onClick) {
    var flags = card.querySelector(".flags");
    if (!flags || flags.querySelector("." + cls)) return;
    var b = document.createElement("button");
    b.type = "button";
    b.className = "flag " + cls;
    b.textContent = text;
    b.addEventListener("click", onClick);
    flags.appendChild(b);
  }

  function markNew(card) {
    card.classList.add("is-new");
    card.setAttribute("data-new-at", String(Date.now()));
    var flags = card.querySelector(".flags");
    if (flags) {
      var s = document.createElement("span");
      s.className = "flag new";
      s.textContent = "Nytt";
      flags.appendChild(s);
    }
  }

  function unmarkOldNew() {
    cards(list).forEach(function (card) {
      var at = Number(card.getAttribute("data-new-at") || 0);
      if (at && Date.now() - at > NEW_FLAG_MS) {
        card.classList.remove("is-new");
        card.removeAttribute("data-new-at");
        var s = card.querySelector(".flag.new");
        if (s) s.remove();
      }
    });
  }

  // Put a card where the server's last order has it: before the next card of that order
  // already in the list (cards of other orders, e.g. kept gone ones, keep their place).
  function place(node, id) {
    var idx = lastOrder.indexOf(id);
    var before = null;
    for (var j = idx + 1; idx >= 0 && j < lastOrder.length && !before; j++) {
      before = list.querySelector('[data-alert-id="' + lastOrder[j] + '"]');
    }
    list.insertBefore(node, before);
  }

  function showPending(id) {
    var old = list.querySelector('[data-alert-id="' + id + '"]');
    var next = pending.get(id);
    pending.delete(id);
    if (!old || !next) return;
    old.remove();
    place(next, id);
    var h = next.querySelector("h2");
    if (h) h.focus(); // keep the keyboard user on the refreshed card
  }

  function markStale(card, next) {
    var id = card.getAttribute("data-alert-id");
    pending.set(id, next);
    card.classList.add("is-stale");
    flag(card, "stale", "Uppdaterat – visa", function () {
      showPending(id);
    });
  }

  function markGone(card) {
    card.classList.add("is-gone");
    flag(card, "gone", "Inte längre i urvalet – dölj", function () {
      var next = card.nextElementSibling || card.previousElementSibling;
      card.remove();
      var target = next && next.querySelector("h2");
      if (target) target.focus();
    });
  }

  function announce(added) {
    if (!live || added.length === 0) return;
    var crit = added.filter(function (c) {
      return c.getAttribute("data-severity") === "critical";
    }).length;
    var text = added.length === 1 ? "1 nytt larm" : added.length + " nya larm";
    if (crit) text += crit === 1 ? ", varav 1 kritiskt" : ", varav " + crit + " kritiska";
    // Emptied first so the same words twice in a row are announced again.
    live.textContent = "";
    window.setTimeout(function () {
      live.textContent = text;
    }, 50);
    if (crit && soundOn && soundOn.checked) tone();
  }

  // Merge the server's ordered cards into the list without touching busy cards.
  function merge(fresh) {
    var freshById = new Map();
    var order = [];
    fresh.forEach(function (c) {
      var id = c.getAttribute("data-alert-id");
      freshById.set(id, c);
      order.push(id);
    });
    var current = new Map();
    cards(list).forEach(function (c) {
      current.set(c.getAttribute("data-alert-id"), c);
    });

    // Gone: removed unless the nurse is working in it.
    current.forEach(function (card, id) {
      if (freshById.has(id)) return;
      pending.delete(id);
      if (busyCard(card)) markGone(card);
      else card.remove();
      current.delete(id);
    });

    var added = [];
    var toPlace = [];
    order.forEach(function (id) {
      var next = freshById.get(id);
      var card = current.get(id);
      if (!card) {
        added.push(next);
        toPlace.push(id);
        return;
      }
      card.classList.remove("is-gone");
      var gone = card.querySelector(".flag.gone");
      if (gone) gone.remove();
      // The age moves every minute; it is plain text, safe to update in any card.
      var age = card.querySelector(".age");
      var nextAge = next.querySelector(".age");
      if (age && nextAge) age.textContent = nextAge.textContent;
      if (card.getAttribute("data-version") === next.getAttribute("data-version")) return;
      if (busyCard(card)) {
        markStale(card, next);
      } else {
        pending.delete(id);
        card.remove();
        current.delete(id);
        toPlace.push(id);
      }
    });

    // Insert in the server's order, each before the next card of that order already placed.
    lastOrder = order;
    toPlace.forEach(function (id) {
      place(freshById.get(id), id);
    });
    added.forEach(markNew);
    return added;
  }

  function setStatus(text) {
    if (updated) updated.textContent = text;
  }

  function clock() {
    // Stockholm time, as the server writes it, whatever the workstation's zone.
    return new Date().toLocaleTimeString("sv-SE", {
      timeZone: "Europe/Stockholm",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
  }

  function schedule(ms) {
    window.clearTimeout(timer);
    timer = window.setTimeout(poll, ms);
  }

  function poll() {
    if (busy) return;
    busy = true;
    // redirect "manual": an expired login answers with a redirect to the login page, which
    // must not be merged as if it were cards.
    fetch(fragmentUrl, { credentials: "same-origin", redirect: "manual", headers: { Accept: "text/html" } })
      .then(function (r) {
        if (r.type === "opaqueredirect" || r.status === 401) throw new Error("login");
        if (!r.ok) throw new Error(String(r.status));
        return r.text();
      })
      .then(function (html) {
        var tpl = document.createElement("template");
        tpl.innerHTML = html;
        var added = merge(cards(tpl.content));
        unmarkOldNew();
        announce(added);
        var n = cards(list).filter(function (c) {
          return !c.classList.contains("is-gone");
        }).length;
        if (count) count.textContent = String(n);
        if (empty) empty.hidden = n > 0;
        setStatus(clock());
        list.setAttribute("data-polls", String(Number(list.getAttribute("data-polls") || 0) + 1));
        busy = false;
        schedule(pollMs);
      })
      .catch(function (err) {
        busy = false;
        if (err && err.message === "login") {
          setStatus("inloggningen har gått ut – ladda om sidan för att logga in");
          return; // polling again would only repeat the redirect
        }
        setStatus("kunde inte hämta (" + clock() + "), försöker igen");
        schedule(Math.min(pollMs * 3, 60000));
      });
  }

  // "Uppdatera" fetches now instead of reloading, so nothing typed is lost.
  if (refresh) {
    refresh.addEventListener("click", function (ev) {
      ev.preventDefault();
      schedule(0);
    });
  }
  list.setAttribute("data-live", "1");
  schedule(pollMs);
})();
