// The photographs waiting to be uploaded: a preview of each, then one POST /api/v1/images per
// photograph through XMLHttpRequest, whose upload progress events drive a bar per photograph
// and one for the batch. One request per photograph because the API stores a request all or
// nothing: per-photograph requests give per-photograph results, and one bad file cannot
// hold back the rest. The page never blocks: uploads are asynchronous, previews are object URLs
// that the browser decodes off the main thread, and at most CONCURRENCY requests run at once.

const CONCURRENCY = 2;
const INTERRUPTED = 'Upload interrupted — nothing was stored for this file; retry.';

export function formatSize(bytes) {
  const mb = bytes / (1024 * 1024);
  if (mb >= 100 || Number.isInteger(mb)) return `${mb.toFixed(0)} MB`;
  return mb >= 0.1 ? `${mb.toFixed(1)} MB` : `${Math.max(1, Math.round(bytes / 1024))} KB`;
}

// A 2.25 UID from 128 random bits (a version 4 UUID, as PS3.5 B.2 allows), so that every
// photograph of one batch is filed in the same study although each travels on its own.
export function newStudyUid() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `2.25.${BigInt(`0x${hex}`).toString()}`;
}

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

const SIGNED_OUT = 'Not sent: you were signed out, or signed in again in another tab. Sign in again in a new tab if asked, then press Upload photographs: this photograph is kept and will be sent. Nothing was stored for it yet.';

const UNCONFIRMED = 'Not sent: the patient’s details differ from those held for this NHS number (see above). Check them, then upload again: this photograph is kept and will be sent. Nothing was stored for it yet.';

// What the API's answer means for one photograph: [state, message]. "signed-out" is not a
// refusal of the photograph: the session ended (401) or the page's CSRF token is from an
// earlier sign-in (403 csrf_failed); the photograph stays pending and is sent again. Nor is
// "unconfirmed" (409 identity_mismatch): the patient's details differ from those held for the
// NHS number, and the photograph is sent again once they are corrected or the change confirmed.
export function describeResponse(status, body) {
  const error = body && body.error;
  const reason = error && error.message ? error.message : '';
  if (status === 401 || (status === 403 && error && error.code === 'csrf_failed')) return ['signed-out', SIGNED_OUT];
  if (status === 409 && error && error.code === 'identity_mismatch') return ['unconfirmed', UNCONFIRMED];
  if (status === 201) return ['stored', 'Stored'];
  if (status === 200) return ['existing', 'Already stored: this photograph was uploaded before, so it was not stored twice'];
  if (status === 202) return ['stored', 'Stored, but not searchable yet: the search index is busy. It will appear shortly'];
  if (status === 413) return ['refused', `Refused: too large. ${reason || 'The file is over the size limit.'}`];
  if (status === 409) return ['refused', `Refused: ${reason}`];
  if (status >= 400 && status < 500) return ['refused', `Refused: ${reason || `the server answered ${status}`}`];
  return ['failed', `Not stored: the service had a problem (${reason || `status ${status}`}). Nothing was stored for this file; retry.`];
}

export class UploadQueue {
  constructor({ list, batch, maxFileBytes, onFieldError, onSignedOut, onIdentityMismatch, onDone }) {
    this.list = list;
    this.batchBar = batch.querySelector('progress');
    this.batchText = batch.querySelector('.ologies-batch__text');
    this.batch = batch;
    this.maxFileBytes = maxFileBytes;
    this.onFieldError = onFieldError;
    this.onSignedOut = onSignedOut;
    this.onIdentityMismatch = onIdentityMismatch;
    this.onDone = onDone;
    this.items = [];
    this.running = 0;
    this.waiting = [];
    this.active = [];
    this.stopped = false;
  }

  add(files) {
    for (const file of files) {
      const same = this.items.find((i) => i.file.name === file.name && i.file.size === file.size && i.file.lastModified === file.lastModified);
      // Chosen again after a refusal (fixed, or to try once more): the new choice replaces it.
      if (same && same.state === 'refused') this.remove(same);
      else if (same) continue;
      const item = { file, state: 'queued', loaded: 0, total: file.size };
      this.items.push(item);
      this.draw(item);
      if (file.size > this.maxFileBytes) {
        this.settle(item, 'refused', `Refused: too large (${formatSize(file.size)}). The largest photograph accepted is ${formatSize(this.maxFileBytes)}. Nothing was stored for this file.`);
      }
    }
    this.list.hidden = this.items.length === 0;
  }

  // A batch is under way: photographs waiting or being sent.
  busy() {
    return this.running > 0 || this.waiting.length > 0;
  }

  pending() {
    return this.items.filter((i) => ['queued', 'interrupted', 'failed', 'signed-out', 'unconfirmed'].includes(i.state));
  }

  draw(item) {
    const li = element('li', 'ologies-file');
    li.dataset.state = item.state;
    const preview = element('div', 'ologies-file__preview');
    const img = document.createElement('img');
    img.alt = '';
    img.decoding = 'async';
    item.url = URL.createObjectURL(item.file);
    img.src = item.url;
    img.addEventListener('error', () => {
      // Chromium and Firefox cannot show HEIC: say so instead of a broken image.
      preview.replaceChildren(element('span', 'ologies-file__no-preview', 'No preview'));
    });
    preview.append(img);
    const body = element('div', 'ologies-file__body');
    const name = element('p', 'ologies-file__name', item.file.name);
    const size = element('span', 'ologies-file__size', ` (${formatSize(item.file.size)})`);
    name.append(size);
    const progress = document.createElement('progress');
    progress.className = 'ologies-file__progress';
    progress.max = 100;
    progress.value = 0;
    progress.setAttribute('aria-label', `Upload progress of ${item.file.name}`);
    const result = element('p', 'ologies-file__result', 'Ready to upload');
    result.setAttribute('role', 'status');
    const actions = element('div', 'ologies-file__actions');
    const remove = element('button', 'ologies-link-button', 'Remove');
    remove.type = 'button';
    remove.append(element('span', 'nhsuk-u-visually-hidden', ` ${item.file.name}`));
    remove.addEventListener('click', () => this.remove(item));
    actions.append(remove);
    body.append(name, progress, result, actions);
    li.append(preview, body);
    Object.assign(item, { li, progress, result, actions, remove });
    this.list.append(li);
  }

