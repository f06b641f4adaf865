// The chat page. Every text from a source or a user is put in the page with textContent,
// never as HTML, so "<script>" in a question or a document shows as text.
"use strict";

// The request limits of config.LIMITS, rendered into the page by the server.
const LIMITS = JSON.parse(document.body.dataset.limits);
const STORE_KEY = "qa-service.conversations.v1";
const CURRENT_KEY = "qa-service.current.v1";
const MAX_SAVED = 20;  // conversations kept in the browser (a few MB at most); the oldest go first
const COUNTER_FROM = 0.8;  // the character counter shows from this share of the limit

// Confidence bands, read off the answer model's held-out reliability table (README, Quality):
// answers given 0.7 or more were right about three times in four, 0.4–0.7 about half to two
// thirds of the time, below 0.4 at most three times in ten.
const BANDS = [[0.7, "high"], [0.4, "medium"], [0, "low"]];

const state = {
  sources: [],          // GET /api/sources
  selected: new Set(),  // ticked source ids of the conversation on screen
  conv: null,           // the conversation on screen: {id, created, updated, sources, turns}
  generation: 0,        // bumped whenever the conversation on screen changes
  controller: null,     // AbortController of the request in flight
  open: null,           // the citation open in place: {view, button}
};
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) {
    if (child == null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function announce(text) {
  // Cleared first so the same words twice are read twice.
  const region = $("announcer");
  region.textContent = "";
  window.setTimeout(() => { region.textContent = text; }, 50);
}

function sourceMeta(source) {
  return [source.author, source.date].filter(Boolean).join(" · ");
}

function sourceById(id) {
  return state.sources.find((s) => s.source === id) || null;
}

// Text with one highlighted range; the range is found by offsets, not by searching the text.
function highlighted(text, start, end) {
  const frag = document.createDocumentFragment();
  frag.append(document.createTextNode(text.slice(0, start)));
  const mark = el("mark", {}, text.slice(start, end));
  frag.append(mark, document.createTextNode(text.slice(end)));
  return { frag, mark };
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new Error("The service cannot be reached. Is it running?");
  }
  let body = null;
  try { body = await response.json(); } catch (err) {
    if (err.name === "AbortError") throw err;
  }
  if (!response.ok) {
    const message = body && body.error ? body.error.message : `HTTP ${response.status}`;
    throw new Error(message);
  }
  return body;
}

// ---- what an answer shows -------------------------------------------------------------------

function confidenceBand(confidence) {
  return BANDS.find(([floor]) => confidence >= floor)[1];
}

// A short answer stands out as a fact only when it is a specific value: once words of vague
// quantity are set aside (general English, not words of our documents), it still holds a digit
// (a date, number, amount, designation) or a capitalised word (a name or place). "several",
// "Many" or "hundreds of" stay in the sentence.
const VAGUE = /\b(?:several|many|some|few|numerous|various|multiple|dozens|hundreds|thousands|millions|billions|most|all|both|lots?|a number|a lot|of|a)\b/giu;
function isSpecific(shortAnswer) {
  if (!shortAnswer) return false;
  const rest = shortAnswer.replace(VAGUE, " ").trim();
  return /\d/.test(rest) || /(^|[\s(-])\p{Lu}/u.test(rest);
}

function scopeText(searched) {
  const total = state.sources.length;
  if (!searched) return total ? `Searched all ${total} sources` : "Searched all sources";
  const titles = searched.map((id) => (sourceById(id) || { title: id }).title);
  return `Searched ${searched.length} of ${total || "the"} sources: ${titles.join("; ")}`;
}

function shareUrl(turn) {
  const params = new URLSearchParams({ q: turn.question });
  for (const id of turn.searched || []) params.append("source", id);
  return `${location.origin}/?${params}`;
}

function reference(c) {
  const source = sourceById(c.source) || {};
  const by = [source.author, source.date].filter(Boolean).join(", ");
  const page = c.page ? `, p. ${c.page}` : "";
  return { title: c.title, by, id: `${c.source}${page}`, quote: c.quote };
}

// Plain-text Markdown of one answer with its references (copy) — also used by the export.
function answerMarkdown(turn) {
  const r = turn.result;
  const lines = [`**Q:** ${turn.question}`, "", r.answer, ""];
  for (const c of r.citations) {
    const ref = reference(c);
    lines.push(`[${c.n}] “${ref.quote}” — ${ref.title}${ref.by ? ` (${ref.by})` : ""}. Source: ${ref.id}`);
  }
  return lines.join("\n").trim() + "\n";
}

function answerHtml(turn) {
  const r = turn.result;
  const root = el("div", {},
    el("p", {}, el("strong", {}, "Q: "), turn.question),
    el("p", {}, r.answer));
  const list = el("ol", {});
  for (const c of r.citations) {
    const ref = reference(c);
    list.append(el("li", { value: String(c.n) }, el("q", {}, ref.quote), " — ", el("cite", {}, ref.title),
      ref.by ? ` (${ref.by})` : "", `. Source: ${ref.id}`));
  }
  root.append(list);
  return root.outerHTML;
}

async function copyRich(text, html) {
  if (navigator.clipboard && window.ClipboardItem) {
    try {
      await navigator.clipboard.write([new ClipboardItem({
        "text/plain": new Blob([text], { type: "text/plain" }),
        "text/html": new Blob([html], { type: "text/html" }),
      })]);
      return true;
    } catch (err) { /* fall back to plain text */ }
  }
  if (navigator.clipboard) {
    try { await navigator.clipboard.writeText(text); return true; } catch (err) { /* older way */ }
  }
  const area = el("textarea", { class: "offscreen", "aria-hidden": "true" });
  area.value = text;
  document.body.append(area);
  area.select();
  const done = document.execCommand("copy");
  area.remove();
  return done;
}

function renderAnswerText(turn, index, container) {
  // "[n]" markers become buttons that open citation n in place; the rest stays plain text.
  const result = turn.result;
  const pattern = /\[(\d+)\]/g;
  let last = 0;
  let match;
  while ((match = pattern.exec(result.answer)) !== null) {
    container.append(document.createTextNode(result.answer.slice(last, match.index)));
    const n = Number(match[1]);
    const citation = result.citations.find((c) => c.n === n);
    if (citation) {
      container.append(el("button", {
        type: "button", class: "marker", "data-n": String(n), "aria-expanded": "false",
        "aria-label": `Source ${n}: ${citation.title}`, title: `Show source ${n}: ${citation.title}`,
        onclick: (event) => toggleCitation(index, citation, event.currentTarget),
      }, `[${n}]`));
    } else {
      container.append(document.createTextNode(match[0]));
    }
    last = pattern.lastIndex;
  }
  container.append(document.createTextNode(result.answer.slice(last)));
}

function renderAnswer(li, turn, index) {
  const r = turn.result;
  const bubble = el("div", { class: r.answerable ? "a" : "a not-found" });
  if (!r.answerable) bubble.append(el("div", { class: "label" }, "Not in the sources"));
  else if (isSpecific(r.short_answer)) {
    bubble.append(el("div", { class: "short", "data-testid": "short-answer" }, r.short_answer));
  }
  const p = el("p", { class: "answer-text" });
  renderAnswerText(turn, index, p);
  bubble.append(p);
  if (!r.answerable && r.citations.length) {
    const list = el("ul", { class: "nearest" });
    for (const c of r.citations) {
      const snippet = c.quote.length > 90 ? `${c.quote.slice(0, 90)}…` : c.quote;
      list.append(el("li", {}, el("button", {
        type: "button", class: "link", "aria-expanded": "false",
        onclick: (event) => toggleCitation(index, c, event.currentTarget),
      }, `${c.title}: “${snippet}”`)));
    }
    bubble.append(el("div", { class: "meta" }, "Nearest passages, for you to check:"), list);
  }
  const facts = el("p", { class: "answer-meta" });
  if (r.answerable) {
    const band = confidenceBand(r.confidence);
    facts.append(el("span", {
      class: `confidence ${band}`, "data-confidence": String(r.confidence),
      title: `Confidence ${r.confidence.toFixed(2)}: the model's calibrated probability that this answer is right (answered in ${r.took_ms} ms)`,
    }, `${band[0].toUpperCase()}${band.slice(1)} confidence`), " · ");
  }
  facts.append(el("span", { class: "searched" }, scopeText(turn.searched)));
  bubble.append(facts);
  if (!r.answerable && turn.searched) {
    bubble.append(el("p", { class: "widen" },
      "Only the ticked sources were searched; the others may say. ",
      el("button", { type: "button", class: "link search-all",
                     onclick: () => ask(turn.question, { allSources: true }) }, "Search all sources")));
  }
  bubble.append(answerActions(turn, index));
  bubble.append(el("div", { class: "cite-slot" }));
  li.append(bubble);
}

function answerActions(turn, index) {
  const status = el("span", { class: "action-status", role: "status" });
  const copy = el("button", { type: "button", class: "link copy", onclick: async () => {
    const ok = await copyRich(answerMarkdown(turn), answerHtml(turn));
    status.textContent = ok ? "Copied with sources." : "Could not copy: the browser refused.";
  } }, "Copy with sources");
  const link = el("a", { class: "share", href: shareUrl(turn),
                         title: "A link that opens the page and asks this question (with the same sources ticked)" },
    "Link to this question");
  return el("div", { class: "answer-actions" }, copy, link, feedbackControls(turn, index, status), status);
}

function feedbackControls(turn, index, status) {
  const box = el("div", { class: "feedback" });
  const form = el("form", { class: "feedback-form", hidden: true });
  const comment = el("textarea", { rows: "2", maxlength: String(LIMITS.comment_chars) });
  const label = el("label", {}, "Comment (optional)", comment);
  const buttons = [];
  let verdict = null;
  const choose = (value, button) => {
    verdict = value;
    for (const b of buttons) b.setAttribute("aria-pressed", String(b === button));
    form.hidden = false;
    comment.focus();
  };
  const up = el("button", { type: "button", class: "thumb up", "aria-pressed": "false",
                            onclick: (e) => choose("up", e.currentTarget) }, "Helpful");
  const down = el("button", { type: "button", class: "thumb down", "aria-pressed": "false",
                              onclick: (e) => choose("down", e.currentTarget) }, "Not helpful");
  buttons.push(up, down);
  form.append(label, el("button", { type: "submit" }, "Send feedback"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const r = turn.result;
    const body = {
      question: turn.question, history: historyOf({ turns: state.conv.turns.slice(0, index) }), answer: r.answer,
      short_answer: r.short_answer, answerable: r.answerable, confidence: r.confidence,
      citations: r.citations.map((c) => ({ n: c.n, source: c.source, title: c.title,
                                           quote: c.quote, start: c.start, end: c.end })),
      index_version: r.index_version, sources: turn.searched, verdict, comment: comment.value.trim(),
    };
    try {
      await api("/api/feedback", { method: "POST", headers: { "Content-Type": "application/json" },
                                   body: JSON.stringify(body) });
      form.hidden = true;
      status.textContent = "Thank you: your feedback is recorded.";
    } catch (err) {
      status.textContent = `Feedback not sent: ${err.message}`;
    }
  });
  box.append(up, down, form);
  return box;
}

// ---- citations, opened in place under their answer -------------------------------------------

function closeCitation(returnFocus) {
  const open = state.open;
  if (!open) return;
  state.open = null;
  open.view.remove();
  open.button.setAttribute("aria-expanded", "false");
  open.button.classList.remove("active");
  if (returnFocus && open.button.isConnected) open.button.focus();
}

function toggleCitation(index, citation, button) {
  if (state.open && state.open.button === button) { closeCitation(true); return; }
  closeCitation(false);
  const slot = button.closest(".turn").querySelector(".cite-slot");
  const headingId = `cite-${index}-${citation.n}`;
  const source = sourceById(citation.source) || {};
  const heading = el("h3", { id: headingId, tabindex: "-1" }, `Source [${citation.n}]: ${citation.title}`);
  const meta = el("p", { class: "meta" });
  meta.append([sourceMeta(source), citation.source, citation.page ? `p. ${citation.page}` : null]
    .filter(Boolean).join(" · "));
  if (source.url && /^https?:\/\//i.test(source.url)) {
    meta.append(" · ", el("a", { href: source.url, target: "_blank", rel: "noopener noreferrer" }, "original"));
  }
  const at = citation.passage.indexOf(citation.quote);
  const passage = el("blockquote", { class: "passage" });
  passage.append(at >= 0 ? highlighted(citation.passage, at, at + citation.quote.length).frag
                         : document.createTextNode(citation.passage));
  const docView = el("div", { class: "document-view", hidden: true });
  const view = el("section", { class: "cite-view", "aria-labelledby": headingId },
    heading, meta, passage,
    el("div", { class: "cite-actions" },
      el("button", { type: "button", class: "link open-document",
                     onclick: () => openDocument(view, citation, docView) },
        "Open the whole document at this quote"),
      el("button", { type: "button", class: "link close-citation", onclick: () => closeCitation(true) },
        "Back to the answer (Esc)")),
    docView);
  view.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { event.preventDefault(); closeCitation(true); }
  });
  slot.append(view);
  button.setAttribute("aria-expanded", "true");
  button.classList.add("active");
  state.open = { view, button };
  heading.focus({ preventScroll: true });
  view.scrollIntoView({ block: "nearest" });
  announce(`Source ${citation.n} opened: ${citation.title}. Quote: ${citation.quote}`);
}

