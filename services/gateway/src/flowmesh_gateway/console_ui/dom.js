// Building the page: every piece of data goes in as a text node, never as markup.

/**
 * el("td", {className: "tag"}, "text", otherNode): an element with its attributes and
 * children. Strings become text nodes; attributes are set with setAttribute, and "on..."
 * attributes are refused (listeners are added with addEventListener).
 */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name.toLowerCase().startsWith("on")) throw new Error(`no inline handler: ${name}`);
    if (value === false || value === null || value === undefined) continue;
    if (name === "className") node.className = value;
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
