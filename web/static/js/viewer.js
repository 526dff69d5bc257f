// Zoom and pan for [data-viewer] figures: the mouse wheel, two-finger pinch, dragging, the
// toolbar buttons and the keyboard (+ and - zoom, 0 fits, arrow keys move). Viewers in the same
// data-sync group (the comparison page) follow each other while "zoom together" is ticked.
// P and N step to the previous (older) and next (newer) photograph of the patient. Like the
// zoom keys they work only while the photograph has focus: single-key shortcuts that work
// anywhere would fight screen readers and speech input (WCAG 2.1.4, character key shortcuts).

const MAX_SCALE = 8;
const STEP = 1.5;
const groups = new Map();

class Viewer {
  constructor(figure) {
    this.figure = figure;
    this.stage = figure.querySelector('[data-viewer-stage]');
    this.image = this.stage.querySelector('img');
    this.level = figure.querySelector('[data-zoom-level]');
    this.scale = 1;
    this.x = 0;
    this.y = 0;
    this.pointers = new Map();
    this.group = figure.dataset.sync || null;
    figure.querySelector('[data-viewer-toolbar]').hidden = false;
    figure.classList.add('ologies-viewer--enhanced');
    this.bind();
    this.apply(false);
  }

  bind() {
    this.figure.querySelectorAll('[data-zoom]').forEach((button) => {
      button.addEventListener('click', () => {
        const action = button.dataset.zoom;
        if (action === 'fit') this.fit();
        else this.zoomAt(action === 'in' ? STEP : 1 / STEP);
      });
    });
    this.stage.addEventListener('wheel', (event) => {
      event.preventDefault();
      const point = this.point(event);
      this.zoomAt(Math.pow(1.0015, -event.deltaY), point.x, point.y);
    }, { passive: false });
    this.stage.addEventListener('pointerdown', (event) => {
      this.stage.setPointerCapture(event.pointerId);
      this.pointers.set(event.pointerId, this.point(event));
    });
    this.stage.addEventListener('pointermove', (event) => this.move(event));
    for (const type of ['pointerup', 'pointercancel']) {
      this.stage.addEventListener(type, (event) => {
        this.pointers.delete(event.pointerId);
        this.pinch = null;
      });
    }
    this.stage.addEventListener('keydown', (event) => this.key(event));
    this.stage.addEventListener('dblclick', (event) => {
      const point = this.point(event);
      if (this.scale > 1) this.fit(); else this.zoomAt(2, point.x, point.y);
    });
  }

  point(event) {
    const box = this.image.parentElement.getBoundingClientRect();
    const img = this.image.offsetLeft;
    return { x: event.clientX - box.left - img, y: event.clientY - box.top - this.image.offsetTop };
  }

  move(event) {
    if (!this.pointers.has(event.pointerId)) return;
    const before = this.pointers.get(event.pointerId);
    const now = this.point(event);
    this.pointers.set(event.pointerId, now);
    if (this.pointers.size === 1) {
      this.x += now.x - before.x;
      this.y += now.y - before.y;
      this.apply();
    } else if (this.pointers.size === 2) {
      const [a, b] = [...this.pointers.values()];
      const distance = Math.hypot(a.x - b.x, a.y - b.y);
      if (this.pinch) this.zoomAt(distance / this.pinch, (a.x + b.x) / 2, (a.y + b.y) / 2);
      this.pinch = distance;
    }
  }

  key(event) {
    const width = this.image.clientWidth;
    const height = this.image.clientHeight;
    const moves = { ArrowLeft: [0.1, 0], ArrowRight: [-0.1, 0], ArrowUp: [0, 0.1], ArrowDown: [0, -0.1] };
    if (event.key === '+' || event.key === '=') this.zoomAt(STEP);
    else if (event.key === '-' || event.key === '_') this.zoomAt(1 / STEP);
    else if (event.key === '0') this.fit();
    else if ((event.key === 'p' || event.key === 'n') && !event.altKey && !event.ctrlKey && !event.metaKey) {
      const link = document.querySelector(`a[rel="${event.key === 'p' ? 'prev' : 'next'}"]`);
      if (!link) return;
      link.click();
    }
    else if (moves[event.key] && this.scale > 1) {
      this.x += moves[event.key][0] * width;
      this.y += moves[event.key][1] * height;
      this.apply();
    } else return;
    event.preventDefault();
  }

  // Zoom by `factor`, keeping the image point under (px, py) where it is (default: the centre).
  zoomAt(factor, px = this.image.clientWidth / 2, py = this.image.clientHeight / 2) {
    const scale = Math.min(MAX_SCALE, Math.max(1, this.scale * factor));
    const ratio = scale / this.scale;
    this.x = px - (px - this.x) * ratio;
    this.y = py - (py - this.y) * ratio;
    this.scale = scale;
    this.apply();
  }

  fit() {
    this.scale = 1;
    this.x = 0;
    this.y = 0;
    this.apply();
  }

  apply(broadcast = true) {
    const width = this.image.clientWidth;
    const height = this.image.clientHeight;
    // Keep the zoomed image covering its own box: no panning off into emptiness.
    this.x = Math.min(0, Math.max(width * (1 - this.scale), this.x));
    this.y = Math.min(0, Math.max(height * (1 - this.scale), this.y));
    this.image.style.transform = `translate(${this.x}px, ${this.y}px) scale(${this.scale})`;
    this.stage.classList.toggle('is-zoomed', this.scale > 1);
    this.stage.dataset.scale = this.scale.toFixed(3);
    if (this.level) this.level.textContent = `Zoom ${Math.round(this.scale * 100)}%`;
    if (broadcast) this.broadcast();
  }

  // The same view in another viewer, as fractions of its own size (the images may differ).
  follow(source) {
    this.scale = source.scale;
    this.x = (source.x / (source.image.clientWidth || 1)) * this.image.clientWidth;
    this.y = (source.y / (source.image.clientHeight || 1)) * this.image.clientHeight;
    this.apply(false);
  }

  broadcast() {
    if (!this.group) return;
    const together = document.getElementById('sync-zoom');
    if (together && !together.checked) return;
    for (const other of groups.get(this.group) || []) if (other !== this) other.follow(this);
  }
}

for (const figure of document.querySelectorAll('[data-viewer]')) {
  const viewer = new Viewer(figure);
  if (viewer.group) {
    if (!groups.has(viewer.group)) groups.set(viewer.group, []);
    groups.get(viewer.group).push(viewer);
  }
}
document.querySelectorAll('[data-sync-control]').forEach((el) => { el.hidden = false; });
