// Greffier's host pages: sign in with a key (a session cookie, never the
// key in a URL), the meetings, a meeting's minutes with its player, and
// search. What the session's permissions do not allow is not shown.
import { t, apply, setupSwitch, formatDate, clock } from './i18n.js';
import { h, minutesView } from './minutes.js';

const $ = (id) => document.getElementById(id);
let me = null; // {name, role, permissions}
let stopView = () => {};

const can = (perm) => !!me && me.permissions.includes(perm);

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// api calls the REST API with the session cookie; changes carry the
// header that proves they come from this site's pages (CSRF).
async function api(method, path, body) {
  const headers = { 'X-Greffier': '1' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(path, { method, headers, credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, 'network', t('err.network'));
  }
  if (resp.status === 204) return null;
  const data = await resp.json().catch(() => null);
  if (!resp.ok) {
    const e = data?.error || {};
    if (resp.status === 401 && path !== '/v1/session') {
      me = null;
      showSignIn(t('err.session'));
    }
    throw new ApiError(resp.status, e.code || 'http_' + resp.status, e.message || 'HTTP ' + resp.status);
  }
  return data;
}

function status(text) { $('status').textContent = text || ''; }
function showError(text) {
  $('error').textContent = text || '';
  $('error').hidden = !text;
}
function failed(err) { showError(err.message); }

function setView(name, ...kids) {
  stopView();
  stopView = () => {};
  document.body.dataset.view = name;
  $('view').replaceChildren(...kids);
}

// --- sign in -----------------------------------------------------------------

function showSignIn(message) {
  $('nav').hidden = true;
  $('signout').hidden = true;
  $('who').textContent = '';
  const key = h('input', { id: 'key', type: 'password', autocomplete: 'current-password', required: true, spellcheck: 'false' });
  const form = h('form', { class: 'card', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, t('app.signin')),
    h('p', {}, t('app.signin.help')),
    h('div', { class: 'field' }, h('label', { for: 'key' }, t('app.key')), key),
    h('button', { type: 'submit', class: 'primary' }, t('app.signin')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError('');
    try {
      me = await api('POST', '/v1/session', { key: key.value });
      signedIn();
    } catch (err) {
      showError(err.status === 401 ? t('app.badKey') : err.message);
      key.focus();
    }
  });
  setView('signin', form);
  if (message) showError(message);
  key.focus();
}

function signedIn() {
  $('nav').hidden = false;
  $('nav-search').hidden = !can('minutes:read');
  $('signout').hidden = false;
  $('who').textContent = t('app.signedInAs', { name: me.name, role: me.role });
  route();
}

// --- meetings ----------------------------------------------------------------

function stateText(s) { return t('state.' + s); }

async function showMeetings() {
  const kids = [h('h1', { id: 'view-title', tabindex: '-1' }, t('app.meetings'))];
  if (can('meetings:create')) kids.push(createForm());
  const table = h('table', { class: 'meetings' },
    h('caption', { class: 'sr-only' }, t('app.meetings')),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, t('app.col.title')), h('th', { scope: 'col' }, t('app.col.state')),
      h('th', { scope: 'col' }, t('app.col.created')))),
    h('tbody', { id: 'meeting-rows' }));
  kids.push(table);
  setView('meetings', ...kids);
  const load = async () => {
    // Every page of the list: the API pages by cursor (next_cursor is
    // absent on the last page).
    const meetings = [];
    let next = '';
    do {
      const page = await api('GET', '/v1/meetings?limit=200' + (next ? '&cursor=' + encodeURIComponent(next) : ''));
      meetings.push(...page.meetings);
      next = page.next_cursor || '';
    } while (next && meetings.length < 2000);
    // Meetings waiting for transcription show how far it got.
    const progress = {};
    await Promise.all(meetings.filter((m) => m.state === 'ended').slice(0, 20).map(async (m) => {
      const p = (await api('GET', `/v1/meetings/${encodeURIComponent(m.id)}`).catch(() => null))?.pipeline;
      if (p && p.segments) progress[m.id] = ` ${p.segments_transcribed}/${p.segments}`;
    }));
    const rows = meetings.map((m) => h('tr', { dataset: { id: m.id, state: m.state } },
      h('td', {}, h('a', { href: `#/m/${encodeURIComponent(m.id)}` }, m.title || m.id)),
      h('td', {}, h('span', { class: 'badge ' + m.state }, stateText(m.state)), progress[m.id] || ''),
      h('td', {}, formatDate(new Date(m.created_at)))));
    if (!rows.length) rows.push(h('tr', {}, h('td', { colspan: '3' }, t('app.none'))));
    $('meeting-rows')?.replaceChildren(...rows);
  };
  if (can('meetings:list')) {
    await load().catch(failed);
    // States move on their own (live, transcribed, ready): refresh.
    const timer = setInterval(() => load().catch(() => {}), 5000);
    stopView = () => clearInterval(timer);
  } else {
    table.hidden = true;
  }
}

