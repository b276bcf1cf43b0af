// The Agora dashboard: everything through the node's public JSON-RPC (POST /) and its
// WebSocket head subscription (/ws). No libraries; charts are SVG polylines.
"use strict";

const $ = (sel) => document.querySelector(sel);
const COLORS = ["#4fb3ff", "#ffb84f", "#7be07b", "#ff6bd6", "#c49bff", "#ff6b6b", "#5ee3d9", "#e0e07b"];
const HISTORY_MAX = 300;

const state = {
  info: null,
  subnets: [],
  selected: null, // netuid
  sort: { key: "uid", asc: true },
  metagraph: null,
  epochs: [],
  neuron: null, // hotkey whose history is shown
  series: new Map(), // netuid -> [{t, price, share, pool}]
  lastHeadMs: null,
  blockIntervals: [],
  txs: 0,
};

function reportError(msg) {
  const box = $("#errors");
  box.textContent += (box.textContent ? "\n" : "") + msg;
}
window.addEventListener("error", (e) => reportError("error: " + e.message));
window.addEventListener("unhandledrejection", (e) => reportError("error: " + (e.reason && e.reason.message || e.reason)));

let rpcId = 0;
async function rpc(method, params) {
  const body = JSON.stringify({ jsonrpc: "2.0", id: ++rpcId, method, params: params === undefined ? null : params });
  const r = await fetch("/", { method: "POST", headers: { "Content-Type": "application/json" }, body });
  const v = await r.json();
  if (v.error) {
    const e = new Error(method + ": " + v.error.message);
    e.code = v.error.code;
    throw e;
  }
  return v.result;
}

const tao = (rao) => (Number(rao) / 1e9);
const fmt = (x, d) => Number(x).toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
const share16 = (x) => fmt(Number(x) / 65535, 4);
const short = (s) => (s && s.length > 14 ? s.slice(0, 6) + "\u2026" + s.slice(-6) : s);

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function fillTable(sel, rows, onClick) {
  const tbody = $(sel + " tbody");
  tbody.replaceChildren();
  for (const r of rows) {
    const tr = document.createElement("tr");
    for (const c of r.cells) tr.appendChild(cell(c));
    if (r.selected) tr.className = "selected";
    if (r.data) Object.assign(tr.dataset, r.data);
    if (onClick) tr.addEventListener("click", () => onClick(r));
    tbody.appendChild(tr);
  }
}

function plot(svg, lines) {
  const W = 400, H = svg.viewBox.baseVal.height || 150, pad = 6;
  const all = lines.flatMap((l) => l.points);
  svg.replaceChildren();
  if (all.length < 2) return;
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs);
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (y1 - y0 < 1e-12) { y0 -= 1; y1 += 1; }
  const sx = (x) => pad + (W - 2 * pad) * (x1 === x0 ? 1 : (x - x0) / (x1 - x0));
  const sy = (y) => H - pad - (H - 2 * pad) * (y - y0) / (y1 - y0);
  for (const l of lines) {
    if (l.points.length < 2) continue;
    const pl = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    pl.setAttribute("points", l.points.map(([x, y]) => sx(x).toFixed(1) + "," + sy(y).toFixed(1)).join(" "));
    pl.setAttribute("stroke", l.color);
    svg.appendChild(pl);
  }
  const label = document.createElementNS("http://www.w3.org/2000/svg", "text");
  label.setAttribute("x", 4); label.setAttribute("y", 12);
  label.setAttribute("fill", "#7d8896"); label.setAttribute("font-size", "10");
  label.textContent = fmt(y0, 3) + " \u2013 " + fmt(y1, 3);
  svg.appendChild(label);
}

function renderHeader(head) {
  const h = $("#height");
  h.textContent = head.height;
  h.dataset.height = head.height;
  const now = Date.now();
  $("#finality").textContent = Math.max(0, now - head.timestamp_ms) + " ms";
  if (state.lastHeadMs !== null) {
    state.blockIntervals.push(head.timestamp_ms - state.lastHeadMs);
    if (state.blockIntervals.length > 20) state.blockIntervals.shift();
    const avg = state.blockIntervals.reduce((a, b) => a + b, 0) / state.blockIntervals.length;
    $("#block-time").textContent = fmt(avg / 1000, 2) + " s";
  }
  state.lastHeadMs = head.timestamp_ms;
  state.txs += head.tx_count || 0;
  $("#txs").textContent = state.txs + " since load";
}

async function renderNetwork() {
  let status = null;
  try { status = await rpc("consensus_status"); } catch (e) { if (e.code !== -32601) throw e; }
  let peers = [];
  peers = await rpc("net_peers");
  if (status) {
    $("#consensus").textContent = `BFT: height ${status.height}, round ${status.round}, step ${status.step}, leader ${short(status.leader)}; ${peers.length} peers`;
    fillTable("#validators", status.validators.map((v) => ({ cells: [v.id, v.power] })));
  } else {
    $("#consensus").textContent = `dev node: one authority seals and finalizes every block; ${peers.length} peers`;
    fillTable("#validators", state.info.authorities.map((a) => ({ cells: [a, 1] })));
  }
}

