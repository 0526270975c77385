// Row softmax over the last axis, and its backward.
//
//   forward:  m = max_j x_j;  y_j = exp(x_j − m) / Σ_k exp(x_k − m)
//   backward: dx_j = y_j · (dy_j − Σ_k y_k dy_k)
//
// Subtracting the row maximum keeps every exp argument ≤ 0, so logits of
// any size (±1e3 and beyond) neither overflow nor lose the largest term.
// The forward takes three read sweeps over the row (max; Σ exp; write
// exp · 1/Σ) and writes y once. On lavapipe this measured at least as fast
// as storing exp(x − m) in the sum sweep and rescaling y (one exp per
// element, two writes) and faster than an online max-and-sum sweep (three
// exps per element).
//
// Two variants, chosen by graph.Softmax.Variant:
//   1 (softmax_rows*, softmax_bwd_rows*): one invocation per row, a serial
//     loop over the row; the *4 entries load vec4s and need cols % 4 == 0.
//     Grid: ceil(rows / ROW_WG) workgroups, folded 1-D. Fastest on CPU
//     drivers (lavapipe), where barriers and shared memory are slow.
//   2 (softmax_wg, softmax_bwd_wg): one workgroup of RED_WG invocations per
//     row, each striding over the row, combined by a shared-memory tree
//     reduction. Grid: rows workgroups, folded 1-D. For discrete GPUs.
// The linear workgroup index is wid.x + wid.y * nwg.x; indices past the
// end are skipped.

override ROW_WG: u32 = 16u;   // variant 1: rows (invocations) per workgroup
override RED_WG: u32 = 256u;  // variant 2: invocations per row, a power of two

struct Params {
  rows: u32,  // product of every axis but the last
  cols: u32,  // length of the last axis
  _p0: u32,
  _p1: u32,
}

// Each entry point uses one of the binding sets below; sets share binding
// numbers, and the *4 entries use the vec4 views (cols % 4 == 0).
// Forward (softmax_rows, softmax_rows4, softmax_wg):
@group(0) @binding(0) var<storage, read> x: array<f32>;               // x (rows, cols) row-major, read
@group(0) @binding(1) var<storage, read_write> y: array<f32>;         // y (rows, cols) row-major, written
@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;        // x as (rows, cols/4) vec4
@group(0) @binding(1) var<storage, read_write> y4: array<vec4<f32>>;  // y as (rows, cols/4) vec4
@group(0) @binding(2) var<uniform> pf: Params;
// Backward (softmax_bwd_rows, softmax_bwd_rows4, softmax_bwd_wg):
@group(0) @binding(0) var<storage, read> sy: array<f32>;               // y, the forward output (rows, cols), read
@group(0) @binding(1) var<storage, read> dy: array<f32>;               // dy (rows, cols), read
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;         // dx (rows, cols), written
@group(0) @binding(0) var<storage, read> sy4: array<vec4<f32>>;        // y as (rows, cols/4) vec4
@group(0) @binding(1) var<storage, read> dy4: array<vec4<f32>>;        // dy as (rows, cols/4) vec4
@group(0) @binding(2) var<storage, read_write> dx4: array<vec4<f32>>;  // dx as (rows, cols/4) vec4
@group(0) @binding(3) var<uniform> pb: Params;

var<workgroup> red: array<f32, RED_WG>;

fn row_of(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * ROW_WG + lid;
}

fn hmax(v: vec4<f32>) -> f32 { return max(max(v.x, v.y), max(v.z, v.w)); }
fn hsum(v: vec4<f32>) -> f32 { return (v.x + v.y) + (v.z + v.w); }

// ---- variant 1: one invocation per row ----

@compute @workgroup_size(ROW_WG)
fn softmax_rows(@builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let r = row_of(wid, nwg, lid);
  let n = pf.cols;
  if (r >= pf.rows || n == 0u) { return; }
  let base = r * n;
  var m = x[base];
  for (var j = 1u; j < n; j++) { m = max(m, x[base + j]); }
  var s = 0.0;
  for (var j = 0u; j < n; j++) { s += exp(x[base + j] - m); }
  let inv = 1.0 / s;
  for (var j = 0u; j < n; j++) { y[base + j] = exp(x[base + j] - m) * inv; }
}

