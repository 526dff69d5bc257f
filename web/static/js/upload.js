// The upload page, enhanced: the NHS number checked as it is typed, the patient's latest
// photographs and details fetched once it is valid, body site search, and the photographs
// uploaded one by one with progress (upload-queue.js). Without this script the form still
// posts to /upload and the server does the same work.

import { checkNhsNumber } from './nhs-number.js';
import { clearFieldError, setFieldError, showErrorSummary } from './form-errors.js';
import { enhanceBodySite } from './body-site.js';
import { UploadQueue } from './upload-queue.js';
import { renderHistory } from './history.js';

const form = document.getElementById('upload-form');
const slot = document.getElementById('error-summary-slot');
const summary = document.getElementById('upload-summary');
const allowTestNumbers = form.dataset.allowTestNumbers === 'true';
const nhsInput = document.getElementById('nhs_number');
const nhsStatus = document.getElementById('nhs_number-status');
const history = document.getElementById('history');
const DEMOGRAPHICS = ['family_name', 'given_name', 'birth_date[day]', 'birth_date[month]', 'birth_date[year]'];
const ANCHORS = { birth_date: 'birth_date-day', sex: 'sex', laterality: 'laterality', consent: 'consent', modality: 'modality' };
const REQUIRED = {
  family_name: "Enter the patient's last name",
  trust: 'Select the trust',
  specialty: 'Select the specialty',
  body_site: 'Select the body site',
  consent: 'Select the consent the patient gave',
  photographer: "Enter the photographer's name",
};

// The form's label of each field, and the rewording of the API's messages into the form's
// words: the same table and rules as web/pages/forms.py (LABELS, page_message).
const LABELS = {
  nhs_number: 'NHS number', family_name: 'Last name', given_name: 'First name', birth_date: 'Date of birth',
  sex: 'Sex', trust: 'Trust', specialty: 'Specialty', body_site: 'Body site', laterality: 'Side of the body',
  description: 'Description', modality: 'Kind of image', accession_number: 'Accession number', consent: 'Consent',
  consent_recorded_by: 'Consent recorded by', photographer: 'Photographer', study_uid: 'Study UID', tracking_id: 'Tracking ID',
};
const REWORDED = {
  'Date of birth is in the future': 'Date of birth must be today or in the past',
  'Date of birth is before 1880': 'Date of birth must be in 1880 or later',
};
// An identity mismatch tells a program to send confirm_identity=true; the page has a box to tick.
const CONFIRM_FIELD = /\bsend confirm_identity=\w+(?: to [^.;]*)?/;
const CONFIRM_INSTEAD = "tick the box “I have checked” under the patient's details, then upload again";
const SNAKE_FIELDS = new RegExp(`\\b(${Object.keys(LABELS).filter((n) => n.includes('_')).join('|')})\\b`, 'g');

function pageMessage(message) {
  const labelInside = (label) => (label.slice(0, 2) === label.slice(0, 2).toUpperCase() ? label : label.charAt(0).toLowerCase() + label.slice(1));
  message = message.replace(CONFIRM_FIELD, CONFIRM_INSTEAD);
  const space = message.indexOf(' ');
  const first = space < 0 ? message : message.slice(0, space);
  let text = Object.hasOwn(LABELS, first) ? LABELS[first] + message.slice(first.length) : message;
  text = text.replace(SNAKE_FIELDS, (name, _group, offset) => (offset ? labelInside(LABELS[name]) : LABELS[name]));
  text = text.replace(/\b(?:is|are) longer than (\d+) characters$/, 'must be $1 characters or fewer');
  text = REWORDED[text] || text;
  const word = text.split(' ', 1)[0];
  // Only a first word of lower-case letters is capitalised: a file name is left as it was typed.
  return /^[a-z]+$/.test(word) ? text.charAt(0).toUpperCase() + text.slice(1) : text;
}

document.querySelectorAll('[data-js-hide]').forEach((el) => { el.hidden = true; });
document.querySelectorAll('[data-js-show]').forEach((el) => { el.hidden = false; });

