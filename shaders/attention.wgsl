// Causal grouped-query attention with an optional sliding window and an
// optional learnable per-head attention sink; its backward; and the two
// kernels of KV-cache decoding.
//
// Per query row i of batch b and query head h (kv head g = h / (QH/KVH)),
// over the keys j it sees (lo_i ≤ j ≤ hi_i, lo_i = max(0, i − W + 1) with
// a window W, else 0; hi_i = i, or with a prefix of P positions (PaliGemma's
// prefix-LM mask) hi_i = max(i, P − 1), so the first P positions see each
// other in both directions and the rest stay causal):
//
//   a_ij = scale · q_i · k_j
//   m_i  = max(max_j a_ij, sink_h)                      (sink only if SINK)
//   Z_i  = exp(sink_h − m_i) + Σ_j exp(a_ij − m_i)
//   o_i  = Σ_j exp(a_ij − m_i) / Z_i · v_j
//   lse_i = m_i + log Z_i                               (saved for backward)
//
// The sink is a key with logit sink_h and value 0: it only enlarges the
// denominator. Backward (p_ij = exp(a_ij − lse_i), D_i = do_i · o_i):
//
//   dv_j = Σ_i p_ij do_i                  ds_ij = p_ij (do_i · v_j − D_i)
//   dq_i = scale Σ_j ds_ij k_j            dk_j  = scale Σ_i ds_ij q_i
//   dsink_h = −Σ_{b,i} exp(sink_h − lse_i) D_i
//
// Every kernel gives each invocation QB consecutive output rows (queries
// for the forward, decoding and dq; keys for dk/dv) and loops serially
// over the union of the keys (or queries) those rows see, masking per row,
// so memory does not grow with T² and a window W costs O(T·(W + QB)). Each
// key (query) row loaded serves QB rows: on lavapipe every per-lane load is
// a gather, and this register blocking is what made the kernels 2–3×
// faster (graph/attention.go, attnBlock). No float atomics: every output
// element has one writer, so results are deterministic. The forward keeps
// a running max and sum (online softmax) over blocks of KB keys: KB scores
// go to a private array, the block max rescales the accumulators once,
// then the KB values are accumulated (KB + 1 exps per block and row).
//
// Loops over private arrays have constant trip counts (QB, DV) and guard
// with `if` instead: a data-dependent bound forces the array out of
// registers into per-lane scratch on lavapipe (it made dq 2× slower).
// Tried and dropped: one workgroup per (b, h, query block) with every lane
// walking the same keys, so key addresses are workgroup-uniform — no
// faster on lavapipe (Mesa 22.3 still gathers), so not kept.
//
// Vector type: rows are read as VT. VT is vec4<f32> when the head dim is a
// multiple of 4 (DV = dh/4 vectors per head row); for other head dims the
// Go side rewrites the two marked lines below to `alias VT = f32;` and
// `return x;` (DV = dh). Everything else is written for either.
//
// Grids: WG invocations per workgroup, the workgroup grid folded 1-D
// (linear index wid.x + wid.y · nwg.x); indices past the end return at
// once. Rows past the end of a block repeat the block's last row and are
// not written.

alias VT = vec4<f32>;                                    // [vt-alias]
fn vsum(x: VT) -> f32 { return dot(x, VT(1.0)); }        // [vt-sum]

override DV: u32 = 16u;     // head dim in VT units
override KB: u32 = 8u;      // keys per online-softmax block (forward)
override QB: u32 = 1u;      // rows per invocation: queries (forward, decoding, dq) or keys (dk, dv)
override WG: u32 = 64u;     // invocations (rows) per workgroup
override SINK: bool = false;  // whether the sink binding holds per-head logits

struct Params {
  batch: u32,    // B
  seq: u32,      // T (forward, backward), QLen (cached, cache write)
  qheads: u32,   // QH (cache write: unused)
  kvheads: u32,  // KVH
  window: u32,   // W, 0 = global
  scale: f32,    // score scale
  cap: u32,      // cache capacity in slots (cached, cache write)
  prefix: u32,   // P, positions that see each other both ways (0 = causal)
}

