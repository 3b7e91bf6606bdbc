// Greffier's two languages. The browser's language picks one; the
// switch in each page's header overrides it (kept in localStorage).
const en = {
  'lang.switch': 'Français',
  'lang.switchLabel': 'Passer en français',
  'skip': 'Skip to content',
  'room.title': 'Greffier: meeting',
  'room.notice.title': 'This meeting is recorded and transcribed',
  'room.notice.body': 'What you say is recorded and written into the minutes of the meeting, under your name. The host and the people they share the minutes with can read and hear it.',
  'room.notice.recorded': 'This meeting is recorded, not transcribed',
  'room.notice.off': 'This meeting is not recorded now',
  'room.notice.offBody': 'Nothing you say is kept while recording is off. The host may start recording during the meeting: this page will tell you at once.',
  'room.decline': 'Do not record me: the others hear me, nothing I say is kept or transcribed',
  'room.rec.both': 'Recording and transcription are on.',
  'room.rec.recorded': 'Recording is on; transcription is off.',
  'room.rec.off': 'Recording is off: nothing is kept.',
  'room.rec.declined': 'You are not recorded: you declined.',
  'room.you': 'You will appear as',
  'room.mic': 'Microphone',
  'room.output': 'Speaker or headphones',
  'room.default': 'Default',
  'room.join': 'Join the meeting',
  'room.joining': 'Joining…',
  'room.connected': 'You are in the meeting.',
  'room.reconnecting': 'Connection lost; trying again…',
  'room.people': 'People',
  'room.speaking': 'speaking',
  'room.says': '{name}:',
  'room.youMark': '(you)',
  'room.here': 'here',
  'room.away': 'not here',
  'room.isSpeaking': '{name} is speaking',
  'room.joined': '{name} joined',
  'room.left': '{name} left',
  'room.mute': 'Mute',
  'room.unmute': 'Unmute',
  'room.muted': 'Your microphone is muted.',
  'room.unmuted': 'Your microphone is on.',
  'room.level': 'Your microphone level',
  'room.heard': 'Sound from the others',
  'room.captions': 'Live captions',
  'room.leave': 'Leave',
  'room.left.self': 'You left the meeting. Open your link again to come back.',
  'room.ended': 'The meeting has ended; the minutes will be ready shortly.',
  'room.ended.minutes': 'Read the minutes (sign-in needed)',
  'room.name': 'Your name, as the others and the minutes will show it',
  'room.name.missing': 'Type your name, then join.',
  'room.minutes.ask': 'To read the minutes, ask the host of the meeting: this link does not open them.',
  'room.minutes.wait': 'The minutes are being prepared; this page shows them as soon as they are ready.',
  'room.minutes.failed': 'The minutes could not be made. Ask the host of the meeting.',
  'room.minutes.title': 'Minutes',
  'err.noToken': 'This page needs the link you were given: it ends with #token=… Open that link again.',
  'err.badLink': 'This link is not valid. Ask the host for a new one.',
  'err.expired': 'This link expired on {date}. Ask the host for a new one.',
  'err.revoked': 'This link was withdrawn by the host. Ask them for a new one.',
  'err.ended': 'This meeting is over: it can no longer be joined.',
  'err.full': 'The meeting is full. Try again later.',
  'err.notFound': 'This meeting does not exist (any more). Check the link.',
  'err.micDenied': 'Your browser refused the microphone. Allow it for this site (the icon near the address bar), then join again.',
  'err.micMissing': 'No microphone was found. Plug one in, then join again.',
  'err.micBusy': 'Your microphone is in use by another program. Close it, then join again.',
  'err.unavailable': 'The meeting server is not available right now. Trying again…',
  'err.forbidden': 'This link does not allow you to speak in this meeting.',
  'err.generic': 'Something went wrong: {msg}',
  'app.title': 'Greffier',
  'app.signin': 'Sign in',
  'app.signin.help': 'Paste the key your administrator gave you. It is kept by this browser as a session for 12 hours, never in the address bar.',
  'app.key': 'Key',
  'app.badKey': 'This key was refused. Check that you pasted the whole key.',
  'app.signout': 'Sign out',
  'app.signedInAs': 'Signed in as {name} ({role})',
  'app.meetings': 'Meetings',
  'app.search': 'Search',
  'app.search.label': 'Search what was said',
  'app.search.none': 'Nothing found for “{q}”.',
  'app.search.results': '{n} result(s) for “{q}”',
  'app.new': 'New meeting',
  'app.new.title': 'Title',
  'app.new.people': 'Participants, one name per line',
  'app.missing': 'Missing from this transcript',
  'app.notRecorded': 'Not recorded',
  'app.everyone': 'Everyone',
  'app.gap': '{who}, {from} to {to}: {reason}',
  'app.new.recording': 'Record from the start (otherwise you start it during the meeting)',
  'app.new.transcription': 'Transcribe what is recorded',
  'app.switches': 'Recording: {recording} · Transcription: {transcription}',
  'app.on': 'on',
  'app.off': 'off',
  'app.recording.start': 'Start recording',
  'app.recording.stop': 'Stop recording',
  'app.transcription.start': 'Start transcription',
  'app.transcription.stop': 'Stop transcription',
  'app.new.captions': 'Live captions',
  'app.new.chooseName': 'Each person types their own name before joining',
  'app.new.readMinutes': 'The links open the minutes once the meeting is over',
  'app.new.create': 'Create the meeting',
  'app.new.links': 'Join links: send each person their own.',
  'app.copy': 'Copy link for {name}',
  'app.copied': 'Link copied.',
  'app.col.title': 'Title',
  'app.col.state': 'State',
  'app.col.created': 'Created',
  'app.none': 'No meetings yet.',
  'state.created': 'waiting for people',
  'state.live': 'live',
  'state.ended': 'waiting for transcription',
  'state.ready': 'ready',
  'state.incomplete': 'incomplete',
  'state.failed': 'failed',
  'state.importing': 'importing the recordings',
  'state.deleting': 'being deleted',
  'app.end': 'End the meeting',
  'app.ended': 'The meeting has ended; the minutes will be ready shortly.',
  'app.rerun': 'Transcribe again',
  'app.rerun.done': 'Transcription started again.',
  'app.progress': 'Progress: {done} of {total} pieces of speech transcribed.',
  'app.summary': 'Summary',
  'app.decisions': 'Decisions',
  'app.actions': 'Action items',
  'app.topics': 'Topics',
  'app.transcript': 'Transcript',
  'app.player': 'Recording (all voices)',
  'app.noMinutes': 'No minutes yet.',
  'app.incomplete': 'These minutes are incomplete: some speech could not be transcribed.',
  'app.downloads': 'Downloads',
  'app.dl.minutes': 'Minutes ({fmt})',
  'app.dl.mix': 'Recording, all voices (FLAC)',
  'app.dl.archive': 'Archive, one track per person (WebM)',
  'app.dl.speaker': 'Voice of {name} (FLAC)',
  'app.speakers': 'Speakers',
  'app.rename': 'Rename',
  'app.rename.label': 'New name for {name}',
  'app.save': 'Save',
  'app.renamed': 'Renamed.',
  'app.back': 'All meetings',
  'app.at': 'at {time}',
  'app.play': 'Play from {time}: {name}',
  'err.network': 'The server cannot be reached. Check your connection and try again.',
  'err.session': 'Your session has ended: sign in again.',
};

