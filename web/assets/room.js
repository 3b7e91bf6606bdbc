// Greffier's meeting room: WHIP (RFC 9725) publishes the microphone, WHEP
// plays the loudest others as the SFU forwards them, and the room stream
// (Server-Sent Events) says who is here, who speaks and when the meeting
// ends. The join token comes from the URL fragment (#token=...), which
// browsers never send to servers.
import { t, apply, setupSwitch, formatDate } from './i18n.js';
import { h, minutesView } from './minutes.js';

const $ = (id) => document.getElementById(id);
const LISTEN_SLOTS = 3; // the SFU forwards this many loudest speakers

const st = {
  token: '', claims: null, meeting: '', joined: false, ended: false, left: false,
  stream: null, pub: null, lis: null, sessions: new Set(), audioCtx: null,
  members: new Map(), captions: null, retry: 0, muted: false, minutes: null,
  rec: null, // the meeting's recording switches, from the room stream
};

function status(key, vars) {
  $('status').textContent = key ? t(key, vars) : '';
}

function showError(text) {
  const e = $('error');
  e.textContent = text;
  e.hidden = !text;
}

// claimsOf reads the join token's public part (a JWT) to greet the person
// and to tell an expired link apart; the server still checks everything.
function claimsOf(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const c = JSON.parse(atob(part));
    const aud = Array.isArray(c.aud) ? c.aud[0] : c.aud;
    if (!aud || !c.sub) return null;
    return { meeting: aud, identity: c.sub, name: c.name || c.sub, rights: c.rights || [], exp: c.exp };
  } catch {
    return null;
  }
}

// errorText turns an answer's error code into a sentence for a person.
function errorText(code, msg) {
  switch (code) {
    case 'meeting_ended': return t('err.ended');
    case 'token_revoked': return t('err.revoked');
    case 'meeting_full': return t('err.full');
    case 'meeting_not_found': return t('err.notFound');
    case 'forbidden': return t('err.forbidden');
    case 'unauthorized':
      return st.claims && st.claims.exp * 1000 < Date.now()
        ? t('err.expired', { date: formatDate(new Date(st.claims.exp * 1000)) })
        : t('err.badLink');
    case 'unavailable': case 'internal': case 'network': return t('err.unavailable');
    default: return t('err.generic', { msg });
  }
}

class AnswerError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

function gathered(pc) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    const timer = setTimeout(resolve, 5000);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

// negotiate POSTs the offer (no trickle: the offer carries every
// candidate), applies the answer and returns the session URL.
async function negotiate(pc, endpoint) {
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const post = (url) =>
    fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp', Authorization: 'Bearer ' + st.token },
      body: pc.localDescription.sdp,
    });
  let resp;
  try {
    resp = await post(endpoint);
    if (resp.redirected && resp.status === 401) {
      // The meeting's media is on another node (307), at another origin:
      // browsers drop Authorization on such a redirect (Fetch standard),
      // so the offer goes again, straight to that node.
      resp = await post(resp.url);
    }
  } catch {
    throw new AnswerError('network', 'network');
  }
  if (resp.status !== 201) {
    let code = 'http_' + resp.status;
    let message = 'HTTP ' + resp.status;
    try {
      ({ code, message } = (await resp.json()).error);
    } catch {
      // not our JSON error: keep the status
    }
    throw new AnswerError(code, message);
  }
  const session = new URL(resp.headers.get('Location'), new URL(resp.url || endpoint, document.baseURI)).toString();
  await pc.setRemoteDescription({ type: 'answer', sdp: await resp.text() });
  st.sessions.add(session);
  return session;
}

function hangUp(session) {
  if (!session) return;
  st.sessions.delete(session);
  fetch(session, { method: 'DELETE', headers: { Authorization: 'Bearer ' + st.token }, keepalive: true }).catch(() => {});
}

function closeMedia() {
  for (const s of [...st.sessions]) hangUp(s);
  for (const pc of [st.pub, st.lis]) pc?.pc.close();
  st.pub = st.lis = null;
  st.stream?.getTracks().forEach((tr) => tr.stop());
  // Forgotten once closed: after a failed join the next room event
  // follows the captions again.
  st.captions?.close();
  st.captions = null;
  $('audio').replaceChildren();
}

// --- levels ----------------------------------------------------------------