// ---- bindings ----
// Forward attn_fwd and decoding attn_cached:
@group(0) @binding(0) var<storage, read> q: array<VT>;          // q (B·T, QH·dh) row-major, token b·T+t; read
@group(0) @binding(1) var<storage, read> k: array<VT>;          // fwd: k (B·T, KVH·dh); cached: kcache (B, KVH, Cap, dh); read
@group(0) @binding(2) var<storage, read> v: array<VT>;          // v, laid out as k; read
@group(0) @binding(3) var<storage, read> sink: array<f32>;      // s (QH) sink logits; read only if SINK (else any buffer)
@group(0) @binding(4) var<storage, read_write> o: array<VT>;    // o (B·T, QH·dh), laid out as q; written
@group(0) @binding(5) var<storage, read_write> lse: array<f32>; // fwd: lse (B, QH, T); written
@group(0) @binding(5) var<storage, read> pos: array<u32>;       // cached: pos (1), tokens already cached; read
@group(0) @binding(6) var<uniform> pa: Params;
// Backward attn_bwd_dq (q, k, v at bindings 0–2 as above):
@group(0) @binding(3) var<storage, read> lse_r: array<f32>;         // lse (B, QH, T) from the forward; read
@group(0) @binding(4) var<storage, read> o_r: array<VT>;            // o (B·T, QH·dh) from the forward; read
@group(0) @binding(5) var<storage, read> dout: array<VT>;           // do (B·T, QH·dh); read (dq and dkv)
@group(0) @binding(6) var<storage, read_write> dq: array<VT>;       // dq (B·T, QH·dh); written
@group(0) @binding(7) var<storage, read_write> dd_w: array<f32>;    // D (B, QH, T) = rowsum(do ∘ o) scratch; written
@group(0) @binding(8) var<uniform> pb: Params;
// Backward attn_bwd_dkv (q, k, v, lse_r, dout as above):
@group(0) @binding(4) var<storage, read> dd_r: array<f32>;          // D (B, QH, T) from attn_bwd_dq; read
@group(0) @binding(6) var<storage, read_write> dk: array<VT>;       // dk (B·T, KVH·dh); written
@group(0) @binding(7) var<storage, read_write> dv: array<VT>;       // dv (B·T, KVH·dh); written
// Backward attn_bwd_dkv_sink (bindings 0–7 as attn_bwd_dkv):
@group(0) @binding(8) var<storage, read> dks_s: array<f32>;         // s (QH); read
@group(0) @binding(9) var<storage, read_write> dks_out: array<f32>; // ds (QH); written
@group(0) @binding(10) var<uniform> pk2: Params;
// Backward attn_bwd_dsink:
@group(0) @binding(0) var<storage, read> ds_s: array<f32>;          // s (QH); read
@group(0) @binding(1) var<storage, read> ds_lse: array<f32>;        // lse (B, QH, T); read
@group(0) @binding(2) var<storage, read> ds_dd: array<f32>;         // D (B, QH, T); read
@group(0) @binding(3) var<storage, read_write> ds_out: array<f32>;  // ds (QH); written
@group(0) @binding(4) var<uniform> ps: Params;
// KV-cache write kv_cache_write:
@group(0) @binding(0) var<storage, read> kw_in: array<VT>;          // k or v (B·QLen, KVH·dh); read
@group(0) @binding(1) var<storage, read> kw_pos: array<u32>;        // pos (1); read
@group(0) @binding(2) var<storage, read_write> kw_cache: array<VT>; // cache (B, KVH, Cap, dh); slots (pos+t) % Cap written
@group(0) @binding(3) var<uniform> pw: Params;

fn row_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