async function openDocument(view, citation, docView) {
  docView.hidden = false;
  docView.replaceChildren(el("p", { class: "meta" }, "Opening the document…"));
  let doc;
  try {
    doc = await api(`/api/sources/${encodeURIComponent(citation.source)}`);
  } catch (err) {
    if (view.isConnected) docView.replaceChildren(el("p", { class: "meta" }, `Could not open the document: ${err.message}`));
    return;
  }
  if (!view.isConnected) return;  // the reader has moved on to another citation
  const { frag, mark } = highlighted(doc.text, citation.start, citation.end);
  const text = el("div", { class: "document-text", tabindex: "0", role: "region",
                           "aria-label": `Whole document: ${doc.title}` });
  text.append(frag);
  docView.replaceChildren(
    el("h4", {}, doc.title),
    el("p", { class: "meta" }, [sourceMeta(doc), doc.source].filter(Boolean).join(" · ")),
    text);
  text.scrollTop = Math.max(0, mark.offsetTop - text.clientHeight / 3);  // the box is the offset parent
  announce(`Whole document opened at the quote: ${doc.title}`);
}

// ---- copying a selection keeps the references behind its markers ------------------------------

document.addEventListener("copy", (event) => {
  const selection = document.getSelection();
  if (!selection || selection.isCollapsed) return;
  const node = selection.anchorNode;
  const li = node && (node.nodeType === 1 ? node : node.parentElement)?.closest(".turn");
  if (!li || !li.contains(selection.focusNode)) return;
  const turn = state.conv.turns[Number(li.dataset.index)];
  if (!turn || !turn.result) return;
  const text = selection.toString();
  const used = new Set([...text.matchAll(/\[(\d+)\]/g)].map((m) => Number(m[1])));
  const refs = turn.result.citations.filter((c) => used.has(c.n)).map((c) => {
    const ref = reference(c);
    return `[${c.n}] “${ref.quote}” — ${ref.title}${ref.by ? ` (${ref.by})` : ""}. Source: ${ref.id}`;
  });
  if (!refs.length) return;
  event.clipboardData.setData("text/plain", `${text}\n\n${refs.join("\n")}\n`);
  event.preventDefault();
});

