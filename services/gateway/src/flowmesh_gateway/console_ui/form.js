// A form built from a JSON Schema (the catalog's `parameters_schema`), and its value read
// back: labelled inputs with descriptions and required marks, a select for an enum, a
// checkbox for a boolean, nested fieldsets for objects, rows for arrays and maps, a JSON
// textarea for what a form cannot express, fixed text for a const. Reading gives the JSON
// value (empty optional fields left out) and the problems found at their JSON paths, the
// way the API reports them. Data only ever as text (dom.js).
import { el } from "./dom.js";
import {
  boundsProblem, childPath, fieldOf, fitsObject, isTemplate, jsonOf, jsonText, literalText, scalarOf,
} from "./schema.js";

/** What a field reads when nothing was given. */
export const EMPTY = Symbol("empty");

/**
 * buildForm(schema, value, {connectors, idPrefix}) -> {node, read(), showProblems(problems)}.
 * `value` prefills the form (the catalog's example); `connectors` are the names a property
 * named `connector` offers (free text allowed). `read()` -> {value, problems}, each problem
 * {path, message}; `showProblems` puts problems (the form's or the API's) by their fields.
 */
export function buildForm(schema, value, { connectors = [], idPrefix = "form" } = {}) {
  const context = { connectors, prefix: idPrefix, count: 0, list: `${idPrefix}-connectors` };
  const root = fieldView(schema, value, { context, name: null, required: true, root: true });
  const general = el("ul", { className: "problems form-problems", hidden: true });
  const node = el("div", { className: "schema-form" }, general, root.node,
    el("datalist", { id: context.list }, connectors.map((name) => el("option", { value: name }))));
  const read = () => {
    const problems = [];
    const got = root.read("", problems);
    return { value: got === EMPTY ? (root.emptyValue ?? {}) : got, problems };
  };
  const showProblems = (problems) => {
    for (const old of node.querySelectorAll(".field-problem")) old.remove();
    const fields = new Map([...node.querySelectorAll(".form-field")].map((f) => [f.dataset.path, f]));
    const left = [];
    for (const problem of problems) {
      const field = fields.get(problem.path || "$");
      if (field) field.append(el("p", { className: "error field-problem", role: "alert" }, problem.message));
      else left.push(problem);
    }
    general.replaceChildren(...left.map((p) => el("li", { className: "problem" }, `${p.path || "$"}: ${p.message}`)));
    general.hidden = !left.length;
  };
  return { node, read, showProblems };
}

/** A field: {node, read(path, problems) -> value or EMPTY, emptyValue}. */
function fieldView(schema, value, where) {
  const field = fieldOf(schema);
  const kind = chosenKind(field, value);
  const made = BUILDERS[kind](field, value, where);
  const id = made.id;
  const wrapper = el(kind === "object" ? "fieldset" : "div", { className: `form-field form-${kind}`, "data-kind": kind },
    labelOf(kind, id, where), where.root ? null : describe(field.schema), made.node);
  const emptyValue = kind === "array" ? [] : kind === "map" ? {} : field.nullable ? null : undefined;
  return {
    node: wrapper,
    emptyValue,
    read: (path, problems) => {
      wrapper.dataset.path = path || "$";
      return made.read(path, problems);
    },
  };
}

/** The builder for a value: a template in a non-string field is a text field, and a value
 * the field's shape cannot hold is JSON. */
function chosenKind({ kind, schema }, value) {
  if (isTemplate(value) && !["string", "json", "const"].includes(kind)) return "template";
  if (kind === "object" && !fitsObject(schema, value)) return "json";
  if (kind === "map" && value != null && (typeof value !== "object" || Array.isArray(value))) return "json";
  if (kind === "array" && value != null && !Array.isArray(value)) return "json";
  if (kind === "enum" && value !== undefined && !schema.enum.some((m) => same(m, value))) return "json";
  return kind;
}

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

function labelOf(kind, id, { name, required }) {
  if (name === null) return null;
  const mark = required ? el("abbr", { className: "required", title: "required" }, "*") : null;
  if (kind === "object") return el("legend", {}, name, mark);
  return el("label", { for: id }, name, mark);
}

function describe(schema) {
  const fallback = placeholderOf(schema) === null ? "" : `Default: ${placeholderOf(schema)}.`;
  const said = [(schema.description || "").trim(), fallback].filter(Boolean).join(" ");
  return said ? el("small", { className: "muted field-description" }, said) : null;
}

function nextId(context) {
  context.count += 1;
  return `${context.prefix}-${context.count}`;
}

function placeholderOf(schema) {
  return schema.default !== undefined && schema.default !== null ? literalText(schema.default) : null;
}

const BUILDERS = {
  const: constField,
  enum: enumField,
  string: textField,
  integer: textField,
  number: textField,
  template: textField,
  boolean: booleanField,
  json: jsonField,
  object: objectField,
  array: arrayField,
  map: mapField,
};

function constField({ schema }) {
  return { node: el("code", { className: "const" }, literalText(schema.const)), read: () => schema.const };
}

/** A text input: a string, a number (still text: a template may stand in), a template. */
function textField({ kind, schema }, value, { context, name }) {
  const id = nextId(context);
  const numeric = kind === "integer" || kind === "number";
  const input = el("input", {
    id, type: "text", autocomplete: "off", spellcheck: "false",
    inputmode: numeric ? (kind === "integer" ? "numeric" : "decimal") : null,
    placeholder: placeholderOf(schema),
    list: kind === "string" && name === "connector" ? context.list : null,
  });
  input.value = value === undefined || value === null ? "" : String(value);
  const as = kind === "template" ? "string" : kind;
  return {
    id,
    node: input,
    read: (path, problems) => {
      const got = scalarOf(as, input.value);
      const problem = got.problem || (got.empty ? null : boundsProblem(schema, got.value));
      if (problem) problems.push({ path: path || "$", message: problem });
      return got.empty || got.problem ? EMPTY : got.value;
    },
  };
}