function renderSubnets() {
  fillTable("#subnets", state.subnets.map((s) => ({
    cells: [s.netuid, fmt(tao(s.price_rao), 6), fmt(s.emission_share, 4), fmt(tao(s.pool_tao), 3), s.n, s.epoch_index, s.blocks_to_next_epoch],
    selected: s.netuid === state.selected,
    data: { netuid: s.netuid, price: tao(s.price_rao) },
    netuid: s.netuid,
  })), (r) => { state.selected = r.netuid; state.neuron = null; refreshSubnet(); renderSubnets(); });
  const lines = (key) => [...state.series.entries()].map(([netuid, pts], i) => ({
    color: COLORS[i % COLORS.length],
    points: pts.map((p) => [p.t, p[key]]),
    netuid,
  }));
  plot($("#chart-price"), lines("price"));
  plot($("#chart-share"), lines("share"));
  plot($("#chart-pool"), lines("pool"));
  const legend = $("#legend");
  legend.replaceChildren();
  [...state.series.keys()].forEach((netuid, i) => {
    const s = document.createElement("span");
    s.style.color = COLORS[i % COLORS.length];
    s.textContent = "\u25A0 subnet " + netuid;
    legend.appendChild(s);
  });
}

function renderMetagraph() {
  const m = state.metagraph;
  $("#mg-netuid").textContent = m ? m.netuid : "-";
  if (!m) { fillTable("#metagraph", []); return; }
  const { key, asc } = state.sort;
  const rows = [...m.neurons].sort((a, b) => {
    const x = a[key], y = b[key];
    const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
    return asc ? c : -c;
  });
  for (const th of document.querySelectorAll("#metagraph th")) {
    th.classList.toggle("sorted", th.dataset.key === key);
    th.classList.toggle("asc", th.dataset.key === key && asc);
  }
  fillTable("#metagraph", rows.map((n) => ({
    cells: [n.uid, short(n.hotkey), fmt(tao(n.stake), 3), share16(n.validator_trust), share16(n.consensus), share16(n.incentive), share16(n.dividends), fmt(tao(n.emission), 4), n.validator_permit ? "yes" : ""],
    selected: n.hotkey === state.neuron,
    data: { uid: n.uid, incentive: n.incentive, hotkey: n.hotkey },
    hotkey: n.hotkey,
  })), (r) => { state.neuron = r.hotkey; renderMetagraph(); renderHistory(); });
}

function renderEpochs() {
  fillTable("#epochs", state.epochs.map((e) => ({
    cells: [e.epoch_index, e.block, fmt(tao(e.server), 4), fmt(tao(e.validator), 4), fmt(tao(e.owner), 4), fmt(tao(e.root), 4), fmt(tao(e.burned), 4)],
  })));
}

function renderHistory() {
  const who = state.neuron;
  $("#history-who").textContent = who ? short(who) : "(click a neuron)";
  if (!who) { fillTable("#history", []); plot($("#chart-history"), []); return; }
  const rows = [];
  for (const e of [...state.epochs].reverse()) {
    const i = e.hotkeys.indexOf(who);
    if (i < 0) continue;
    rows.push({ epoch: e.epoch_index, block: e.block, incentive: e.incentive[i], dividends: e.dividends[i], emission: e.emission[i] });
  }
  fillTable("#history", rows.slice().reverse().map((r) => ({
    cells: [r.epoch, r.block, share16(r.incentive), share16(r.dividends), fmt(tao(r.emission), 4)],
  })));
  plot($("#chart-history"), [
    { color: COLORS[0], points: rows.map((r) => [r.epoch, r.incentive / 65535]) },
    { color: COLORS[1], points: rows.map((r) => [r.epoch, r.dividends / 65535]) },
  ]);
}

async function refreshSubnet() {
  if (state.selected === null) { state.metagraph = null; state.epochs = []; renderMetagraph(); renderEpochs(); renderHistory(); return; }
  const [m, epochs] = await Promise.all([
    rpc("subnet_metagraph", { netuid: state.selected, weights: false }),
    rpc("subnet_epochs", { netuid: state.selected, limit: 32 }),
  ]);
  state.metagraph = m;
  state.epochs = epochs.epochs;
  if (state.neuron === null && m.neurons.length) {
    // Until one is clicked: the history of the neuron with the most incentive.
    state.neuron = m.neurons.reduce((a, b) => (b.incentive > a.incentive ? b : a)).hotkey;
  }
  renderMetagraph();
  renderEpochs();
  renderHistory();
}