// attn_rows computes QB consecutive query rows of one head with online
// softmax and writes the first nr of them to o; it returns their lse. Row
// r is q[qb + r·qs ..] (rows r ≥ nr repeat row nr − 1, unwritten). The
// rows share one pass over a key sequence: n ≥ 1 keys from slot slot0
// upwards, slots wrapping to 0 at cap, slot s at k[kb + s·ks ..] and
// v[kb + s·ks ..]; row r sees the keys u (0-based in the sequence) with
// lr[r] ≤ u ≤ hr[r] and every row sees at least one. h is the query head
// (for the sink). Each key row is loaded once for all QB queries.
fn attn_rows(qb: u32, qs: u32, nr: u32, h: u32, hs: u32, kb: u32, ks: u32, cap: u32, slot0: u32, n: u32,
             lr_in: array<u32, QB>, hr_in: array<u32, QB>) -> array<f32, QB> {
  var lr = lr_in;  // value arrays may only be indexed by constants; variables by anything
  var hr = hr_in;
  var qr: array<array<VT, DV>, QB>;
  var acc: array<array<VT, DV>, QB>;
  var m: array<f32, QB>;
  var l: array<f32, QB>;
  for (var r = 0u; r < QB; r++) {
    let qrow = qb + min(r, nr - 1u) * qs;
    for (var d = 0u; d < DV; d++) {
      qr[r][d] = q[qrow + d] * pa.scale;
      acc[r][d] = VT(0.0);
    }
    m[r] = -3.0e38;  // below any score; exp(m − finite) = 0
    l[r] = 0.0;
    if (SINK) {
      m[r] = sink[h + min(r, nr - 1u) * hs];
      l[r] = 1.0;  // exp(sink − m)
    }
  }
  var sc: array<array<f32, KB>, QB>;
  var slot = slot0;
  for (var j0 = 0u; j0 < n; j0 += KB) {
    let nb = min(KB, n - j0);
    var bm = m;
    var sl = slot;
    for (var u = 0u; u < nb; u++) {
      let kr = kb + sl * ks;
      var sv: array<VT, QB>;
      for (var r = 0u; r < QB; r++) { sv[r] = VT(0.0); }
      for (var d = 0u; d < DV; d++) {
        let kd = k[kr + d];
        for (var r = 0u; r < QB; r++) { sv[r] = fma(qr[r][d], kd, sv[r]); }
      }
      let ju = j0 + u;
      for (var r = 0u; r < QB; r++) {
        let s = select(-3.0e38, vsum(sv[r]), ju >= lr[r] && ju <= hr[r]);
        sc[r][u] = s;
        bm[r] = max(bm[r], s);
      }
      sl += 1u;
      if (sl == cap) { sl = 0u; }
    }
    for (var r = 0u; r < QB; r++) {
      let c = exp(m[r] - bm[r]);
      l[r] *= c;
      for (var d = 0u; d < DV; d++) { acc[r][d] *= c; }
      m[r] = bm[r];
    }
    sl = slot;
    for (var u = 0u; u < nb; u++) {
      let ju = j0 + u;
      var p: array<f32, QB>;
      for (var r = 0u; r < QB; r++) {
        p[r] = select(0.0, exp(sc[r][u] - m[r]), ju >= lr[r] && ju <= hr[r]);
        l[r] += p[r];
      }
      let vr = kb + sl * ks;
      for (var d = 0u; d < DV; d++) {
        let vd = v[vr + d];
        for (var r = 0u; r < QB; r++) { acc[r][d] = fma(VT(p[r]), vd, acc[r][d]); }
      }
      sl += 1u;
      if (sl == cap) { sl = 0u; }
    }
    slot = sl;
  }
  var out: array<f32, QB>;
  for (var r = 0u; r < QB; r++) {
    out[r] = m[r] + log(l[r]);
    if (r < nr) {
      let inv = 1.0 / l[r];
      let orow = qb + r * qs;
      for (var d = 0u; d < DV; d++) { o[orow + d] = acc[r][d] * inv; }
    }
  }
  return out;
}

// window_lo is the first key position query position i sees.
fn window_lo(i: u32, w: u32) -> u32 {
  if (w > 0u && i + 1u > w) { return i + 1u - w; }
  return 0u;
}

// seen_hi is the last key position query position i sees with a prefix of
// p positions (0 = causal), at most last.
fn seen_hi(i: u32, p: u32, last: u32) -> u32 {
  if (p > i + 1u) { return min(p - 1u, last); }
  return i;
}

