// The minutes as a page shows them: the player (when the page may play the
// mix), the summary with its citations and the transcript by speaker with
// times, the current line following playback. The host's pages (app.js)
// and a participant's link after the meeting (room.js) both use it.
import { t, clock } from './i18n.js';

// h builds an element: h('a', {href: '#'}, 'text', child...).
export function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  el.append(...kids.flat().filter((k) => k !== null && k !== undefined));
  return el;
}

export function nameOf(doc, speaker) {
  return doc.speakers?.find((s) => s.id === speaker)?.name || speaker;
}

// minutesView returns the elements showing doc. With mix (the mix's URL),
// a player plays it and every time is a button that plays that moment;
// without, times are plain text. seekTo (seconds) starts the player there.
export function minutesView(doc, { mix, seekTo } = {}) {
  const parts = [];
  let audio = null;
  // chosen is the line a person asked for (clicked, cited, a search hit):
  // it stays the current line while the player is in it, even where
  // another person's line overlaps it (people talk over each other).
  // Moving the player by its own controls chooses a moment, not a line:
  // a seek to anywhere but seekingTo forgets the chosen line.
  let chosen = null;
  let seekingTo = null;
  let follow = () => {};
  const seek = (sec, line) => {
    if (!audio) return;
    chosen = line || null;
    seekingTo = sec;
    audio.currentTime = sec;
    follow();
    audio.play().catch(() => {});
  };
  if (mix) {
    audio = h('audio', { id: 'player', controls: true, preload: 'metadata', src: mix });
    const box = h('section', { class: 'player card', 'aria-labelledby': 'player-h' }, h('h2', { id: 'player-h' }, t('app.player')), audio);
    audio.addEventListener('error', () => { box.hidden = true; });
    parts.push(box);
  }
  if (!doc.complete) parts.push(h('p', { class: 'notice' }, t('app.incomplete')));
  const turns = []; // the transcript's lines, filled below
  // line returns the transcript line a button plays: its own, or, for a
  // citation, the cited speaker's line starting there.
  const at = (sec, label, cls, line) => (audio
    ? h('button', { type: 'button', class: cls, onclick: () => seek(sec, line()), 'aria-label': label }, clock(sec))
    : h('span', { class: cls }, clock(sec)));
  const lineAt = (sec, speaker) => turns.find((li) => li.dataset.speaker === speaker && Math.abs(Number(li.dataset.start) - sec) < 0.001);
  const cite = (c) => at(c.start, t('app.play', { time: clock(c.start), name: nameOf(doc, c.speaker) }), 'cite', () => lineAt(c.start, c.speaker));
  const point = (p) => h('li', {}, p.text, ' ', (p.citations || []).map(cite));
  if (doc.summary) {
    const s = doc.summary;
    const sec = h('section', { 'aria-labelledby': 'sum-h', class: 'summary' }, h('h2', { id: 'sum-h' }, t('app.summary')),
      h('p', {}, s.abstract.text, ' ', (s.abstract.citations || []).map(cite)));
    for (const [key, list] of [['app.decisions', s.decisions], ['app.actions', s.action_items], ['app.topics', s.topics]]) {
      if (list && list.length) sec.append(h('h3', {}, t(key)), h('ul', {}, list.map(point)));
    }
    parts.push(sec);
  }
  for (const [i, tu] of (doc.turns || []).entries()) {
    const li = h('li', { class: 'turn', dataset: { start: tu.start, end: tu.end, speaker: tu.speaker, i } },
      at(tu.start, t('app.play', { time: clock(tu.start), name: tu.name }), 'at', () => li),
      h('span', { class: 'who' }, tu.name || tu.speaker), ' ',
      h('span', { class: 'said' }, tu.text));
    turns.push(li);
  }
  parts.push(h('section', { 'aria-labelledby': 'tr-h' }, h('h2', { id: 'tr-h' }, t('app.transcript')),
    h('ol', { class: 'transcript', id: 'transcript' }, turns)));
  // What is not in the transcript, and why: stretches that could not be
  // transcribed (missing), and those not recorded by choice.
  const gaps = (list, id, title) => {
    if (!list || !list.length) return;
    parts.push(h('section', { 'aria-labelledby': id + '-h', id }, h('h2', { id: id + '-h' }, t(title)),
      h('ul', { class: 'gaps' }, list.map((g) => h('li', { dataset: { speaker: g.speaker, start: g.start, end: g.end } },
        t('app.gap', { who: g.speaker ? g.name || g.speaker : t('app.everyone'), from: clock(g.start), to: clock(g.end), reason: g.reason }))))));
  };
  gaps(doc.missing, 'missing', 'app.missing');
  gaps(doc.not_recorded, 'not-recorded', 'app.notRecorded');
  if (audio) {
    // The current line is the one the player is in. Lines overlap when
    // people talk over each other; the line a person chose wins while the
    // player is in it, else the one that started last (the newest voice).
    // A line stays current 0.3 s past its end, so that a short pause does
    // not blank the transcript.
    const TAIL = 0.3;
    const within = (li, now, tail) => now >= Number(li.dataset.start) - 0.05 && now < Number(li.dataset.end) + tail;
    let current = null;
    follow = () => {
      const now = audio.currentTime;
      if (chosen && !within(chosen, now, TAIL)) chosen = null;
      const latest = (tail) => turns.findLast((li) => within(li, now, tail));
      const next = chosen || latest(0) || latest(TAIL) || null;
      if (next === current) return;
      current?.removeAttribute('aria-current');
      current = next;
      if (current) {
        current.setAttribute('aria-current', 'true');
        current.scrollIntoView({ block: 'nearest' });
      }
    };
    // seeked as well as timeupdate: the line is right as soon as the
    // player has moved, whichever of the two a browser fires first.
    audio.addEventListener('seeking', () => {
      if (seekingTo === null || Math.abs(audio.currentTime - seekingTo) > 0.01) chosen = null;
      seekingTo = null;
    });
    audio.addEventListener('timeupdate', follow);
    audio.addEventListener('seeked', follow);
    if (seekTo !== undefined) {
      const hit = turns.findLast((li) => within(li, seekTo, 0)) || null;
      audio.addEventListener('loadedmetadata', () => { chosen = hit; seekingTo = seekTo; audio.currentTime = seekTo; }, { once: true });
      // Focus once the parts are in the page.
      queueMicrotask(() => hit?.querySelector('button').focus());
    }
  }
  return parts;
}
