// Suggestions: a polled list (ETag / If-None-Match, 304 when nothing changed) and the
// detail panel with the suggestion's basis and acknowledge / act / dismiss.

import { ApiError, get, post, query, request } from "./api.js";
import { Poller } from "./poll.js";
import { failure, fill, h, money, tableWrap, notAvailable, number, severityBadge, shortId, title, when } from "./dom.js";

/** How often a suggestion list is polled (seconds): cheap, the server answers 304. */
export const LIST_POLL_SECONDS = 5;
const ACTIVE = ["open", "acknowledged"];

/** "Encounter/abc" → "Encounter abc". */
export function subjectText(subject) {
  return subject ? subject.replace("/", " ") : "—";
}

/** "Claim/8216b15b-8ef0-…" → "Claim 8216b15b…": for lists (the detail shows it whole). */
export function shortSubject(subject) {
  if (!subject) return "—";
  const [type, id = ""] = subject.split("/", 2);
  return id ? `${type} ${shortId(id)}` : type;
}

/** Score and band as text: "7 (high)". */
export function scoreText(s) {
  const score = s.score === null || s.score === undefined ? "" : number(s.score, 2);
  const band = s.band ? title(s.band) : "";
  if (score && band) return `${score} (${band})`;
  return score || band || "—";
}

/** The column set of a review list. */
export const REVIEW_COLUMNS = [
  { label: "Subject", cell: (s) => shortSubject(s.subject) },
  { label: "Score (band)", cell: (s) => scoreText(s), class: "num" },
  { label: "Status", cell: (s) => title(s.status) },
  { label: "Raised", cell: (s) => when(s.created_at) },
];

/**
 * A polled list of suggestions.
 *
 * options: {id, heading, params (the query), columns, empty (text), detail (a Detail)}.
 * Returns {element, poller, refresh(), stop()}.
 */
export function suggestionList(options) {
  const { id, heading, params, columns = REVIEW_COLUMNS, empty, detail } = options;
  const headingId = `${id}-heading`;
  const count = h("p", { class: "count", id: `${id}-count` });
  const body = tableWrap(headingId);
  const element = h(
    "section",
    { class: "panel", id, "aria-labelledby": headingId },
    h("h2", { id: headingId }, heading),
    count,
    body,
  );
  let etag = null;
  let rows = [];

  function render(data, total) {
    const focused = document.activeElement;
    const focusedId = focused && body.contains(focused) ? focused.dataset.id : null;
    fill(count, `${total} ${total === 1 ? "suggestion" : "suggestions"}`);
    if (!data.length) {
      fill(body, h("p", { class: "empty" }, empty || "Nothing open."));
      return;
    }
    const table = h(
      "table",
      { class: "list" },
      h("caption", { class: "visually-hidden" }, `${heading}: most urgent first`),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, "Severity"),
          h("th", { scope: "col" }, "Summary"),
          columns.map((c) => h("th", { scope: "col", class: c.class }, c.label)),
        ),
      ),
      h(
        "tbody",
        {},
        data.map((s) => {
          const selected = detail.currentId() === s.id;
          return h(
            "tr",
            { class: selected ? "selected" : null, "data-row": s.id },
            h("td", {}, severityBadge(s.severity)),
            h(
              "td",
              {},
              h(
                "button",
                {
                  type: "button",
                  class: "row-open",
                  "data-id": s.id,
                  "aria-controls": detail.element.id,
                  "aria-current": selected ? "true" : null,
                  onclick: (event) => detail.open(s.id, event.currentTarget),
                },
                s.summary,
              ),
            ),
            columns.map((c) => h("td", { class: c.class }, c.cell(s))),
          );
        }),
      ),
    );
    fill(body, table);
    if (focusedId) {
      const again = body.querySelector(`button[data-id="${CSS.escape(focusedId)}"]`);
      if (again) again.focus();
    }
  }

  async function refresh({ force = false } = {}) {
    try {
      const answer = await request(`suggestions${query({ ...params, status: ACTIVE, limit: 100 })}`, {
        etag: force ? null : etag,
      });
      if (answer.status === 304) return;
      etag = answer.etag;
      rows = answer.body.data;
      render(rows, answer.body.count);
    } catch (error) {
      etag = null;
      if (error instanceof ApiError && error.notFound) fill(body, notAvailable(heading));
      else fill(body, failure(heading, error));
    }
  }

  const unsubscribe = [
    detail.onSelect(() => markSelected(body, detail.currentId())),
    detail.onChange(() => refresh({ force: true })),
  ];
  const poller = new Poller(refresh, LIST_POLL_SECONDS);
  /** Stop polling and listening (the list is being replaced). */
  function stop() {
    poller.stop();
    unsubscribe.forEach((fn) => fn());
  }
  return { element, poller, refresh, stop };
}