function joinURL(p) {
  return p.join_url || `${location.origin}/join/#token=${encodeURIComponent(p.token)}`;
}

function createForm() {
  const title = h('input', { id: 'new-title', required: true, maxlength: '500' });
  const people = h('textarea', { id: 'new-people', rows: '3', required: true });
  const captions = h('input', { id: 'new-captions', type: 'checkbox' });
  const chooseName = h('input', { id: 'new-choose-name', type: 'checkbox' });
  const readMinutes = h('input', { id: 'new-read-minutes', type: 'checkbox' });
  const record = h('input', { id: 'new-recording', type: 'checkbox', checked: true });
  const transcribe = h('input', { id: 'new-transcription', type: 'checkbox', checked: true });
  const out = h('div', { id: 'new-links', 'aria-live': 'polite' });
  const form = h('form', { class: 'card', 'aria-labelledby': 'new-h' },
    h('h2', { id: 'new-h' }, t('app.new')),
    h('div', { class: 'field' }, h('label', { for: 'new-title' }, t('app.new.title')), title),
    h('div', { class: 'field' }, h('label', { for: 'new-people' }, t('app.new.people')), people),
    h('div', { class: 'check' }, record, h('label', { for: 'new-recording' }, t('app.new.recording'))),
    h('div', { class: 'check' }, transcribe, h('label', { for: 'new-transcription' }, t('app.new.transcription'))),
    h('div', { class: 'check' }, captions, h('label', { for: 'new-captions' }, t('app.new.captions'))),
    h('div', { class: 'check' }, chooseName, h('label', { for: 'new-choose-name' }, t('app.new.chooseName'))),
    h('div', { class: 'check' }, readMinutes, h('label', { for: 'new-read-minutes' }, t('app.new.readMinutes'))),
    h('button', { type: 'submit', class: 'primary' }, t('app.new.create')), out);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError('');
    const names = people.value.split('\n').map((s) => s.trim()).filter(Boolean);
    const used = new Set();
    const participants = names.map((name) => {
      let id = name.toLowerCase().normalize('NFD').replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'p';
      while (used.has(id)) id += '-2';
      used.add(id);
      const rights = ['publish', 'listen'];
      if (chooseName.checked) rights.push('name');
      if (readMinutes.checked) rights.push('minutes');
      return { identity: id, display_name: name, rights };
    });
    try {
      const m = await api('POST', '/v1/meetings', { title: title.value.trim(), captions: captions.checked, participants,
        recording: record.checked, transcription: transcribe.checked });
      out.replaceChildren(h('p', {}, t('app.new.links')), h('ul', { class: 'links' }, (m.join || []).map((p) => {
        const url = joinURL(p);
        return h('li', {}, h('span', { class: 'name' }, p.display_name),
          h('input', { readonly: true, value: url, 'aria-label': p.display_name, class: 'link-field' }),
          h('button', { type: 'button', onclick: () => copy(url) }, t('app.copy', { name: p.display_name })));
      })), h('p', {}, h('a', { href: `#/m/${encodeURIComponent(m.id)}` }, m.title)));
    } catch (err) {
      failed(err);
    }
  });
  return form;
}

async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    status(t('app.copied'));
  } catch {
    status(text);
  }
}

// --- one meeting -------------------------------------------------------------

