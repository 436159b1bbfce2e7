// Leadership: the KPI tiles (value, target, trend against the previous day and week)
// and the morning briefing, when the server has it.

import { ApiError, get, query, request } from "./api.js";
import { Poller } from "./poll.js";
import { failure, fill, fixed, h, money, number, notAvailable, todayUtc } from "./dom.js";

export const heading = "Leadership";
export const KPI_POLL_SECONDS = 30;

const LEVEL_ORDER = { region: 0, network: 1, facility: 2 };

/** A KPI value in its unit: ratio as %, currency with its code, days, minutes, count. */
export function kpiValue(kpi, value) {
  if (value === null || value === undefined) return "—";
  switch (kpi.unit) {
    case "ratio":
      return `${fixed(value * 100, 1)}%`;
    case "currency":
      return money(value, kpi.currency);
    case "days":
      return `${fixed(value, 1)} days`;
    case "minutes":
      return `${number(value, 0)} min`;
    default:
      return number(value, 0);
  }
}

/** The change since `before`, in the KPI's unit (ratios in percentage points). */
function change(kpi, value, before) {
  const delta = value - before;
  const size = Math.abs(delta);
  if (kpi.unit === "ratio") return `${fixed(size * 100, 1)} pts`;
  if (kpi.unit === "currency") return money(size, kpi.currency);
  if (kpi.unit === "days") return `${fixed(size, 1)} days`;
  if (kpi.unit === "minutes") return `${number(size, 0)} min`;
  return number(size, 0);
}

/** One trend line: arrow, size, and whether it is better or worse (text, not colour only). */
function trend(kpi, before, since) {
  if (kpi.value === null || kpi.value === undefined || before === null || before === undefined) {
    return h("li", { class: "trend" }, `No figure for ${since}`);
  }
  const delta = kpi.value - before;
  if (delta === 0) {
    return h("li", { class: "trend same" }, h("span", { "aria-hidden": "true" }, "→ "), `Same as ${since}`);
  }
  const up = delta > 0;
  const better = up === (kpi.better === "higher");
  return h(
    "li",
    { class: `trend ${better ? "better" : "worse"}` },
    h("span", { "aria-hidden": "true" }, up ? "▲ " : "▼ "),
    `${up ? "Up" : "Down"} ${change(kpi, kpi.value, before)} from ${since} (${better ? "better" : "worse"})`,
  );
}

function targetText(kpi) {
  if (kpi.target === null || kpi.target === undefined) return h("p", { class: "target" }, "No target set");
  let verdict = "";
  if (kpi.value !== null && kpi.value !== undefined) {
    const meets = kpi.better === "higher" ? kpi.value >= kpi.target : kpi.value <= kpi.target;
    verdict = meets ? " — meets target" : " — misses target";
  }
  return h(
    "p",
    { class: `target ${verdict.includes("misses") ? "misses" : verdict ? "meets" : ""}` },
    `Target ${kpiValue(kpi, kpi.target)}${verdict}`,
  );
}

function tile(kpi) {
  const breakdown = (kpi.breakdown || []).filter((b) => b.label);
  return h(
    "li",
    { class: "tile", "data-kpi": kpi.key },
    h("h3", {}, kpi.label),
    h("p", { class: "kpi-value" }, kpiValue(kpi, kpi.value)),
    targetText(kpi),
    h("ul", { class: "trends" }, trend(kpi, kpi.previous_day, "the previous day"), trend(kpi, kpi.previous_week, "a week before")),
    breakdown.length
      ? h(
          "details",
          {},
          h("summary", {}, "Breakdown and source"),
          h("ul", { class: "breakdown" }, breakdown.map((b) => h("li", {}, `${b.label}: ${b.value === null ? "—" : number(b.value, 2)}`))),
          h("p", { class: "help" }, kpi.formula),
          h("p", { class: "help" }, kpi.source),
        )
      : h("details", {}, h("summary", {}, "Source"), h("p", { class: "help" }, kpi.formula), h("p", { class: "help" }, kpi.source)),
  );
}

