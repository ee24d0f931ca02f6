// Review page behaviour. Data only ever goes into textContent / value, never innerHTML.
(function () {
  "use strict";
  const cards = Array.from(document.querySelectorAll(".card"));
  const decidedEl = document.getElementById("decided");
  const errorEl = document.getElementById("error");
  let current = Math.max(0, cards.findIndex((c) => !c.classList.contains("decided")));

  function focus(i) {
    if (!cards.length) return;
    current = Math.min(Math.max(i, 0), cards.length - 1);
    cards.forEach((c) => c.classList.remove("focused"));
    cards[current].classList.add("focused");
    cards[current].focus();
    cards[current].scrollIntoView({ block: "nearest" });
  }

  async function decide(card, decision, caption) {
    errorEl.textContent = "";
    const res = await fetch("/api/decision", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify({ pair_id: card.dataset.pairId, decision: decision, caption: caption || null }),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) { errorEl.textContent = body.error || ("error " + res.status); return false; }
    card.classList.remove("accept", "reject", "fix");
    card.classList.add("decided", decision);
    card.querySelector(".status").textContent = decision;
    if (decision === "fix") card.querySelector(".caption").textContent = caption;
    decidedEl.textContent = String(body.decided);
    focus(cards.indexOf(card) + 1);
    return true;
  }

  function startEdit(card) {
    const editor = card.querySelector(".editor");
    const input = card.querySelector(".edit-input");
    editor.hidden = false;
    input.value = card.querySelector(".caption").textContent;
    input.focus();
    input.select();
  }

  function stopEdit(card) {
    card.querySelector(".editor").hidden = true;
    card.focus();
  }

  cards.forEach((card) => {
    card.addEventListener("click", () => focus(cards.indexOf(card)));
    card.querySelectorAll("button").forEach((btn) => btn.addEventListener("click", (ev) => {
      ev.stopPropagation();
      const action = btn.dataset.action;
      if (action === "edit") startEdit(card); else decide(card, action);
    }));
    const input = card.querySelector(".edit-input");
    input.addEventListener("keydown", async (ev) => {
      ev.stopPropagation();
      if (ev.key === "Enter") {
        ev.preventDefault();
        const text = input.value.trim();
        if (text && await decide(card, "fix", text)) card.querySelector(".editor").hidden = true;
      } else if (ev.key === "Escape") {
        stopEdit(card);
      }
    });
  });

  document.addEventListener("keydown", (ev) => {
    if (ev.target && ev.target.tagName === "INPUT") return;
    const card = cards[current];
    if (!card) return;
    if (ev.key === "a") decide(card, "accept");
    else if (ev.key === "r") decide(card, "reject");
    else if (ev.key === "e") { ev.preventDefault(); startEdit(card); }
    else if (ev.key === "j" || ev.key === "ArrowRight" || ev.key === "ArrowDown") focus(current + 1);
    else if (ev.key === "k" || ev.key === "ArrowLeft" || ev.key === "ArrowUp") focus(current - 1);
  });

  focus(current);
})();
