// Mixture-of-experts dispatch: per-expert counts, aligned segment offsets
// and the permutation of token slots into expert-contiguous rows, all on the
// GPU (no count comes back to the host); then the row gather and its
// backward.
//
// A slot is one (token t, choice k) of the router's top-k: slot t·K + k
// (routed mode, ks = K) or one per token, slot t (shared mode, ks = 1).
// Token t is skipped when any of its choices is a copy expert (id ≥ E):
// none of its slots is routed, and in shared mode it has no row either.
// A routed slot goes to expert idx[slot] (< E); a shared slot to expert 0.
//
// Rows: expert e owns rows seg[2e] … seg[2e] + seg[2e+1] − 1; seg[2e] is a
// multiple of ALIGN, segments ascend by e. Within an expert, slots keep
// token order. With a capacity, slots past the first `cap` of an expert are
// dropped (slot_row stays INVALID; raw counts still count them).
//
// Kernels, in order (graph op moe.Dispatch records all four, or for few
// tokens dispatch_one, which runs them in one workgroup):
//   dispatch_fill     row_slot[r] = INVALID (r < rows), slot_row[s] = INVALID
//   dispatch_count    invocation (chunk c, expert e): slots of e among the
//                     chunk's tokens → cnt[c·E + e]
//   dispatch_offsets  one invocation: per expert, exclusive offsets over the
//                     chunks (in place in cnt), raw counts, aligned segments
//   dispatch_scatter  invocation (c, e): writes row_slot and slot_row
// Deterministic: no atomics. Grids are folded 1-D (wid.x + wid.y · nwg.x).

override WG: u32 = 64u;
override ALIGN: u32 = 8u;
const INVALID: u32 = 0xffffffffu;

struct Params {
  n: u32,        // tokens
  k: u32,        // router choices per token (idx row length)
  e: u32,        // experts of this dispatch: routed E, or 1 (shared mode)
  mode: u32,     // 0 routed, 1 shared
  cap: u32,      // capacity per expert (INVALID: none)
  chunk: u32,    // tokens per chunk
  nchunks: u32,  // ceil(n / chunk)
  rows: u32,     // rows of the permuted layout
  copy_from: u32, // first copy-expert id (routed experts count)
  _p0: u32,
  _p1: u32,
  _p2: u32,
}

@group(0) @binding(0) var<storage, read> idx: array<u32>;             // (n, k) router choices, read
@group(0) @binding(1) var<storage, read_write> cnt: array<u32>;       // (nchunks, e) scratch: counts, then offsets
@group(0) @binding(2) var<storage, read_write> seg: array<u32>;       // (e, 2): segment start, rows (after capacity)
@group(0) @binding(3) var<storage, read_write> raw: array<u32>;       // (e): slots per expert before capacity
@group(0) @binding(4) var<storage, read_write> row_slot: array<u32>;  // (rows): slot of each row, or INVALID
@group(0) @binding(5) var<storage, read_write> slot_row: array<u32>;  // (n·ks): row of each slot, or INVALID
@group(0) @binding(6) var<uniform> p: Params;

fn lin(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

fn skipped(t: u32) -> bool {
  for (var j = 0u; j < p.k; j++) {
    if (idx[t * p.k + j] >= p.copy_from) { return true; }
  }
  return false;
}

fn slots_per_token() -> u32 {
  if (p.mode == 1u) { return 1u; }
  return p.k;
}

// expert_of is the expert of token t's slot j, or INVALID when not routed.
fn expert_of(t: u32, j: u32) -> u32 {
  if (p.mode == 1u) { return 0u; }
  return idx[t * p.k + j];
}

fn fill_item(i: u32) {
  if (i < p.rows) { row_slot[i] = INVALID; }
  if (i < p.n * slots_per_token()) { slot_row[i] = INVALID; }
}

@compute @workgroup_size(WG)
fn dispatch_fill(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  fill_item(lin(wid, nwg, lid));
}

// count_pair counts pair i = (chunk c, expert e) into cnt[i].
fn count_pair(i: u32) {
  let c = i / p.e;
  let e = i % p.e;
  let ks = slots_per_token();
  var n = 0u;
  let t1 = min(p.n, (c + 1u) * p.chunk);
  for (var t = c * p.chunk; t < t1; t++) {
    if (skipped(t)) { continue; }
    for (var j = 0u; j < ks; j++) {
      if (expert_of(t, j) == e) { n++; }
    }
  }
  cnt[i] = n;
}

@compute @workgroup_size(WG)
fn dispatch_count(@builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let i = lin(wid, nwg, lid);
  if (i < p.nchunks * p.e) { count_pair(i); }
}

// offsets turns the counts into exclusive offsets and the segments.
fn offsets() {
  var start = 0u;
  for (var e = 0u; e < p.e; e++) {
    var run = 0u;
    for (var c = 0u; c < p.nchunks; c++) {
      let v = cnt[c * p.e + e];
      cnt[c * p.e + e] = run;
      run += v;
    }
    raw[e] = run;
    let rows = min(run, p.cap);
    seg[2u * e] = start;
    seg[2u * e + 1u] = rows;
    start += (rows + ALIGN - 1u) / ALIGN * ALIGN;
  }
}

@compute @workgroup_size(1)
fn dispatch_offsets() {
  offsets();
}

// scatter_pair writes the rows of pair i = (chunk c, expert e).
fn scatter_pair(i: u32) {
  let c = i / p.e;
  let e = i % p.e;
  let ks = slots_per_token();
  var rank = cnt[i];
  let start = seg[2u * e];
  let rows = seg[2u * e + 1u];
  let t1 = min(p.n, (c + 1u) * p.chunk);
  for (var t = c * p.chunk; t < t1; t++) {
    if (skipped(t)) { continue; }
    for (var j = 0u; j < ks; j++) {
      if (expert_of(t, j) == e) {
        if (rank < rows) {
          let s = t * ks + j;
          row_slot[start + rank] = s;
          slot_row[s] = start + rank;
        }
        rank++;
      }
    }
  }
}

@compute @workgroup_size(WG)
fn dispatch_scatter(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let i = lin(wid, nwg, lid);
  if (i < p.nchunks * p.e) { scatter_pair(i); }
}

// dispatch_one: the four steps in one workgroup, separated by storage
// barriers (a single dispatch for few tokens, as in decoding, where each
// dispatch's fixed cost outweighs its work).
@compute @workgroup_size(WG)
fn dispatch_one(@builtin(local_invocation_index) lid: u32) {
  let items = max(p.rows, p.n * slots_per_token());
  for (var i = lid; i < items; i += WG) { fill_item(i); }
  let pairs = p.nchunks * p.e;
  for (var i = lid; i < pairs; i += WG) { count_pair(i); }
  storageBarrier();
  if (lid == 0u) { offsets(); }
  storageBarrier();
  for (var i = lid; i < pairs; i += WG) { scatter_pair(i); }
}
