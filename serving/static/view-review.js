// Clinicians and nurses: the review list of their audience's open suggestions.

import { detailPanel, suggestionList } from "./suggestions.js";
import { h, title } from "./dom.js";

export const heading = "Review list";

export function render(ctx, container) {
  const detail = detailPanel(ctx);
  const readable = ctx.me.audiences;
  const own = readable.includes(ctx.me.role) ? ctx.me.role : null;
  const choice = h(
    "select",
    { id: "review-audience", name: "audience" },
    own ? h("option", { value: own }, `${title(own)} suggestions`) : null,
    h("option", { value: "" }, `All I may read (${readable.join(", ")})`),
  );
  let list = null;
  const slot = h("div", { class: "list-slot" });

  function build() {
    if (list) list.stop();
    list = suggestionList({
      id: "review",
      heading: "Open suggestions",
      params: { audience: choice.value || null },
      empty: "No open suggestions for you. New ones appear here within seconds.",
      detail,
    });
    slot.replaceChildren(list.element);
    list.poller.start();
  }
  choice.addEventListener("change", build);

  container.append(
    h(
      "div",
      { class: "view-grid" },
      h(
        "div",
        { class: "view-main" },
        h(
          "div",
          { class: "filters" },
          h("label", { for: "review-audience" }, "Show"),
          choice,
        ),
        slot,
      ),
      detail.element,
    ),
  );
  build();
  return {
    stop() {
      list.stop();
      detail.destroy();
    },
  };
}