// Forward: one invocation per (b, h, block of QB queries i0 = QB·blk …),
// invocation index (b·QH + h)·⌈T/QB⌉ + blk. Bindings q, k, v, sink, o,
// lse, pa.
@compute @workgroup_size(WG)
fn attn_fwd(@builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let x = row_index(wid, nwg, lid);
  let T = pa.seq;
  let nblk = (T + QB - 1u) / QB;
  if (x >= pa.batch * pa.qheads * nblk) { return; }
  let i0 = (x % nblk) * QB;
  let bh = x / nblk;
  let h = bh % pa.qheads;
  let b = bh / pa.qheads;
  let g = h / (pa.qheads / pa.kvheads);
  let nr = min(QB, T - i0);
  let L = window_lo(i0, pa.window);
  var lr: array<u32, QB>;
  var hr: array<u32, QB>;
  for (var r = 0u; r < QB; r++) {
    let i = i0 + min(r, nr - 1u);
    lr[r] = window_lo(i, pa.window) - L;
    hr[r] = seen_hi(i, pa.prefix, T - 1u) - L;
  }
  let ks = pa.kvheads * DV;
  let qb = ((b * T + i0) * pa.qheads + h) * DV;
  let kb = (b * T * pa.kvheads + g) * DV;
  let n = seen_hi(i0 + nr - 1u, pa.prefix, T - 1u) + 1u - L;
  var ls = attn_rows(qb, pa.qheads * DV, nr, h, 0u, kb, ks, 0xffffffffu, L, n, lr, hr);
  for (var r = 0u; r < QB; r++) {
    if (r < nr) { lse[bh * T + i0 + r] = ls[r]; }
  }
}

// Decoding: one invocation per (b, h, block of QB of the QLen new
// queries). Query t is at absolute position P = pos + t and sees the
// positions lo..P, lo = max(0, P − W + 1) (0 if global), raised to
// pos + QLen − Cap when the ring has overwritten older positions. Position
// p is in slot p % Cap. Bindings q, kcache, vcache, sink, o, pos, pa.
@compute @workgroup_size(WG)
fn attn_cached(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let x = row_index(wid, nwg, lid);
  let T = pa.seq;
  let nblk = (T + QB - 1u) / QB;
  if (x >= pa.batch * pa.qheads * nblk) { return; }
  let t0 = (x % nblk) * QB;
  let bh = x / nblk;
  let h = bh % pa.qheads;
  let b = bh / pa.qheads;
  let g = h / (pa.qheads / pa.kvheads);
  let nr = min(QB, T - t0);
  let p0 = pos[0];
  let end = p0 + T;  // one past the newest cached position
  var oldest = 0u;   // the oldest position still in the ring
  if (end > pa.cap) { oldest = end - pa.cap; }
  let L = max(window_lo(p0 + t0, pa.window), oldest);
  var lr: array<u32, QB>;
  var hr: array<u32, QB>;
  for (var r = 0u; r < QB; r++) {
    let P = p0 + t0 + min(r, nr - 1u);
    lr[r] = max(window_lo(P, pa.window), oldest) - L;
    hr[r] = seen_hi(P, pa.prefix, end - 1u) - L;
  }
  let qb = ((b * T + t0) * pa.qheads + h) * DV;
  let kb = (b * pa.kvheads + g) * pa.cap * DV;
  let n = seen_hi(p0 + t0 + nr - 1u, pa.prefix, end - 1u) + 1u - L;
  _ = attn_rows(qb, pa.qheads * DV, nr, h, 0u, kb, DV, pa.cap, L % pa.cap, n, lr, hr);
}

