// Progressive enhancement only: every form works without this file.
"use strict";

// A form that moves money is sent once: the button is disabled after the first submit (the
// server is idempotent anyway, through the key the form carries).
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-once")) return;
  if (form.dataset.sent === "1") { event.preventDefault(); return; }
  form.dataset.sent = "1";
  for (const button of form.querySelectorAll("button[type=submit]")) button.disabled = true;
});

// Copy buttons: <button data-copy="#element-id">.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source) return;
  try {
    await navigator.clipboard.writeText(source.textContent.trim());
    button.textContent = "Copied";
  } catch {
    button.textContent = "Select and copy it by hand";
  }
});

// The idle timeout, made visible: once the session must have timed out, reload; the server
// then sends the page to sign-in with the notice that says why.
const idleSeconds = Number(document.body.dataset.idleTimeoutSeconds || 0);
if (idleSeconds > 0) {
  const waitMs = Math.min((idleSeconds + 2) * 1000, 2 ** 31 - 1);
  setTimeout(() => window.location.reload(), waitMs);
}

// Pages that wait on something (a deposit, a transfer) refresh themselves while it is pending.
const refresh = document.querySelector("[data-refresh-seconds]");
if (refresh) {
  setTimeout(() => window.location.reload(), Number(refresh.dataset.refreshSeconds) * 1000);
}
