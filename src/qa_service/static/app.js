// The chat page. Every text from a source or a user is put in the page with textContent,
// never as HTML, so "<script>" in a question or a document shows as text.
"use strict";

// The request limits of config.LIMITS, rendered into the page by the server.
const LIMITS = JSON.parse(document.body.dataset.limits);
const state = { history: [], sources: [], selected: new Set(), citation: null };
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child == null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function sourceMeta(source) {
  const parts = [];
  if (source.author) parts.push(source.author);
  if (source.date) parts.push(source.date);
  return parts.join(" · ");
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
    throw new Error("The service cannot be reached. Is it running?");
  }
  let body = null;
  try { body = await response.json(); } catch (err) { /* not JSON */ }
  if (!response.ok) {
    const message = body && body.error ? body.error.message : `HTTP ${response.status}`;
    throw new Error(message);
  }
  return body;
}

function renderAnswerText(result, container) {
  // "[n]" markers become buttons that open citation n; the rest stays plain text.
  const text = result.answer;
  const pattern = /\[(\d+)\]/g;
  let last = 0;
  let match;
  while ((match = pattern.exec(text)) !== null) {
    container.append(document.createTextNode(text.slice(last, match.index)));
    const n = Number(match[1]);
    const citation = result.citations.find((c) => c.n === n);
    if (citation) {
      container.append(el("button", {
        type: "button", class: "marker", "data-n": String(n), "aria-pressed": "false",
        title: `Show source ${n}: ${citation.title}`,
        onclick: (event) => showCitation(citation, event.currentTarget),
      }, `[${n}]`));
    } else {
      container.append(document.createTextNode(match[0]));
    }
    last = pattern.lastIndex;
  }
  container.append(document.createTextNode(text.slice(last)));
}

function renderAnswer(result, bubble) {
  bubble.replaceChildren();
  bubble.classList.remove("busy");
  if (!result.answerable) {
    bubble.classList.add("not-found");
    bubble.append(el("div", { class: "label" }, "Not in the sources"));
  } else if (result.short_answer) {
    bubble.append(el("div", { class: "short", "data-testid": "short-answer" }, result.short_answer));
  }
  const p = el("p", { class: "answer-text" });
  renderAnswerText(result, p);
  bubble.append(p);
  if (!result.answerable && result.citations.length) {
    const list = el("ul", { class: "nearest" });
    for (const c of result.citations) {
      const snippet = c.quote.length > 90 ? `${c.quote.slice(0, 90)}…` : c.quote;
      list.append(el("li", {}, el("button", {
        type: "button", class: "link", onclick: () => showCitation(c, null),
      }, `${c.title}: “${snippet}”`)));
    }
    bubble.append(el("div", { class: "meta" }, "Nearest passages, for you to check:"), list);
  }
  bubble.append(el("div", { class: "confidence" },
    `Confidence ${Math.round(result.confidence * 100)}% · ${result.took_ms} ms`));
}

function showCitation(citation, button) {
  state.citation = citation;
  document.querySelectorAll(".marker[aria-pressed='true']").forEach((b) => b.setAttribute("aria-pressed", "false"));
  if (button) button.setAttribute("aria-pressed", "true");
  const source = state.sources.find((s) => s.source === citation.source) || {};
  $("citation-n").textContent = citation.n ? `[${citation.n}]` : "";
  const meta = $("citation-meta");
  meta.replaceChildren(el("strong", {}, citation.title));
  const extra = sourceMeta(source);
  if (extra) meta.append(document.createTextNode(` · ${extra}`));
  if (citation.page) meta.append(document.createTextNode(` · p. ${citation.page}`));
  if (source.url && /^https?:\/\//i.test(source.url)) {
    meta.append(document.createTextNode(" · "), el("a", { href: source.url, target: "_blank", rel: "noopener noreferrer" }, "original"));
  }
  const at = citation.passage.indexOf(citation.quote);
  const { frag } = at >= 0 ? highlighted(citation.passage, at, at + citation.quote.length)
                            : { frag: document.createTextNode(citation.passage) };
  $("citation-passage").replaceChildren(frag);
  $("citation-view").hidden = false;
  $("citation-view").scrollIntoView({ block: "nearest" });
}

async function openDocument() {
  const citation = state.citation;
  if (!citation) return;
  const view = $("document-view");
  try {
    const doc = await api(`/api/sources/${encodeURIComponent(citation.source)}`);
    $("document-title").textContent = doc.title;
    $("document-meta").textContent = [sourceMeta(doc), doc.source].filter(Boolean).join(" · ");
    const { frag, mark } = highlighted(doc.text, citation.start, citation.end);
    $("document-text").replaceChildren(frag);
    view.hidden = false;
    mark.scrollIntoView({ block: "center" });
  } catch (err) {
    $("document-title").textContent = "Could not open the document";
    $("document-meta").textContent = err.message;
    $("document-text").replaceChildren();
    view.hidden = false;
  }
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
    });
    const meta = [sourceMeta(s), `${s.chunks} passages`].filter(Boolean).join(" · ");
    list.append(el("li", {}, el("label", {}, box,
      el("span", {}, el("strong", {}, s.title), el("br"), el("span", { class: "meta" }, meta)))));
  }
  updateScope();
}

async function ask(question) {
  $("empty-hint")?.remove();
  const turn = el("li", { class: "turn" });
  turn.append(el("div", { class: "q" }, question));
  const bubble = el("div", { class: "a busy", role: "status" }, "Searching the sources…");
  turn.append(bubble);
  $("conversation").append(turn);
  turn.scrollIntoView({ block: "end" });
  const body = { question, history: state.history.slice(-LIMITS.history_turns) };
  if (state.selected.size) body.sources = [...state.selected];
  $("send").disabled = true;
  try {
    const result = await api("/api/answer", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    renderAnswer(result, bubble);
    state.history.push({ question, answer: result.answer.slice(0, LIMITS.answer_chars) });
  } catch (err) {
    bubble.classList.remove("busy");
    bubble.classList.add("error");
    bubble.textContent = `Error: ${err.message}`;
  } finally {
    $("send").disabled = false;
    bubble.removeAttribute("role");
    turn.scrollIntoView({ block: "end" });
    $("question").focus();
  }
}

function init() {
  const form = $("ask-form");
  const box = $("question");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const question = box.value.trim();
    if (!question || $("send").disabled) return;
    box.value = "";
    ask(question);
  });
  box.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  $("open-document").addEventListener("click", openDocument);
  $("new-chat").addEventListener("click", () => {
    state.history = [];
    $("conversation").replaceChildren();
    box.focus();
  });
  $("toggle-sources").addEventListener("click", () => $("sources-panel").scrollIntoView());
  loadSources();
  box.focus();
}

init();
