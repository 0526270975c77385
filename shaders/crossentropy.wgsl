// Cross-entropy of logits against integer targets, and its fused
// softmax backward.
//
// Forward, per row n of logits (N, V):
//   m = max_j x[n, j], s = Σ_j exp(x[n, j] − m)
//   lse[n]  = m + log(s)                       (saved for the backward)
//   loss[n] = (m − x[n, t]) + log(s)  where t = targets[n] < V, else 0
// (m − x[n, t] is formed first: with large logits it is exact or nearly,
// where lse − x[n, t] would lose the low bits of lse.)
// A target ≥ V — the ignore index 0xFFFFFFFF or any other — never indexes
// the row: the row carries no loss and no gradient.
//
// Backward, per element: dlogits[n, j] = dloss[n]·(exp(x[n, j] − lse[n]) −
// [j == t]), and 0 for rows whose target is ≥ V.
//
// Variants of the forward: ce_forward_rows, one invocation per row looping
// over V (two passes: max, then the sum; best where invocations are CPU
// SIMD lanes), and ce_forward_wg, one workgroup of RWG per row with
// shared-memory tree reductions (best on GPUs), and ce_forward_rows_vec4.
// llvmpipe ends all loops of an invocation after 65535 iterations in
// total, so the per-row variants only run there while 2·V (2·V/4) fits
// (graph.loopBudget). 1-D grids are folded into (x, y); linear index =
// wid.x + wid.y * nwg.x, bounds-checked.

override WG: u32 = 64u;    // invocations per workgroup, per-row and per-element kernels
override RWG: u32 = 256u;  // invocations per row in ce_forward_wg, a power of two

const LOWEST: f32 = -3.40282347e38;  // most negative finite f32: start of a max

struct Params {
  n: u32,  // N rows
  v: u32,  // V classes
  _pad0: u32,
  _pad1: u32,
}

// ---- forward: ce_forward_rows, ce_forward_wg
@group(0) @binding(0) var<storage, read> logits: array<f32>;       // (N, V) row-major
@group(0) @binding(1) var<storage, read> targets: array<u32>;      // (N), class index or ≥ V to ignore
@group(0) @binding(2) var<storage, read_write> loss: array<f32>;   // (N), written
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;    // (N), written: log-sum-exp of the row
@group(0) @binding(4) var<uniform> p: Params;

// Writes lse and loss of row r from its max m and sum s = Σ exp(x − m);
// xt(r, t) is the caller's read of logit t of row r (called only for t < V).
fn ce_finish(r: u32, m: f32, s: f32, t: u32, xt: f32) {
  let ls = log(s);
  lse[r] = m + ls;
  var l = 0.0;
  if (t < p.v) { l = (m - xt) + ls; }
  loss[r] = l;
}

// The target's logit, or 0 for an ignored row (never read out of bounds).
fn ce_target_logit(r: u32, t: u32) -> f32 {
  if (t < p.v) { return logits[r * p.v + t]; }
  return 0.0;
}

@compute @workgroup_size(WG)
fn ce_forward_rows(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
  let r = (wid.x + wid.y * nwg.x) * WG + lid;
  if (r >= p.n) { return; }
  let base = r * p.v;
  var m = LOWEST;
  for (var j = 0u; j < p.v; j++) { m = max(m, logits[base + j]); }
  var s = 0.0;
  for (var j = 0u; j < p.v; j++) { s += exp(logits[base + j] - m); }
  let t = targets[r];
  ce_finish(r, m, s, t, ce_target_logit(r, t));
}

// Same with vec4 loads; needs V % 4 == 0.
@group(0) @binding(0) var<storage, read> logits4: array<vec4<f32>>;  // (N, V/4) of vec4

@compute @workgroup_size(WG)
fn ce_forward_rows_vec4(@builtin(workgroup_id) wid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
  let r = (wid.x + wid.y * nwg.x) * WG + lid;
  if (r >= p.n) { return; }
  let v4 = p.v / 4u;
  let base = r * v4;
  var m4 = vec4<f32>(LOWEST);
  for (var j = 0u; j < v4; j++) { m4 = max(m4, logits4[base + j]); }
  let m = max(max(m4.x, m4.y), max(m4.z, m4.w));
  var s4 = vec4<f32>(0.0);
  for (var j = 0u; j < v4; j++) { s4 += exp(logits4[base + j] - m); }
  let t = targets[r];
  var xt = 0.0;
  if (t < p.v) { xt = logits4[base + t / 4u][t % 4u]; }
  ce_finish(r, m, (s4.x + s4.y) + (s4.z + s4.w), t, xt);
}