// Decoding one token a sequence (QLen 1) with grouped-query heads: invocation b·KVH + g
// takes the QB = QH/KVH query heads of group g of sequence b as its block's rows, so each
// key and value row of the group is loaded once for all of them. Bindings as attn_cached.
@compute @workgroup_size(WG)
fn attn_cached_heads(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
  let x = row_index(wid, nwg, lid);
  if (x >= pa.batch * pa.kvheads) { return; }
  let g = x % pa.kvheads;
  let b = x / pa.kvheads;
  let h0 = g * QB;
  let p0 = pos[0];
  var oldest = 0u;   // the oldest position still in the ring
  if (p0 + 1u > pa.cap) { oldest = p0 + 1u - pa.cap; }
  let L = max(window_lo(p0, pa.window), oldest);
  var lr: array<u32, QB>;
  var hr: array<u32, QB>;
  for (var r = 0u; r < QB; r++) {
    lr[r] = 0u;
    hr[r] = seen_hi(p0, pa.prefix, p0) - L;
  }
  let qb = (b * pa.qheads + h0) * DV;
  let kb = (b * pa.kvheads + g) * pa.cap * DV;
  _ = attn_rows(qb, DV, QB, h0, 1u, kb, DV, pa.cap, L % pa.cap, hr[0] + 1u, lr, hr);
}

// Backward, part 1: dq and D for a block of QB query rows i0 = QB·blk …
// of one (b, h), invocation index (b·QH + h)·⌈T/QB⌉ + blk, looping once
// over the union of the keys the rows see (each key row loaded once for
// all QB rows). Bindings q, k, v, lse_r, o_r, dout, dq, dd_w, pb.
@compute @workgroup_size(WG)
fn attn_bwd_dq(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let x = row_index(wid, nwg, lid);
  let T = pb.seq;
  let nblk = (T + QB - 1u) / QB;
  if (x >= pb.batch * pb.qheads * nblk) { return; }
  let i0 = (x % nblk) * QB;
  let bh = x / nblk;
  let h = bh % pb.qheads;
  let b = bh / pb.qheads;
  let g = h / (pb.qheads / pb.kvheads);
  let nr = min(QB, T - i0);
  let qs = pb.qheads * DV;
  let qb = ((b * T + i0) * pb.qheads + h) * DV;
  var qr: array<array<VT, DV>, QB>;
  var dor: array<array<VT, DV>, QB>;
  var acc: array<array<VT, DV>, QB>;
  var Di: array<f32, QB>;
  var L: array<f32, QB>;
  var lo: array<u32, QB>;
  var hi: array<u32, QB>;
  for (var r = 0u; r < QB; r++) {
    let rr = min(r, nr - 1u);  // rows past the end repeat the last, unwritten
    let row = qb + rr * qs;
    var dv4 = VT(0.0);
    for (var d = 0u; d < DV; d++) {
      qr[r][d] = q[row + d] * pb.scale;
      dor[r][d] = dout[row + d];
      dv4 = fma(dor[r][d], o_r[row + d], dv4);
      acc[r][d] = VT(0.0);
    }
    Di[r] = vsum(dv4);
    L[r] = lse_r[bh * T + i0 + rr];
    lo[r] = window_lo(i0 + rr, pb.window);
    hi[r] = seen_hi(i0 + rr, pb.prefix, T - 1u);
  }
  let ks = pb.kvheads * DV;
  let j1 = seen_hi(i0 + nr - 1u, pb.prefix, T - 1u);
  var kr = (b * T * pb.kvheads + g) * DV + lo[0] * ks;
  for (var j = lo[0]; j <= j1; j++) {
    var sv: array<VT, QB>;
    var pv: array<VT, QB>;
    for (var r = 0u; r < QB; r++) {
      sv[r] = VT(0.0);
      pv[r] = VT(0.0);
    }
    for (var d = 0u; d < DV; d++) {
      let kd = k[kr + d];
      for (var r = 0u; r < QB; r++) { sv[r] = fma(qr[r][d], kd, sv[r]); }
    }
    for (var d = 0u; d < DV; d++) {
      let vd = v[kr + d];
      for (var r = 0u; r < QB; r++) { pv[r] = fma(dor[r][d], vd, pv[r]); }
    }
    var ds: array<f32, QB>;
    for (var r = 0u; r < QB; r++) {
      let p = exp(vsum(sv[r]) - L[r]);
      ds[r] = select(0.0, p * (vsum(pv[r]) - Di[r]), j >= lo[r] && j <= hi[r]);
    }
    for (var d = 0u; d < DV; d++) {
      let kd = k[kr + d];
      for (var r = 0u; r < QB; r++) { acc[r][d] = fma(VT(ds[r]), kd, acc[r][d]); }
    }
    kr += ks;
  }
  for (var r = 0u; r < QB; r++) {  // a constant trip count keeps acc in registers
    if (r < nr) {
      dd_w[bh * T + i0 + r] = Di[r];
      let row = qb + r * qs;
      for (var d = 0u; d < DV; d++) { dq[row + d] = acc[r][d] * pb.scale; }
    }
  }
}