function analyser(stream) {
  const src = st.audioCtx.createMediaStreamSource(stream);
  const a = st.audioCtx.createAnalyser();
  a.fftSize = 1024;
  src.connect(a);
  return a;
}

function rms(a, buf) {
  a.getFloatTimeDomainData(buf);
  let sum = 0;
  for (const v of buf) sum += v * v;
  return Math.sqrt(sum / buf.length);
}

let own = null;
const heard = [];
function meterLoop() {
  const buf = new Float32Array(1024);
  setInterval(() => {
    const mine = own && !st.muted ? rms(own, buf) : 0;
    $('level').value = Math.min(1, mine * 4);
    let others = 0;
    for (const a of heard) others = Math.max(others, rms(a, buf));
    $('heard').value = Math.min(1, others * 4);
    // What the page really received, for people and for tests alike.
    const peak = Number(document.body.dataset.heardPeak || 0);
    if (others > peak) document.body.dataset.heardPeak = others.toFixed(4);
    if (mine > Number(document.body.dataset.levelPeak || 0)) document.body.dataset.levelPeak = mine.toFixed(4);
  }, 100);
}

// --- devices -----------------------------------------------------------------

async function fillDevices() {
  let devices = [];
  try {
    devices = await navigator.mediaDevices.enumerateDevices();
  } catch {
    return;
  }
  const fill = (select, kind) => {
    const keep = select.value;
    select.replaceChildren(new Option(t('room.default'), ''));
    for (const d of devices.filter((x) => x.kind === kind && x.deviceId && x.deviceId !== 'default')) {
      select.append(new Option(d.label || `${kind} ${select.length}`, d.deviceId));
    }
    select.value = keep;
    if (select.selectedIndex < 0) select.value = '';
  };
  fill($('mic'), 'audioinput');
  fill($('mic-live'), 'audioinput');
  fill($('output'), 'audiooutput');
  fill($('output-live'), 'audiooutput');
  const canSink = 'setSinkId' in HTMLMediaElement.prototype;
  $('output').disabled = $('output-live').disabled = !canSink;
}

async function openMic(deviceId) {
  // Raw audio: the recording and its transcription want the voice as
  // spoken, not as a call's echo canceller and gain control reshape it.
  const audio = { echoCancellation: false, noiseSuppression: false, autoGainControl: false };
  if (deviceId) audio.deviceId = { exact: deviceId };
  try {
    return await navigator.mediaDevices.getUserMedia({ audio, video: false });
  } catch (err) {
    const key = { NotAllowedError: 'err.micDenied', SecurityError: 'err.micDenied', NotFoundError: 'err.micMissing',
      OverconstrainedError: 'err.micMissing', NotReadableError: 'err.micBusy' }[err.name];
    throw new AnswerError('mic', key ? t(key) : t('err.generic', { msg: err.message }));
  }
}

async function switchMic(deviceId) {
  if (!st.pub) return;
  const stream = await openMic(deviceId);
  const track = stream.getAudioTracks()[0];
  track.enabled = !st.muted;
  await st.pub.sender.replaceTrack(track);
  st.stream.getTracks().forEach((tr) => tr.stop());
  st.stream = stream;
  own = analyser(stream);
  document.body.dataset.mic = track.label;
}

async function setOutput(deviceId) {
  for (const a of $('audio').querySelectorAll('audio')) {
    await a.setSinkId?.(deviceId).catch(() => {});
  }
}

// --- media -------------------------------------------------------------------

function watch(pc, restart) {
  let timer = null;
  pc.addEventListener('connectionstatechange', () => {
    if (st.ended || st.left) return;
    const s = pc.connectionState;
    if (s === 'connected') {
      clearTimeout(timer);
      st.retry = 0;
      showError('');
      status('room.connected');
    } else if (s === 'disconnected' || s === 'failed') {
      status('room.reconnecting');
      clearTimeout(timer);
      // A disconnected ICE may recover by itself; a failed one will not.
      timer = setTimeout(restart, s === 'failed' ? 0 : 5000);
    }
  });
}