// nhsuk-frontend 10.6.1's drop button puts its status ("No file chosen") and "Choose
// photographs" side by side with no space between them outside a visually hidden comma, so
// its visible text runs the words together ("chosenChoose") and axe reports a WCAG 2.5.3
// "label in name" failure. A space restores the words; nothing visible changes.
const dropStatus = form.querySelector('.nhsuk-file-upload__drop-button .nhsuk-file-upload__status');
if (dropStatus) dropStatus.after(' ');

// --- the patient -------------------------------------------------------------------------
let lookedUp = '';
let lookup = null;
let found = null;  // the patient the NHS number was found for, and how many boxes were filled in

// A name as a person reads it, as the service compares them (repository/identity.py): case,
// accents, spaces, hyphens and apostrophes do not count.
function nameKey(text) {
  return (text || '').toLowerCase().normalize('NFKD').replace(/[^\p{L}\p{N}]/gu, '');
}

// The details typed that differ from the patient's record, compared as the service compares
// them: a first name, a date of birth or a sex (female or male) only when both sides have one.
function typedDifferences(patient) {
  const typed = (name) => form.querySelector(`[name="${name}"]`).value.trim();
  const differ = [];
  if (typed('family_name') && nameKey(typed('family_name')) !== nameKey(patient.name.family)) differ.push('family_name');
  if (typed('given_name') && patient.name.given && nameKey(typed('given_name')) !== nameKey(patient.name.given)) differ.push('given_name');
  const parts = ['year', 'month', 'day'].map((p) => Number(typed(`birth_date[${p}]`)));
  if (patient.birth_date && parts.every(Boolean) && parts.join('-') !== patient.birth_date.split('-').map(Number).join('-')) differ.push('birth_date');
  const sex = (form.querySelector('input[name="sex"]:checked') || {}).value;
  if (['F', 'M'].includes(sex) && ['F', 'M'].includes(patient.sex) && sex !== patient.sex) differ.push('sex');
  return differ;
}

// Fill the patient's details from their record where nothing is typed (what was typed is left
// as it is, even when it differs from the record). Returns how many boxes it filled.
function prefill(patient) {
  const values = {
    family_name: patient.name.family,
    given_name: patient.name.given,
  };
  if (patient.birth_date) {
    const [year, month, day] = patient.birth_date.split('-');
    Object.assign(values, { 'birth_date[day]': String(Number(day)), 'birth_date[month]': String(Number(month)), 'birth_date[year]': year });
  }
  let filled = 0;
  for (const [name, value] of Object.entries(values)) {
    const input = form.querySelector(`[name="${name}"]`);
    // Fill what is empty or was filled by us for another patient; never overwrite typing.
    if (input && (!input.value || input.dataset.prefilled === input.value)) {
      input.value = value || '';
      input.dataset.prefilled = input.value;
      if (input.value) filled += 1;
    }
  }
  if (patient.sex) {
    const radio = form.querySelector(`input[name="sex"][value="${patient.sex}"]`);
    if (radio && !form.querySelector('input[name="sex"]:checked')) {
      radio.checked = true;
      filled += 1;
    }
  }
  return filled;
}

// What the lookup did, truthfully: the typed details are never overwritten, so when they differ
// from the record the page says so rather than that the record's details were filled in.
function foundStatus(patient, { filled, differ }) {
  const heading = `Patient found: ${[patient.name.given, patient.name.family].filter(Boolean).join(' ')}.`;
  if (differ.length) {
    return `${heading} The details typed below differ from this patient's record: check the NHS number.${filled ? ' Empty boxes were filled in from the record.' : ''}`;
  }
  return `${heading} ${filled ? 'Their details are filled in below.' : "The details typed below match this patient's record."}`;
}

function clearPrefilled() {
  for (const name of DEMOGRAPHICS) {
    const input = form.querySelector(`[name="${name}"]`);
    if (input && input.dataset.prefilled && input.value === input.dataset.prefilled) input.value = '';
    if (input) delete input.dataset.prefilled;
  }
}

