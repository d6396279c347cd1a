// The policy studio page: plain JavaScript, no build step, no network but its own server.
"use strict";

const $ = (selector) => document.querySelector(selector);
const state = { session: null, analysis: null, facts: null, sim: null, sequence: 0, timer: null };

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (name === "class") node.className = value;
    else if (name.startsWith("data-")) node.setAttribute(name, value);
    else node[name] = value;
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

async function call(route, body) {
  const response = await fetch(route, {
    method: body === undefined ? "GET" : "POST",
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) throw new Error(data.message || response.statusText);
  return data;
}

// -- the editor ---------------------------------------------------------------------------

function drawGutter(errors) {
  const lines = $("#source").value.split("\n").length;
  const bad = new Map();
  for (const e of errors) bad.set(e.line, bad.has(e.line) ? `${bad.get(e.line)}\n${e.text}` : e.text);
  const gutter = $("#gutter");
  gutter.replaceChildren();
  for (let n = 1; n <= lines; n++) {
    const line = el("div", { class: bad.has(n) ? "ln error" : "ln", "data-line": String(n) }, n);
    if (bad.has(n)) line.title = bad.get(n);
    gutter.append(line);
  }
  $("#source").rows = Math.max(lines + 1, 20);
}

function selectLine(number) {
  const source = $("#source");
  const lines = source.value.split("\n");
  let start = 0;
  for (let n = 1; n < number && n <= lines.length; n++) start += lines[n - 1].length + 1;
  source.focus();
  source.setSelectionRange(start, start + (lines[number - 1] || "").length);
}

function showErrors(errors) {
  const list = $("#errors");
  list.replaceChildren();
  for (const error of errors) {
    const item = el("li", { "data-line": String(error.line), "data-key": error.key },
      el("span", { class: "where" }, `line ${error.line}, column ${error.column}: `), error.text);
    item.addEventListener("click", () => selectLine(error.line));
    list.append(item);
  }
  drawGutter(errors);
}

function scheduleAnalysis() {
  clearTimeout(state.timer);
  state.timer = setTimeout(analyse, 200);
  drawGutter([]);
}

async function analyse() {
  const sequence = ++state.sequence;
  const text = $("#source").value;
  let result;
  try {
    result = await call("/api/analyse", { text });
  } catch (error) {
    $("#validity").textContent = `cannot check: ${error.message}`;
    return;
  }
  if (sequence !== state.sequence) return; // a later edit is on its way
  state.analysis = result;
  showErrors(result.errors);
  const validity = $("#validity");
  $("#save").disabled = !result.valid;
  if (!result.valid) {
    validity.textContent = `${result.errors.length} error${result.errors.length === 1 ? "" : "s"}`;
    validity.className = "badge bad";
    $("#diagram").classList.add("stale");
    $("#diagram-note").textContent = "(the last valid version)";
    return;
  }
  validity.textContent = `valid: ${result.label}`;
  validity.className = "badge ok";
  $("#diagram").innerHTML = result.diagram.svg; // drawn by the server, every text escaped
  $("#diagram").classList.remove("stale");
  $("#diagram-note").textContent = "";
  $("#mermaid").textContent = result.diagram.mermaid;
  state.facts = result.facts;
  showProofs(result.proofs);
  showDiff(result.diff);
  fillInputs(result.facts);
  if (result.simulator) showSim(result.simulator);
  if (result.simulator_restarted) {
    $("#replay").replaceChildren(); // a replay of the previous policy no longer applies
    message("the policy changed: the sample account starts afresh");
  }
}

// -- proofs ---------------------------------------------------------------------------------

function describeMove(move) {
  const inputs = Object.entries(move.inputs || {}).map(([k, v]) => `${k}=${v}`).join(" ");
  const where = move.refused ? `${move.from}: refused` : `${move.from} → ${move.to}`;
  return `${move.actor}: ${move.action}${inputs ? " " + inputs : ""}  [${where}]`;
}

function showProofs(report) {
  const box = $("#proofs");
  box.replaceChildren();
  const failing = report.invariants.filter((r) => r.status === "fails").length;
  $("#proofs-summary").textContent =
    `${report.situations} situations, ${report.steps} steps: ${failing ? failing + " failing" : "all hold"}`;
  for (const result of report.invariants) {
    const row = el("div", { class: "proof", "data-invariant": result.id },
      el("span", { class: `status ${result.status}` }, result.status), " ",
      el("code", {}, result.id), " ", result.description);
    if (result.counterexample) {
      const path = el("ol", { class: "counterexample", title: "replay in the simulator" });
      for (const move of result.counterexample.path) path.append(el("li", {}, describeMove(move)));
      path.append(el("li", { class: "conclusion" }, result.counterexample.conclusion));
      path.addEventListener("click", () => replay(result.id));
      const button = el("button", { type: "button", class: "replay", "data-invariant": result.id },
        "Replay in the simulator");
      button.addEventListener("click", () => replay(result.id));
      row.append(path, button);
    }
    box.append(row);
  }
  for (const note of report.notes) box.append(el("p", { class: "note" }, `note: ${note}`));
  for (const waiver of report.waivers_honoured) box.append(el("p", { class: "note" }, `waiver honoured: ${waiver}`));
}

async function replay(invariant) {
  try {
    const result = await call("/api/sim/replay", { invariant });
    const list = el("ol");
    for (const step of result.steps) {
      const outcome = step.refused ? `refused: ${step.refused}` : `${step.from} → ${step.to}`;
      const expected = step.expected ? `proof says ${step.expected}` : "proof says refused";
      list.append(el("li", { class: step.agrees ? "agrees" : "disagrees" }, `${step.step}: ${outcome} (${expected})`));
    }
    $("#replay").replaceChildren(el("h3", {}, `Replay of ${invariant}`), list,
      el("p", { class: "conclusion" }, result.conclusion));
    showSim(result.simulator);
    message(`replayed the counterexample of ${invariant}`);
    $("#sim-panel").scrollIntoView();
  } catch (error) {
    message(error.message, true);
  }
}

// -- the difference -------------------------------------------------------------------------

function showDiff(diff) {
  const list = $("#diff");
  list.replaceChildren();
  if (!diff) {
    $("#diff-summary").textContent = "no baseline: start the studio with --against BASELINE.toml";
    return;
  }
  const count = diff.differences.length;
  const risky = diff.differences.filter((d) => d.risky).length;
  $("#diff-summary").textContent = count
    ? `against ${diff.baseline}: ${count} difference${count === 1 ? "" : "s"}${risky ? `, ${risky} risky` : ""}`
    : `against ${diff.baseline}: behaves the same`;
  for (const difference of diff.differences) {
    const item = el("li", { class: difference.risky ? "risky" : "" }, difference.text);
    if (difference.risky) item.append(el("span", { class: "tag risky" }, "risky"));
    item.append(el("span", { class: "tag" }, difference.kind), el("span", { class: "tag" }, difference.audience));
    for (const key of difference.keys) item.append(el("span", { class: "tag key" }, key));
    list.append(item);
  }
}

// -- the simulator --------------------------------------------------------------------------

function options(select, values, keep) {
  const previous = select.value;
  select.replaceChildren(...values.map(([value, label]) => el("option", { value }, label)));
  if (keep && values.some(([value]) => value === previous)) select.value = previous;
}

function fillInputs(facts) {
  options($("#outcome"), facts.outcomes.map((o) => [o, o]), true);
  options($("#window"), [["", "(first choice)"], ...facts.choices.map((c) => [c, c])], true);
  options($("#service"), facts.services.map((s) => [s, s]), true);
  options($("#category"), facts.categories.map((c) => [c, c]), true);
  $("#token").placeholder = facts.token ? `policy asks: ${facts.token}` : "no token asked";
  const acks = $("#acks");
  const checked = new Set([...acks.querySelectorAll("input:checked")].map((i) => i.value));
  acks.replaceChildren();
  if (facts.acknowledgements.length) acks.append(el("span", { class: "label" }, "Acknowledge:"));
  for (const ack of facts.acknowledgements) {
    const box = el("input", { type: "checkbox", value: ack.id, checked: checked.has(ack.id) });
    acks.append(el("label", { title: ack.text }, box, ` ${ack.id}`));
  }
}

function inputs() {
  const login = $("#login").value.trim();
  return {
    token: $("#token").value,
    acknowledgements: [...document.querySelectorAll("#acks input:checked")].map((i) => i.value),
    outcome: $("#outcome").value,
    window: $("#window").value,
    service: $("#service").value,
    category: $("#category").value,
    login_minutes_ago: login === "" ? null : Number(login),
  };
}

function message(text, refused) {
  const box = $("#sim-message");
  box.textContent = text;
  box.className = refused ? "refused" : "";
}

function when(text) {
  return text ? text.replace("T", " ").replace(/\.\d+Z$/, " UTC") : "—";
}

function showSim(sim) {
  state.sim = sim;
  $("#sim-state").textContent = sim.state;
  $("#sim-state").dataset.state = sim.state;
  $("#now").textContent = when(sim.now);
  $("#purgers-fail").checked = sim.options.purgers_fail;
  $("#prereq-pending").checked = sim.options.prerequisites_pending;
  showActions();
  showTimeline(sim);
  const audit = $("#audit tbody");
  audit.replaceChildren(...sim.history.map((e) =>
    el("tr", {}, el("td", {}, e.seq), el("td", {}, when(e.at)), el("td", {}, e.actor), el("td", {}, e.action),
      el("td", {}, e.from === e.to ? e.to : `${e.from || "—"} → ${e.to}`))));
  $("#sim-log").textContent = sim.log.join("\n");
}

function showActions() {
  const actor = $("#actor").value;
  const allowed = (state.sim && state.sim.allowed[actor]) || [];
  const box = $("#actions");
  box.replaceChildren();
  if (!allowed.length) box.append(el("span", { class: "note" }, `nothing ${actor} may do now`));
  for (const action of allowed) {
    const button = el("button", { type: "button", "data-action": action }, action.replaceAll("_", " "));
    button.addEventListener("click", () => act(actor, action));
    box.append(button);
  }
}

function showTimeline(sim) {
  const t = sim.timeline;
  const box = $("#timeline");
  const facts = el("table", { id: "timeline-facts" });
  const fact = (name, value, id) => facts.append(el("tr", {}, el("th", {}, name), el("td", { id }, value)));
  fact("state", t.state, "tl-state");
  fact(t.hypothetical ? "if confirmed now" : "cancelled at", when(t.cancelled_at), "tl-cancelled");
  fact("restore until (before)", t.restorable_until ? when(t.restorable_until) : "no restore", "tl-until");
  for (const phase of t.phases)
    fact(`phase ${phase.number}`, `${when(phase.starts)} → ${when(phase.ends)} by ${phase.restore.join("/") || "nobody"}`);
  if (t.on_cancel.length) fact("at cancel", t.on_cancel.join(", "));
  if (t.kept.length) fact("never erased", t.kept.map((k) => `${k.category} (${k.reason})`).join(", "));
  for (const reminder of sim.reminders)
    fact(`reminder ${reminder.before} before`, `${when(reminder.at)}${reminder.sent_at ? " (sent)" : ""}`);
  if (!sim.reminders.length && state.facts && state.facts.reminders.length)
    fact("reminders", state.facts.reminders.map((r) => `${r} before the window ends`).join(", "));
  const erasures = el("table", { id: "erasures" },
    el("thead", {}, el("tr", {}, el("th", {}, "category"), el("th", {}, "erased at"), el("th", {}, "when"), el("th", {}, "done"))));
  const body = el("tbody");
  for (const e of t.erasures) {
    body.append(el("tr", { "data-category": e.category }, el("td", {}, e.category), el("td", {}, e.moment),
      el("td", {}, when(e.at)), el("td", { class: e.done ? "done" : "" }, e.done ? "erased" : "not yet")));
  }
  erasures.append(body);
  box.replaceChildren(facts, erasures);
}

async function simulate(route, body, label) {
  try {
    const result = await call(route, body);
    showSim(result.simulator);
    if (result.refused) message(`${label} refused: ${result.refused}`, true);
    else message(`${label}: now ${result.simulator.state}`);
  } catch (error) {
    message(error.message, true);
  }
}

function act(actor, action) {
  return simulate("/api/sim/act", { actor, action, inputs: inputs() }, `${actor}: ${action}`);
}

function moveClock(amount, unit) {
  return simulate("/api/sim/clock", { amount, unit }, `clock +${amount} ${unit}`);
}

function setOptions() {
  return simulate("/api/sim/options",
    { purgers_fail: $("#purgers-fail").checked, prerequisites_pending: $("#prereq-pending").checked }, "options");
}

// -- saving ---------------------------------------------------------------------------------

async function save() {
  const status = $("#save-status");
  try {
    const result = await call("/api/save", { text: $("#source").value });
    status.textContent = `saved ${result.saved} (previous text in ${result.backup})`;
  } catch (error) {
    status.textContent = error.message;
  }
}

// -- start ----------------------------------------------------------------------------------

async function start() {
  const session = await call("/api/session");
  state.session = session;
  $("#file").textContent = session.file;
  $("#source").value = session.text;
  options($("#actor"), session.actors.map((a) => [a, a]));
  options($("#start-state"), session.states.map((s) => [s, s]));
  $("#source").addEventListener("input", scheduleAnalysis);
  $("#save").addEventListener("click", save);
  $("#actor").addEventListener("change", showActions);
  $("#reset").addEventListener("click", () => {
    $("#replay").replaceChildren();
    return simulate("/api/sim/reset", { state: $("#start-state").value }, "reset");
  });
  for (const button of document.querySelectorAll("button.clock"))
    button.addEventListener("click", () => moveClock(Number(button.dataset.amount), button.dataset.unit));
  $("#clock-move").addEventListener("click", () => moveClock(Number($("#clock-amount").value), $("#clock-unit").value));
  $("#purgers-fail").addEventListener("change", setOptions);
  $("#prereq-pending").addEventListener("change", setOptions);
  drawGutter([]);
  await analyse();
  document.body.dataset.ready = "true";
}

start();
