// #/catalog/<kind>/<name>: one catalog entry: what it does, what it requires, its
// parameters as a form (prefilled from its example), its output, and the node the form
// makes as a line of YAML to copy (nodebuilder.js).
import { el, show } from "./dom.js";
import { catalogEntry, connectorNames, nodeBuilder } from "./nodebuilder.js";
import { schemaLines } from "./schema.js";

/** The page at #/catalog/<kind>/<name>. */
export async function render(context) {
  const { main, values } = context;
  const [entry, connectors] = await Promise.all([catalogEntry(values.kind, values.name), connectorNames()]);
  if (!context.isCurrent()) return;
  show(main, el("section", { id: "catalog-entry", className: "card" },
    el("p", {}, el("a", { href: "#/catalog" }, "The catalog")),
    entryHeader(entry),
    el("h2", {}, "Build a node"),
    nodeBuilder({ entry, connectors }).node,
    el("h2", {}, "Output"),
    el("pre", { id: "output-schema", className: "json" }, schemaLines(entry.output_schema).join("\n"))));
}

/** Name, kind, category, description and requirements (secrets link to the secrets page). */
export function entryHeader(entry) {
  const secrets = entry.requires.secrets || [];
  return [
    el("h1", { id: "entry-name" }, entry.name),
    el("dl", { className: "facts" },
      el("dt", {}, "Kind"), el("dd", { id: "entry-kind" }, entry.kind),
      el("dt", {}, "Category"), el("dd", { id: "entry-category" }, entry.category),
      el("dt", {}, "Requires"), el("dd", { id: "entry-requires" }, `the ${entry.requires.role} role`,
        secrets.length ? ["; secrets: ", secrets.map((name, i) => [i ? ", " : "",
          el("a", { href: "#/admin/secrets", className: "secret-link" }, name)])] : "")),
    el("p", { id: "entry-description" }, entry.description),
  ];
}
