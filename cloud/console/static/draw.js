// Boxes and zones (normalised frame coordinates) drawn over a snapshot crop, in SVG.
import { el, svg } from "./common.js";

/** The crop of the frame the snapshot shows ([x1, y1, x2, y2]; the whole frame if unknown). */
export function regionOf(event) {
  const a = event?.attributes || {};
  if (a.snapshot_x1 === undefined) return [0, 0, 1, 1];
  return [a.snapshot_x1, a.snapshot_y1, a.snapshot_x2, a.snapshot_y2];
}

/** <figure> content: the image with an SVG overlay of *boxes* and *zones*. */
export function overlay(src, width, height, region, { boxes = [], zones = [] } = {}) {
  const [rx1, ry1, rx2, ry2] = region;
  const sx = (x) => ((x - rx1) / (rx2 - rx1 || 1)) * width;
  const sy = (y) => ((y - ry1) / (ry2 - ry1 || 1)) * height;
  const layer = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "overlay",
    preserveAspectRatio: "none",
    "aria-hidden": "true",
  });
  for (const zone of zones) {
    const points = zone.polygon.map(([x, y]) => `${sx(x)},${sy(y)}`).join(" ");
    layer.append(svg("polygon", { points, class: "zone" }));
  }
  for (const box of boxes) {
    layer.append(
      svg("rect", {
        x: sx(box.x1),
        y: sy(box.y1),
        width: sx(box.x2) - sx(box.x1),
        height: sy(box.y2) - sy(box.y1),
        class: "box",
      }),
    );
  }
  const img = el("img", { src, alt: "", width, height });
  return el("div", { class: "frame" }, img, layer);
}