const fr = {
  'lang.switch': 'English',
  'lang.switchLabel': 'Switch to English',
  'skip': 'Aller au contenu',
  'room.title': 'Greffier : réunion',
  'room.notice.title': 'Cette réunion est enregistrée et transcrite',
  'room.notice.body': 'Ce que vous dites est enregistré et écrit dans le compte rendu de la réunion, sous votre nom. L’organisateur et les personnes à qui il le transmet peuvent le lire et l’écouter.',
  'room.notice.recorded': 'Cette réunion est enregistrée, sans transcription',
  'room.notice.off': 'Cette réunion n’est pas enregistrée pour l’instant',
  'room.notice.offBody': 'Rien de ce que vous dites n’est conservé tant que l’enregistrement est arrêté. L’organisateur peut le lancer pendant la réunion : cette page vous le dira aussitôt.',
  'room.decline': 'Ne pas m’enregistrer : les autres m’entendent, rien de ce que je dis n’est conservé ni transcrit',
  'room.rec.both': 'L’enregistrement et la transcription sont en cours.',
  'room.rec.recorded': 'L’enregistrement est en cours ; la transcription est arrêtée.',
  'room.rec.off': 'L’enregistrement est arrêté : rien n’est conservé.',
  'room.rec.declined': 'Vous n’êtes pas enregistré·e : vous l’avez refusé.',
  'room.you': 'Vous apparaîtrez sous le nom',
  'room.mic': 'Micro',
  'room.output': 'Haut-parleur ou casque',
  'room.default': 'Par défaut',
  'room.join': 'Rejoindre la réunion',
  'room.joining': 'Connexion…',
  'room.connected': 'Vous êtes dans la réunion.',
  'room.reconnecting': 'Connexion perdue ; nouvelle tentative…',
  'room.people': 'Participants',
  'room.speaking': 'parle',
  'room.says': '{name} :',
  'room.youMark': '(vous)',
  'room.here': 'présent',
  'room.away': 'absent',
  'room.isSpeaking': '{name} parle',
  'room.joined': '{name} est arrivé·e',
  'room.left': '{name} est parti·e',
  'room.mute': 'Couper le micro',
  'room.unmute': 'Rétablir le micro',
  'room.muted': 'Votre micro est coupé.',
  'room.unmuted': 'Votre micro est ouvert.',
  'room.level': 'Niveau de votre micro',
  'room.heard': 'Son des autres',
  'room.captions': 'Sous-titres en direct',
  'room.leave': 'Quitter',
  'room.left.self': 'Vous avez quitté la réunion. Rouvrez votre lien pour revenir.',
  'room.ended': 'La réunion est terminée ; le compte rendu sera bientôt prêt.',
  'room.ended.minutes': 'Lire le compte rendu (connexion requise)',
  'room.name': 'Votre nom, tel que les autres et le compte rendu le montreront',
  'room.name.missing': 'Saisissez votre nom, puis rejoignez la réunion.',
  'room.minutes.ask': 'Pour lire le compte rendu, demandez-le à l’organisateur de la réunion : ce lien ne l’ouvre pas.',
  'room.minutes.wait': 'Le compte rendu est en préparation ; cette page l’affiche dès qu’il est prêt.',
  'room.minutes.failed': 'Le compte rendu n’a pas pu être établi. Adressez-vous à l’organisateur de la réunion.',
  'room.minutes.title': 'Compte rendu',
  'err.noToken': 'Cette page a besoin du lien que vous avez reçu : il se termine par #token=… Rouvrez ce lien.',
  'err.badLink': 'Ce lien n’est pas valide. Demandez-en un nouveau à l’organisateur.',
  'err.expired': 'Ce lien a expiré le {date}. Demandez-en un nouveau à l’organisateur.',
  'err.revoked': 'L’organisateur a retiré ce lien. Demandez-lui-en un nouveau.',
  'err.ended': 'Cette réunion est terminée : on ne peut plus la rejoindre.',
  'err.full': 'La réunion est complète. Réessayez plus tard.',
  'err.notFound': 'Cette réunion n’existe pas (ou plus). Vérifiez le lien.',
  'err.micDenied': 'Votre navigateur a refusé le micro. Autorisez-le pour ce site (l’icône près de la barre d’adresse), puis rejoignez à nouveau.',
  'err.micMissing': 'Aucun micro trouvé. Branchez-en un, puis rejoignez à nouveau.',
  'err.micBusy': 'Votre micro est utilisé par un autre programme. Fermez-le, puis rejoignez à nouveau.',
  'err.unavailable': 'Le serveur de réunion n’est pas disponible pour le moment. Nouvelle tentative…',
  'err.forbidden': 'Ce lien ne vous permet pas de parler dans cette réunion.',
  'err.generic': 'Un problème est survenu : {msg}',
  'app.title': 'Greffier',
  'app.signin': 'Se connecter',
  'app.signin.help': 'Collez la clé que votre administrateur vous a donnée. Ce navigateur la garde sous forme de session pendant 12 heures, jamais dans la barre d’adresse.',
  'app.key': 'Clé',
  'app.badKey': 'Cette clé a été refusée. Vérifiez que vous l’avez collée en entier.',
  'app.signout': 'Se déconnecter',
  'app.signedInAs': 'Connecté·e : {name} ({role})',
  'app.meetings': 'Réunions',
  'app.search': 'Rechercher',
  'app.search.label': 'Rechercher dans ce qui a été dit',
  'app.search.none': 'Aucun résultat pour « {q} ».',
  'app.search.results': '{n} résultat(s) pour « {q} »',
  'app.new': 'Nouvelle réunion',
  'app.new.title': 'Titre',
  'app.new.people': 'Participants, un nom par ligne',
  'app.missing': 'Absent de cette transcription',
  'app.notRecorded': 'Non enregistré',
  'app.everyone': 'Tout le monde',
  'app.gap': '{who}, de {from} à {to} : {reason}',
  'app.new.recording': 'Enregistrer dès le début (sinon vous le lancez pendant la réunion)',
  'app.new.transcription': 'Transcrire ce qui est enregistré',
  'app.switches': 'Enregistrement : {recording} · Transcription : {transcription}',
  'app.on': 'en cours',
  'app.off': 'arrêté',
  'app.recording.start': 'Lancer l’enregistrement',
  'app.recording.stop': 'Arrêter l’enregistrement',
  'app.transcription.start': 'Lancer la transcription',
  'app.transcription.stop': 'Arrêter la transcription',
  'app.new.captions': 'Sous-titres en direct',
  'app.new.chooseName': 'Chaque personne saisit son nom avant d’entrer',
  'app.new.readMinutes': 'Les liens ouvrent le compte rendu après la réunion',
  'app.new.create': 'Créer la réunion',
  'app.new.links': 'Liens pour rejoindre : envoyez à chacun le sien.',
  'app.copy': 'Copier le lien de {name}',
  'app.copied': 'Lien copié.',
  'app.col.title': 'Titre',
  'app.col.state': 'État',
  'app.col.created': 'Créée le',
  'app.none': 'Aucune réunion pour le moment.',
  'state.created': 'en attente des participants',
  'state.live': 'en cours',
  'state.ended': 'en attente de transcription',
  'state.ready': 'prête',
  'state.incomplete': 'incomplète',
  'state.failed': 'en échec',
  'state.importing': 'import des enregistrements',
  'state.deleting': 'en cours de suppression',
  'app.end': 'Terminer la réunion',
  'app.ended': 'La réunion est terminée ; le compte rendu sera bientôt prêt.',
  'app.rerun': 'Relancer la transcription',
  'app.rerun.done': 'Transcription relancée.',
  'app.progress': 'Avancement : {done} passages transcrits sur {total}.',
  'app.summary': 'Résumé',
  'app.decisions': 'Décisions',
  'app.actions': 'Actions à mener',
  'app.topics': 'Sujets',
  'app.transcript': 'Transcription',
  'app.player': 'Enregistrement (toutes les voix)',
  'app.noMinutes': 'Pas encore de compte rendu.',
  'app.incomplete': 'Ce compte rendu est incomplet : une partie de la parole n’a pas pu être transcrite.',
  'app.downloads': 'Téléchargements',
  'app.dl.minutes': 'Compte rendu ({fmt})',
  'app.dl.mix': 'Enregistrement, toutes les voix (FLAC)',
  'app.dl.archive': 'Archive, une piste par personne (WebM)',
  'app.dl.speaker': 'Voix de {name} (FLAC)',
  'app.speakers': 'Intervenants',
  'app.rename': 'Renommer',
  'app.rename.label': 'Nouveau nom pour {name}',
  'app.save': 'Enregistrer',
  'app.renamed': 'Renommé.',
  'app.back': 'Toutes les réunions',
  'app.at': 'à {time}',
  'app.play': 'Écouter à partir de {time} : {name}',
  'err.network': 'Le serveur est injoignable. Vérifiez votre connexion et réessayez.',
  'err.session': 'Votre session a expiré : reconnectez-vous.',
};