// ---- conversations kept in the browser --------------------------------------------------------

function loadSaved() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORE_KEY) || "[]");
    return Array.isArray(saved) ? saved : [];
  } catch (err) {
    return [];
  }
}

function writeSaved(all) {
  // A conversation without a question is kept only while it is on screen (for its filter).
  const list = all.filter((c) => c.turns.length || (state.conv && c.id === state.conv.id));
  list.sort((a, b) => b.updated.localeCompare(a.updated));
  for (;;) {
    try {
      localStorage.setItem(STORE_KEY, JSON.stringify(list.slice(0, MAX_SAVED)));
      $("history-note").textContent = "Kept in this browser only (local storage), with their source filter.";
      return;
    } catch (err) {
      if (list.length <= 1) {
        $("history-note").textContent = "This conversation could not be saved: the browser's storage is full or off.";
        return;
      }
      list.pop();  // drop the oldest and try again
    }
  }
}

function saveConversation() {
  const conv = state.conv;
  conv.updated = new Date().toISOString();
  conv.sources = [...state.selected];
  try { localStorage.setItem(CURRENT_KEY, conv.id); } catch (err) { /* storage off */ }
  const list = loadSaved().filter((c) => c.id !== conv.id);
  if (conv.turns.length || conv.sources.length) list.push(conv);
  writeSaved(list);
  renderSaved();
}

