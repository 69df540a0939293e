/**
 * Web Worker: whole-file SHA-256, read in slices so multi-GB slides never sit in memory.
 *
 * WebCrypto's digest() is one-shot, so an incremental hasher is needed. hash-wasm is
 * ~5× faster but WebAssembly is refused when the worker runs under a CSP without
 * 'wasm-unsafe-eval'; then the pure-JS @noble/hashes implementation takes over.
 *
 * Protocol: in  {type:"hash", id, file} | {type:"cancel", id}
 *           out {type:"progress", id, loaded, total} | {type:"done", id, sha256, engine}
 *               | {type:"error", id, message} | {type:"cancelled", id}
 */
import { createSHA256 } from "hash-wasm";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";

const SLICE_BYTES = 8 * 1024 * 1024;
const cancelled = new Set();
let wasmUsable = true;

async function makeHasher() {
  if (wasmUsable) {
    try {
      const hasher = await createSHA256();
      hasher.init();
      return { engine: "wasm", update: (b) => hasher.update(b), hex: () => hasher.digest("hex") };
    } catch (err) {
      wasmUsable = false;
    }
  }
  const hasher = sha256.create();
  return { engine: "js", update: (b) => hasher.update(b), hex: () => bytesToHex(hasher.digest()) };
}

async function hashFile(id, file) {
  const hasher = await makeHasher();
  const total = file.size;
  let offset = 0;
  self.postMessage({ type: "progress", id, loaded: 0, total });
  while (offset < total) {
    if (cancelled.has(id)) {
      cancelled.delete(id);
      self.postMessage({ type: "cancelled", id });
      return;
    }
    const end = Math.min(offset + SLICE_BYTES, total);
    const chunk = new Uint8Array(await file.slice(offset, end).arrayBuffer());
    hasher.update(chunk);
    offset = end;
    self.postMessage({ type: "progress", id, loaded: offset, total });
  }
  self.postMessage({ type: "done", id, sha256: hasher.hex(), engine: hasher.engine });
}

self.onmessage = (event) => {
  const msg = event.data || {};
  if (msg.type === "cancel") {
    cancelled.add(msg.id);
  } else if (msg.type === "hash") {
    hashFile(msg.id, msg.file).catch((err) =>
      self.postMessage({ type: "error", id: msg.id, message: String((err && err.message) || err) }),
    );
  }
};
