// Operations: the queue board, the bed board and the queue-bottleneck suggestions.

import { ApiError, get } from "./api.js";
import { Poller } from "./poll.js";
import { detailPanel, suggestionList } from "./suggestions.js";
import { failure, fill, h, number, notAvailable, percent, tableWrap, title, when } from "./dom.js";

export const heading = "Operations";
/** The boards are polled every 30 seconds. */
export const BOARD_POLL_SECONDS = 30;

const SERVICES = {
  opd_clinic: "OPD clinic",
  ed_triage: "ED triage",
  lab_collection: "Lab collection",
  pharmacy: "Pharmacy",
  imaging: "Imaging",
  theatre: "Theatre",
  bed_assignment: "Bed assignment",
};

function minutes(value) {
  return value === null || value === undefined ? "—" : `${number(value, 0)} min`;
}

/** A section whose content is loaded from one API route, polled. */
function board({ id, heading, help, path, what, draw }) {
  const body = tableWrap(`${id}-heading`);
  const stamp = h("p", { class: "count" });
  const element = h(
    "section",
    { class: "panel", id, "aria-labelledby": `${id}-heading` },
    h("h2", { id: `${id}-heading` }, heading),
    h("p", { class: "help" }, help),
    stamp,
    body,
  );
  async function refresh() {
    try {
      const answer = await get(path);
      fill(stamp, `As of ${when(answer.at)}`);
      fill(body, draw(answer));
    } catch (error) {
      fill(stamp);
      fill(body, error instanceof ApiError && error.notFound ? notAvailable(what) : failure(what, error));
    }
  }
  return { element, poller: new Poller(refresh, BOARD_POLL_SECONDS) };
}

function queueTable(answer) {
  const points = answer.queue_points || [];
  if (!points.length) return h("p", { class: "empty" }, "No queue points are set up.");
  return h(
    "table",
    { class: "list board" },
    h("caption", { class: "visually-hidden" }, "Queue points: waits against target"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, "Queue point"),
        h("th", { scope: "col" }, "Service"),
        h("th", { scope: "col", class: "num" }, "Waiting"),
        h("th", { scope: "col", class: "num" }, "In service / servers"),
        h("th", { scope: "col", class: "num" }, "Current wait / target"),
        h("th", { scope: "col", class: "num" }, "Longest wait"),
        h("th", { scope: "col" }, "Status"),
      ),
    ),
    h(
      "tbody",
      {},
      points.map((q) =>
        h(
          "tr",
          { class: q.breaching ? "breach" : null, "data-queue": q.id },
          h("th", { scope: "row" }, q.name),
          h("td", {}, SERVICES[q.service] || title(q.service)),
          h("td", { class: "num" }, number(q.waiting, 0)),
          h("td", { class: "num" }, `${number(q.in_service, 0)} / ${number(q.servers_now, 0)}`),
          h("td", { class: "num" }, `${minutes(q.current_wait_minutes)} / ${minutes(q.target_wait_minutes)}`),
          h("td", { class: "num" }, minutes(q.longest_wait_minutes)),
          h(
            "td",
            {},
            q.breaching
              ? h("span", { class: "badge breach-badge" }, h("span", { class: "badge-mark", "aria-hidden": "true" }, "!"), "Breaching target")
              : h("span", { class: "badge ok-badge" }, "Within target"),
          ),
        ),
      ),
    ),
  );
}

const POOLS = {
  general_medicine: "General medicine",
  surgery: "Surgery",
  icu: "ICU",
  maternity: "Maternity",
  paediatrics: "Paediatrics",
};

const STATUSES = [
  ["occupied", "Occupied"],
  ["unoccupied", "Unoccupied"],
  ["housekeeping", "Housekeeping"],
  ["isolated", "Isolated"],
  ["closed", "Closed"],
];

