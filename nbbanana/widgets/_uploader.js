// nbbanana's chunked image uploader (an anywidget ES module).
//
// Why not ipywidgets' FileUpload: it sends each file in ONE comm message, and Jupyter
// Server refuses websocket messages over 10 MiB by default, so a phone photo silently
// arrives empty. Here the browser reads the File itself and sends it in slices well below
// that cap, each as a binary buffer of a custom message; the kernel acknowledges every
// slice (flow control: at most WINDOW slices in flight), reassembles the bytes, checks
// size and SHA-256, and fits the image. Everything shown (progress, thumbnails, gauges,
// warnings, errors) is rendered from the widget's synced state, which the kernel owns.

const WINDOW = 2; // slices in flight before waiting for an acknowledgement

function newId() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") {
    return crypto.randomUUID();
  }
  return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
}

async function sha256Hex(file) {
  // crypto.subtle exists only in secure contexts (https, localhost); the kernel checks
  // the size in any case and the hash when the browser can give one.
  if (!(globalThis.crypto && crypto.subtle)) return null;
  const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

function formatBytes(n) {
  if (n < 1000) return `${n} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(1)} GB`;
}

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function render({ model, el }) {
  // Pending transfers of this view: id -> {resolve, reject, waiting: Map(offset -> resolve)}
  const transfers = new Map();

  function onMessage(msg) {
    const transfer = transfers.get(msg.id);
    if (!transfer) return;
    if (msg.type === "ack") {
      const waiter = transfer.waiting.get(msg.offset);
      if (waiter) {
        transfer.waiting.delete(msg.offset);
        waiter();
      }
    } else if (msg.type === "refused") {
      transfer.fail(new Error(msg.message));
    }
  }
  model.on("msg:custom", onMessage);

  async function upload(file) {
    const id = newId();
    const chunk = model.get("chunk_size");
    let failed = null;
    const transfer = { waiting: new Map(), fail: null };
    const failure = new Promise((_, reject) => {
      transfer.fail = (err) => {
        failed = err;
        reject(err);
      };
    });
    failure.catch(() => {});
    transfers.set(id, transfer);
    const acked = (offset) =>
      Promise.race([new Promise((resolve) => transfer.waiting.set(offset, resolve)), failure]);
    try {
      const started = acked(0);
      model.send({
        type: "begin",
        id,
        name: file.name,
        size: file.size,
        mime: file.type || "",
        last_modified: file.lastModified || 0,
      });
      await started;
      const inflight = [];
      for (let offset = 0; offset < file.size; offset += chunk) {
        if (failed) throw failed;
        if (inflight.length >= WINDOW) await inflight.shift();
        const end = Math.min(offset + chunk, file.size);
        const buffer = await file.slice(offset, end).arrayBuffer();
        inflight.push(acked(end));
        model.send({ type: "chunk", id, offset }, undefined, [buffer]);
      }
      await Promise.all(inflight);
      const sha256 = await sha256Hex(file);
      model.send({ type: "end", id, sha256 });
    } catch (err) {
      // The kernel already shows why it refused; nothing more to send.
    } finally {
      transfers.delete(id);
    }
  }

  function uploadAll(files) {
    // One file at a time keeps memory flat in the browser and in the kernel.
    let chain = Promise.resolve();
    for (const file of files) chain = chain.then(() => upload(file));
    return chain;
  }

  const input = h("input", {
    type: "file",
    class: "nbb-upload-input",
    accept: "image/*,.heic,.heif",
    multiple: "",
    onchange: () => {
      const files = Array.from(input.files || []);
      input.value = "";
      uploadAll(files);
    },
  });
  const pick = h("button", { class: "nbb-upload-pick", type: "button", text: "Choose images…" });
  pick.addEventListener("click", () => input.click());
  const hint = h("span", { class: "nbb-upload-hint" });
  const drop = h("div", { class: "nbb-upload-drop" }, input, pick, hint);
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("nbb-dragging");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("nbb-dragging"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("nbb-dragging");
    uploadAll(Array.from(event.dataTransfer?.files || []));
  });

  const list = h("div", { class: "nbb-upload-items" });
  const summary = h("div", { class: "nbb-upload-summary" });
  const root = h("div", { class: "nbb-uploader" }, drop, list, summary);
  el.append(root);

  function renderItem(item) {
    const card = h("div", {
      class: `nbb-item nbb-state-${item.state}`,
      "data-id": item.id,
      "data-sha256": item.sha256 || "",
    });
    const thumb = item.thumb
      ? h("img", { class: "nbb-thumb", src: item.thumb, alt: item.name })
      : h("div", { class: "nbb-thumb nbb-thumb-empty" });
    const body = h("div", { class: "nbb-item-body" });
    body.append(h("div", { class: "nbb-item-name", text: item.name }));
    if (item.state === "uploading") {
      const pct = item.size ? Math.floor((100 * item.received) / item.size) : 0;
      const bar = h("progress", { class: "nbb-progress", max: "100", value: String(pct) });
      body.append(bar, h("div", {
        class: "nbb-item-status",
        text: `uploading ${formatBytes(item.received)} of ${formatBytes(item.size)} (${pct}%)`,
      }));
    } else if (item.state === "fitting") {
      body.append(h("div", { class: "nbb-item-status", text: item.status || "fitting…" }));
    } else if (item.state === "error") {
      body.append(h("div", { class: "nbb-item-error", role: "alert", text: item.error }));
    }
    // In the grid a thumbnail carries a two-line gauge; the whole one is its tooltip.
    const grid = model.get("layout_mode") === "grid";
    const lines = (grid ? item.short : item.lines) || [];
    const gauge = h("ul", { class: "nbb-gauge" });
    for (const line of lines) gauge.append(h("li", { text: line }));
    if (lines.length) body.append(gauge);
    if (grid && (item.lines || []).length) card.title = [item.name, ...item.lines].join("\n");
    for (const warning of item.warnings || []) {
      body.append(h("div", { class: "nbb-warning", text: "⚠ " + warning }));
    }
    const remove = h("button", {
      class: "nbb-item-remove",
      type: "button",
      title: "Remove this image",
      text: "✕",
    });
    remove.addEventListener("click", () => model.send({ type: "remove", id: item.id }));
    card.append(thumb, body, remove);
    return card;
  }

  function update() {
    const items = model.get("items") || [];
    const max = model.get("max_images");
    hint.textContent = `or drop up to ${max} ${max === 1 ? "image" : "images"} here`;
    list.className = `nbb-upload-items nbb-layout-${model.get("layout_mode") || "cards"}`;
    list.replaceChildren(...items.map(renderItem));
    const info = model.get("summary") || {};
    summary.replaceChildren();
    summary.className = "nbb-upload-summary" + (info.over ? " nbb-over" : "");
    if ((info.lines || []).length) {
      if (info.title) summary.append(h("div", { class: "nbb-summary-title", text: info.title }));
      const fraction = Math.min(1, info.fraction || 0);
      const bar = h("div", { class: "nbb-budget-bar" }, h("div", { class: "nbb-budget-fill" }));
      bar.firstChild.style.width = `${(100 * fraction).toFixed(1)}%`;
      summary.append(bar);
      const [start, used, end] = info.scale || ["", "", ""];
      summary.append(
        h(
          "div",
          { class: "nbb-budget-scale" },
          h("span", { text: start }),
          h("span", { class: "nbb-budget-used", text: used }),
          h("span", { text: end }),
        ),
      );
      for (const line of info.lines) summary.append(h("div", { class: "nbb-summary-line", text: line }));
      for (const warning of info.warnings || []) {
        summary.append(h("div", { class: "nbb-warning", text: "⚠ " + warning }));
      }
    }
  }
  model.on("change:items", update);
  model.on("change:layout_mode", update);
  model.on("change:summary", update);
  model.on("change:max_images", update);
  update();

  return () => {
    model.off("msg:custom", onMessage);
    model.off("change:items", update);
    model.off("change:layout_mode", update);
    model.off("change:summary", update);
    model.off("change:max_images", update);
  };
}

export default { render };