function describeAction(a) {
  switch (a.kind) {
    case "set_chain_param": return `set ${a.name} = ${a.value}`;
    case "set_hyperparameter": return `set subnet ${a.netuid} ${a.name} = ${a.value}`;
    case "treasury_spend": return `pay ${fmt(tao(a.amount), 3)} TAO to ${short(a.dest)}`;
    case "set_validators": return `validator set of ${a.validators.length}`;
    case "text": return `signal: ${a.text}`;
    default: return JSON.stringify(a);
  }
}

async function renderGovernance() {
  const [list, conc] = await Promise.all([rpc("gov_proposals", { limit: 20 }), rpc("gov_concentration")]);
  $("#gov-mode").textContent = conc.voting_power;
  // Open proposals show the tally so far; closed ones their final tally.
  const tallies = await Promise.all(list.proposals.map((p) =>
    p.status.status === "voting" ? rpc("gov_proposal", { id: p.id }).then((v) => v.current_tally) : Promise.resolve(p.tally)));
  const power = (x) => (conc.voting_power === "stake" ? fmt(tao(x), 3) : String(x));
  fillTable("#proposals", list.proposals.map((p, i) => {
    const t = tallies[i] || {};
    const status = p.status.status + (p.status.reason ? ` (${p.status.reason})` : "") + (p.status.block ? ` in ${p.status.block}` : "");
    return {
      cells: [p.id, status, p.emergency ? "emergency" : "normal", describeAction(p.action), p.voting_ends, p.enact_at,
        power(t.yes ?? 0), power(t.no ?? 0), power(t.no_with_veto ?? 0), power(t.abstain ?? 0),
        t.total ? fmt(100 * t.turnout / t.total, 1) + "%" : "-"],
      data: { proposal: p.id, status: p.status.status },
    };
  }));
  $("#gov-hint").hidden = list.proposals.length > 0;
  const row = (what, c) => ({
    cells: [what, c.holders, c.nakamoto_third, c.nakamoto_half, fmt(100 * c.top5_share, 1) + "%", fmt(c.gini, 3), fmt(c.hhi, 3)],
    data: { what, holders: c.holders, nakamotoHalf: c.nakamoto_half },
  });
  fillTable("#concentration", [
    row("governance power", conc.governance),
    row("root stake", conc.root_stake),
    ...conc.subnets.map((s) => row(`subnet ${s.netuid} validators`, s)),
    row("consensus validators", conc.validator_set),
  ]);
}

async function refresh(head) {
  renderHeader(head);
  state.subnets = (await rpc("subnet_list")).subnets;
  for (const s of state.subnets) {
    if (!state.series.has(s.netuid)) {
      // What the node sampled before this page opened.
      const past = await rpc("subnet_history", { netuid: s.netuid, limit: HISTORY_MAX });
      state.series.set(s.netuid, past.map((p) => ({ t: p.height, price: tao(p.price_rao), share: p.emission_share, pool: tao(p.pool_tao) })));
    }
    const pts = state.series.get(s.netuid);
    if (!pts.length || pts[pts.length - 1].t < head.height) {
      pts.push({ t: head.height, price: tao(s.price_rao), share: s.emission_share, pool: tao(s.pool_tao) });
    }
    if (pts.length > HISTORY_MAX) pts.shift();
  }
  if (state.selected === null && state.subnets.length) state.selected = state.subnets[0].netuid;
  renderSubnets();
  await Promise.all([refreshSubnet(), renderNetwork(), renderGovernance()]);
  document.body.dataset.ready = "true";
}

// One refresh at a time; heads that arrive meanwhile collapse into the newest.
let busy = false, pending = null;
async function onHead(head) {
  if (busy) { pending = head; return; }
  busy = true;
  try { await refresh(head); } catch (e) { reportError(String(e.message || e)); }
  busy = false;
  if (pending) { const h = pending; pending = null; onHead(h); }
}

function subscribe() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  ws.onopen = () => {
    $("#live").textContent = "yes";
    ws.send(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "chain_subscribeHeads", params: [] }));
  };
  ws.onmessage = (ev) => {
    const v = JSON.parse(ev.data);
    if (v.method === "chain_head" && v.params && v.params.result) onHead(v.params.result);
  };
  ws.onclose = () => { $("#live").textContent = "reconnecting"; setTimeout(subscribe, 2000); };
}

for (const th of document.querySelectorAll("#metagraph th[data-key]")) {
  th.addEventListener("click", () => {
    const key = th.dataset.key;
    state.sort = { key, asc: state.sort.key === key ? !state.sort.asc : false };
    renderMetagraph();
  });
}

(async function main() {
  try {
    state.info = await rpc("chain_info");
    $("#chain-id").textContent = state.info.chain_id;
    await onHead(await rpc("chain_head"));
    subscribe();
  } catch (e) {
    reportError(String(e.message || e));
  }
})();