// Backward, part 2: dk and dv for a block of QB key rows j0 = QB·blk … of
// one (b, g), invocation index (b·KVH + g)·⌈T/QB⌉ + blk, looping over the
// query heads of group g and the union of the queries that see the keys
// (key j is seen by j ≤ i ≤ j + W − 1, and inside a prefix also by every
// i < j); each q and do row is loaded once
// for all QB keys. Bindings q, k, v, lse_r, dd_r, dout, dk, dv, pb.
@compute @workgroup_size(WG)
fn attn_bwd_dkv(@builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let x = row_index(wid, nwg, lid);
  if (x >= pb.batch * pb.kvheads * ((pb.seq + QB - 1u) / QB)) { return; }
  dkv_block(x, pb);
}

// attn_bwd_dkv with a sink: the invocations past the key blocks, one per
// query head h, compute dsink_h as attn_bwd_dsink does (same sum, same
// order), saving that dispatch. Bindings as attn_bwd_dkv's storage ones,
// then dks_s, dks_out, pk2.
@compute @workgroup_size(WG)
fn attn_bwd_dkv_sink(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
  let x = row_index(wid, nwg, lid);
  let T = pk2.seq;
  let n = pk2.batch * pk2.kvheads * ((T + QB - 1u) / QB);
  if (x >= n) {
    let h = x - n;
    if (h >= pk2.qheads) { return; }
    let s = dks_s[h];
    var acc = 0.0;
    for (var b = 0u; b < pk2.batch; b++) {
      let base = (b * pk2.qheads + h) * T;
      for (var i = 0u; i < T; i++) { acc += exp(s - lse_r[base + i]) * dd_r[base + i]; }
    }
    dks_out[h] = -acc;
    return;
  }
  dkv_block(x, pk2);
}