function enumField({ schema }, value, { context, required }) {
  const id = nextId(context);
  const members = schema.enum;
  const blank = !required || value === undefined;
  const select = el("select", { id },
    blank ? el("option", { value: "" }, placeholderOf(schema) ? `(default: ${placeholderOf(schema)})` : "") : null,
    members.map((member, i) => el("option", { value: String(i) }, literalText(member))));
  const at = members.findIndex((member) => same(member, value));
  select.value = at >= 0 ? String(at) : blank ? "" : "0";
  return { id, node: select, read: () => (select.value === "" ? EMPTY : members[Number(select.value)]) };
}

function booleanField({ schema }, value, { context }) {
  const id = nextId(context);
  const box = el("input", { id, type: "checkbox" });
  box.checked = (value ?? schema.default) === true;
  // Unchecked writes false only when false differs from leaving it out (or was given).
  const writesFalse = schema.default === true || value === false;
  return { id, node: box, read: () => (box.checked ? true : writesFalse ? false : EMPTY) };
}

function jsonField(_field, value, { context }) {
  const id = nextId(context);
  const text = jsonText(value);
  const area = el("textarea", {
    id, className: "json-field", spellcheck: "false", autocomplete: "off",
    rows: Math.min(12, Math.max(2, text.split("\n").length)), placeholder: "JSON",
  });
  area.value = text;
  return {
    id,
    node: area,
    read: (path, problems) => {
      const got = jsonOf(area.value);
      if (got.problem) problems.push({ path: path || "$", message: got.problem });
      return got.empty || got.problem ? EMPTY : got.value;
    },
  };
}

function objectField({ schema }, value, { context, root }) {
  const required = new Set(schema.required || []);
  const given = value || {};
  const children = Object.entries(schema.properties || {}).map(([key, property]) => [key,
    fieldView(property, given[key], { context, name: key, required: required.has(key) }),
    fieldOf(property).kind === "const"]);
  return {
    node: el("div", { className: "form-fields" }, children.map(([, child]) => child.node)),
    read: (path, problems) => {
      const found = [];
      const out = {};
      let given = false;
      for (const [key, child, fixed] of children) {
        const at = childPath(path, key);
        const got = child.read(at, found);
        if (got !== EMPTY) {
          out[key] = got;
          given ||= !fixed;
        } else if (required.has(key)) {
          if (child.emptyValue !== undefined) out[key] = child.emptyValue;
          else found.push({ path: at, message: "is required" });
        }
      }
      if (!root && !given && !found.some((p) => p.message !== "is required")) return EMPTY;
      problems.push(...found);
      return out;
    },
  };
}

/** Rows (add, remove): each row's field from `rowField(value)` -> {node, read}. */
function rows(addLabel, initial, rowField) {
  const list = el("div", { className: "form-rows" });
  const made = [];
  const changed = () => list.dispatchEvent(new Event("input", { bubbles: true }));
  const add = (value) => {
    const row = rowField(value);
    const remove = el("button", { type: "button", className: "remove-row" }, "Remove");
    const node = el("div", { className: "form-row" }, row.node, remove);
    const entry = { row, node };
    remove.addEventListener("click", () => {
      made.splice(made.indexOf(entry), 1);
      node.remove();
      changed();
    });
    made.push(entry);
    list.append(node);
    return row;
  };
  for (const value of initial) add(value);
  const more = el("button", { type: "button", className: "add-row" }, addLabel);
  more.addEventListener("click", () => {
    add(undefined);
    changed();
  });
  return { node: el("div", { className: "form-rows-field" }, list, more), made };
}

function arrayField({ schema }, value, { context }) {
  const rowsOf = rows("Add", value || [], (item) => fieldView(schema.items, item, { context, name: null, required: false }));
  return {
    node: rowsOf.node,
    read: (path, problems) => {
      const out = [];
      for (const { row } of rowsOf.made) {
        const got = row.read(childPath(path, out.length), problems);
        if (got !== EMPTY) out.push(got);
      }
      return out.length ? out : EMPTY;
    },
  };
}

function mapField({ schema }, value, { context }) {
  const valueSchema = schema.additionalProperties;
  const isString = fieldOf(valueSchema).kind === "string";
  const rowsOf = rows("Add", Object.entries(value || {}), (entry) => {
    const [key, item] = entry || ["", undefined];
    const keyInput = el("input", { type: "text", className: "map-key", placeholder: "name", "aria-label": "name", autocomplete: "off" });
    keyInput.value = key;
    const field = fieldView(valueSchema, item, { context, name: null, required: false });
    return { node: el("div", { className: "map-entry" }, keyInput, field.node), keyInput, field };
  });
  return {
    node: rowsOf.node,
    read: (path, problems) => {
      const out = {};
      for (const { row } of rowsOf.made) readEntry(row, { path, problems, out, isString });
      return Object.keys(out).length ? out : EMPTY;
    },
  };
}

function readEntry({ keyInput, field }, { path, problems, out, isString }) {
  const key = keyInput.value.trim();
  const at = key ? childPath(path, key) : path || "$";
  const got = field.read(at, problems);
  if (!key) {
    if (got !== EMPTY) problems.push({ path: at, message: "an entry has a value but no name" });
    return;
  }
  if (Object.hasOwn(out, key)) problems.push({ path: at, message: "is given twice" });
  else if (got !== EMPTY) out[key] = got;
  else if (isString) out[key] = "";
  else if (field.emptyValue !== undefined) out[key] = field.emptyValue;
  else problems.push({ path: at, message: "needs a value" });
}
