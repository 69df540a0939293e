/**
 * Uniform-grid spatial index over shape bounding boxes (slide pixels).
 *
 * Why a grid rather than an R-tree: annotations are spread over a known,
 * bounded plane (the slide) and are mostly similar in size, so a 64 × 64 grid
 * answers viewport and click queries by touching only nearby shapes, builds in
 * one pass over typed arrays, and needs no dependency.
 */
export class GridIndex {
  /**
   * @param {Float64Array} boxes 4 numbers per shape: x0, y0, x1, y1
   * @param {number} count
   * @param {number} width slide width (px)
   * @param {number} height slide height (px)
   */
  constructor(boxes, count, width, height, cells = 64) {
    this.boxes = boxes;
    this.count = count;
    this.cols = cells;
    this.rows = cells;
    this.cw = Math.max(width, 1) / cells;
    this.ch = Math.max(height, 1) / cells;
    this.stamp = new Uint32Array(count);
    this.epoch = 0;
    // Two passes (count, then fill) into one flat Int32Array: no per-cell arrays to allocate.
    const n = this.cols * this.rows;
    const starts = new Int32Array(n + 1);
    const span = (i) => this._span(boxes[4 * i], boxes[4 * i + 1], boxes[4 * i + 2], boxes[4 * i + 3]);
    for (let i = 0; i < count; i++) {
      const [c0, r0, c1, r1] = span(i);
      for (let r = r0; r <= r1; r++) for (let c = c0; c <= c1; c++) starts[r * this.cols + c + 1] += 1;
    }
    for (let k = 0; k < n; k++) starts[k + 1] += starts[k];
    const fill = starts.slice(0, n);
    this.items = new Int32Array(starts[n]);
    for (let i = 0; i < count; i++) {
      const [c0, r0, c1, r1] = span(i);
      for (let r = r0; r <= r1; r++) for (let c = c0; c <= c1; c++) this.items[fill[r * this.cols + c]++] = i;
    }
    this.starts = starts;
  }

  _span(x0, y0, x1, y1) {
    const clampC = (v) => Math.min(this.cols - 1, Math.max(0, Math.floor(v / this.cw)));
    const clampR = (v) => Math.min(this.rows - 1, Math.max(0, Math.floor(v / this.ch)));
    return [clampC(x0), clampR(y0), clampC(x1), clampR(y1)];
  }

  /** Indices (ascending, each once) of shapes whose box touches [x0, y0, x1, y1]. */
  query(x0, y0, x1, y1) {
    const out = [];
    this.epoch += 1;
    if (this.epoch === 0xffffffff) { this.stamp.fill(0); this.epoch = 1; }
    const [c0, r0, c1, r1] = this._span(x0, y0, x1, y1);
    const b = this.boxes;
    for (let r = r0; r <= r1; r++) {
      for (let c = c0; c <= c1; c++) {
        const cell = r * this.cols + c;
        for (let k = this.starts[cell]; k < this.starts[cell + 1]; k++) {
          const i = this.items[k];
          if (this.stamp[i] === this.epoch) continue;
          this.stamp[i] = this.epoch;
          if (b[4 * i] <= x1 && b[4 * i + 2] >= x0 && b[4 * i + 1] <= y1 && b[4 * i + 3] >= y0) out.push(i);
        }
      }
    }
    return out.sort((p, q) => p - q);
  }
}