// iceServers asks the server which STUN/TURN servers to use (its embedded
// TURN server, for networks that block UDP), for each connection: TURN
// credentials last at most 12 hours, so a reconnection in a long meeting
// needs fresh ones. Without any, or if the question fails, the page
// connects directly (with the last list it got, if any).
// A node that does not hold the meeting's media redirects the question
// (307) to the one that does, whose TURN server relays to its media port:
// as for offers (negotiate), the browser drops the token on that
// cross-origin redirect, so the question goes again, straight there.
let iceList = null;
async function iceServers() {
  const ask = (url) => fetch(url, { headers: { Authorization: 'Bearer ' + st.token } });
  try {
    let resp = await ask('/v1/ice-servers');
    if (resp.redirected && resp.status === 401) resp = await ask(resp.url);
    const data = resp.ok ? await resp.json() : null;
    if (Array.isArray(data?.ice_servers)) iceList = data.ice_servers;
  } catch { /* a direct connection may still work */ }
  // The URLs in use, for whoever debugs the page (and the tests).
  document.body.dataset.iceServers = JSON.stringify((iceList || []).flatMap((s) => s.urls));
  return iceList || [];
}

async function publish() {
  const pc = new RTCPeerConnection({ iceServers: await iceServers() });
  const track = st.stream.getAudioTracks()[0];
  track.enabled = !st.muted;
  const tr = pc.addTransceiver(track, { direction: 'sendonly', streams: [st.stream] });
  // Which microphone the page sends, for whoever debugs it (and tests).
  document.body.dataset.mic = track.label;
  const pub = { pc, sender: tr.sender, session: '' };
  st.pub = pub;
  watch(pc, () => reconnect('pub'));
  pub.session = await negotiate(pc, '/v1/whip');
}

async function listen() {
  const pc = new RTCPeerConnection({ iceServers: await iceServers() });
  for (let i = 0; i < LISTEN_SLOTS; i++) pc.addTransceiver('audio', { direction: 'recvonly' });
  const lis = { pc, session: '' };
  st.lis = lis;
  pc.addEventListener('track', (ev) => {
    const stream = new MediaStream([ev.track]);
    const audio = document.createElement('audio');
    audio.autoplay = true;
    audio.srcObject = stream;
    const sink = $('output-live').value;
    if (sink) audio.setSinkId?.(sink).catch(() => {});
    $('audio').append(audio);
    heard.push(analyser(stream));
  });
  watch(pc, () => reconnect('lis'));
  lis.session = await negotiate(pc, '/v1/whep');
  // Which session the page listens on, for whoever debugs it (and the
  // tests that cut it from the server).
  document.body.dataset.listenSession = lis.session;
}

async function reconnect(which) {
  if (st.ended || st.left) return;
  const old = st[which];
  if (old) {
    hangUp(old.session);
    old.pc.close();
  }
  if (which === 'lis') {
    heard.length = 0;
    $('audio').replaceChildren();
  }
  const wait = Math.min(10000, 1000 * 2 ** st.retry++);
  status('room.reconnecting');
  await new Promise((r) => setTimeout(r, wait));
  try {
    await (which === 'pub' ? publish() : listen());
  } catch (err) {
    if (err.code === 'meeting_ended') return showEnded();
    if (['network', 'unavailable', 'internal'].includes(err.code) || /^http_5/.test(err.code)) return reconnect(which);
    showError(errorText(err.code, err.message));
  }
}

// chooseName trades the token for the same token carrying the name the
// participant typed (the server accepts it only with the name right).
async function chooseName() {
  const name = $('name').value.trim();
  if (!name) throw new AnswerError('name', t('room.name.missing'));
  let resp;
  try {
    resp = await fetch(`/v1/meetings/${encodeURIComponent(st.meeting)}/name`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + st.token },
      body: JSON.stringify({ display_name: name }),
    });
  } catch {
    throw new AnswerError('network', 'network');
  }
  const data = await resp.json().catch(() => null);
  if (!resp.ok) {
    const e = data?.error || {};
    if (e.code === 'bad_name') throw new AnswerError('name', e.message);
    throw new AnswerError(e.code || 'http_' + resp.status, e.message || 'HTTP ' + resp.status);
  }
  st.token = data.token;
  st.claims = claimsOf(st.token) || st.claims;
  $('me').textContent = st.claims.name;
}

