// The workshop gallery: a live grid of the latest results, fed by Server-Sent Events.
// Prompts and names are user input: they are only ever set as text (textContent), never
// as HTML, and the page's Content-Security-Policy allows no inline script either.
"use strict";

const MAX_ITEMS = 48;
const grid = document.getElementById("grid");
const statusText = document.getElementById("status");
const empty = document.getElementById("empty");
const adminMessage = document.getElementById("admin-message");
let adminToken = sessionStorage.getItem("nbbanana-relay-admin") || "";

function card(item) {
  const figure = document.createElement("figure");
  figure.className = "card";
  figure.dataset.id = String(item.id);
  figure.dataset.key = String(item.key);
  const img = document.createElement("img");
  img.src = item.image;
  img.alt = item.prompt;
  img.loading = "lazy";
  const caption = document.createElement("figcaption");
  const name = document.createElement("strong");
  name.className = "name";
  name.textContent = item.name;
  const prompt = document.createElement("span");
  prompt.className = "prompt";
  prompt.textContent = item.prompt;
  const hide = document.createElement("button");
  hide.type = "button";
  hide.className = "hide";
  hide.textContent = "Hide";
  hide.addEventListener("click", () => hideItem(item.id));
  caption.append(name, prompt, hide);
  figure.append(img, caption);
  return figure;
}

function updateEmpty() {
  empty.hidden = grid.children.length > 0;
}

function render(items) {
  grid.replaceChildren(...items.map(card));
  updateEmpty();
}

function add(item) {
  if (grid.querySelector(`[data-key="${CSS.escape(String(item.key))}"]`)) return;
  grid.prepend(card(item));
  while (grid.children.length > MAX_ITEMS) grid.lastElementChild.remove();
  updateEmpty();
}

function removeItem(id) {
  for (const el of grid.querySelectorAll(`[data-id="${CSS.escape(String(id))}"]`)) el.remove();
  updateEmpty();
}

async function hideItem(id) {
  adminMessage.textContent = "";
  const response = await fetch(`/relay/admin/gallery/${encodeURIComponent(id)}`, {
    method: "POST",
    headers: { "Authorization": `Bearer ${adminToken}`, "Content-Type": "application/json" },
    body: JSON.stringify({ hidden: true }),
  });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    adminMessage.textContent = (body.error && body.error.message) || `refused (${response.status})`;
  }
}

function setFacilitator(token) {
  adminToken = token;
  if (token) sessionStorage.setItem("nbbanana-relay-admin", token);
  document.body.classList.toggle("facilitator-mode", Boolean(token));
}

document.getElementById("facilitator").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("admin-token");
  setFacilitator(input.value.trim());
  input.value = "";
});
setFacilitator(adminToken);

const events = new EventSource("/gallery/events");
events.addEventListener("open", () => { statusText.textContent = "live"; });
events.addEventListener("error", () => { statusText.textContent = "reconnecting…"; });
events.addEventListener("snapshot", (e) => render(JSON.parse(e.data)));
events.addEventListener("item", (e) => add(JSON.parse(e.data)));
events.addEventListener("hide", (e) => removeItem(JSON.parse(e.data).id));