/** Mark the row of the suggestion `id` as selected (class and aria-current). */
export function markSelected(container, id) {
  for (const row of container.querySelectorAll("tr[data-row]")) {
    const selected = row.dataset.row === id;
    row.classList.toggle("selected", selected);
    const button = row.querySelector("button.row-open");
    if (!button) continue;
    if (selected) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
}

let modelsPromise = null;
/** The loaded models (GET /models), fetched once per page. */
function models() {
  if (!modelsPromise) {
    modelsPromise = get("models").catch(() => ({ models: [] }));
  }
  return modelsPromise;
}

/** "model:denial@3" → {kind: "model", name: "denial", version: "3"}. */
export function method(text) {
  const [kind, rest = ""] = String(text || "").split(":", 2);
  const [name, version = null] = rest.split("@", 2);
  return { kind, name, version };
}

function signed(value) {
  if (value === null || value === undefined) return "—";
  const text = new Intl.NumberFormat(undefined, {
    maximumFractionDigits: 3,
    signDisplay: "exceptZero",
  }).format(Number(value));
  return text.replace("-", "−");
}

function factorValue(f) {
  if (f.value === null || f.value === undefined) return "—";
  const value = typeof f.value === "number" ? number(f.value, 3) : String(f.value);
  return f.unit ? `${value} ${f.unit}` : value;
}

function basisSection(s) {
  const m = method(s.explanation.method);
  const factors = s.explanation.factors || [];
  const evidence = s.explanation.evidence || [];
  const by = m.kind === "model" ? "Model" : m.kind === "rule" ? "Rule" : "Method";
  const source = [s.source.name, s.source.version].filter(Boolean).join(" ");
  const section = h(
    "section",
    { class: "basis", "aria-labelledby": "detail-basis" },
    h("h3", { id: "detail-basis" }, "Basis"),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, by),
      h("dd", {}, m.version ? `${m.name}, version ${m.version}` : m.name || s.explanation.method),
      h("dt", {}, "Source"),
      h("dd", {}, source),
      s.source.reference ? [h("dt", {}, "Reference"), h("dd", {}, s.source.reference)] : null,
    ),
  );
  if (factors.length) {
    section.append(
      h(
        "table",
        { class: "factors" },
        h("caption", {}, "Factors: value and signed contribution to the score"),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", { scope: "col" }, "Factor"),
            h("th", { scope: "col" }, "Value"),
            h("th", { scope: "col", class: "num" }, "Contribution"),
          ),
        ),
        h(
          "tbody",
          {},
          factors.map((f) =>
            h(
              "tr",
              {},
              h(
                "th",
                { scope: "row" },
                title(f.name),
                f.text ? h("span", { class: "factor-text" }, f.text) : null,
              ),
              h("td", {}, factorValue(f)),
              h(
                "td",
                { class: `num ${f.contribution > 0 ? "up" : f.contribution < 0 ? "down" : ""}` },
                signed(f.contribution),
              ),
            ),
          ),
        ),
      ),
    );
  } else {
    section.append(h("p", {}, "No factors: the rule's finding is the evidence below."));
  }
  section.append(
    h("h4", {}, "Evidence"),
    evidence.length
      ? h("ul", { class: "evidence" }, evidence.map((ref) => h("li", {}, subjectText(ref))))
      : h("p", {}, "No evidence references."),
  );
  if (m.kind === "model" && m.name) section.append(modelCard(m));
  return section;
}