// setConsent tells the server whether this participant may be recorded:
// before any audio is sent (the pre-join choice), or during the meeting;
// the room stream then says so to everyone.
async function setConsent(record) {
  let resp;
  try {
    resp = await fetch(`/v1/meetings/${encodeURIComponent(st.meeting)}/consent`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + st.token },
      body: JSON.stringify({ record }),
    });
  } catch {
    throw new AnswerError('network', 'network');
  }
  const data = await resp.json().catch(() => null);
  if (!resp.ok) {
    const e = data?.error || {};
    throw new AnswerError(e.code || 'http_' + resp.status, e.message || 'HTTP ' + resp.status);
  }
  // The answer is the meeting's switches now: shown at once, without
  // waiting for the room stream to say it.
  if (data && st.rec) {
    st.rec = { ...st.rec, declined: data.declined || [] };
    showRecording();
  }
}

// toggleConsent declines, or accepts again, during the meeting.
async function toggleConsent() {
  const b = $('consent-toggle');
  const declining = b.getAttribute('aria-pressed') !== 'true';
  b.disabled = true;
  showError('');
  try {
    await setConsent(!declining);
    status(declining ? 'room.consent.declined' : 'room.consent.given');
  } catch (err) {
    showError(errorText(err.code, err.message));
  } finally {
    b.disabled = false;
  }
}

async function join() {
  $('join').disabled = true;
  status('room.joining');
  showError('');
  try {
    if (st.claims.rights.includes('name')) await chooseName();
    if (st.claims.rights.includes('publish') && $('decline').checked) await setConsent(false);
    st.audioCtx = st.audioCtx || new AudioContext();
    await st.audioCtx.resume();
    const can = (r) => st.claims.rights.includes(r);
    if (can('publish')) {
      st.stream = await openMic($('mic').value);
      own = analyser(st.stream);
    }
    const steps = [];
    if (can('publish')) steps.push(publish());
    if (can('listen')) steps.push(listen());
    await Promise.all(steps);
    st.joined = true;
    $('prejoin').hidden = true;
    $('room').hidden = false;
    $('mic-live').value = $('mic').value;
    $('output-live').value = $('output').value;
    $('mute').hidden = !can('publish');
    $('consent-toggle').hidden = !can('publish');
    document.body.dataset.state = 'joined';
    status('room.connected');
    $('room-title').focus?.();
    fillDevices();
    renderPeople();
  } catch (err) {
    closeMedia();
    if (err.code === 'meeting_ended') return showEnded();
    showError(err.code === 'mic' || err.code === 'name' ? err.message : errorText(err.code, err.message));
    if (err.code === 'name') $('name').focus();
    status('');
    $('join').disabled = false;
  }
}

function leave() {
  st.left = true;
  closeMedia();
  $('room').hidden = true;
  status('');
  showError('');
  document.body.dataset.state = 'left';
  $('status').textContent = t('room.left.self');
}

function toggleMute() {
  st.muted = !st.muted;
  st.stream?.getAudioTracks().forEach((tr) => { tr.enabled = !st.muted; });
  const b = $('mute');
  b.setAttribute('aria-pressed', String(st.muted));
  b.dataset.i18n = st.muted ? 'room.unmute' : 'room.mute';
  b.textContent = t(b.dataset.i18n);
  status(st.muted ? 'room.muted' : 'room.unmuted');
}

// --- room stream ---------------------------------------------------------------

function renderPeople() {
  const ul = $('people');
  ul.replaceChildren();
  const list = [...st.members.values()].sort((a, b) => Number(b.here) - Number(a.here));
  for (const m of list) {
    const li = document.createElement('li');
    li.dataset.identity = m.identity;
    li.dataset.here = String(m.here);
    li.dataset.speaking = String(m.speaking);
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = m.name + (m.identity === st.claims.identity ? ' ' + t('room.youMark') : '');
    const state = document.createElement('span');
    state.className = 'state';
    state.textContent = m.speaking ? t('room.speaking') : m.here ? t('room.here') : t('room.away');
    const dot = document.createElement('span');
    dot.className = 'dot';
    dot.setAttribute('aria-hidden', 'true');
    li.append(dot, name, state);
    ul.append(li);
  }
}

