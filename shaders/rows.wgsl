// Row windows of a persistent (State) matrix, for speculative decoding's
// hidden-state histories, and greedy draft picking on the GPU.
//
//   rows_write: hist[start + r, :] = x[r, :] for r < q      (in place)
//   rows_read:  y[r, :] = hist[start + r, :] for r < q
//   strided_rows: y[b, :] = x[b·stride + offset, :] for b < n (every stride-th row)
//   draft_pick: one invocation: best = argmax(logits[at, :]) (ties to the
//               lower id, NaN below every number); tokens_out = tokens_in
//               with tokens_out[at] = best; draft[0] = best
// start and at are u32 inputs written by the host each step, so one
// recording serves every step. Grids folded 1-D.

override WG: u32 = 64u;

struct Params {
  q: u32,     // rows of the window
  d: u32,     // row length
  cap: u32,   // rows of hist (writes past it are dropped)
  v: u32,     // draft_pick: vocabulary size
}

@group(0) @binding(0) var<storage, read_write> win: array<f32>;     // (q, d): x for rows_write, y for rows_read
@group(0) @binding(1) var<storage, read_write> hist: array<f32>;    // (cap, d) State
@group(0) @binding(2) var<storage, read> start: array<u32>;         // (1) first row of the window
@group(0) @binding(3) var<uniform> p: Params;
// draft_pick
@group(0) @binding(0) var<storage, read> tokens_in: array<u32>;     // (q)
@group(0) @binding(1) var<storage, read> logits: array<f32>;        // (q, v)
@group(0) @binding(2) var<storage, read> at: array<u32>;            // (1) the row to pick from
@group(0) @binding(3) var<storage, read_write> tokens_out: array<u32>; // (q)
@group(0) @binding(4) var<storage, read_write> draft: array<u32>;   // (1)
@group(0) @binding(5) var<uniform> pd: Params;

// strided_rows
struct StridedParams {
  n: u32,       // rows of y
  d: u32,       // row length
  stride: u32,  // rows of x per row of y
  offset: u32,  // the row taken of each stride
}
@group(0) @binding(0) var<storage, read> sx: array<f32>;        // x (n·stride, d)
@group(0) @binding(1) var<storage, read_write> sy: array<f32>;  // y (n, d)
@group(0) @binding(2) var<uniform> ps: StridedParams;

fn lin(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn rows_write(@builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let i = lin(wid, nwg, lid);
  if (i >= p.q * p.d) { return; }
  let r = start[0] + i / p.d;
  if (r >= p.cap) { return; }
  hist[r * p.d + i % p.d] = win[i];
}

@compute @workgroup_size(WG)
fn rows_read(@builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let i = lin(wid, nwg, lid);
  if (i >= p.q * p.d) { return; }
  let r = start[0] + i / p.d;
  var v = 0.0;
  if (r < p.cap) { v = hist[r * p.d + i % p.d]; }
  win[i] = v;
}

fn finite_key(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7fffffffu) <= 0x7f800000u;  // not NaN
}

@compute @workgroup_size(1)
fn draft_pick() {
  let row = min(at[0], pd.q - 1u);
  var best = 0u;
  var bv = logits[row * pd.v];
  for (var i = 1u; i < pd.v; i++) {
    let x = logits[row * pd.v + i];
    if (finite_key(x) && (!finite_key(bv) || x > bv)) {
      best = i;
      bv = x;
    }
  }
  for (var r = 0u; r < pd.q; r++) { tokens_out[r] = tokens_in[r]; }
  tokens_out[row] = best;
  draft[0] = best;
}

@compute @workgroup_size(WG)
fn strided_rows(@builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let i = lin(wid, nwg, lid);
  if (i >= ps.n * ps.d) { return; }
  let b = i / ps.d;
  sy[i] = sx[(b * ps.stride + ps.offset) * ps.d + i % ps.d];
}
