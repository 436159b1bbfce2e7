// The command center: sign in with a token, then the view of the caller's role
// (docs/command-center.md). No framework, no build step: ES modules served as they are.

import { ApiError, forgetToken, get, keepToken, token, whenUnauthorized } from "./api.js";
import * as review from "./view-review.js";
import * as finance from "./view-finance.js";
import * as operations from "./view-operations.js";
import * as leadership from "./view-leadership.js";
import { h } from "./dom.js";

const VIEWS = { review, finance, operations, leadership };
/** Role → its views, the first shown at sign-in (roles not listed have none). */
export const ROLE_VIEWS = {
  clinician: ["review"],
  nurse: ["review"],
  finance: ["finance"],
  operations: ["operations"],
  leadership: ["leadership", "operations", "finance"],
  admin: ["review", "finance", "operations", "leadership"],
};

const $ = (id) => document.getElementById(id);
let me = null;
let running = null;
let currentView = null;

function announce(text) {
  const region = $("announce");
  region.textContent = "";
  // a fresh text node is announced even when the same message repeats
  setTimeout(() => {
    region.textContent = text;
  }, 50);
}

function stamp() {
  $("updated").textContent = `Signed in. Lists refresh every few seconds, boards every 30 seconds.`;
}

function stopView() {
  if (running) running.stop();
  running = null;
  $("view-body").replaceChildren();
}

function showView(name, { focus = true } = {}) {
  stopView();
  currentView = name;
  const view = VIEWS[name];
  $("view-heading").textContent = view.heading;
  document.title = `${view.heading} — HealthOS command center`;
  for (const button of $("views").querySelectorAll("button")) {
    if (button.dataset.view === name) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  running = view.render({ me, announce }, $("view-body"));
  if (focus) $("view-heading").focus();
}

function showSignIn(message = "") {
  stopView();
  me = null;
  $("view").hidden = true;
  $("views").hidden = true;
  $("who").hidden = true;
  $("sign-in").hidden = false;
  $("updated").textContent = "";
  $("sign-in-error").textContent = message;
  document.title = "Sign in — HealthOS command center";
  $("token").value = "";
  $("token").focus();
}

function start(identity) {
  me = identity;
  const views = ROLE_VIEWS[me.role] || [];
  $("sign-in").hidden = true;
  $("who").hidden = false;
  $("who-role").textContent = `Signed in as ${me.role}`;
  $("view").hidden = false;
  const nav = $("views");
  nav.replaceChildren(
    ...views.map((name) =>
      h("button", { type: "button", "data-view": name, onclick: () => showView(name) }, VIEWS[name].heading),
    ),
  );
  nav.hidden = views.length < 2;
  if (!views.length) {
    stopView();
    $("view-heading").textContent = "No view for your role";
    $("view-body").replaceChildren(
      h("p", { class: "notice" }, `The ${me.role} role has no command-center view. The API documentation lists what it may do.`),
    );
    $("view-heading").focus();
    return;
  }
  stamp();
  showView(views.includes(currentView) ? currentView : views[0]);
}

async function signIn(event) {
  event.preventDefault();
  const given = $("token").value.trim();
  const error = $("sign-in-error");
  error.textContent = "";
  $("token").removeAttribute("aria-invalid");
  if (!given) {
    error.textContent = "Enter your API token.";
    $("token").setAttribute("aria-invalid", "true");
    $("token").focus();
    return;
  }
  try {
    const identity = await get("me", { useToken: given });
    keepToken(given);
    announce(`Signed in as ${identity.role}`);
    start(identity);
  } catch (failure) {
    $("token").setAttribute("aria-invalid", "true");
    error.textContent =
      failure instanceof ApiError && failure.status === 401
        ? "That token was not accepted. Check it and try again."
        : `Sign-in failed: ${failure.message}`;
    $("token").focus();
  }
}

function signOut() {
  forgetToken();
  currentView = null;
  showSignIn("");
  announce("Signed out.");
}

async function boot() {
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  whenUnauthorized(() => {
    forgetToken();
    showSignIn("Your token is no longer accepted: sign in again.");
  });
  if (!token()) {
    showSignIn();
    return;
  }
  try {
    start(await get("me"));
  } catch (failure) {
    if (!(failure instanceof ApiError && failure.status === 401)) {
      showSignIn(`The server could not be reached: ${failure.message}`);
    }
  }
}

boot();
