// JSON Schema as the catalog's `parameters_schema` writes it (msgspec's), read for a form:
// pure, no DOM. What a field is (`fieldOf`), JSON paths the API's way (`childPath`), and a
// typed text read back as its value (`scalarOf`).

/** A string holding a template (`{{ trigger.data.id }}`): the server renders and checks it,
 * so such a string is accepted wherever the schema says another type. */
export function isTemplate(value) {
  return typeof value === "string" && value.includes("{{");
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A JSON path one step down, as the API writes them: `input.channel`, `hosts[0]`,
 * `headers["X-Api-Key"]`; the root is "" (and shown as `$`). */
export function childPath(path, key) {
  if (typeof key === "number") return `${path || "$"}[${key}]`;
  if (IDENTIFIER.test(key)) return path ? `${path}.${key}` : key;
  return `${path || "$"}[${JSON.stringify(key)}]`;
}

/** A schema without its null members: {schema, nullable}; `schema` is null for a union of
 * several other types (a form cannot pick one: it is a JSON field). */
function withoutNull(schema) {
  const union = schema.anyOf || schema.oneOf;
  if (union && schema.type && union.every(onlyConstrains)) {
    // e.g. an object that needs `text` or `blocks`: the form is the object's, and which
    // alternative holds is the server's to say (a problem at its path)
    const { anyOf: _a, oneOf: _o, ...outer } = schema;
    return withoutNull(outer);
  }
  if (union) {
    const rest = union.filter((member) => member.type !== "null");
    const nullable = rest.length < union.length;
    if (rest.length !== 1) return { schema: null, nullable };
    const { anyOf: _a, oneOf: _o, ...outer } = schema;
    return { schema: { ...rest[0], ...outer }, nullable };
  }
  if (Array.isArray(schema.type)) {
    const rest = schema.type.filter((type) => type !== "null");
    const nullable = rest.length < schema.type.length;
    return { schema: rest.length === 1 ? { ...schema, type: rest[0] } : null, nullable };
  }
  return { schema, nullable: false };
}

/** A union member that says no type of its own, only more constraints (`required`, bounds). */
function onlyConstrains(member) {
  return isSchema(member) && !["type", "properties", "items", "const", "enum", "$ref", "anyOf",
    "oneOf", "additionalProperties"].some((key) => key in member);
}

const isSchema = (value) => value !== null && typeof value === "object" && !Array.isArray(value);

/**
 * What a schema is in a form: {kind, schema, nullable}, kind one of "const", "enum",
 * "string", "integer", "number", "boolean", "object" (properties), "map"
 * (additionalProperties), "array" (items), or "json" (anything else: any value, a union).
 */
export function fieldOf(given) {
  const source = isSchema(given) ? given : {};
  const { schema, nullable } = withoutNull(source);
  if (!schema) return { kind: "json", schema: source, nullable };
  if ("const" in schema) return { kind: "const", schema, nullable };
  if (Array.isArray(schema.enum)) return { kind: "enum", schema, nullable };
  switch (schema.type) {
    case "string":
    case "integer":
    case "number":
    case "boolean":
      return { kind: schema.type, schema, nullable };
    case "null":
      return { kind: "const", schema: { ...schema, const: null }, nullable: true };
    case "array":
      return { kind: isSchema(schema.items) ? "array" : "json", schema, nullable };
    case "object":
      return { kind: objectKind(schema), schema, nullable };
    default:
      return { kind: "json", schema, nullable };
  }
}

function objectKind(schema) {
  const named = isSchema(schema.properties) ? Object.keys(schema.properties).length : 0;
  const extra = schema.additionalProperties;
  if (named && isSchema(extra)) return "json";  // both named and free keys: JSON
  if (named || extra === false) return "object";
  if (isSchema(extra)) return "map";
  return "json";
}

/** Whether `value` fits an object field's named properties (else it is shown as JSON). */
export function fitsObject(schema, value) {
  if (value === undefined || value === null) return true;
  if (!isSchema(value)) return false;
  const names = new Set(Object.keys(schema.properties || {}));
  return Object.keys(value).every((name) => names.has(name));
}

/**
 * A typed text read back: {value} or {problem}. `kind` is "integer", "number" or
 * "string"; a template is a string whatever the kind. Empty text is {empty: true}.
 */
export function scalarOf(kind, text) {
  if (text === "") return { empty: true };
  if (kind === "string" || isTemplate(text)) return { value: text };
  const trimmed = text.trim();
  if (kind === "integer") {
    return /^-?\d+$/.test(trimmed) ? { value: Number(trimmed) } : { problem: "must be an integer (or a {{ template }})" };
  }
  const number = trimmed === "" ? Number.NaN : Number(trimmed);
  return Number.isFinite(number) ? { value: number } : { problem: "must be a number (or a {{ template }})" };
}

/** A JSON field's text read back: {value}, {empty}, or {problem}; a text that is no JSON
 * but holds a template is that string. */
export function jsonOf(text) {
  if (text.trim() === "") return { empty: true };
  try {
    return { value: JSON.parse(text) };
  } catch (error) {
    if (isTemplate(text)) return { value: text.trim() };
    return { problem: `is not valid JSON: ${error.message}` };
  }
}

/** The text a JSON field shows for a value ("" for none). */
export function jsonText(value) {
  return value === undefined ? "" : JSON.stringify(value, null, 2);
}

/** A schema's `const` or enum member as the text a form shows. */
export function literalText(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** A schema's type in words: `string`, `integer or null`, `list of string`, `any`. */
export function typeWords(given) {
  const field = fieldOf(given);
  const { schema } = field;
  const words = {
    const: () => `always ${literalText(schema.const)}`,
    enum: () => `one of ${schema.enum.map(literalText).join(", ")}`,
    array: () => `list of ${typeWords(schema.items)}`,
    map: () => `map of ${typeWords(schema.additionalProperties)}`,
    object: () => "object",
    json: () => (schema.anyOf || schema.oneOf || []).map(typeWords).join(" or ") || schema.type || "any",
  }[field.kind];
  const base = words ? words() : field.kind;
  return field.nullable && field.kind !== "json" ? `${base} or null` : base;
}

/** A schema as readable lines: `name: type (required) - description`, objects indented. */
export function schemaLines(given, depth = 0) {
  const { kind, schema } = fieldOf(given);
  const lines = [];
  const pad = "  ".repeat(depth);
  if (depth === 0) lines.push(`${typeWords(given)}${schema.description ? ` - ${firstLine(schema.description)}` : ""}`);
  const properties = kind === "object" ? schema.properties || {} : {};
  const required = new Set(schema.required || []);
  for (const [name, property] of Object.entries(properties)) {
    const about = property.description ? ` - ${firstLine(property.description)}` : "";
    lines.push(`${pad}  ${name}: ${typeWords(property)}${required.has(name) ? " (required)" : ""}${about}`);
    if (fieldOf(property).kind === "object") lines.push(...schemaLines(property, depth + 1).slice(1));
  }
  return lines;
}

function firstLine(text) {
  return text.trim().split(/\n\s*\n/)[0].replace(/\s+/g, " ");
}

/** A value as one line of JSON with a space after each comma and colon: also YAML (a flow
 * mapping), so `- <it>` is a node of a workflow's `nodes` list. */
export function flowText(value) {
  if (Array.isArray(value)) return `[${value.map(flowText).join(", ")}]`;
  if (value !== null && typeof value === "object") {
    return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${flowText(v)}`).join(", ")}}`;
  }
  return JSON.stringify(value === undefined ? null : value);
}

/** What a value breaks of its schema's bounds (`minLength`, `maxLength`, `pattern`,
 * `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`), or null; a template is
 * left to the server. */
export function boundsProblem(schema, value) {
  if (isTemplate(value)) return null;
  if (typeof value === "string") {
    if (schema.minLength !== undefined && value.length < schema.minLength) return `must be at least ${schema.minLength} character(s)`;
    if (schema.maxLength !== undefined && value.length > schema.maxLength) return `must be at most ${schema.maxLength} character(s)`;
    if (schema.pattern !== undefined && !safeTest(schema.pattern, value)) return `must match ${schema.pattern}`;
    return null;
  }
  if (typeof value !== "number") return null;
  if (schema.minimum !== undefined && value < schema.minimum) return `must be at least ${schema.minimum}`;
  if (schema.maximum !== undefined && value > schema.maximum) return `must be at most ${schema.maximum}`;
  if (schema.exclusiveMinimum !== undefined && value <= schema.exclusiveMinimum) return `must be more than ${schema.exclusiveMinimum}`;
  if (schema.exclusiveMaximum !== undefined && value >= schema.exclusiveMaximum) return `must be less than ${schema.exclusiveMaximum}`;
  return null;
}

/** A schema's pattern tested as JSON Schema means it (a search, `u`); one this browser
 * cannot compile is left to the server. */
function safeTest(pattern, value) {
  try {
    return new RegExp(pattern, "u").test(value);
  } catch {
    return true;
  }
}