// The box confirming that the patient's details have changed: offered only once the service
// has found that they differ from those held for the NHS number (never before, and never
// ticked by the page: a box always there would be ticked out of habit), and taken away when the
// NHS number changes or photographs have been stored under the details.
const confirmSlot = document.getElementById('confirm-identity-slot');
const confirmTemplate = document.getElementById('confirm-identity-template');
let confirmFor = confirmSlot.children.length ? checkNhsNumber(nhsInput.value, { allowTestNumbers }).id : '';

function offerConfirmIdentity(id) {
  if (!confirmSlot.children.length) confirmSlot.replaceChildren(confirmTemplate.content.cloneNode(true));
  confirmFor = id;
}

function withdrawConfirmIdentity() {
  confirmSlot.replaceChildren();
  confirmFor = '';
}

async function findPatient(id) {
  if (lookup) lookup.abort();
  found = null;
  lookup = new AbortController();
  nhsStatus.textContent = 'Looking for this patient’s photographs…';
  try {
    const response = await fetch(`/api/v1/patients/${encodeURIComponent(id)}/images?limit=8`, { signal: lookup.signal, headers: { Accept: 'application/json' } });
    if (!response.ok) throw new Error(`status ${response.status}`);
    const body = await response.json();
    const images = body.studies.flatMap((s) => s.instances);
    renderHistory(history, id, body.total, images);
    if (images.length) {
      found = { patient: images[0].patient, filled: prefill(images[0].patient) };
      nhsStatus.textContent = foundStatus(found.patient, { filled: found.filled, differ: typedDifferences(found.patient) });
    } else {
      found = null;
      clearPrefilled();
      nhsStatus.textContent = 'A valid NHS number.';  // the history below says there is nothing yet
    }
    lookedUp = id;
  } catch (error) {
    if (error.name === 'AbortError') return;
    nhsStatus.textContent = 'Could not look up this patient’s photographs just now. You can still upload.';
  }
}

// The status follows the details as they are edited: it must not say that they match (or
// differ) once they no longer do.
function updateFoundStatus() {
  if (found) nhsStatus.textContent = foundStatus(found.patient, { filled: found.filled, differ: typedDifferences(found.patient) });
}
for (const name of [...DEMOGRAPHICS, 'sex']) {
  form.querySelectorAll(`[name="${name}"]`).forEach((input) => input.addEventListener('change', updateFoundStatus));
}

function checkNhs({ final = false } = {}) {
  const result = checkNhsNumber(nhsInput.value, { allowTestNumbers });
  if (confirmFor && result.id !== confirmFor) withdrawConfirmIdentity();  // it was about another number
  if (result.ok) {
    if (!confirmFor) clearFieldError('nhs_number');  // an identity mismatch stands until the number changes
    if (result.id !== lookedUp) findPatient(result.id);
  } else {
    lookedUp = '';
    found = null;
    history.replaceChildren();
    nhsStatus.textContent = '';
    if (result.complete || (final && nhsInput.value.trim())) setFieldError('nhs_number', 'nhs_number', result.message);
    else clearFieldError('nhs_number');
  }
  return result;
}

nhsInput.addEventListener('input', () => checkNhs());
nhsInput.addEventListener('blur', () => checkNhs({ final: true }));
if (nhsInput.value) checkNhs();

// --- body site and side ----------------------------------------------------------------
const siteGroup = form.querySelector('[data-body-site]');
if (siteGroup) {
  enhanceBodySite(siteGroup, {
    onChoose(site) {
      // An unpaired site (nose, chin) has no side; a paired one keeps whatever was chosen.
      if (site.paired === false) {
        const none = form.querySelector('input[name="laterality"][value="U"]');
        if (none) none.checked = true;
      }
    },
  });
}

