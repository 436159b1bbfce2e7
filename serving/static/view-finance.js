// Finance: the denial worklist by expected loss and the revenue-leakage list.

import { ApiError, get } from "./api.js";
import { Poller } from "./poll.js";
import { detailPanel, markSelected, shortSubject, suggestionList } from "./suggestions.js";
import { failure, fill, h, money, notAvailable, percent, severityBadge, shortId, tableWrap, title } from "./dom.js";

export const heading = "Finance";
/** The worklist has no ETag: it is polled like the boards. */
export const WORKLIST_POLL_SECONDS = 30;

function worklistSection(ctx, detail) {
  const body = tableWrap("worklist-heading");
  const count = h("p", { class: "count" });
  const element = h(
    "section",
    { class: "panel", id: "worklist", "aria-labelledby": "worklist-heading" },
    h("h2", { id: "worklist-heading" }, "Denial worklist"),
    h("p", { class: "help" }, "Claims at risk of denial, largest expected loss (p(denial) × amount) first."),
    count,
    body,
  );

  async function refresh() {
    let page;
    try {
      page = await get("finance/worklist?limit=100");
    } catch (error) {
      fill(count);
      fill(body, error instanceof ApiError && error.notFound ? notAvailable("The denial worklist") : failure("The denial worklist", error));
      return;
    }
    const focusedId = body.contains(document.activeElement) ? document.activeElement.dataset.id : null;
    fill(count, `${page.count} ${page.count === 1 ? "claim" : "claims"}`);
    if (!page.data.length) {
      fill(body, h("p", { class: "empty" }, "No claim at risk of denial."));
      return;
    }
    fill(
      body,
      h(
        "table",
        { class: "list" },
        h("caption", { class: "visually-hidden" }, "Denial worklist, largest expected loss first"),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Severity", "Claim", "Payer", "Amount", "p(denial)", "Expected loss", "Reason", "Fix", "Status"].map((label) =>
              h(
                "th",
                { scope: "col", class: ["Amount", "p(denial)", "Expected loss"].includes(label) ? "num" : label === "Fix" ? "wide-only" : null },
                label,
              ),
            ),
          ),
        ),
        h(
          "tbody",
          {},
          page.data.map((item) =>
            h(
              "tr",
              { "data-row": item.suggestion_id, class: detail.currentId() === item.suggestion_id ? "selected" : null },
              h("td", {}, severityBadge(item.severity)),
              h(
                "td",
                {},
                h(
                  "button",
                  {
                    type: "button",
                    class: "row-open",
                    "data-id": item.suggestion_id,
                    "aria-controls": detail.element.id,
                    "aria-label": `Claim ${item.claim_id}: ${item.summary}`,
                    onclick: (event) => detail.open(item.suggestion_id, event.currentTarget),
                  },
                  shortId(item.claim_id),
                ),
              ),
              h("td", {}, item.payer_name || item.payer_id || "—"),
              h("td", { class: "num" }, money(item.amount, item.currency)),
              h("td", { class: "num" }, percent(item.probability, 0)),
              h("td", { class: "num strong" }, money(item.expected_loss, item.currency)),
              h("td", {}, title(item.reason) || "—"),
              h("td", { class: "fix wide-only" }, item.fix),
              h("td", {}, title(item.outcome || item.status)),
            ),
          ),
        ),
      ),
    );
    if (focusedId) body.querySelector(`button[data-id="${CSS.escape(focusedId)}"]`)?.focus();
  }

  const poller = new Poller(refresh, WORKLIST_POLL_SECONDS);
  detail.onSelect(() => markSelected(body, detail.currentId()));
  detail.onChange(() => poller.run());
  return { element, poller };
}

export function render(ctx, container) {
  const detail = detailPanel(ctx);
  const worklist = worklistSection(ctx, detail);
  const leakage = suggestionList({
    id: "leakage",
    heading: "Revenue leakage",
    params: { audience: "finance", kind: "finance.revenue_leakage" },
    columns: [
      { label: "Kind", cell: (s) => title(s.band) || "—" },
      { label: "Subject", cell: (s) => shortSubject(s.subject) },
      { label: "At stake", cell: (s) => money(s.amount_at_stake, s.currency), class: "num" },
      { label: "Status", cell: (s) => title(s.status) },
    ],
    empty: "No open leakage finding.",
    detail,
  });
  container.append(
    h("div", { class: "view-grid" }, h("div", { class: "view-main" }, worklist.element, leakage.element), detail.element),
  );
  worklist.poller.start();
  leakage.poller.start();
  return {
    stop() {
      worklist.poller.stop();
      leakage.stop();
      detail.destroy();
    },
  };
}