export function render(ctx, container) {
  const dateInput = h("input", { type: "date", id: "kpi-date", name: "date", value: todayUtc(), max: todayUtc() });
  const scopeSelect = h("select", { id: "kpi-scope", name: "scope" });
  const scopeField = h("span", { class: "field", hidden: true }, h("label", { for: "kpi-scope" }, "Scope"), " ", scopeSelect);
  const tiles = h("div", { class: "tiles-wrap" });
  const briefing = h("p", { class: "briefing", id: "briefing" });
  let scopes = [];
  let chosen = null;
  let briefingUrl = null;

  function drawTiles() {
    const scope = scopes.find((s) => `${s.level}:${s.id}` === chosen) || scopes[0];
    if (!scope) {
      fill(tiles, h("p", { class: "empty" }, "No KPI for this date."));
      return;
    }
    fill(tiles, h("ul", { class: "tiles", "aria-label": `KPIs of ${scope.name}` }, scope.kpis.map(tile)));
  }

  async function refresh() {
    try {
      const answer = await get(`kpis${query({ date: dateInput.value || null })}`);
      scopes = [...answer.scopes].sort((a, b) => (LEVEL_ORDER[a.level] ?? 9) - (LEVEL_ORDER[b.level] ?? 9));
      if (!chosen || !scopes.some((s) => `${s.level}:${s.id}` === chosen)) {
        chosen = scopes.length ? `${scopes[0].level}:${scopes[0].id}` : null;
      }
      const had = scopeSelect.value;
      fill(
        scopeSelect,
        scopes.map((s) => h("option", { value: `${s.level}:${s.id}`, selected: `${s.level}:${s.id}` === chosen }, `${s.name} (${s.level})`)),
      );
      scopeField.hidden = scopes.length < 2;
      if (had && had !== scopeSelect.value) scopeSelect.value = chosen;
      drawTiles();
    } catch (error) {
      scopeField.hidden = true;
      fill(tiles, error instanceof ApiError && error.notFound ? notAvailable("The KPIs", { plural: true }) : failure("The KPIs", error));
    }
  }

  async function checkBriefing() {
    const date = dateInput.value || todayUtc();
    if (briefingUrl) URL.revokeObjectURL(briefingUrl);
    briefingUrl = null;
    fill(briefing, `Looking for the briefing of ${date}…`);
    try {
      const answer = await request(`briefing${query({ date })}`, { raw: true });
      briefingUrl = URL.createObjectURL(answer.body);
      fill(
        briefing,
        h("a", { href: briefingUrl, target: "_blank", rel: "noopener", download: `briefing-${date}.html` }, `Open the morning briefing of ${date}`),
      );
    } catch (error) {
      fill(briefing, error instanceof ApiError && error.notFound ? "The morning briefing is not available on this server yet." : `The briefing could not be loaded: ${error.message}`);
    }
  }

  const poller = new Poller(refresh, KPI_POLL_SECONDS);
  dateInput.addEventListener("change", () => {
    poller.run();
    checkBriefing();
  });
  scopeSelect.addEventListener("change", () => {
    chosen = scopeSelect.value;
    drawTiles();
  });

  container.append(
    h(
      "div",
      { class: "view-main wide" },
      h(
        "section",
        { class: "panel", "aria-labelledby": "kpi-heading" },
        h("h2", { id: "kpi-heading" }, "Key indicators"),
        h(
          "div",
          { class: "filters" },
          h("label", { for: "kpi-date" }, "Date"),
          dateInput,
          scopeField,
        ),
        tiles,
      ),
      h("section", { class: "panel", "aria-labelledby": "briefing-heading" }, h("h2", { id: "briefing-heading" }, "Morning briefing"), briefing),
    ),
  );
  poller.start();
  checkBriefing();
  return {
    stop() {
      poller.stop();
      if (briefingUrl) URL.revokeObjectURL(briefingUrl);
    },
  };
}
