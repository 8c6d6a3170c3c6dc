// Removes a camera's G.711 track from the stored fMP4 as hls.js loads it:
// Chromium's MediaSource takes no A-law/µ-law, and one track it cannot
// decode refuses the whole file. The sound of such a camera plays from
// audio.wav beside the video (see player.js). Init parts lose the sound
// trak and its trex; fragments lose its traf, and the other tracks' data
// offsets (relative to the moof) shrink by the bytes removed.
const u32 = (v, o) => v.getUint32(o);
const type = (v, o) => String.fromCharCode(v.getUint8(o + 4), v.getUint8(o + 5), v.getUint8(o + 6), v.getUint8(o + 7));

// [{type, start, size}] of the boxes in [from, to) of v
function boxes(v, from, to) {
  const out = [];
  for (let o = from; o + 8 <= to;) {
    let size = u32(v, o);
    if (size === 0) size = to - o;
    if (size < 8 || o + size > to) break;
    out.push({ type: type(v, o), start: o, size });
    o += size;
  }
  return out;
}

const child = (v, box, name) => boxes(v, box.start + 8, box.start + box.size).find((b) => b.type === name);

// Copies buf without the byte ranges cut ([start, size] sorted), adding
// delta to the size field of each box in grow ([offset, delta]).
function splice(buf, cut, grow) {
  const removed = cut.reduce((n, c) => n + c[1], 0);
  const out = new Uint8Array(buf.byteLength - removed);
  const src = new Uint8Array(buf);
  let w = 0, r = 0;
  for (const [s, n] of cut) { out.set(src.subarray(r, s), w); w += s - r; r = s + n; }
  out.set(src.subarray(r), w);
  const ov = new DataView(out.buffer);
  const shift = (o) => o - cut.filter(([s, n]) => s + n <= o).reduce((a, c) => a + c[1], 0);
  for (const [o, d] of grow) { const p = shift(o); ov.setUint32(p, ov.getUint32(p) + d); }
  return { out, ov, shift };
}

export class SoundStripper {
  constructor() { this.ids = new Set(); }

  // The init part: ids of the sound tracks, their trak and trex removed.
  init(buf) {
    const v = new DataView(buf);
    const moov = boxes(v, 0, buf.byteLength).find((b) => b.type === 'moov');
    if (!moov) return buf;
    const cut = [];
    let removed = 0;
    this.ids = new Set();
    for (const b of boxes(v, moov.start + 8, moov.start + moov.size)) {
      if (b.type !== 'trak') continue;
      const mdia = child(v, b, 'mdia'), hdlr = mdia && child(v, mdia, 'hdlr'), tkhd = child(v, b, 'tkhd');
      if (!hdlr || !tkhd || type(v, hdlr.start + 12) !== 'soun') continue;
      this.ids.add(u32(v, tkhd.start + 8 + (v.getUint8(tkhd.start + 8) === 1 ? 20 : 12)));
      cut.push([b.start, b.size]);
      removed += b.size;
    }
    if (!cut.length) return buf;
    const grow = [];
    const mvex = child(v, moov, 'mvex');
    if (mvex) {
      let gone = 0;
      for (const b of boxes(v, mvex.start + 8, mvex.start + mvex.size)) {
        if (b.type === 'trex' && this.ids.has(u32(v, b.start + 12))) { cut.push([b.start, b.size]); gone += b.size; }
      }
      if (gone) grow.push([mvex.start, -gone]);
      removed += gone;
    }
    grow.push([moov.start, -removed]);
    cut.sort((a, b) => a[0] - b[0]);
    return splice(buf, cut, grow).out.buffer;
  }

  // A fragment (moof + mdat): the sound traf removed, data offsets fixed.
  fragment(buf) {
    if (!this.ids.size) return buf;
    const v = new DataView(buf);
    const moofs = boxes(v, 0, buf.byteLength).filter((b) => b.type === 'moof');
    if (!moofs.length) return buf;
    const cut = [], grow = [], fix = [];
    for (const moof of moofs) {
      let gone = 0;
      const keep = [];
      for (const b of boxes(v, moof.start + 8, moof.start + moof.size)) {
        if (b.type !== 'traf') continue;
        const tfhd = child(v, b, 'tfhd');
        if (tfhd && this.ids.has(u32(v, tfhd.start + 12))) { cut.push([b.start, b.size]); gone += b.size; } else keep.push(b);
      }
      if (!gone) continue;
      grow.push([moof.start, -gone]);
      for (const b of keep) {
        const tfhd = child(v, b, 'tfhd');
        if (tfhd && (u32(v, tfhd.start + 8) & 1)) continue; // explicit base offset: absolute
        for (const trun of boxes(v, b.start + 8, b.start + b.size).filter((x) => x.type === 'trun'))
          if (u32(v, trun.start + 8) & 1) fix.push([trun.start + 16, -gone]);
      }
    }
    if (!cut.length) return buf;
    cut.sort((a, b) => a[0] - b[0]);
    const { out, ov, shift } = splice(buf, cut, grow);
    for (const [o, d] of fix) { const p = shift(o); ov.setInt32(p, ov.getInt32(p) + d); }
    return out.buffer;
  }
}

// An hls.js fragment loader class that strips sound with one SoundStripper.
export function strippingLoader(Base) {
  const s = new SoundStripper();
  return class extends Base {
    load(context, config, callbacks) {
      const ok = callbacks.onSuccess;
      callbacks.onSuccess = (res, stats, ctx, details) => {
        if (res.data instanceof ArrayBuffer) {
          const init = ctx.frag && ctx.frag.sn === 'initSegment';
          res.data = init ? s.init(res.data) : s.fragment(res.data);
        }
        ok(res, stats, ctx, details);
      };
      super.load(context, config, callbacks);
    }
  };
}