function modelCard(m) {
  const url = `/cds-services/sources/model/${encodeURIComponent(m.name)}`;
  const metrics = h("p", { class: "model-metrics" }, "Loading the model's test metrics…");
  models().then((listing) => {
    const model = (listing.models || []).find((x) => x.name === m.name);
    if (!model) {
      fill(metrics, "This model is not loaded on the server now.");
      return;
    }
    const parts = [`${model.title || model.name}, version ${model.version}`];
    const x = model.metrics || {};
    if (x.auroc !== null && x.auroc !== undefined) parts.push(`AUROC ${number(x.auroc, 3)}`);
    if (x.brier !== null && x.brier !== undefined) parts.push(`Brier ${number(x.brier, 3)}`);
    if (x.n) parts.push(`${number(x.n, 0)} test rows`);
    if (model.trained_at) parts.push(`trained ${when(model.trained_at)}`);
    fill(metrics, parts.join(" · "));
  });
  // scrollable, so focusable and named (keyboard users scroll it too)
  const text = h("pre", { class: "card-text", tabindex: "0", role: "region", "aria-label": "Model card text" });
  const details = h(
    "details",
    { class: "model-card" },
    h("summary", {}, "Model card"),
    text,
    h("p", {}, h("a", { href: url, target: "_blank", rel: "noopener" }, "Open the model card (Markdown)")),
  );
  details.addEventListener("toggle", async () => {
    if (!details.open || text.textContent) return;
    try {
      const answer = await request(url, { raw: true, useToken: "" });
      text.textContent = await answer.body.text();
    } catch (error) {
      text.textContent = `The model card could not be loaded: ${error.message}`;
    }
  });
  return h("div", { class: "model" }, h("h4", {}, "Model"), metrics, details);
}

function auditSection(actions) {
  if (!actions || !actions.length) return h("p", { class: "audit" }, "No one has acted on it yet.");
  return h(
    "ol",
    { class: "audit" },
    actions.map((a) =>
      h(
        "li",
        {},
        `${title(a.action)} by ${a.actor} (${a.role}), ${when(a.at)}`,
        a.reason ? ` — “${a.reason}”` : "",
      ),
    ),
  );
}

/**
 * The detail panel of one view: the selected suggestion's basis and the actions.
 * ctx: {me, announce(text)}. Returns {element, open(id, from), close(), currentId(),
 * onSelect(fn), onChange(fn)}.
 */
