// Body site search-as-you-type over /api/v1/body-sites, in place of the plain <select> (which
// stays in the form, hidden, and still carries the chosen SNOMED CT code). The pattern is the
// WAI-ARIA combobox with a list box: arrow keys move, Enter chooses, Escape closes.

const DEBOUNCE_MS = 120;

export function enhanceBodySite(group, { onChoose = () => {} } = {}) {
  const select = group.querySelector('select');
  const label = group.querySelector('label');
  if (!select || !label || !window.fetch) return;
  const id = select.id;
  select.id = `${id}-select`;
  select.hidden = true;
  select.tabIndex = -1;
  select.setAttribute('aria-hidden', 'true');

  const wrapper = document.createElement('div');
  wrapper.className = 'ologies-combobox';
  wrapper.dataset.combobox = '';
  const input = document.createElement('input');
  Object.assign(input, { id, type: 'text', className: 'nhsuk-input', autocomplete: 'off', spellcheck: false });
  input.setAttribute('role', 'combobox');
  input.setAttribute('aria-autocomplete', 'list');
  input.setAttribute('aria-expanded', 'false');
  input.setAttribute('aria-controls', `${id}-listbox`);
  const described = select.getAttribute('aria-describedby');
  if (described) input.setAttribute('aria-describedby', described);
  const list = document.createElement('ul');
  list.id = `${id}-listbox`;
  list.className = 'ologies-combobox__list';
  list.setAttribute('role', 'listbox');
  list.setAttribute('aria-label', 'Body sites');
  list.hidden = true;
  const status = document.createElement('div');
  status.className = 'nhsuk-u-visually-hidden';
  status.setAttribute('aria-live', 'polite');
  wrapper.append(input, list, status);
  select.insertAdjacentElement('afterend', wrapper);
  label.htmlFor = id;

  let results = [];
  let active = -1;
  let timer = null;
  let controller = null;

  const chosenText = () => (select.selectedIndex > 0 ? select.options[select.selectedIndex].text : '');
  input.value = chosenText();

  function close() {
    list.hidden = true;
    input.setAttribute('aria-expanded', 'false');
    input.removeAttribute('aria-activedescendant');
    active = -1;
  }

  function highlight(index) {
    active = index;
    [...list.children].forEach((li, i) => li.setAttribute('aria-selected', String(i === index)));
    if (index >= 0) {
      input.setAttribute('aria-activedescendant', list.children[index].id);
      list.children[index].scrollIntoView({ block: 'nearest' });
    } else {
      input.removeAttribute('aria-activedescendant');
    }
  }

  function choose(site) {
    select.value = site.code;
    input.value = site.meaning;
    close();
    select.dispatchEvent(new Event('change', { bubbles: true }));
    onChoose(site);
  }

  function render() {
    list.replaceChildren(...results.map((site, i) => {
      const li = document.createElement('li');
      li.id = `${id}-option-${i}`;
      li.className = 'ologies-combobox__option';
      li.setAttribute('role', 'option');
      li.setAttribute('aria-selected', 'false');
      li.textContent = site.meaning;
      // mousedown, not click: it comes before the input's blur, which would close the list.
      li.addEventListener('mousedown', (event) => { event.preventDefault(); choose(site); });
      return li;
    }));
    const open = results.length > 0;
    list.hidden = !open;
    input.setAttribute('aria-expanded', String(open));
    status.textContent = open ? `${results.length} body site${results.length === 1 ? '' : 's'} found` : 'No body sites found';
    active = -1;
  }

  async function search(term) {
    if (controller) controller.abort();
    controller = new AbortController();
    try {
      const response = await fetch(`/api/v1/body-sites?q=${encodeURIComponent(term)}&limit=12`, { signal: controller.signal });
      if (!response.ok) return;
      results = await response.json();
      render();
    } catch (error) {
      if (error.name !== 'AbortError') close();
    }
  }

  input.addEventListener('input', () => {
    select.value = '';  // typing unsets the choice until a site is chosen again
    clearTimeout(timer);
    const term = input.value.trim();
    if (!term) { results = []; close(); return; }
    timer = setTimeout(() => search(term), DEBOUNCE_MS);
  });

  input.addEventListener('keydown', (event) => {
    const open = !list.hidden;
    if (event.key === 'ArrowDown') {
      event.preventDefault();
      if (!open && input.value.trim()) search(input.value.trim());
      else if (results.length) highlight((active + 1) % results.length);
    } else if (event.key === 'ArrowUp' && open) {
      event.preventDefault();
      highlight(active <= 0 ? results.length - 1 : active - 1);
    } else if (event.key === 'Enter' && open) {
      event.preventDefault();  // choosing a site must not submit the form
      if (active >= 0) choose(results[active]);
      else if (results.length === 1) choose(results[0]);
    } else if (event.key === 'Escape' && open) {
      event.preventDefault();
      close();
    }
  });

  input.addEventListener('blur', () => {
    close();
    if (select.value) return;
    // Typed in full without choosing: accept an exact match, case and accents aside.
    const typed = input.value.trim().toLowerCase();
    const match = [...select.options].find((o) => o.value && o.text.toLowerCase() === typed);
    if (match) {
      select.value = match.value;
      input.value = match.text;
      onChoose({ code: match.value, meaning: match.text, paired: match.dataset.paired === 'true' });
    }
  });

  return { input, select };
}