async function showMeeting(id, seekTo) {
  const title = h('h1', { id: 'view-title', tabindex: '-1' }, '…');
  const state = h('p', { id: 'meeting-state', class: 'state-line' });
  const actions = h('div', { class: 'controls' });
  const people = h('ul', { id: 'people', class: 'people' });
  const body = h('div', { id: 'minutes' });
  setView('meeting', h('p', {}, h('a', { href: '#/' }, '← ' + t('app.back'))), title, state, actions, people, body);
  let m;
  try {
    m = await api('GET', `/v1/meetings/${encodeURIComponent(id)}`);
  } catch (err) {
    // A host key sees only its own meetings: another's answers 404.
    if (err.status === 404) {
      title.textContent = t('app.meetings');
      return showError(t('err.notFound'));
    }
    return failed(err);
  }
  title.textContent = m.title || m.id;
  document.title = `${m.title} · Greffier`;
  const live = m.state === 'created' || m.state === 'live';
  const showState = (mm) => {
    const p = mm.pipeline;
    state.replaceChildren(h('span', { class: 'badge ' + mm.state }, stateText(mm.state)),
      p && p.segments ? ' ' + t('app.progress', { done: p.segments_transcribed, total: p.segments }) : '');
    state.dataset.state = mm.state;
  };
  showState(m);
  if (live) {
    const switches = switchesLine(id, m.switches, actions);
    if (can('meetings:control')) {
      actions.append(h('button', { type: 'button', class: 'danger', id: 'end', onclick: async (ev) => {
        ev.target.disabled = true;
        try {
          await api('POST', `/v1/meetings/${encodeURIComponent(id)}/end`);
        } catch (err) {
          ev.target.disabled = false;
          failed(err);
        }
      } }, t('app.end')));
    }
    // Who is here needs meetings:read (an agent key reads minutes only).
    if (!can('meetings:read')) return;
    const src = new EventSource(`/v1/meetings/${encodeURIComponent(id)}/room`);
    src.addEventListener('room', (ev) => {
      const room = JSON.parse(ev.data);
      switches.show(room);
      people.replaceChildren(...room.participants.map((p) => h('li', { dataset: { identity: p.identity, here: p.here, speaking: p.speaking } },
        h('span', { class: 'dot', 'aria-hidden': 'true' }), h('span', { class: 'name' }, p.name),
        h('span', { class: 'state' }, p.speaking ? t('room.speaking') : p.here ? t('room.here') : t('room.away')))));
    });
    src.addEventListener('ended', () => {
      src.close();
      actions.replaceChildren();
      people.replaceChildren();
      status(t('app.ended'));
      body.replaceChildren(h('p', { class: 'notice', id: 'ended-notice' }, t('app.ended')));
      showMeeting(id);
    });
    stopView = () => src.close();
    return;
  }
  if (can('meetings:control') && m.state !== 'ended') {
    actions.append(h('button', { type: 'button', id: 'rerun', onclick: async () => {
      try {
        await api('POST', `/v1/meetings/${encodeURIComponent(id)}/rerun`);
        status(t('app.rerun.done'));
        showMeeting(id);
      } catch (err) { failed(err); }
    } }, t('app.rerun')));
  }
  if (m.state === 'ended') {
    // Waiting for transcription: follow progress until the minutes land.
    const timer = setInterval(async () => {
      try {
        const mm = await api('GET', `/v1/meetings/${encodeURIComponent(id)}`);
        showState(mm);
        if (mm.state !== 'ended') {
          clearInterval(timer);
          showMeeting(id);
        }
      } catch { /* the next tick tries again */ }
    }, 3000);
    stopView = () => clearInterval(timer);
  }
  if (!can('minutes:read')) return;
  let doc;
  try {
    doc = await api('GET', `/v1/meetings/${encodeURIComponent(id)}/minutes`);
  } catch (err) {
    body.replaceChildren(h('p', {}, err.code === 'no_minutes' ? t('app.noMinutes') : err.message));
    return;
  }
  renderMinutes(m, doc, body, seekTo);
}

// switchesLine shows what a live meeting records and, to a key that may
// control it, buttons that start and stop recording and transcription.
function switchesLine(id, initial, actions) {
  const line = h('p', { id: 'switches', class: 'state-line', role: 'status', 'aria-live': 'polite' });
  actions.before(line);
  const buttons = {};
  let cur = initial || { recording: true, transcription: true, declined: [] };
  const show = (sw) => {
    cur = { ...cur, ...sw };
    const onOff = (v) => t(v ? 'app.on' : 'app.off');
    const names = new Map((cur.participants || []).map((p) => [p.identity, p.name]));
    const declined = (cur.declined || []).map((id) => names.get(id) || id);
    line.textContent = t('app.switches', { recording: onOff(cur.recording), transcription: onOff(cur.transcription) }) +
      (declined.length ? ' · ' + t('app.declined', { names: declined.join(', ') }) : '');
    line.dataset.recording = cur.recording ? 'on' : 'off';
    line.dataset.transcription = cur.transcription ? 'on' : 'off';
    for (const [what, b] of Object.entries(buttons)) {
      b.setAttribute('aria-pressed', String(cur[what]));
      b.textContent = t(`app.${what}.${cur[what] ? 'stop' : 'start'}`);
    }
  };
  if (can('meetings:control')) {
    for (const what of ['recording', 'transcription']) {
      buttons[what] = h('button', { type: 'button', id: `${what}-toggle`, onclick: async (ev) => {
        ev.target.disabled = true;
        try {
          show(await api('POST', `/v1/meetings/${encodeURIComponent(id)}/${what}/${cur[what] ? 'stop' : 'start'}`));
        } catch (err) {
          failed(err);
        } finally {
          ev.target.disabled = false;
        }
      } });
      actions.append(buttons[what]);
    }
  }
  show(cur);
  return { show };
}

function renderMinutes(m, doc, body, seekTo) {
  const mix = can('recordings:read') ? `/v1/meetings/${encodeURIComponent(m.id)}/mix.flac` : undefined;
  body.replaceChildren(...minutesView(doc, { mix, seekTo }), speakersSection(m, doc), downloads(m, doc));
}