var<workgroup> red: array<f32, RWG>;

@compute @workgroup_size(RWG)
fn ce_forward_wg(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let r = wid.x + wid.y * nwg.x;  // workgroup-uniform
  if (r >= p.n) { return; }
  let base = r * p.v;
  var m = LOWEST;
  for (var j = lid; j < p.v; j += RWG) { m = max(m, logits[base + j]); }
  red[lid] = m;
  workgroupBarrier();
  for (var h = RWG / 2u; h > 0u; h >>= 1u) {
    if (lid < h) { red[lid] = max(red[lid], red[lid + h]); }
    workgroupBarrier();
  }
  let mx = red[0];
  workgroupBarrier();
  var s = 0.0;
  for (var j = lid; j < p.v; j += RWG) { s += exp(logits[base + j] - mx); }
  red[lid] = s;
  workgroupBarrier();
  for (var h = RWG / 2u; h > 0u; h >>= 1u) {
    if (lid < h) { red[lid] = red[lid] + red[lid + h]; }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let t = targets[r];
    ce_finish(r, mx, red[0], t, ce_target_logit(r, t));
  }
}

// ---- backward: ce_backward
@group(0) @binding(0) var<storage, read> b_logits: array<f32>;        // (N, V) row-major
@group(0) @binding(1) var<storage, read> b_targets: array<u32>;       // (N)
@group(0) @binding(2) var<storage, read> b_lse: array<f32>;           // (N) from the forward
@group(0) @binding(3) var<storage, read> dloss: array<f32>;           // (N)
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;   // (N, V) row-major, written
@group(0) @binding(5) var<uniform> pb: Params;

@compute @workgroup_size(WG)
fn ce_backward(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= pb.n * pb.v) { return; }
  let r = i / pb.v;
  let j = i % pb.v;
  let t = b_targets[r];
  var g = 0.0;
  if (t < pb.v) {
    g = exp(b_logits[i] - b_lse[r]);
    if (j == t) { g -= 1.0; }
    g *= dloss[r];
  }
  dlogits[i] = g;
}

// Same, one vec4 of a row per invocation; needs V % 4 == 0 (pb.v is V here,
// the kernel works in units of V/4).
@group(0) @binding(0) var<storage, read> b_logits4: array<vec4<f32>>;       // (N, V/4) of vec4
@group(0) @binding(4) var<storage, read_write> dlogits4: array<vec4<f32>>;  // (N, V/4) of vec4, written

@compute @workgroup_size(WG)
fn ce_backward_vec4(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  let v4 = pb.v / 4u;
  if (i >= pb.n * v4) { return; }
  let r = i / v4;
  let j = (i % v4) * 4u;
  let t = b_targets[r];
  var g = vec4<f32>(0.0);
  if (t < pb.v) {
    g = exp(b_logits4[i] - b_lse[r]);
    g -= select(vec4<f32>(0.0), vec4<f32>(1.0), vec4<u32>(j, j + 1u, j + 2u, j + 3u) == vec4<u32>(t));
    g *= dloss[r];
  }
  dlogits4[i] = g;
}

// One invocation per (row, chunk of CHUNK columns), looping over the chunk.
override CHUNK: u32 = 256u;

@compute @workgroup_size(WG)
fn ce_backward_chunks(@builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  let chunks = (pb.v + CHUNK - 1u) / CHUNK;
  if (i >= pb.n * chunks) { return; }
  let r = i / chunks;
  let j0 = (i % chunks) * CHUNK;
  let j1 = min(j0 + CHUNK, pb.v);
  let t = b_targets[r];
  let base = r * pb.v;
  if (t >= pb.v) {
    for (var j = j0; j < j1; j++) { dlogits[base + j] = 0.0; }
    return;
  }
  let l = b_lse[r];
  let d = dloss[r];
  for (var j = j0; j < j1; j++) {
    dlogits[base + j] = d * (exp(b_logits[base + j] - l) - select(0.0, 1.0, j == t));
  }
}