function newConversationRecord(sources = []) {
  const now = new Date().toISOString();
  const id = `${now}-${Math.random().toString(36).slice(2, 8)}`;
  return { id, created: now, updated: now, sources, turns: [] };
}

function conversationTitle(conv) {
  return conv.turns.length ? conv.turns[0].question : "New conversation (no question yet)";
}

function renderSaved() {
  const list = $("history-list");
  list.replaceChildren();
  const saved = loadSaved().filter((c) => c.turns.length);
  if (!saved.length) list.append(el("li", { class: "meta" }, "None yet."));
  for (const conv of saved) {
    const title = conversationTitle(conv);
    const when = new Date(conv.updated).toLocaleString();
    const current = state.conv && conv.id === state.conv.id;
    const n = conv.turns.length;
    list.append(el("li", { "data-id": conv.id },
      el("button", { type: "button", class: "link open-conversation", "aria-current": current ? "true" : null,
                     onclick: () => openConversation(conv.id) },
        el("span", { class: "conv-title" }, title),
        el("span", { class: "meta" }, ` ${n} question${n === 1 ? "" : "s"} · ${when}`)),
      el("button", { type: "button", class: "link delete-conversation", "aria-label": `Delete conversation “${title}”`,
                     onclick: () => deleteConversation(conv.id) }, "Delete")));
  }
}