function speakersSection(m, doc) {
  const sec = h('section', { 'aria-labelledby': 'sp-h' }, h('h2', { id: 'sp-h' }, t('app.speakers')));
  const ul = h('ul', { class: 'speakers' });
  for (const s of doc.speakers || []) {
    const li = h('li', {}, h('span', { class: 'name' }, s.name || s.id));
    if (can('meetings:control')) {
      const inputId = 'rename-' + s.id;
      const input = h('input', { id: inputId, value: s.name || '', maxlength: '200', required: true });
      const form = h('form', { class: 'inline' }, h('label', { for: inputId, class: 'sr-only' }, t('app.rename.label', { name: s.name || s.id })),
        input, h('button', { type: 'submit' }, t('app.rename')));
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        try {
          await api('PATCH', `/v1/meetings/${encodeURIComponent(m.id)}/participants/${encodeURIComponent(s.id)}`, { display_name: input.value.trim() });
          status(t('app.renamed'));
          showMeeting(m.id);
        } catch (err) { failed(err); }
      });
      li.append(form);
    }
    ul.append(li);
  }
  sec.append(ul);
  return sec;
}

function downloads(m, doc) {
  const base = `/v1/meetings/${encodeURIComponent(m.id)}`;
  const links = [];
  for (const fmt of ['md', 'txt', 'vtt', 'srt', 'json']) {
    links.push([`${base}/minutes.${fmt}`, t('app.dl.minutes', { fmt: fmt.toUpperCase() })]);
  }
  if (can('recordings:read')) {
    links.push([`${base}/mix.flac`, t('app.dl.mix')], [`${base}/archive.webm`, t('app.dl.archive')]);
    for (const s of doc.speakers || []) {
      links.push([`${base}/speakers/${encodeURIComponent(s.id)}.flac`, t('app.dl.speaker', { name: s.name || s.id })]);
    }
  }
  return h('section', { 'aria-labelledby': 'dl-h' }, h('h2', { id: 'dl-h' }, t('app.downloads')),
    h('ul', { class: 'downloads' }, links.map(([href, label]) => h('li', {}, h('a', { href, download: '' }, label)))));
}

// --- search --------------------------------------------------------------------

function showSearch(q) {
  const input = h('input', { id: 'q', type: 'search', value: q || '', required: true });
  const results = h('div', { id: 'results' });
  const form = h('form', { role: 'search', class: 'card' },
    h('div', { class: 'field' }, h('label', { for: 'q' }, t('app.search.label')), input),
    h('button', { type: 'submit', class: 'primary' }, t('app.search')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    location.hash = '#/search?q=' + encodeURIComponent(input.value.trim());
  });
  setView('search', h('h1', { id: 'view-title', tabindex: '-1' }, t('app.search')), form, results);
  if (!q) return input.focus();
  api('GET', '/v1/search?q=' + encodeURIComponent(q)).then(({ hits }) => {
    const summary = h('p', { role: 'status' }, hits.length ? t('app.search.results', { n: hits.length, q }) : t('app.search.none', { q }));
    results.replaceChildren(summary, h('ol', { class: 'hits' }, hits.map((hit) =>
      h('li', {}, h('a', { href: `#/m/${encodeURIComponent(hit.meeting_id)}?t=${hit.start}` },
        h('strong', {}, hit.title), ' · ', hit.name || hit.speaker, ' · ', clock(hit.start)),
      h('p', { class: 'said' }, hit.snippet || hit.text)))));
  }).catch(failed);
}

// --- routing ---------------------------------------------------------------------

function route() {
  showError('');
  status('');
  if (!me) return showSignIn();
  const hash = location.hash.slice(1) || '/';
  const [path, query] = hash.split('?');
  const params = new URLSearchParams(query || '');
  const mm = path.match(/^\/m\/([^/]+)$/);
  if (mm) {
    const at = params.get('t');
    showMeeting(decodeURIComponent(mm[1]), at === null ? undefined : Number(at));
  } else if (path === '/search') {
    showSearch(params.get('q') || '');
  } else {
    showMeetings();
  }
  $('view-title')?.focus();
}

async function main() {
  apply();
  setupSwitch($('lang'), () => { if (me) $('who').textContent = t('app.signedInAs', { name: me.name, role: me.role }); route(); });
  $('signout').addEventListener('click', async () => {
    await api('DELETE', '/v1/session').catch(() => {});
    me = null;
    showSignIn();
  });
  window.addEventListener('hashchange', route);
  try {
    me = await api('GET', '/v1/session');
    signedIn();
  } catch (err) {
    if (err.status !== 401) showError(err.message);
    showSignIn();
  }
}

main();
