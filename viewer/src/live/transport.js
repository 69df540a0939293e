/**
 * The live channel: a WebSocket, or Server-Sent Events + POST where WebSocket is blocked
 * (a proxy that refuses the upgrade). Reconnects by itself with a growing delay; the page is
 * told about messages and about the connection going up and down.
 */
export class LiveTransport {
  /**
   * @param {{wsUrl: string, sseUrl: string, sendUrl: string, csrf: string|null,
   *          onMessage: (m: any) => void, onStatus: (s: string) => void, forceSse?: boolean}} opts
   */
  constructor(opts) {
    this.opts = opts;
    this.mode = opts.forceSse ? "sse" : "websocket";
    this.ws = null;
    this.es = null;
    this.closed = false;
    this.retry = 0;
    this.bytesSent = 0;
    this.messagesSent = 0;
    this.wsFailures = 0;
    this.wsOpened = false;
  }

  connect() {
    this.closed = false;
    if (this.mode === "websocket") this._openWs();
    else this._openSse();
  }

  _openWs() {
    const url = new URL(this.opts.wsUrl, window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    let ws;
    try {
      ws = new WebSocket(url.href);
    } catch (err) {
      this._wsFailed();
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => { opened = true; this.wsOpened = true; this.retry = 0; this.opts.onStatus("open"); };
    ws.onmessage = (e) => { try { this.opts.onMessage(JSON.parse(e.data)); } catch (err) { /* not JSON: ignore */ } };
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.closed) return;
      if (e.code === 1008) { this.opts.onStatus("refused"); return; }
      if (!opened && !this.wsOpened) { this._wsFailed(); return; }
      this.opts.onStatus("reconnecting");
      this._later(() => this._openWs());
    };
  }

  /** WebSocket never opened: after two tries fall back to SSE for this page. */
  _wsFailed() {
    this.wsFailures += 1;
    if (this.wsFailures >= 2) {
      this.mode = "sse";
      this._openSse();
    } else {
      this._later(() => this._openWs());
    }
  }

  _openSse() {
    const es = new EventSource(this.opts.sseUrl);
    this.es = es;
    es.onopen = () => { this.retry = 0; this.opts.onStatus("open"); };
    es.onmessage = (e) => { try { this.opts.onMessage(JSON.parse(e.data)); } catch (err) { /* ignore */ } };
    es.onerror = () => {
      if (this.es !== es) return;
      // EventSource reconnects by itself, but a 403/404 ends it: tell the page either way.
      if (es.readyState === EventSource.CLOSED) {
        this.es = null;
        if (this.closed) return;
        this.opts.onStatus("reconnecting");
        this._later(() => this._openSse());
      } else {
        this.opts.onStatus("reconnecting");
      }
    };
  }

  _later(fn) {
    const delay = Math.min(8000, 300 * 2 ** this.retry);
    this.retry += 1;
    clearTimeout(this._timer);
    this._timer = setTimeout(() => { if (!this.closed) fn(); }, delay);
  }

  get connected() {
    if (this.ws) return this.ws.readyState === WebSocket.OPEN;
    if (this.es) return this.es.readyState === EventSource.OPEN;
    return false;
  }

  send(message) {
    const body = JSON.stringify(message);
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(body);
    } else if (this.es && this.es.readyState === EventSource.OPEN) {
      const headers = { "Content-Type": "application/json", Accept: "application/json" };
      if (this.opts.csrf) headers["X-CSRFToken"] = this.opts.csrf;
      fetch(this.opts.sendUrl, { method: "POST", headers, body, credentials: "same-origin" })
        .then((r) => r.json())
        .then((answer) => { if (answer && answer.type) this.opts.onMessage(answer); })
        .catch(() => {});
    } else {
      return false;
    }
    this.bytesSent += body.length;
    this.messagesSent += 1;
    return true;
  }

  /** Drop the connection as a network failure would (tests); it comes back by itself. */
  drop() {
    if (this.ws) this.ws.close(4000, "dropped");
    if (this.es) { this.es.close(); this.es = null; this.opts.onStatus("reconnecting"); this._later(() => this._openSse()); }
  }

  close() {
    this.closed = true;
    clearTimeout(this._timer);
    if (this.ws) { const ws = this.ws; this.ws = null; ws.close(1000); }
    if (this.es) { this.es.close(); this.es = null; }
  }
}
