/**
 * Loads a slide's DZI descriptor and turns it into an OpenSeadragon tile source.
 *
 * We fetch the descriptor ourselves (instead of handing OSD the URL) so that
 * (a) a 503 from storage is retried quietly with a visible notice instead of an
 * "open-failed" dead end, and (b) the server's optional tileUrlTemplate can
 * replace OSD's "<name>_files/<level>/<col>_<row>.<fmt>" convention.
 */
import OpenSeadragon from "openseadragon";

/** Statuses that mean "try again later" rather than "this slide is broken". */
const TRANSIENT = new Set([0, 202, 408, 425, 429, 500, 502, 503, 504]);

export class DziError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/**
 * Parse an XML (or JSON) DZI descriptor.
 * @param {string} text
 * @returns {{width:number,height:number,tileSize:number,overlap:number,format:string}}
 */
export function parseDzi(text) {
  const trimmed = text.trim();
  if (trimmed.startsWith("{")) {
    const img = JSON.parse(trimmed).Image;
    return {
      width: Number(img.Size.Width),
      height: Number(img.Size.Height),
      tileSize: Number(img.TileSize),
      overlap: Number(img.Overlap),
      format: String(img.Format),
    };
  }
  const doc = new DOMParser().parseFromString(trimmed, "application/xml");
  const image = doc.getElementsByTagName("Image")[0];
  const size = doc.getElementsByTagName("Size")[0];
  if (!image || !size) throw new DziError("Malformed DZI descriptor", 0);
  return {
    width: Number(size.getAttribute("Width")),
    height: Number(size.getAttribute("Height")),
    tileSize: Number(image.getAttribute("TileSize")),
    overlap: Number(image.getAttribute("Overlap")),
    format: image.getAttribute("Format") || "jpeg",
  };
}

/**
 * Fetch the DZI with quiet retries on transient failures.
 * @param {string} url
 * @param {{onTransient?: (status:number)=>void, onRecovered?: ()=>void, signal?: AbortSignal}} hooks
 */
export async function fetchDzi(url, hooks = {}) {
  let delay = 1000;
  let failedBefore = false;
  for (;;) {
    let status = 0;
    try {
      const response = await fetch(url, { credentials: "same-origin", signal: hooks.signal });
      status = response.status;
      if (response.ok && status !== 202) {
        const text = await response.text();
        if (failedBefore && hooks.onRecovered) hooks.onRecovered();
        return parseDzi(text);
      }
    } catch (err) {
      if (err && err.name === "AbortError") throw err;
      if (err instanceof DziError) throw err;
      status = 0;
    }
    if (!TRANSIENT.has(status)) throw new DziError(`DZI request failed (${status})`, status);
    failedBefore = true;
    if (hooks.onTransient) hooks.onTransient(status);
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 15000);
  }
}

/**
 * Build the tile source for a slide from its parsed descriptor.
 * @param {{dziUrl: string, tileUrlTemplate?: string}} slide
 * @param {ReturnType<typeof parseDzi>} dzi
 */
export function makeTileSource(slide, dzi) {
  const [path, query = ""] = slide.dziUrl.split("?");
  const tilesUrl = path.replace(/\.(dzi|xml|json)$/i, "") + "_files/";
  const source = new OpenSeadragon.DziTileSource({
    width: dzi.width,
    height: dzi.height,
    tileSize: dzi.tileSize,
    tileOverlap: dzi.overlap,
    tilesUrl,
    fileFormat: dzi.format,
    queryParams: query ? `?${query}` : "",
  });
  if (slide.tileUrlTemplate) {
    const template = slide.tileUrlTemplate;
    source.getTileUrl = (level, x, y) =>
      template
        .replace("{level}", String(level))
        .replace("{col}", String(x))
        .replace("{row}", String(y))
        .replace("{x}", String(x))
        .replace("{y}", String(y));
  }
  return source;
}

/** Whether a failed tile should be revived later instead of given up on. */
export function isTransientStatus(status) {
  return TRANSIENT.has(status) || status === 404;
}