@compute @workgroup_size(ROW_WG)
fn softmax_rows4(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let r = row_of(wid, nwg, lid);
  let n = pf.cols / 4u;
  if (r >= pf.rows || n == 0u) { return; }
  let base = r * n;
  var m4 = x4[base];
  for (var j = 1u; j < n; j++) { m4 = max(m4, x4[base + j]); }
  let m = hmax(m4);
  var s4 = vec4<f32>(0.0);
  for (var j = 0u; j < n; j++) { s4 += exp(x4[base + j] - m); }
  let inv = 1.0 / hsum(s4);
  for (var j = 0u; j < n; j++) { y4[base + j] = exp(x4[base + j] - m) * inv; }
}

@compute @workgroup_size(ROW_WG)
fn softmax_bwd_rows(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let r = row_of(wid, nwg, lid);
  let n = pb.cols;
  if (r >= pb.rows) { return; }
  let base = r * n;
  var s = 0.0;
  for (var j = 0u; j < n; j++) { s += sy[base + j] * dy[base + j]; }
  for (var j = 0u; j < n; j++) { dx[base + j] = sy[base + j] * (dy[base + j] - s); }
}

@compute @workgroup_size(ROW_WG)
fn softmax_bwd_rows4(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
  let r = row_of(wid, nwg, lid);
  let n = pb.cols / 4u;
  if (r >= pb.rows) { return; }
  let base = r * n;
  var s4 = vec4<f32>(0.0);
  for (var j = 0u; j < n; j++) { s4 += sy4[base + j] * dy4[base + j]; }
  let s = hsum(s4);
  for (var j = 0u; j < n; j++) { dx4[base + j] = sy4[base + j] * (dy4[base + j] - s); }
}

// ---- variant 2: one workgroup per row, shared-memory tree reductions ----

// Tree reductions over red[0..RED_WG); every invocation of the workgroup
// must call them (they contain barriers) and all get the result.
fn wg_max(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var k = RED_WG / 2u; k > 0u; k >>= 1u) {
    if (lid < k) { red[lid] = max(red[lid], red[lid + k]); }
    workgroupBarrier();
  }
  let t = red[0];
  workgroupBarrier();  // red is reused by the next reduction
  return t;
}

fn wg_sum(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var k = RED_WG / 2u; k > 0u; k >>= 1u) {
    if (lid < k) { red[lid] += red[lid + k]; }
    workgroupBarrier();
  }
  let t = red[0];
  workgroupBarrier();
  return t;
}

@compute @workgroup_size(RED_WG)
fn softmax_wg(@builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let r = wid.x + wid.y * nwg.x;  // workgroup-uniform
  let n = pf.cols;
  if (r >= pf.rows || n == 0u) { return; }
  let base = r * n;
  var m = x[base];
  for (var j = lid; j < n; j += RED_WG) { m = max(m, x[base + j]); }
  m = wg_max(lid, m);
  var s = 0.0;
  for (var j = lid; j < n; j += RED_WG) { s += exp(x[base + j] - m); }
  let inv = 1.0 / wg_sum(lid, s);
  for (var j = lid; j < n; j += RED_WG) { y[base + j] = exp(x[base + j] - m) * inv; }
}

@compute @workgroup_size(RED_WG)
fn softmax_bwd_wg(@builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let r = wid.x + wid.y * nwg.x;  // workgroup-uniform
  let n = pb.cols;
  if (r >= pb.rows) { return; }
  let base = r * n;
  var s = 0.0;
  for (var j = lid; j < n; j += RED_WG) { s += sy[base + j] * dy[base + j]; }
  s = wg_sum(lid, s);
  for (var j = lid; j < n; j += RED_WG) { dx[base + j] = sy[base + j] * (dy[base + j] - s); }
}
