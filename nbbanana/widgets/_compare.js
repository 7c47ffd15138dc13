// nbbanana's before/after view (an anywidget ES module): the two images side by side,
// a drag-to-compare slider when both have the same shape, and click to enlarge.

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

function render({ model, el }) {
  const root = h("div", { class: "nbb-compare" });
  el.append(root);
  let mode = "side";

  function enlarge(src, label) {
    const overlay = h(
      "div",
      { class: "nbb-enlarged", role: "dialog", title: "Click to close" },
      h("img", { src, alt: label }),
      h("div", { class: "nbb-enlarged-label", text: label + " — click to close" }),
    );
    overlay.addEventListener("click", () => overlay.remove());
    document.body.append(overlay);
  }

  function figure(which, label) {
    const src = model.get(which);
    const [width, height] = model.get(which + "_size") || [0, 0];
    const img = h("img", {
      class: `nbb-${which}-img`,
      src,
      alt: label,
      "data-width": String(width),
      "data-height": String(height),
      title: "Click to enlarge",
    });
    img.addEventListener("click", () => enlarge(src, label));
    return h(
      "figure",
      { class: `nbb-figure nbb-${which}` },
      img,
      h("figcaption", { text: `${label} · ${width}×${height}` }),
    );
  }

  function slider() {
    const before = model.get("before");
    const after = model.get("after");
    const [width, height] = model.get("after_size");
    const under = h("img", { class: "nbb-slider-under", src: before, alt: "before" });
    const over = h("img", { class: "nbb-slider-over", src: after, alt: "after" });
    const line = h("div", { class: "nbb-slider-line" }, h("div", { class: "nbb-slider-handle", text: "◀▶" }));
    const labels = [
      h("span", { class: "nbb-slider-label nbb-slider-label-before", text: "Before" }),
      h("span", { class: "nbb-slider-label nbb-slider-label-after", text: "After" }),
    ];
    const range = h("input", {
      type: "range",
      min: "0",
      max: "100",
      value: "50",
      class: "nbb-slider-range",
      "aria-label": "Drag to compare before and after",
    });
    const frame = h("div", { class: "nbb-slider-frame" }, under, over, line, ...labels, range);
    frame.style.aspectRatio = `${width} / ${height}`;
    const place = () => {
      const pct = Number(range.value);
      over.style.clipPath = `inset(0 0 0 ${pct}%)`;
      line.style.left = `${pct}%`;
    };
    range.addEventListener("input", place);
    place();
    return frame;
  }

  function update() {
    root.replaceChildren();
    const hasBefore = Boolean(model.get("before"));
    const hasAfter = Boolean(model.get("after"));
    if (!hasAfter && !hasBefore) {
      root.append(h("div", { class: "nbb-compare-empty", text: model.get("placeholder") }));
      return;
    }
    const canSlide = model.get("can_slide") && hasBefore && hasAfter;
    if (canSlide) {
      const toggle = h("div", { class: "nbb-compare-modes" });
      for (const [value, label] of [["side", "Side by side"], ["slider", "Slider"]]) {
        const button = h("button", {
          type: "button",
          class: "nbb-mode" + (mode === value ? " nbb-mode-on" : ""),
          text: label,
        });
        button.addEventListener("click", () => {
          mode = value;
          update();
        });
        toggle.append(button);
      }
      root.append(toggle);
    }
    if (canSlide && mode === "slider") {
      root.append(slider());
    } else {
      const row = h("div", { class: "nbb-compare-row" });
      if (hasBefore) row.append(figure("before", "Before"));
      if (hasAfter) row.append(figure("after", "After"));
      root.append(row);
    }
    const caption = model.get("caption");
    if (caption) root.append(h("div", { class: "nbb-compare-caption", text: caption }));
  }

  const names = ["before", "after", "before_size", "after_size", "can_slide", "caption"];
  for (const name of names) model.on("change:" + name, update);
  update();
  return () => {
    for (const name of names) model.off("change:" + name, update);
  };
}

export default { render };
