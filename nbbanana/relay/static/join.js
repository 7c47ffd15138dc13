// Trade a workshop code for a participant token. Everything shown is set as text.
"use strict";

document.getElementById("join").addEventListener("submit", async (event) => {
  event.preventDefault();
  const message = document.getElementById("message");
  message.textContent = "";
  const response = await fetch("/relay/join", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      code: document.getElementById("code").value,
      name: document.getElementById("name").value,
    }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    message.textContent = (body.error && body.error.message) || `refused (${response.status})`;
    return;
  }
  document.getElementById("token").textContent = body.token;
  document.getElementById("snippet").textContent =
    `import nbbanana\nsession = nbbanana.connect(base_url="${location.origin}", api_key="${body.token}")`;
  document.getElementById("result").hidden = false;
});