function bedTable(answer) {
  const pools = answer.pools || [];
  if (!pools.length) return h("p", { class: "empty" }, "No bed pools are set up.");
  return h(
    "table",
    { class: "list board" },
    h("caption", { class: "visually-hidden" }, "Bed pools: occupancy against threshold"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, "Pool"),
        h("th", { scope: "col", class: "num" }, "Occupied / available"),
        h("th", { scope: "col" }, "Occupancy / threshold"),
        h("th", { scope: "col" }, "Bed statuses"),
        h("th", { scope: "col", class: "num" }, "Expected discharges (24 h)"),
        h("th", { scope: "col", class: "num" }, "ED boarding"),
        h("th", { scope: "col" }, "Status"),
      ),
    ),
    h(
      "tbody",
      {},
      pools.map((p) => {
        const fillPct = p.occupancy === null || p.occupancy === undefined ? 0 : Math.min(100, p.occupancy * 100);
        return h(
          "tr",
          { class: p.over_threshold ? "breach" : null, "data-pool": p.pool },
          h("th", { scope: "row" }, POOLS[p.pool] || title(p.pool), p.facility_id ? h("span", { class: "factor-text" }, p.facility_id) : null),
          h("td", { class: "num" }, `${number(p.occupied, 0)} / ${number(p.available, 0)}`, h("span", { class: "factor-text" }, `${number(p.beds, 0)} beds`)),
          h(
            "td",
            {},
            `${percent(p.occupancy)} / ${percent(p.threshold, 0)}`,
            h(
              "span",
              { class: "bar", "aria-hidden": "true" },
              h("span", { class: `bar-fill w${Math.round(fillPct / 5) * 5}` }),
              h("span", { class: `bar-mark w${Math.round(Math.min(100, (p.threshold || 0) * 100) / 5) * 5}` }),
            ),
          ),
          h(
            "td",
            {},
            h(
              "ul",
              { class: "statuses" },
              STATUSES.map(([key, label]) => h("li", {}, `${label} ${number((p.by_status || {})[key] ?? 0, 0)}`)),
            ),
          ),
          h("td", { class: "num" }, number(p.expected_discharges_24h, 0)),
          h("td", { class: "num" }, number(p.ed_boarding, 0)),
          h(
            "td",
            {},
            p.over_threshold
              ? h("span", { class: "badge breach-badge" }, h("span", { class: "badge-mark", "aria-hidden": "true" }, "!"), "Over threshold")
              : h("span", { class: "badge ok-badge" }, "Below threshold"),
          ),
        );
      }),
    ),
  );
}

export function render(ctx, container) {
  const detail = detailPanel(ctx);
  const queues = board({
    id: "queues",
    heading: "Queue board",
    help: "Each queue point's current wait against its target; breaching points are marked.",
    path: "queues",
    what: "The queue board",
    draw: queueTable,
  });
  const beds = board({
    id: "beds",
    heading: "Bed board",
    help: "Each bed pool's occupancy (occupied ÷ available staffed beds) against its threshold.",
    path: "beds/census",
    what: "The bed board",
    draw: bedTable,
  });
  const bottlenecks = suggestionList({
    id: "bottlenecks",
    heading: "Bottlenecks",
    params: { audience: "operations", kind: "operations.queue_bottleneck" },
    columns: [
      { label: "Recommended", cell: (s) => s.recommended_action },
      { label: "Status", cell: (s) => title(s.status) },
    ],
    empty: "No bottleneck: every queue point is on track.",
    detail,
  });
  container.append(
    h(
      "div",
      { class: "view-grid" },
      h("div", { class: "view-main" }, queues.element, bottlenecks.element, beds.element),
      detail.element,
    ),
  );
  const pollers = [queues.poller, beds.poller, bottlenecks.poller];
  pollers.forEach((p) => p.start());
  return {
    stop() {
      pollers.forEach((p) => p.stop());
      bottlenecks.stop();
      detail.destroy();
    },
  };
}