function onRoom(room) {
  const before = st.members;
  st.members = new Map(room.participants.map((p) => [p.identity, p]));
  const news = [];
  for (const m of st.members.values()) {
    const was = before.get(m.identity);
    if (m.speaking && !was?.speaking) news.push(t('room.isSpeaking', { name: m.name }));
    else if (m.here && !was?.here && before.size) news.push(t('room.joined', { name: m.name }));
    else if (!m.here && was?.here) news.push(t('room.left', { name: m.name }));
  }
  if (news.length) $('speaker-news').textContent = news.join('. ');
  renderPeople();
  st.rec = { recording: room.recording ?? true, transcription: room.transcription ?? true, declined: room.declined || [] };
  showRecording();
  if (room.captions && st.claims.rights.includes('listen') && !st.captions && !st.left && !st.ended) followCaptions();
  $('captions-box').hidden = !room.captions;
}

// showRecording says what the meeting records, before joining (the
// notice) and in the room (an announced banner), whenever it changes.
function showRecording() {
  const r = st.rec;
  if (!r) return;
  const declined = r.declined.includes(st.claims.identity);
  const on = r.recording && !declined;
  const key = declined ? 'room.rec.declined' : !r.recording ? 'room.rec.off' : r.transcription ? 'room.rec.both' : 'room.rec.recorded';
  // The banner holds its place from the start (the page does not move
  // under a pointer when the state arrives); only its words change, and
  // only a change is announced.
  $('consent-toggle').setAttribute('aria-pressed', String(declined));
  const banner = $('recording');
  banner.dataset.recording = on ? 'on' : 'off';
  banner.dataset.transcription = r.transcription ? 'on' : 'off';
  if (banner.dataset.i18n !== key) {
    banner.dataset.i18n = key;
    banner.textContent = t(key);
  }
  document.body.dataset.recording = r.recording ? 'on' : 'off';
  const title = !r.recording ? 'room.notice.off' : r.transcription ? 'room.notice.title' : 'room.notice.recorded';
  $('notice-title').dataset.i18n = title;
  $('notice-title').textContent = t(title);
  const body = $('notice-title').nextElementSibling;
  body.dataset.i18n = r.recording ? 'room.notice.body' : 'room.notice.offBody';
  body.textContent = t(body.dataset.i18n);
}

function followCaptions() {
  const src = new EventSource(`/v1/meetings/${encodeURIComponent(st.meeting)}/captions?token=${encodeURIComponent(st.token)}`);
  st.captions = src;
  src.addEventListener('caption', (ev) => {
    const c = JSON.parse(ev.data);
    const box = $('captions');
    // One line per run of a speaker's words: final words stay, the word
    // being recognised shows after them until it is final.
    let p = box.lastElementChild;
    if (!p || p.dataset.speaker !== c.speaker) {
      p = document.createElement('p');
      p.dataset.speaker = c.speaker;
      const who = document.createElement('strong');
      who.textContent = t('room.says', { name: c.name || c.speaker });
      const done = document.createElement('span');
      const partial = document.createElement('span');
      partial.className = 'partial';
      p.append(who, ' ', done, partial);
      box.append(p);
    }
    const done = p.children[1];
    const partial = p.children[2];
    if (c.final) {
      done.textContent += (done.textContent ? ' ' : '') + c.text;
      partial.textContent = '';
    } else {
      partial.textContent = (done.textContent ? ' ' : '') + c.text;
    }
    while (box.children.length > 30) box.firstChild.remove();
    box.scrollTop = box.scrollHeight;
  });
  src.addEventListener('end', () => src.close());
}

function followRoom() {
  const src = new EventSource(`/v1/meetings/${encodeURIComponent(st.meeting)}/room?token=${encodeURIComponent(st.token)}`);
  let opened = false;
  src.addEventListener('open', () => { opened = true; });
  src.addEventListener('room', (ev) => onRoom(JSON.parse(ev.data)));
  src.addEventListener('ended', () => {
    src.close();
    showEnded();
  });
  src.addEventListener('end', () => {
    src.close();
    closeMedia();
    showError(t('err.revoked'));
  });
  src.addEventListener('error', () => {
    // EventSource retries by itself after a dropped connection; it gives
    // up (CLOSED) when the server refused the link.
    if (src.readyState === EventSource.CLOSED && !opened && !st.ended) {
      showError(errorText('unauthorized'));
      $('prejoin').hidden = true;
    } else if (!st.ended && st.joined) {
      status('room.reconnecting');
    }
  });
}

