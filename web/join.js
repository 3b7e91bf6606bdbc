// Greffier join page: WHIP (RFC 9725) to publish the microphone, WHEP to
// listen. The join token comes from the URL fragment (#token=...).
'use strict';

const el = (id) => document.getElementById(id);

function show(state, detail) {
  el('state').textContent = state;
  el('detail').textContent = detail || '';
  document.body.dataset.state = state;
}

// gathered waits for ICE gathering: WHIP here has no trickle, the offer
// carries every candidate.
function gathered(pc) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') {
      resolve();
      return;
    }
    const timer = setTimeout(resolve, 5000);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

// negotiate POSTs the offer and applies the answer; it returns the
// session URL to DELETE when leaving.
async function negotiate(pc, endpoint, token) {
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const resp = await fetch(endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp', Authorization: 'Bearer ' + token },
    body: pc.localDescription.sdp,
  });
  if (resp.status !== 201) {
    let message = 'HTTP ' + resp.status;
    try {
      message = (await resp.json()).error.message;
    } catch (e) {
      // not our JSON error: keep the status
    }
    throw new Error(message);
  }
  const session = new URL(resp.headers.get('Location'), new URL(endpoint, document.baseURI)).toString();
  await pc.setRemoteDescription({ type: 'answer', sdp: await resp.text() });
  return session;
}

function leaveOnExit(session, token, pc) {
  const leave = () => {
    fetch(session, { method: 'DELETE', headers: { Authorization: 'Bearer ' + token }, keepalive: true });
    pc.close();
  };
  window.addEventListener('pagehide', leave, { once: true });
  el('leave').disabled = false;
  el('leave').addEventListener('click', () => {
    leave();
    show('left');
  }, { once: true });
}

async function publish(token) {
  show('asking for the microphone');
  // Raw audio: the recording and its transcription want the voice as
  // spoken, not as a call's echo canceller and gain control reshape it.
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    video: false,
  });
  const pc = new RTCPeerConnection();
  pc.addTransceiver(stream.getAudioTracks()[0], { direction: 'sendonly', streams: [stream] });
  pc.addEventListener('connectionstatechange', () => {
    show(pc.connectionState === 'connected' ? 'publishing' : pc.connectionState);
  });
  show('connecting');
  const session = await negotiate(pc, '/v1/whip', token);
  leaveOnExit(session, token, pc);
}

async function listen(token, slots) {
  const pc = new RTCPeerConnection();
  for (let i = 0; i < slots; i++) {
    pc.addTransceiver('audio', { direction: 'recvonly' });
  }
  pc.addEventListener('track', (ev) => {
    const audio = document.createElement('audio');
    audio.autoplay = true;
    audio.srcObject = new MediaStream([ev.track]);
    el('audio').appendChild(audio);
  });
  const session = await negotiate(pc, '/v1/whep', token);
  leaveOnExit(session, token, pc);
}

async function main() {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get('token');
  if (!token) {
    show('no token', 'Open the link you were given: it ends with #token=...');
    return;
  }
  const slots = Number(params.get('listen') || 0);
  try {
    if (params.get('publish') !== '0') {
      await publish(token);
    }
    if (slots > 0) {
      await listen(token, Math.min(slots, 16));
    }
  } catch (err) {
    show('failed', String(err && err.message ? err.message : err));
  }
}

main();