const dicts = { en, fr };

function pick() {
  const saved = localStorage.getItem('greffier.lang');
  if (saved && dicts[saved]) return saved;
  for (const l of navigator.languages || [navigator.language || 'en']) {
    const base = l.slice(0, 2).toLowerCase();
    if (dicts[base]) return base;
  }
  return 'en';
}

export let lang = pick();

// t translates key, filling {name}-style holes from vars.
export function t(key, vars = {}) {
  const s = dicts[lang][key] ?? en[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => (k in vars ? String(vars[k]) : ''));
}

// apply fills every element with data-i18n (text) or data-i18n-label
// (aria-label) and the page's lang attribute.
export function apply(root = document) {
  document.documentElement.lang = lang;
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-label]')) el.setAttribute('aria-label', t(el.dataset.i18nLabel));
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
}

// setupSwitch wires the header's language button; onChange re-renders
// what was built from JavaScript.
export function setupSwitch(button, onChange) {
  const label = () => {
    button.textContent = t('lang.switch');
    button.setAttribute('aria-label', t('lang.switchLabel'));
    button.lang = lang === 'en' ? 'fr' : 'en';
  };
  label();
  button.addEventListener('click', () => {
    lang = lang === 'en' ? 'fr' : 'en';
    localStorage.setItem('greffier.lang', lang);
    apply();
    label();
    onChange?.();
  });
}

export function formatDate(d) {
  return new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'short' }).format(d);
}

// clock shows seconds as m:ss or h:mm:ss.
export function clock(sec) {
  const s = Math.max(0, Math.floor(sec));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}
