// Errors in the NHS pattern, drawn by the browser: a summary at the top linking to each field,
// and a message beside the field. The markup is that of the design system's macros, so a page
// looks the same whether the server or the script found the problem.

const ERROR_CLASSES = {
  INPUT: 'nhsuk-input--error',
  SELECT: 'nhsuk-select--error',
  TEXTAREA: 'nhsuk-textarea--error',
};

// The form group of a field: the outermost one, so that a date's message sits above its three
// boxes rather than inside the first.
function groupOf(element) {
  let group = element.closest('.nhsuk-form-group');
  while (group && group.parentElement && group.parentElement.closest('.nhsuk-form-group')) {
    group = group.parentElement.closest('.nhsuk-form-group');
  }
  return group;
}

function messageId(field) {
  return `${field}-error`;
}

export function clearFieldError(field) {
  const message = document.getElementById(messageId(field));
  if (!message) return;
  const group = message.closest('.nhsuk-form-group');
  message.remove();
  if (!group) return;
  group.classList.remove('nhsuk-form-group--error');
  group.querySelectorAll('.nhsuk-input--error, .nhsuk-select--error, .nhsuk-textarea--error').forEach((el) => {
    el.classList.remove('nhsuk-input--error', 'nhsuk-select--error', 'nhsuk-textarea--error');
  });
  group.querySelectorAll(`[aria-describedby~="${messageId(field)}"]`).forEach((el) => {
    const rest = el.getAttribute('aria-describedby').split(' ').filter((id) => id !== messageId(field));
    if (rest.length) el.setAttribute('aria-describedby', rest.join(' '));
    else el.removeAttribute('aria-describedby');
  });
}

export function setFieldError(field, anchor, text) {
  clearFieldError(field);
  const target = document.getElementById(anchor);
  if (!target) return;
  const group = groupOf(target);
  if (!group) return;
  const message = document.createElement('span');
  message.className = 'nhsuk-error-message';
  message.id = messageId(field);
  const hidden = document.createElement('span');
  hidden.className = 'nhsuk-u-visually-hidden';
  hidden.textContent = 'Error:';
  message.append(hidden, ` ${text}`);
  // Below the label, legend and hint, above the control(s): where the macros put it.
  const controls = group.querySelector('.nhsuk-radios, .nhsuk-date-input, .nhsuk-file-upload__drop-zone, .nhsuk-drop-zone, [data-combobox], input, select, textarea');
  if (controls && controls.parentElement) controls.parentElement.insertBefore(message, controls);
  else group.append(message);
  group.classList.add('nhsuk-form-group--error');
  const inputs = group.querySelectorAll('input:not([type=radio]):not([type=checkbox]):not([type=hidden]), select, textarea, .nhsuk-file-upload__drop-button');
  inputs.forEach((el) => {
    if (ERROR_CLASSES[el.tagName] && !el.hidden) el.classList.add(ERROR_CLASSES[el.tagName]);
    const described = (el.getAttribute('aria-describedby') || '').split(' ').filter(Boolean);
    if (!described.includes(message.id)) el.setAttribute('aria-describedby', [...described, message.id].join(' '));
  });
}

// errors: [{field, anchor, text}]. Replaces whatever summary is shown and moves focus to it.
export function showErrorSummary(slot, errors) {
  slot.replaceChildren();
  if (!errors.length) return;
  const summary = document.createElement('div');
  summary.className = 'nhsuk-error-summary';
  summary.tabIndex = -1;
  const alert = document.createElement('div');
  alert.setAttribute('role', 'alert');
  const heading = document.createElement('h2');
  heading.className = 'nhsuk-error-summary__heading';
  heading.textContent = 'There is a problem';
  const body = document.createElement('div');
  body.className = 'nhsuk-error-summary__body';
  const list = document.createElement('ul');
  list.className = 'nhsuk-list nhsuk-error-summary__list';
  for (const error of errors) {
    const item = document.createElement('li');
    const link = document.createElement('a');
    link.href = `#${error.anchor}`;
    link.textContent = error.text;
    link.addEventListener('click', (event) => {
      // Focus the field itself and scroll its label into view, as the design system does.
      const target = document.getElementById(error.anchor);
      if (!target) return;
      event.preventDefault();
      target.focus();
      const label = document.querySelector(`label[for="${error.anchor}"]`) || target.closest('fieldset')?.querySelector('legend');
      (label || target).scrollIntoView();
    });
    item.append(link);
    list.append(item);
  }
  body.append(list);
  alert.append(heading, body);
  summary.append(alert);
  slot.append(summary);
  summary.focus();
}
