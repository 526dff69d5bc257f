// The patient's latest photographs on the upload page, drawn from the history API in the same
// markup as templates/partials/history.jinja.

import { displayNhsNumber } from './nhs-number.js';

const BOX = 120;
const SIDES = { L: 'left', R: 'right', B: 'both sides' };

function longDate(iso) {
  if (!iso) return '';
  const [year, month, day] = iso.split('-').map(Number);
  return new Date(Date.UTC(year, month - 1, day)).toLocaleDateString('en-GB', { day: 'numeric', month: 'long', year: 'numeric', timeZone: 'UTC' });
}

function thumbnail(image) {
  const rows = image.rows || BOX;
  const columns = image.columns || BOX;
  const scale = Math.min(1, BOX / Math.max(rows, columns));
  const li = document.createElement('li');
  li.className = 'ologies-thumbs__item';
  const link = document.createElement('a');
  link.className = 'ologies-thumbs__link';
  link.href = `/images/${encodeURIComponent(image.sop_instance_uid)}`;
  const img = document.createElement('img');
  img.src = image.links.thumbnail;
  img.loading = 'lazy';
  img.decoding = 'async';
  img.width = Math.max(1, Math.round(columns * scale));
  img.height = Math.max(1, Math.round(rows * scale));
  const side = SIDES[image.laterality] ? ` (${SIDES[image.laterality]})` : '';
  img.alt = `${image.body_site.meaning || 'Photograph'}${side}, ${longDate(image.capture_date || image.study_date)}`;
  link.append(img);
  li.append(link);
  return li;
}

export function renderHistory(container, id, total, images) {
  container.replaceChildren();
  if (!total) {
    const p = document.createElement('p');
    p.className = 'nhsuk-body';
    p.textContent = `No photographs are stored for NHS number ${displayNhsNumber(id)} yet. Enter the patient's details below.`;
    container.append(p);
    return;
  }
  const heading = document.createElement('h2');
  heading.className = 'nhsuk-heading-s';
  heading.textContent = `This patient has ${total} photograph${total === 1 ? '' : 's'} already`;
  const list = document.createElement('ul');
  list.className = 'ologies-thumbs';
  list.append(...images.map(thumbnail));
  const more = document.createElement('p');
  const link = document.createElement('a');
  link.href = `/patients/${encodeURIComponent(id)}`;
  link.textContent = "See all of this patient's photographs";
  more.append(link);
  container.append(heading, list, more);
}