// --- validation, as the server does it -----------------------------------------------------
function birthDateError() {
  const parts = ['day', 'month', 'year'].map((p) => form.querySelector(`[name="birth_date[${p}]"]`).value.trim());
  if (!parts.some(Boolean)) return "Enter the patient's date of birth";
  if (!parts.every(Boolean)) return 'Date of birth must include a day, month and year';
  const [day, month, year] = parts.map(Number);
  const date = new Date(Date.UTC(year, month - 1, day));
  if (parts[2].length !== 4) return 'Year must include 4 numbers';
  if (Number.isNaN(date.getTime()) || date.getUTCDate() !== day || date.getUTCMonth() !== month - 1) return 'Date of birth must be a real date';
  const today = new Date();
  if (date > new Date(Date.UTC(today.getFullYear(), today.getMonth(), today.getDate()))) return 'Date of birth must be today or in the past';
  if (year < 1880) return 'Date of birth must be in 1880 or later';
  return '';
}

// By name, not form.elements.namedItem: the body site search box has the id "body_site" and the
// hidden select the name, and namedItem would return both.
function value(field) {
  if (field === 'consent') return (form.querySelector('input[name="consent"]:checked') || {}).value;
  return form.querySelector(`[name="${field}"]`).value;
}

// In the order of the page, so that the summary reads top to bottom.
function validate() {
  const errors = [];
  const nhs = checkNhsNumber(nhsInput.value, { allowTestNumbers });
  if (!nhs.ok) errors.push({ field: 'nhs_number', text: nhs.message });
  // An unidentified patient (a TMP- identifier) may have no name or date of birth yet.
  const temporary = nhs.ok && nhs.id.startsWith('TMP-');
  if (!temporary && !value('family_name').trim()) errors.push({ field: 'family_name', text: REQUIRED.family_name });
  const dateError = birthDateError();
  if (dateError && !(temporary && dateError.startsWith('Enter'))) errors.push({ field: 'birth_date', text: dateError });
  for (const field of ['trust', 'specialty', 'body_site', 'consent', 'photographer']) {
    if (!String(value(field) || '').trim()) errors.push({ field, text: REQUIRED[field] });
  }
  if (!queue.pending().length) {
    const text = queue.items.length ? 'Every chosen photograph has been dealt with: choose more photographs' : 'Choose at least one photograph';
    errors.push({ field: 'file', text });
  }
  return errors;
}

function showErrors(errors) {
  const withAnchors = errors.map((e) => ({ ...e, anchor: ANCHORS[e.field] || e.field }));
  for (const field of ['nhs_number', 'family_name', 'given_name', 'birth_date', 'trust', 'specialty', 'body_site', 'consent', 'photographer', 'file', 'sex', 'laterality', 'description', 'consent_recorded_by', 'accession_number', 'modality']) {
    clearFieldError(field);
  }
  for (const e of withAnchors) setFieldError(e.field, e.anchor, e.text);
  showErrorSummary(slot, withAnchors);
  document.title = document.title.replace(/^(Error: )?/, errors.length ? 'Error: ' : '');
}

// --- the photographs ---------------------------------------------------------------------
const queue = new UploadQueue({
  list: document.getElementById('file-list'),
  batch: document.getElementById('batch'),
  maxFileBytes: Number(form.dataset.maxFileBytes),
  onFieldError(error) {
    showErrors([{ field: error.field, text: pageMessage(error.message) }]);
  },
  onIdentityMismatch(error) {
    showErrors([{ field: 'nhs_number', text: pageMessage(error.message) }]);
    offerConfirmIdentity(checkNhsNumber(nhsInput.value, { allowTestNumbers }).id);
  },
  onSignedOut() {
    showErrors([{ field: 'file', text: 'You were signed out, or signed in again in another tab. Sign in again in a new tab if asked, then press Upload photographs: the photographs not yet stored are kept and will be sent.' }]);
  },
  onDone(items) {
    // The batch is over: an error shown while it ran no longer stands, unless the batch stopped
    // on a problem with the form, which is what the summary shows.
    if (!queue.stopped) showErrors([]);
    const count = (state) => items.filter((i) => i.state === state).length;
    const stored = count('stored');
    const existing = count('existing');
    const refused = count('refused');
    const notStored = count('interrupted') + count('failed');
    const signedOut = count('signed-out');
    const unconfirmed = count('unconfirmed');
    // Stored under the details given (confirmed, or no longer different): the box is done with.
    if ((stored || existing) && !unconfirmed) withdrawConfirmIdentity();
    const parts = [];
    if (stored) parts.push(`${stored} stored`);
    if (existing) parts.push(`${existing} already stored`);
    if (refused) parts.push(`${refused} refused`);
    if (notStored) parts.push(`${notStored} not stored (retry)`);
    if (signedOut) parts.push(`${signedOut} not sent (sign in again)`);
    if (unconfirmed) parts.push(`${unconfirmed} not sent (check the patient's details)`);
    if (!parts.length) return;
    const heading = document.createElement('h2');
    heading.className = 'nhsuk-heading-m';
    heading.textContent = `Upload finished: ${parts.join(', ')}`;
    summary.replaceChildren(heading);
    const id = checkNhsNumber(nhsInput.value, { allowTestNumbers }).id;
    if ((stored || existing) && id) {
      const p = document.createElement('p');
      const link = document.createElement('a');
      link.href = `/patients/${encodeURIComponent(id)}`;
      link.textContent = "See this patient's photographs";
      p.append(link);
      summary.append(p);
      lookedUp = '';
      findPatient(id);
    }
    summary.hidden = false;
    if (!queue.stopped) summary.focus();  // stopped: the error summary has the focus, and says why
  },
});