function deleteConversation(id) {
  writeSaved(loadSaved().filter((c) => c.id !== id));
  if (state.conv && state.conv.id === id) startConversation(newConversationRecord());
  renderSaved();
  announce("Conversation deleted.");
}

function openConversation(id) {
  const conv = loadSaved().find((c) => c.id === id);
  if (!conv) return;
  startConversation(conv);
  announce(`Conversation opened: ${conversationTitle(conv)}`);
}

// Puts `conv` on screen: anything in flight is cancelled and every panel starts afresh.
function startConversation(conv) {
  state.generation += 1;
  if (state.controller) state.controller.abort();
  state.controller = null;
  setBusy(false);
  closeCitation(false);
  state.conv = conv;
  const known = new Set(state.sources.map((s) => s.source));
  state.selected = new Set(conv.sources.filter((id) => !state.sources.length || known.has(id)));
  syncTicks();
  const log = $("conversation");
  log.replaceChildren();
  conv.turns.forEach((turn, index) => log.append(turnElement(turn, index)));
  $("empty-hint").hidden = conv.turns.length > 0;
  $("export").disabled = conv.turns.length === 0;
  showMessage("");
  try { localStorage.setItem(CURRENT_KEY, conv.id); } catch (err) { /* storage off */ }
  renderSaved();
}

function turnElement(turn, index) {
  const li = el("li", { class: "turn", "data-index": String(index) }, el("div", { class: "q" }, turn.question));
  if (turn.result) renderAnswer(li, turn, index);
  return li;
}

// ---- export -----------------------------------------------------------------------------------

