// Review page behaviour. Data only ever goes into textContent / value, never innerHTML.
(function () {
  "use strict";
  const cards = Array.from(document.querySelectorAll(".card"));
  const byId = new Map(cards.map((c) => [c.dataset.pairId, c]));
  const decidedEl = document.getElementById("decided");
  const errorEl = document.getElementById("error");
  const noticeText = document.getElementById("notice-text");
  const noticeUndo = document.getElementById("notice-undo");
  const confirmBox = document.getElementById("confirm");
  const confirmText = document.getElementById("confirm-text");
  let current = Math.max(0, cards.findIndex((c) => !c.classList.contains("decided")));
  let lastBulk = [];  // pair ids the last "accept all" decided: what its undo takes back

  function focus(i) {
    if (!cards.length) return;
    current = Math.min(Math.max(i, 0), cards.length - 1);
    cards.forEach((c) => c.classList.remove("focused"));
    cards[current].classList.add("focused");
    cards[current].focus();
    cards[current].scrollIntoView({ block: "nearest" });
  }

  function notice(text, undoable) {
    noticeText.textContent = text;
    noticeUndo.hidden = !undoable;
  }

  async function post(url, payload) {
    errorEl.textContent = "";
    const res = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify(payload),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) { errorEl.textContent = body.error || ("error " + res.status); return null; }
    decidedEl.textContent = String(body.decided);
    return body;
  }

  // show a card's state: decision null = undecided (the original caption comes back)
  function show(card, decision, caption) {
    card.classList.remove("decided", "accept", "reject", "fix");
    if (decision) card.classList.add("decided", decision);
    card.querySelector(".status").textContent = decision || "undecided";
    card.querySelector(".caption").textContent = decision === "fix" ? caption : card.dataset.caption;
    card.querySelector("[data-action=undo]").disabled = !decision;
  }

  async function decide(card, decision, caption) {
    // the next card takes the keys at once: a quick second key never lands on this card again
    if (cards[current] === card) focus(cards.indexOf(card) + 1);
    const body = await post("/api/decision",
      { pair_id: card.dataset.pairId, decision: decision, caption: caption || null });
    if (!body) { focus(cards.indexOf(card)); return false; }
    show(card, decision, caption);
    return true;
  }

  async function undo(ids) {
    const body = await post("/api/undo", { pair_ids: ids });
    if (!body) return;
    body.cards.forEach((c) => show(byId.get(c.pair_id), c.decision, c.caption));
    return body.undone;
  }

  async function undoCard(card) {
    if (!card.classList.contains("decided")) return;
    const done = await undo([card.dataset.pairId]);
    if (done && done.length) notice("Taken back: " + card.dataset.pairId + ".", false);
    focus(cards.indexOf(card));
  }

  function undecided() { return cards.filter((c) => !c.classList.contains("decided")); }

  function askAcceptAll() {
    const open = undecided();
    if (!open.length) { notice("Every card is decided already.", false); return; }
    confirmText.textContent = "Accept all " + open.length + " undecided cards of this round?";
    confirmBox.hidden = false;
    document.getElementById("confirm-yes").focus();
  }

  function closeConfirm() {
    confirmBox.hidden = true;
    focus(current);
  }

  async function acceptAll() {
    const ids = undecided().map((c) => c.dataset.pairId);
    confirmBox.hidden = true;
    const body = await post("/api/accept_all", { pair_ids: ids });
    if (body) {
      body.accepted.forEach((pid) => show(byId.get(pid), "accept"));
      lastBulk = body.accepted;
      notice("Accepted " + body.accepted.length + " cards.", body.accepted.length > 0);
    }
    focus(current);
  }

  async function undoBulk() {
    if (!lastBulk.length) return;
    const done = await undo(lastBulk);
    if (!done) return;
    lastBulk = [];
    notice("Undone: " + done.length + " cards back to undecided.", false);
    focus(current);
  }

  function startEdit(card, text) {
    const input = card.querySelector(".edit-input");
    card.classList.add("editing");
    input.value = text !== undefined ? text : card.querySelector(".caption").textContent;
    input.focus();
    input.select();
  }

  function stopEdit(card) {
    card.classList.remove("editing");
    card.focus();
  }

  cards.forEach((card) => {
    card.addEventListener("click", () => focus(cards.indexOf(card)));
    card.querySelectorAll("button").forEach((btn) => btn.addEventListener("click", (ev) => {
      ev.stopPropagation();
      const action = btn.dataset.action;
      if (action === "edit") startEdit(card);
      else if (action === "undo") undoCard(card);
      else decide(card, action);
    }));
    const input = card.querySelector(".edit-input");
    input.addEventListener("keydown", async (ev) => {
      ev.stopPropagation();
      if (ev.key === "Enter") {
        ev.preventDefault();
        const text = input.value.trim();
        if (text && await decide(card, "fix", text)) card.classList.remove("editing");
      } else if (ev.key === "Escape") {
        stopEdit(card);
      } else if (ev.key === "Tab" && card.dataset.suggestion) {
        ev.preventDefault();
        input.value = card.dataset.suggestion;
      }
    });
  });

  document.getElementById("accept-all").addEventListener("click", askAcceptAll);
  document.getElementById("confirm-yes").addEventListener("click", acceptAll);
  document.getElementById("confirm-no").addEventListener("click", closeConfirm);
  noticeUndo.addEventListener("click", undoBulk);

  document.addEventListener("keydown", (ev) => {
    if (!confirmBox.hidden) {
      ev.preventDefault();
      if (ev.key === "Enter" || ev.key === "y") acceptAll();
      else if (ev.key === "Escape" || ev.key === "n") closeConfirm();
      return;
    }
    if (ev.target && ev.target.tagName === "INPUT") return;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const card = cards[current];
    if (!card) return;
    if (ev.key === "a") decide(card, "accept");
    else if (ev.key === "A") { ev.preventDefault(); askAcceptAll(); }
    else if (ev.key === "r") decide(card, "reject");
    else if (ev.key === "e") { ev.preventDefault(); startEdit(card); }
    else if (ev.key === "s" && card.dataset.suggestion) { ev.preventDefault(); startEdit(card, card.dataset.suggestion); }
    else if (ev.key === "u") undoCard(card);
    else if (ev.key === "z") undoBulk();
    else if (ev.key === "j" || ev.key === "ArrowRight" || ev.key === "ArrowDown") focus(current + 1);
    else if (ev.key === "k" || ev.key === "ArrowLeft" || ev.key === "ArrowUp") focus(current - 1);
  });

  focus(current);
})();