for (const id of ['file', 'camera']) {
  // The design system's file upload moves the id "file" to its drop button, the input's to "file-input".
  const input = [document.getElementById(`${id}-input`), document.getElementById(id)].find((el) => el && el.type === 'file');
  if (input) {
    input.addEventListener('change', () => {
      queue.add(input.files);
      // The queue holds the files now; emptied, the input fires "change" again when the same
      // file is chosen again (after a refusal, say), which the browser otherwise swallows.
      input.value = '';
      clearFieldError('file');
    });
  }
}

// After a sign-in elsewhere the page's CSRF token is the old session's: take the current one
// from a fresh copy of this page. False when that copy is the sign-in page (still signed out).
async function refreshCsrfToken() {
  const response = await fetch(window.location.pathname, { headers: { Accept: 'text/html' }, cache: 'no-store' });
  if (!response.ok || new URL(response.url).pathname === '/sign-in') return false;
  const page = new DOMParser().parseFromString(await response.text(), 'text/html');
  const fresh = page.querySelector('meta[name="csrf-token"]');
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (!fresh || !meta) return false;
  const stale = meta.content;
  meta.content = fresh.content;
  for (const other of document.querySelectorAll('form[action*="csrf_token="]')) {
    other.setAttribute('action', other.getAttribute('action').replace(`csrf_token=${stale}`, `csrf_token=${fresh.content}`));
  }
  return true;
}

let refreshing = false;

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  // A second press while the batch is sent would find nothing left to send and say so as an
  // error; the batch already under way is the answer to it.
  if (queue.busy() || refreshing) return;
  if (queue.items.some((i) => i.state === 'signed-out')) {
    refreshing = true;
    let signedIn = false;
    try {
      signedIn = await refreshCsrfToken();
    } catch (error) {
      signedIn = false;
    } finally {
      refreshing = false;
    }
    if (!signedIn) {
      showErrors([{ field: 'file', text: 'You are not signed in. Sign in again in a new tab, then press Upload photographs: the photographs not yet stored are kept and will be sent.' }]);
      return;
    }
  }
  const errors = validate();
  if (errors.length) { showErrors(errors); return; }
  showErrors([]);
  slot.replaceChildren();
  summary.hidden = true;
  const fields = new FormData();
  for (const [name, value] of new FormData(form)) {
    if (value instanceof File || name.startsWith('birth_date[')) continue;
    fields.append(name, value);
  }
  const parts = ['year', 'month', 'day'].map((p) => form.querySelector(`[name="birth_date[${p}]"]`).value.trim());
  if (parts.every(Boolean)) fields.append('birth_date', `${parts[0]}-${parts[1].padStart(2, '0')}-${parts[2].padStart(2, '0')}`);
  queue.start(fields);
});
