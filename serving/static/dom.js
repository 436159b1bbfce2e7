// Small DOM and formatting helpers. Text always goes in through textContent (never as
// HTML markup), so nothing the API returns can become markup.

/**
 * Build an element: h("td", {class: "num"}, "12", child).
 * Attributes: "class", "text", "on<event>" (a listener), booleans (set when true),
 * anything else through setAttribute. Children: strings, nodes, null (skipped), arrays.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/**
 * The box a wide table scrolls in on a narrow screen: a named region that takes focus,
 * so it can be scrolled from the keyboard (WCAG 2.1.1; axe scrollable-region-focusable).
 */
export function tableWrap(labelId) {
  return h("div", { class: "table-wrap", role: "region", tabindex: "0", "aria-labelledby": labelId });
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const numberFormats = new Map();
function numberFormat(options) {
  const key = JSON.stringify(options);
  if (!numberFormats.has(key)) numberFormats.set(key, new Intl.NumberFormat(undefined, options));
  return numberFormats.get(key);
}

/** A number with at most `digits` decimals; "—" for null. */
export function number(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return "—";
  return numberFormat({ maximumFractionDigits: digits }).format(Number(value));
}

/** A number with exactly `digits` decimals: fixed(85, 1) → "85.0"; "—" for null. */
export function fixed(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return "—";
  return numberFormat({ minimumFractionDigits: digits, maximumFractionDigits: digits }).format(Number(value));
}

/** Money (a decimal string or number) in its ISO 4217 currency; "—" for null. */
export function money(value, currency) {
  if (value === null || value === undefined) return "—";
  const amount = Number(value);
  if (!currency) return numberFormat({ minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(amount);
  try {
    return numberFormat({ style: "currency", currency }).format(amount);
  } catch {
    return `${numberFormat({ minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(amount)} ${currency}`;
  }
}

/** A ratio (0..1) as a percentage: 0.873 → "87.3%". */
export function percent(value, digits = 1) {
  if (value === null || value === undefined) return "—";
  return `${number(Number(value) * 100, digits)}%`;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
/** An ISO 8601 time, in the reader's time zone. */
export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : dateTime.format(date);
}

/** Today's date (UTC) as YYYY-MM-DD: the API's default date. */
export function todayUtc() {
  return new Date().toISOString().slice(0, 10);
}

/** "critical" → "Critical". */
export function title(text) {
  if (!text) return "";
  const spaced = String(text).replaceAll("_", " ");
  return spaced.charAt(0).toUpperCase() + spaced.slice(1);
}

/** A severity as text and colour (colour is never the only signal). */
export function severityBadge(severity) {
  const marks = { critical: "!!", warning: "!", info: "i" };
  return h(
    "span",
    { class: `badge severity-${severity}` },
    h("span", { class: "badge-mark", "aria-hidden": "true" }, marks[severity] || ""),
    title(severity),
  );
}

/** A polite "not available" panel for a route this server does not have (404). */
export function notAvailable(what, { plural = false } = {}) {
  return h(
    "p",
    { class: "notice not-available", role: "note" },
    `${what} ${plural ? "are" : "is"} not available on this server yet. The rest of the page works as usual.`,
  );
}

/** A long id shortened for a list ("8216b15b-8ef0-…" → "8216b15b…"); full text in detail. */
export function shortId(id) {
  const text = String(id ?? "");
  return text.length > 12 ? `${text.slice(0, 8)}…` : text;
}

/** A message for an API failure other than "not available". */
export function failure(what, error) {
  return h("p", { class: "notice error" }, `${what} could not be loaded: ${error.message}`);
}