function conversationMarkdown(conv) {
  // Markers are renumbered across the whole conversation, one reference per distinct quote.
  const refs = [];
  const keyed = new Map();
  const lines = [`# ${conversationTitle(conv)}`, "", `Exported ${new Date().toISOString()} from ${location.origin}/`, ""];
  for (const turn of conv.turns) {
    if (!turn.result) continue;
    const r = turn.result;
    const local = new Map();
    for (const c of r.citations) {
      const key = `${c.source}\u0000${c.start}\u0000${c.end}`;
      if (!keyed.has(key)) { refs.push(c); keyed.set(key, refs.length); }
      local.set(c.n, keyed.get(key));
    }
    const answer = r.answer.replace(/\[(\d+)\]/g, (m, n) => (local.has(Number(n)) ? `[${local.get(Number(n))}]` : m));
    lines.push(`## ${turn.question}`, "", answer, "");
    const facts = [scopeText(turn.searched)];
    if (r.answerable) facts.unshift(`${confidenceBand(r.confidence)} confidence (${r.confidence.toFixed(2)})`);
    else if (r.citations.length) facts.push(`nearest passages: ${r.citations.map((c) => `[${local.get(c.n)}]`).join(", ")}`);
    lines.push(`*${facts.join(" · ")}; index ${r.index_version}*`, "");
  }
  lines.push("## References", "");
  refs.forEach((c, i) => {
    const ref = reference(c);
    lines.push(`${i + 1}. “${ref.quote}” — ${ref.title}${ref.by ? ` (${ref.by})` : ""}. Source: ${ref.id}, characters ${c.start}–${c.end}`);
  });
  return `${lines.join("\n")}\n`;
}

function exportConversation() {
  const conv = state.conv;
  if (!conv.turns.length) return;
  const blob = new Blob([conversationMarkdown(conv)], { type: "text/markdown" });
  const url = URL.createObjectURL(blob);
  const a = el("a", { href: url, download: `conversation-${conv.created.slice(0, 10)}.md`, class: "offscreen" });
  document.body.append(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// ---- asking -----------------------------------------------------------------------------------

function setBusy(busy) {
  $("send").disabled = busy;
  $("ask-form").setAttribute("aria-busy", String(busy));
}

function showMessage(text) {
  const message = $("ask-message");
  message.textContent = text;
  message.hidden = !text;
  $("question").setAttribute("aria-invalid", String(Boolean(text)));
}

function updateCounter() {
  const length = $("question").value.trim().length;
  const counter = $("question-count");
  const limit = LIMITS.question_chars;
  counter.hidden = length < limit * COUNTER_FROM;
  counter.textContent = `${length} / ${limit} characters`;
  counter.classList.toggle("over", length > limit);
  if (length <= limit && $("ask-message").dataset.kind === "length") {
    showMessage("");
    delete $("ask-message").dataset.kind;
  }
}

function historyOf(conv) {
  return conv.turns.filter((t) => t.result)
    .map((t) => ({ question: t.question, answer: t.result.answer.slice(0, LIMITS.answer_chars) }))
    .slice(-LIMITS.history_turns);
}

async function ask(question, options = {}) {
  const conv = state.conv;
  const generation = state.generation;
  const searched = options.allSources || !state.selected.size ? null : [...state.selected];
  document.querySelectorAll(".turn.failed").forEach((node) => node.remove());
  $("empty-hint").hidden = true;
  const li = el("li", { class: "turn pending", "data-index": String(conv.turns.length) }, el("div", { class: "q" }, question));
  const bubble = el("div", { class: "a busy" }, "Searching the sources…");
  li.append(bubble);
  $("conversation").append(li);
  li.scrollIntoView({ block: "end" });
  const history = historyOf(conv);
  const body = { question, history };
  if (searched) body.sources = searched;
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  let result;
  try {
    result = await api("/api/answer", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body), signal: controller.signal,
    });
  } catch (err) {
    if (generation !== state.generation || err.name === "AbortError") return;
    li.classList.remove("pending");
    li.classList.add("failed");
    bubble.className = "a error";
    bubble.replaceChildren(el("p", {}, `Error: ${err.message}`),
      el("button", { type: "button", class: "retry", onclick: () => retry(question, options) }, "Retry"));
    const box = $("question");
    if (!box.value.trim()) { box.value = question; updateCounter(); }
    announce(`The question was not answered. Error: ${err.message}`);
    return;
  } finally {
    if (state.controller === controller) { state.controller = null; setBusy(false); }
  }
  // A reply to a conversation that is no longer on screen is dropped, never added to another.
  if (generation !== state.generation || conv !== state.conv) return;
  const turn = { question, searched, result };
  conv.turns.push(turn);
  li.classList.remove("pending");
  bubble.remove();
  renderAnswer(li, turn, conv.turns.length - 1);
  $("export").disabled = false;
  saveConversation();
  const band = result.answerable ? ` ${confidenceBand(result.confidence)} confidence.` : "";
  announce(`Answer: ${result.answer.replace(/\s*\[\d+\]/g, "")}${band}`);
}