function showEnded() {
  if (st.ended) return;
  st.ended = true;
  closeMedia();
  for (const id of ['prejoin', 'room']) $(id).hidden = true;
  showError('');
  status('');
  document.body.dataset.state = 'ended';
  document.body.dataset.endedAt = String(Date.now());
  $('minutes-link').href = `/app/#/m/${encodeURIComponent(st.meeting)}`;
  $('ended').hidden = false;
  $('ended').focus();
  if (st.claims.rights.includes('minutes')) followMinutes();
  else $('minutes-ask').hidden = false;
}

function showMinutes() {
  if (!st.minutes) return;
  $('minutes').replaceChildren(h('h2', { id: 'minutes-h' }, t('room.minutes.title')),
    h('p', {}, st.minutes.title || ''), ...minutesView(st.minutes));
}

// meetingState reads the meeting's state from its room stream, which a
// join token may follow and which ends at once once the meeting is over.
async function meetingState() {
  const resp = await fetch(`/v1/meetings/${encodeURIComponent(st.meeting)}/room`, { headers: { Authorization: 'Bearer ' + st.token } });
  if (!resp.ok) return '';
  const states = [...(await resp.text()).matchAll(/"state":"(\w+)"/g)];
  return states.length ? states[states.length - 1][1] : '';
}

// followMinutes follows the pipeline after the meeting and shows the
// minutes, read with the join token's minutes right, once they are made.
async function followMinutes() {
  const line = $('minutes-state');
  // say keeps the line's key, so that switching the language translates
  // it (apply); a server's own message has none.
  const say = (key, text) => {
    if (key) line.dataset.i18n = key;
    else delete line.dataset.i18n;
    line.textContent = key ? t(key) : text;
  };
  say('room.minutes.wait');
  document.body.dataset.minutes = 'waiting';
  for (;;) {
    let state = '';
    try {
      state = await meetingState();
    } catch { /* the next round tries again */ }
    if (state === 'failed') {
      say('room.minutes.failed');
      document.body.dataset.minutes = 'failed';
      return;
    }
    if (state === 'ready' || state === 'incomplete') {
      try {
        const resp = await fetch(`/v1/meetings/${encodeURIComponent(st.meeting)}/minutes`, { headers: { Authorization: 'Bearer ' + st.token } });
        if (resp.ok) {
          st.minutes = await resp.json();
          say('', '');
          $('minutes-link').parentElement.hidden = true;
          showMinutes();
          document.body.dataset.minutes = 'shown';
          return;
        }
        if (resp.status === 401 || resp.status === 410) {
          const e = (await resp.json().catch(() => null))?.error || {};
          say('', resp.status === 401 ? errorText('unauthorized') : e.message);
          return;
        }
      } catch { /* the next round tries again */ }
    }
    await new Promise((r) => setTimeout(r, 3000));
  }
}

function main() {
  apply();
  setupSwitch($('lang'), () => {
    renderPeople();
    showMinutes();
    if (st.muted) $('mute').textContent = t('room.unmute');
  });
  const params = new URLSearchParams(location.hash.slice(1));
  st.token = params.get('token') || '';
  if (!st.token) return showError(t('err.noToken'));
  st.claims = claimsOf(st.token);
  if (!st.claims) return showError(t('err.badLink'));
  st.meeting = st.claims.meeting;
  if (st.claims.exp && st.claims.exp * 1000 < Date.now()) {
    return showError(t('err.expired', { date: formatDate(new Date(st.claims.exp * 1000)) }));
  }
  $('me').textContent = st.claims.name;
  if (st.claims.rights.includes('name')) {
    $('me-line').hidden = true;
    $('name-field').hidden = false;
    $('name').value = st.claims.name === st.claims.identity ? '' : st.claims.name;
  }
  $('decline-field').hidden = !st.claims.rights.includes('publish');
  $('prejoin').hidden = false;
  document.body.dataset.state = 'ready';
  $('join').addEventListener('click', join);
  $('leave').addEventListener('click', leave);
  $('mute').addEventListener('click', toggleMute);
  $('consent-toggle').addEventListener('click', toggleConsent);
  $('mic-live').addEventListener('change', (e) => switchMic(e.target.value).catch((err) => showError(err.message)));
  for (const id of ['output', 'output-live']) $(id).addEventListener('change', (e) => setOutput(e.target.value));
  navigator.mediaDevices?.addEventListener?.('devicechange', fillDevices);
  window.addEventListener('pagehide', () => { if (!st.ended) closeMedia(); });
  fillDevices();
  meterLoop();
  followRoom();
}

main();