  remove(item) {
    if (item.state === 'uploading') return;
    URL.revokeObjectURL(item.url);
    item.li.remove();
    this.items = this.items.filter((i) => i !== item);
    this.list.hidden = this.items.length === 0;
  }

  settle(item, state, message) {
    item.state = state;
    item.li.dataset.state = state;
    item.result.textContent = message;
    item.actions.replaceChildren();
    if (state === 'interrupted' || state === 'failed') {
      const retry = element('button', 'ologies-link-button', 'Retry');
      retry.type = 'button';
      retry.append(element('span', 'nhsuk-u-visually-hidden', ` ${item.file.name}`));
      retry.addEventListener('click', () => this.start(item.fields, [item]));
      item.actions.append(retry);
    } else if (['queued', 'refused', 'signed-out', 'unconfirmed'].includes(state)) {
      item.actions.append(item.remove);
    }
  }

  // fields: FormData of the form's fields (no files); items: those to send.
  start(fields, items = this.pending()) {
    const studyUid = newStudyUid();
    this.stopped = false;
    for (const item of items) {
      item.fields = fields;
      item.studyUid = item.studyUid || studyUid;  // a retry stays in its first batch's study
      item.loaded = 0;
      item.state = 'waiting';
      item.li.dataset.state = 'waiting';
      item.result.textContent = 'Waiting to upload';
      item.progress.value = 0;
      item.actions.replaceChildren();
      this.waiting.push(item);
    }
    this.active = [...new Set([...this.active.filter((i) => i.state === 'waiting' || i.state === 'uploading'), ...items])];
    this.batch.hidden = false;
    this.updateBatch();
    this.pump();
  }

  pump() {
    while (this.running < CONCURRENCY && this.waiting.length && !this.stopped) {
      this.send(this.waiting.shift());
    }
    if (this.running === 0 && (this.waiting.length === 0 || this.stopped)) {
      for (const item of this.waiting) this.settle(item, 'queued', 'Not sent: correct the problem above, then upload again');
      this.waiting = [];
      this.onDone(this.active);
    }
  }

  send(item) {
    this.running += 1;
    item.state = 'uploading';
    item.li.dataset.state = 'uploading';
    item.result.textContent = 'Uploading';
    const data = new FormData();
    for (const [name, value] of item.fields) data.append(name, value);
    data.append('study_uid', item.studyUid);
    data.append('file', item.file, item.file.name);
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/v1/images');
    xhr.responseType = 'json';
    xhr.setRequestHeader('Accept', 'application/json');
    // The session cookie signs the request in; the page's CSRF token proves it came from our page.
    const csrf = document.querySelector('meta[name="csrf-token"]');
    if (csrf) xhr.setRequestHeader('X-CSRF-Token', csrf.content);
    xhr.upload.addEventListener('progress', (event) => {
      if (!event.lengthComputable) return;
      item.loaded = event.loaded;
      item.total = event.total;
      item.progress.value = Math.round((100 * event.loaded) / event.total);
      this.updateBatch();
    });
    const finish = (state, message) => {
      this.running -= 1;
      this.settle(item, state, message);
      this.updateBatch();
      this.pump();
    };
    xhr.addEventListener('load', () => {
      const body = xhr.response;
      item.loaded = item.total;
      item.progress.value = 100;
      const [state, message] = describeResponse(xhr.status, body);
      if (state === 'unconfirmed') {
        // About the patient, not this photograph: every other one would meet the same answer.
        // Stop, say so once (on the NHS number), and keep the photograph to send again.
        item.loaded = 0;
        item.progress.value = 0;  // a full bar would read as "sent"
        if (!this.stopped) this.onIdentityMismatch(body.error);
        this.stopped = true;
        finish(state, message);
        return;
      }
      if (xhr.status >= 400 && body && body.error && body.error.field && body.error.field !== 'file') {
        // A problem with the form, not this photograph: every photograph would be refused alike.
        this.stopped = true;
        this.onFieldError(body.error);
        finish('queued', 'Not sent: correct the problem above, then upload again');
        return;
      }
      item.response = body;
      if (state === 'signed-out') {
        // Every other photograph would meet the same answer: stop, and say so once.
        this.stopped = true;
        this.onSignedOut();
      }
      finish(state, message);
    });
    const interrupted = () => {
      item.loaded = 0;
      item.progress.value = 0;  // a full bar would read as "sent"
      finish('interrupted', INTERRUPTED);
    };
    xhr.addEventListener('error', interrupted);
    xhr.addEventListener('abort', interrupted);
    xhr.addEventListener('timeout', interrupted);
    xhr.send(data);
  }

  updateBatch() {
    const items = this.active;
    const total = items.reduce((sum, i) => sum + (i.total || i.file.size), 0) || 1;
    const loaded = items.reduce((sum, i) => sum + (['waiting', 'uploading'].includes(i.state) ? i.loaded : (i.total || i.file.size)), 0);
    const done = items.filter((i) => !['waiting', 'uploading'].includes(i.state)).length;
    this.batchBar.value = Math.round((100 * loaded) / total);
    this.batchText.textContent = `${done} of ${items.length} photograph${items.length === 1 ? '' : 's'} done`;
  }
}
