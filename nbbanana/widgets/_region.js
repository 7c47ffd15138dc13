// nbbanana's region tool (an anywidget ES module): drag a box, or paint a mask, on the
// picture the next run edits.
//
// The browser only reports what the hand did, in fractions of the displayed image (a
// rectangle's corners, brush strokes); the kernel turns them into source pixels, a mask,
// and the gauge, and sends back the label. While a drag is in progress the drawing is
// local; the model is updated once, when the pointer is released.

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

const clamp = (v) => Math.min(1, Math.max(0, v));
const CORNERS = ["nw", "ne", "sw", "se"];

function render({ model, el }) {
  const img = h("img", { class: "nbb-region-img", alt: "The picture the next run edits", draggable: "false" });
  const canvas = h("canvas", { class: "nbb-region-paint" });
  const box = h("div", { class: "nbb-region-box" });
  const handles = {};
  for (const corner of CORNERS) {
    handles[corner] = h("div", { class: `nbb-region-handle nbb-region-handle-${corner}`, "data-corner": corner });
    box.append(handles[corner]);
  }
  const stage = h("div", { class: "nbb-region-stage" }, img, canvas, box);
  const modes = {};
  const toolbar = h("div", { class: "nbb-region-toolbar" }, h("b", { text: "Edit only a region (optional):" }));
  for (const [value, label, hint] of [
    ["box", "▭ Box", "Drag on the picture to select a box"],
    ["mask", "✎ Paint mask", "Paint over what to edit"],
  ]) {
    modes[value] = h("button", { type: "button", class: "nbb-region-mode", text: label, title: hint });
    modes[value].addEventListener("click", () => {
      model.set("mode", value);
      model.save_changes();
    });
    toolbar.append(modes[value]);
  }
  const brush = h("input", {
    type: "range",
    min: "0.01",
    max: "0.25",
    step: "0.005",
    class: "nbb-region-brush",
    "aria-label": "Brush size",
    title: "Brush size",
  });
  brush.addEventListener("input", () => {
    model.set("brush", Number(brush.value));
    model.save_changes();
  });
  const brushLabel = h("label", { class: "nbb-region-brush-label", text: "Brush" }, brush);
  const clear = h("button", { type: "button", class: "nbb-region-clear", text: "✕ Clear region", title: "Edit the whole picture" });
  clear.addEventListener("click", () => {
    model.set("rect", []);
    model.set("strokes", []);
    model.save_changes();
  });
  toolbar.append(brushLabel, clear);
  const label = h("div", { class: "nbb-region-label" });
  const empty = h("div", { class: "nbb-region-empty", text: "Upload an image to select a region of it." });
  const root = h("div", { class: "nbb-region" }, toolbar, stage, label, empty);
  el.append(root);

  let drag = null; // {kind: "box", anchor: [x, y], now: [x, y]} or {kind: "paint", points: [...]}

  function point(event) {
    const r = img.getBoundingClientRect();
    return [clamp((event.clientX - r.left) / r.width), clamp((event.clientY - r.top) / r.height)];
  }

  function currentRect() {
    if (drag && drag.kind === "box") {
      const [x0, y0] = drag.anchor;
      const [x1, y1] = drag.now;
      return [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)];
    }
    const rect = model.get("rect") || [];
    return rect.length === 4 ? rect : null;
  }

  function drawBox() {
    const rect = model.get("mode") === "box" ? currentRect() : null;
    if (!rect) {
      box.style.display = "none";
      return;
    }
    const [x0, y0, x1, y1] = rect;
    Object.assign(box.style, {
      display: "block",
      left: `${x0 * 100}%`,
      top: `${y0 * 100}%`,
      width: `${(x1 - x0) * 100}%`,
      height: `${(y1 - y0) * 100}%`,
    });
  }

  function drawPaint() {
    const width = img.clientWidth;
    const height = img.clientHeight;
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.max(1, Math.round(width * ratio));
    canvas.height = Math.max(1, Math.round(height * ratio));
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (model.get("mode") !== "mask") return;
    const strokes = [...(model.get("strokes") || [])];
    if (drag && drag.kind === "paint") strokes.push({ points: drag.points, size: model.get("brush") });
    const long = Math.max(canvas.width, canvas.height);
    ctx.strokeStyle = ctx.fillStyle = "rgba(255, 64, 129, 0.55)";
    ctx.lineCap = ctx.lineJoin = "round";
    for (const stroke of strokes) {
      const pts = stroke.points || [];
      if (!pts.length) continue;
      ctx.lineWidth = Math.max(1, stroke.size * long);
      ctx.beginPath();
      ctx.moveTo(pts[0][0] * canvas.width, pts[0][1] * canvas.height);
      for (const [x, y] of pts.slice(1)) ctx.lineTo(x * canvas.width, y * canvas.height);
      if (pts.length === 1) ctx.lineTo(pts[0][0] * canvas.width + 0.01, pts[0][1] * canvas.height);
      ctx.stroke();
    }
  }

  function update() {
    const src = model.get("src");
    const has = Boolean(src);
    stage.style.display = has ? "" : "none";
    toolbar.style.display = has ? "" : "none";
    empty.style.display = has ? "none" : "";
    label.style.display = has ? "" : "none";
    // Without a picture the kernel's label says why (no upload yet, or several).
    empty.textContent = model.get("label") || "Upload an image to select a region of it.";
    if (img.getAttribute("src") !== src) {
      if (has) img.setAttribute("src", src);
      else img.removeAttribute("src");
    }
    const mode = model.get("mode");
    for (const [value, button] of Object.entries(modes)) {
      button.classList.toggle("nbb-region-mode-on", mode === value);
    }
    brushLabel.style.display = mode === "mask" ? "" : "none";
    brush.value = String(model.get("brush"));
    stage.classList.toggle("nbb-region-painting", mode === "mask");
    label.textContent = model.get("label") || "";
    drawBox();
    drawPaint();
  }

  stage.addEventListener("pointerdown", (event) => {
    if (!model.get("src") || event.button !== 0) return;
    event.preventDefault();
    stage.setPointerCapture(event.pointerId);
    const p = point(event);
    if (model.get("mode") === "mask") {
      drag = { kind: "paint", points: [p] };
      drawPaint();
      return;
    }
    const corner = event.target.dataset ? event.target.dataset.corner : undefined;
    const rect = currentRect();
    if (corner && rect) {
      // Resize: the opposite corner stays where it is.
      const ax = corner.includes("w") ? rect[2] : rect[0];
      const ay = corner.includes("n") ? rect[3] : rect[1];
      drag = { kind: "box", anchor: [ax, ay], now: p };
    } else {
      drag = { kind: "box", anchor: p, now: p };
    }
    drawBox();
  });

  stage.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const p = point(event);
    if (drag.kind === "box") {
      drag.now = p;
      drawBox();
    } else {
      drag.points.push(p);
      drawPaint();
    }
  });

  function finish(event) {
    if (!drag) return;
    const done = drag;
    drag = null;
    if (stage.hasPointerCapture(event.pointerId)) stage.releasePointerCapture(event.pointerId);
    if (done.kind === "box") {
      const [x0, y0] = done.anchor;
      const [x1, y1] = done.now;
      // A click without a drag keeps the box that was there.
      if (Math.abs(x1 - x0) > 0.002 && Math.abs(y1 - y0) > 0.002) {
        model.set("rect", [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)]);
        model.save_changes();
      }
      drawBox();
    } else {
      const strokes = [...(model.get("strokes") || []), { points: done.points, size: model.get("brush") }];
      model.set("strokes", strokes);
      model.save_changes();
      drawPaint();
    }
  }
  stage.addEventListener("pointerup", finish);
  stage.addEventListener("pointercancel", finish);

  img.addEventListener("load", drawPaint);
  const observer = typeof ResizeObserver === "function" ? new ResizeObserver(() => drawPaint()) : null;
  if (observer) observer.observe(img);

  const names = ["src", "rect", "strokes", "mode", "brush", "label"];
  for (const name of names) model.on("change:" + name, update);
  update();
  return () => {
    for (const name of names) model.off("change:" + name, update);
    if (observer) observer.disconnect();
  };
}

export default { render };
