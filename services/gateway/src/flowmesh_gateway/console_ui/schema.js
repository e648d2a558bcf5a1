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