function retry(question, options) {
  const box = $("question");
  if (box.value.trim() === question) { box.value = ""; updateCounter(); }
  ask(question, options);
}

function submitQuestion() {
  const box = $("question");
  const question = box.value.trim();
  const message = $("ask-message");
  if (!question) {
    showMessage(box.value ? "The question is only spaces: type a question first." : "Type a question first.");
    delete message.dataset.kind;
    box.focus();
    return;
  }
  if (question.length > LIMITS.question_chars) {
    const over = question.length - LIMITS.question_chars;
    showMessage(`The question is ${question.length} characters long; the limit is ${LIMITS.question_chars}. Shorten it by ${over} character${over === 1 ? "" : "s"}; nothing was cut.`);
    message.dataset.kind = "length";
    box.focus();
    return;
  }
  if (state.controller) {
    showMessage("Wait for the answer to the question before.");
    return;
  }
  showMessage("");
  box.value = "";
  updateCounter();
  ask(question);
}

// ---- sources and examples ---------------------------------------------------------------------

function syncTicks() {
  for (const box of document.querySelectorAll("#sources-list input[type=checkbox]")) {
    box.checked = state.selected.has(box.value);
  }
  updateScope();
}

function updateScope() {
  const n = state.selected.size;
  $("scope").textContent = n ? `Searching ${n} of ${state.sources.length} sources` : "Searching all sources";
}

async function loadSources() {
  const list = $("sources-list");
  try {
    state.sources = await api("/api/sources");
  } catch (err) {
    list.replaceChildren(el("li", {}, err.message));
    return;
  }
  list.replaceChildren();
  for (const s of state.sources) {
    const box = el("input", { type: "checkbox", value: s.source });
    box.addEventListener("change", () => {
      if (box.checked) state.selected.add(s.source); else state.selected.delete(s.source);
      updateScope();
      saveConversation();
    });
    const meta = [sourceMeta(s), `${s.chunks} passages`].filter(Boolean).join(" · ");
    list.append(el("li", {}, el("label", {}, box,
      el("span", {}, el("strong", {}, s.title), el("br"), el("span", { class: "meta" }, meta)))));
  }
}

async function loadExamples() {
  const list = $("examples");
  let examples = [];
  try { examples = await api("/api/examples"); } catch (err) { /* the hint stays without them */ }
  list.replaceChildren();
  for (const question of examples) {
    list.append(el("li", {}, el("button", { type: "button", class: "link example",
      onclick: () => { $("question").value = ""; updateCounter(); showMessage(""); ask(question); } }, question)));
  }
  $("examples-box").hidden = examples.length === 0;
}

// ---- start ------------------------------------------------------------------------------------

async function init() {
  const box = $("question");
  $("ask-form").addEventListener("submit", (event) => { event.preventDefault(); submitQuestion(); });
  box.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submitQuestion();
    }
  });
  box.addEventListener("input", updateCounter);
  $("new-chat").addEventListener("click", () => {
    startConversation(newConversationRecord());
    box.value = "";
    updateCounter();
    box.focus();
    announce("New conversation.");
  });
  $("export").addEventListener("click", exportConversation);
  $("toggle-side").addEventListener("click", (event) => {
    const side = $("side");
    const open = side.classList.toggle("collapsed") === false;
    event.currentTarget.setAttribute("aria-expanded", String(open));
    if (open) side.scrollIntoView({ block: "start" });
  });
  await Promise.all([loadSources(), loadExamples()]);

  const params = new URLSearchParams(location.search);
  const shared = (params.get("q") || "").trim();
  if (shared) {
    // A shared link opens a new conversation, asks its question, and leaves the address bare
    // so a reload does not ask again (the conversation itself is kept).
    startConversation(newConversationRecord(params.getAll("source")));
    history.replaceState(null, "", location.pathname);
    box.value = shared;
    submitQuestion();
  } else {
    let current = null;
    try { current = localStorage.getItem(CURRENT_KEY); } catch (err) { /* storage off */ }
    const saved = loadSaved().find((c) => c.id === current);
    startConversation(saved || newConversationRecord());
  }
  box.focus();
}

init();
