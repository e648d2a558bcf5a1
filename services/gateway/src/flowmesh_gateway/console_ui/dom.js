// Building the page: every piece of data goes in as a text node, never as markup.

const SVG = "http://www.w3.org/2000/svg";

/**
 * el("td", {className: "tag"}, "text", otherNode): an element with its attributes and
 * children. Strings become text nodes; attributes are set with setAttribute, and "on..."
 * attributes are refused (listeners are added with addEventListener).
 */
export function el(tag, attributes = {}, ...children) {
  return build(document.createElement(tag), attributes, children);
}

/** svg("rect", {x: 1}, ...): the same for SVG elements. */
export function svg(tag, attributes = {}, ...children) {
  return build(document.createElementNS(SVG, tag), attributes, children);
}

function build(node, attributes, children) {
  for (const [name, value] of Object.entries(attributes)) {
    if (name.toLowerCase().startsWith("on")) throw new Error(`no inline handler: ${name}`);
    if (value === false || value === null || value === undefined) continue;
    if (name === "className") node.setAttribute("class", value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else if (child instanceof Node) node.append(child);
    else node.append(document.createTextNode(String(child)));
  }
}

/** Replace what `node` shows. */
export function show(node, ...children) {
  node.replaceChildren();
  append(node, children);
}

/** A button that calls `onClick`; disabled while the returned promise runs. */
export function button(label, onClick, attributes = {}) {
  const node = el("button", { type: "button", ...attributes }, label);
  node.addEventListener("click", async () => {
    node.disabled = true;
    try {
      await onClick();
    } finally {
      node.disabled = false;
    }
  });
  return node;
}

export function problemView(message) {
  return el("p", { className: "error", role: "alert" }, message);
}

/** A run or step status as a coloured word; "never run" for none. */
export function statusBadge(status) {
  return status
    ? el("span", { className: `status status-${status}` }, status)
    : el("span", { className: "muted" }, "never run");
}

/** A time as the reader's local time, or an empty string. */
export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}