// dkv_block computes dk and dv of key block x (see attn_bwd_dkv) with
// parameters pp (each entry's own uniform binding).
fn dkv_block(x: u32, pp: Params) {
  let T = pp.seq;
  let nblk = (T + QB - 1u) / QB;
  let j0 = (x % nblk) * QB;
  let bg = x / nblk;
  let g = bg % pp.kvheads;
  let b = bg / pp.kvheads;
  let G = pp.qheads / pp.kvheads;
  let nc = min(QB, T - j0);
  let ks = pp.kvheads * DV;
  let kb = ((b * T + j0) * pp.kvheads + g) * DV;
  var kr: array<array<VT, DV>, QB>;
  var vr: array<array<VT, DV>, QB>;
  var ka: array<array<VT, DV>, QB>;
  var va: array<array<VT, DV>, QB>;
  var hi: array<u32, QB>;
  for (var c = 0u; c < QB; c++) {
    let cc = min(c, nc - 1u);  // keys past the end repeat the last, unwritten
    let row = kb + cc * ks;
    for (var d = 0u; d < DV; d++) {
      kr[c][d] = k[row + d] * pp.scale;
      vr[c][d] = v[row + d];
      ka[c][d] = VT(0.0);
      va[c][d] = VT(0.0);
    }
    hi[c] = T - 1u;
    if (pp.window > 0u) { hi[c] = min(hi[c], j0 + cc + pp.window - 1u); }
  }
  // The last query that sees any of the keys: hi[nc − 1], written without
  // indexing hi by a runtime value (which puts the array in scratch memory,
  // and lavapipe (Mesa 22.3) leaks a dispatch's scratch: ~0.5 MB per call).
  var i1 = T - 1u;
  if (pp.window > 0u) { i1 = min(i1, j0 + nc - 1u + pp.window - 1u); }
  // The first: j0, or 0 when the block starts inside a prefix (every query
  // before a prefix key sees it).
  var i0 = j0;
  if (j0 < pp.prefix) { i0 = 0u; }
  let qs = pp.qheads * DV;
  for (var h = g * G; h < (g + 1u) * G; h++) {
    var qb = ((b * T + i0) * pp.qheads + h) * DV;
    var li = (b * pp.qheads + h) * T + i0;
    for (var i = i0; i <= i1; i++) {
      var sv: array<VT, QB>;
      var pv: array<VT, QB>;
      for (var c = 0u; c < QB; c++) {
        sv[c] = VT(0.0);
        pv[c] = VT(0.0);
      }
      for (var d = 0u; d < DV; d++) {
        let qd = q[qb + d];
        for (var c = 0u; c < QB; c++) { sv[c] = fma(qd, kr[c][d], sv[c]); }
      }
      for (var d = 0u; d < DV; d++) {
        let od = dout[qb + d];
        for (var c = 0u; c < QB; c++) { pv[c] = fma(od, vr[c][d], pv[c]); }
      }
      let Li = lse_r[li];
      let Di = dd_r[li];
      var p: array<f32, QB>;
      var ds: array<f32, QB>;
      for (var c = 0u; c < QB; c++) {
        let ok = (i >= j0 + c || j0 + c < pp.prefix) && i <= hi[c];
        p[c] = select(0.0, exp(vsum(sv[c]) - Li), ok);
        ds[c] = p[c] * (vsum(pv[c]) - Di);
      }
      for (var d = 0u; d < DV; d++) {
        let od = dout[qb + d];
        for (var c = 0u; c < QB; c++) { va[c][d] = fma(VT(p[c]), od, va[c][d]); }
      }
      for (var d = 0u; d < DV; d++) {
        let qd = q[qb + d];
        for (var c = 0u; c < QB; c++) { ka[c][d] = fma(VT(ds[c]), qd, ka[c][d]); }
      }
      qb += qs;
      li += 1u;
    }
  }
  for (var c = 0u; c < QB; c++) {  // a constant trip count keeps ka, va in registers
    if (c < nc) {
      let row = kb + c * ks;
      for (var d = 0u; d < DV; d++) {
        dk[row + d] = ka[c][d] * pp.scale;
        dv[row + d] = va[c][d];
      }
    }
  }
}

// Backward, part 3 (only with a sink): one invocation per head h,
// dsink_h = −Σ_{b,i} exp(sink_h − lse_i) · D_i. Bindings ds_s, ds_lse,
// ds_dd, ds_out, ps.
@compute @workgroup_size(WG)
fn attn_bwd_dsink(@builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let h = row_index(wid, nwg, lid);
  if (h >= ps.qheads) { return; }
  let T = ps.seq;
  let s = ds_s[h];
  var acc = 0.0;
  for (var b = 0u; b < ps.batch; b++) {
    let base = (b * ps.qheads + h) * T;
    for (var i = 0u; i < T; i++) { acc += exp(s - ds_lse[base + i]) * ds_dd[base + i]; }
  }
  ds_out[h] = -acc;
}

// KV-cache write: one invocation per VT of k (or v), element e = ((b·QLen
// + t)·KVH + g)·DV + d, stored at cache[b, g, (pos + t) % Cap, d].
// Bindings kw_in, kw_pos, kw_cache, pw.
@compute @workgroup_size(WG)
fn kv_cache_write(@builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let e = row_index(wid, nwg, lid);
  if (e >= pw.batch * pw.seq * pw.kvheads * DV) { return; }
  let d = e % DV;
  let row = e / DV;
  let g = row % pw.kvheads;
  let bt = row / pw.kvheads;
  let t = bt % pw.seq;
  let b = bt / pw.seq;
  let slot = (kw_pos[0] + t) % pw.cap;
  kw_cache[((b * pw.kvheads + g) * pw.cap + slot) * DV + d] = kw_in[e];
}