export function detailPanel(ctx) {
  const element = h("section", {
    class: "detail",
    id: "detail",
    "aria-labelledby": "detail-title",
    hidden: true,
  });
  let current = null;
  let returnTo = null;
  const selectListeners = [];
  const changeListeners = [];

  /** Add a listener; returns the function that removes it. */
  function subscribe(listeners, fn) {
    listeners.push(fn);
    return () => listeners.splice(listeners.indexOf(fn), 1);
  }

  function close() {
    if (element.hidden) return;
    element.hidden = true;
    current = null;
    selectListeners.forEach((fn) => fn());
    const back = returnTo && returnTo.isConnected ? returnTo : null;
    const again = back || (returnTo && document.querySelector(`button.row-open[data-id="${CSS.escape(returnTo.dataset.id || "")}"]`));
    if (again) again.focus();
    returnTo = null;
  }

  function renderDetail(s, { focus }) {
    const canAct = (ctx.me.acts_for || []).includes(s.audience);
    const active = ACTIVE.includes(s.status);
    const reason = h("textarea", {
      id: "detail-reason",
      name: "reason",
      rows: 2,
      maxlength: 2000,
      "aria-describedby": "detail-reason-help",
    });
    const problem = h("p", { class: "form-error", id: "detail-error", role: "alert" });
    const status = h(
      "p",
      { class: "status-line", id: "detail-status", tabindex: "-1" },
      `Status: ${title(s.status)}`,
      s.status_by ? ` (by ${s.status_by}, ${when(s.status_at)})` : "",
      s.status_reason ? ` — “${s.status_reason}”` : "",
    );

    async function act(action, label) {
      problem.textContent = "";
      reason.removeAttribute("aria-invalid");
      const text = reason.value.trim();
      if (action === "dismiss" && !text) {
        problem.textContent = "Say why you dismiss it: a reason is required.";
        reason.setAttribute("aria-invalid", "true");
        reason.focus();
        return;
      }
      try {
        const updated = await post(
          `suggestions/${encodeURIComponent(s.id)}/${action}`,
          text ? { reason: text } : action === "dismiss" ? { reason: text } : {},
        );
        ctx.announce(`${label}: ${updated.summary}`);
        renderDetail(updated, { focus: false });
        element.querySelector("#detail-status").focus();
        changeListeners.forEach((fn) => fn());
      } catch (error) {
        problem.textContent = `${label} failed: ${error.message}`;
      }
    }

    const button = (action, label, enabled) =>
      h(
        "button",
        { type: "button", class: `action action-${action}`, disabled: !enabled, onclick: () => act(action, label) },
        label,
      );
    const actions = !active
      ? h("p", { class: "help" }, "This suggestion is closed: no further decision (a note can still be added through the API).")
      : canAct
      ? h(
          "form",
          { class: "actions", "aria-labelledby": "detail-actions", onsubmit: (e) => e.preventDefault() },
          h("h3", { id: "detail-actions" }, "Your decision"),
          h("label", { for: "detail-reason" }, "Reason"),
          h("p", { class: "help", id: "detail-reason-help" }, "Optional to acknowledge or act; required to dismiss."),
          reason,
          problem,
          h(
            "div",
            { class: "buttons" },
            button("acknowledge", "Acknowledge", s.status === "open"),
            button("act", "Mark acted on", active),
            button("dismiss", "Dismiss", active),
          ),
        )
      : h("p", { class: "help" }, `Your role (${ctx.me.role}) may read this suggestion but not act on it.`);

    fill(
      element,
      h(
        "div",
        { class: "detail-head" },
        h("h2", { id: "detail-title", tabindex: "-1" }, s.summary),
        h("button", { type: "button", class: "close", "aria-label": "Close the detail (Escape)", onclick: close }, "Close"),
      ),
      h("p", {}, severityBadge(s.severity), " ", h("span", { class: "kind" }, s.kind)),
      status,
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "Subject"),
        h("dd", {}, subjectText(s.subject)),
        s.patient_id ? [h("dt", {}, "Patient"), h("dd", {}, s.patient_id)] : null,
        h("dt", {}, "Score (band)"),
        h("dd", {}, scoreText(s)),
        s.amount_at_stake !== null && s.amount_at_stake !== undefined
          ? [h("dt", {}, "At stake"), h("dd", {}, money(s.amount_at_stake, s.currency))]
          : null,
        h("dt", {}, "Recommended"),
        h("dd", {}, s.recommended_action),
        h("dt", {}, "Raised"),
        h("dd", {}, when(s.created_at)),
      ),
      basisSection(s),
      actions,
      h("section", { "aria-labelledby": "detail-audit" }, h("h3", { id: "detail-audit" }, "Audit trail"), auditSection(s.actions)),
    );
    if (focus) element.querySelector("#detail-title").focus();
  }

  async function open(id, from) {
    returnTo = from || null;
    current = id;
    selectListeners.forEach((fn) => fn());
    element.hidden = false;
    fill(element, h("p", { tabindex: "-1", id: "detail-title" }, "Loading the suggestion…"));
    try {
      const s = await get(`suggestions/${encodeURIComponent(id)}`);
      if (current !== id) return;
      renderDetail(s, { focus: true });
    } catch (error) {
      fill(
        element,
        h("h2", { id: "detail-title", tabindex: "-1" }, "Suggestion"),
        failure("The suggestion", error),
        h("button", { type: "button", class: "close", onclick: close }, "Close"),
      );
      element.querySelector("#detail-title").focus();
    }
  }

  function onKey(event) {
    if (event.key === "Escape" && !element.hidden) {
      event.preventDefault();
      close();
    }
  }
  document.addEventListener("keydown", onKey);

  return {
    element,
    open,
    close,
    currentId: () => current,
    onSelect: (fn) => subscribe(selectListeners, fn),
    onChange: (fn) => subscribe(changeListeners, fn),
    destroy: () => document.removeEventListener("keydown", onKey),
  };
}
