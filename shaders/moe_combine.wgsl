// Mixture-of-experts combine: expert outputs (expert-contiguous rows) back
// to token order, weighted by the gates; the copy experts' gated identity;
// the shared experts' rows. And its backward.
//
// Forward, per token t and column c:
//   y[t,c] = Σ_k  g[t,k] · yp[slot_row[t·K+k], c]   where the slot has a row
//          + Σ_k  g[t,k] · x[t,c]                   where idx[t,k] ≥ E (copy)
//          + ys[s_slot_row[t], c]                   where the token has a shared row
// A token that picked a copy expert has no routed or shared row (the whole
// FFN is skipped): its output is the gated identity.
//
// Backward:
//   combine_grad_rows:  dyp[r,c] = w · dy[row_slot[r] / ks, c] with w the
//                       slot's gate (routed) or 1 (shared); 0 on rows
//                       without a slot
//   combine_grad_gates: per token, dg[t,k] = ⟨dy[t], yp[row]⟩ for a routed
//                       slot, ⟨dy[t], x[t]⟩ for a copy choice, else 0; and
//                       dx[t,c] = Σ_{copy k} g[t,k] · dy[t,c]
// One invocation per output element (per token for combine_grad_gates);
// grid folded 1-D.

override WG: u32 = 64u;
const INVALID: u32 = 0xffffffffu;

struct Params {
  n: u32,       // tokens (combine_grad_rows: rows)
  d: u32,       // model width
  k: u32,       // choices per token (combine_grad_rows: slots per token)
  e: u32,       // routed experts: ids ≥ e are copy experts
  flag: u32,    // combine_forward: 1 when ys / s_slot_row are bound; combine_grad_rows: 1 when gates weigh rows
  _p0: u32,
  _p1: u32,
  _p2: u32,
}

// combine_forward
@group(0) @binding(0) var<storage, read> yp: array<f32>;            // (rows, d) routed expert outputs, read
@group(0) @binding(1) var<storage, read> gates: array<f32>;         // (n, k), read
@group(0) @binding(2) var<storage, read> idx: array<u32>;           // (n, k), read
@group(0) @binding(3) var<storage, read> slot_row: array<u32>;      // (n·k), read
@group(0) @binding(4) var<storage, read> x: array<f32>;             // (n, d) FFN input, read
@group(0) @binding(5) var<storage, read> ys: array<f32>;            // (srows, d) shared expert outputs, read when shared
@group(0) @binding(6) var<storage, read> s_slot_row: array<u32>;    // (n), read when shared
@group(0) @binding(7) var<storage, read_write> y: array<f32>;       // (n, d), written
@group(0) @binding(8) var<uniform> pf: Params;
// combine_grad_rows
@group(0) @binding(0) var<storage, read> dy: array<f32>;            // (n, d), read
@group(0) @binding(1) var<storage, read> g_rows: array<f32>;        // (n·ks) gates, read when pr.flag == 1
@group(0) @binding(2) var<storage, read> row_slot: array<u32>;      // (rows), read
@group(0) @binding(3) var<storage, read_write> dyp: array<f32>;     // (rows, d), written
@group(0) @binding(4) var<uniform> pr: Params;
// combine_grad_gates
@group(0) @binding(0) var<storage, read> dy_g: array<f32>;          // (n, d), read
@group(0) @binding(1) var<storage, read> yp_g: array<f32>;          // (rows, d), read
@group(0) @binding(2) var<storage, read> gates_g: array<f32>;       // (n, k), read
@group(0) @binding(3) var<storage, read> idx_g: array<u32>;         // (n, k), read
@group(0) @binding(4) var<storage, read> slot_row_g: array<u32>;    // (n·k), read
@group(0) @binding(5) var<storage, read> x_g: array<f32>;           // (n, d), read
@group(0) @binding(6) var<storage, read_write> dgates: array<f32>;  // (n, k), written
@group(0) @binding(7) var<storage, read_write> dx: array<f32>;      // (n, d), written
@group(0) @binding(8) var<uniform> pg: Params;
// The *4 entries of combine_forward and combine_grad_rows read and write
// rows as vec4 (d % 4 = 0; the d parameter is then d / 4).
@group(0) @binding(0) var<storage, read> yp4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> ys4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> y4: array<vec4<f32>>;
@group(0) @binding(0) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> dyp4: array<vec4<f32>>;

fn lin(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn combine_forward(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
  let i = lin(wid, nwg, lid);
  if (i >= pf.n * pf.d) { return; }
  let t = i / pf.d;
  let c = i % pf.d;
  var acc = 0.0;
  for (var k = 0u; k < pf.k; k++) {
    let s = t * pf.k + k;
    let r = slot_row[s];
    if (r != INVALID) {
      acc += gates[s] * yp[r * pf.d + c];
    } else if (idx[s] >= pf.e) {
      acc += gates[s] * x[i];
    }
  }
  if (pf.flag == 1u) {
    let r = s_slot_row[t];
    if (r != INVALID) { acc += ys[r * pf.d + c]; }
  }
  y[i] = acc;
}

@compute @workgroup_size(WG)
fn combine_grad_rows(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
  let i = lin(wid, nwg, lid);
  if (i >= pr.n * pr.d) { return; }
  let r = i / pr.d;
  let c = i % pr.d;
  let s = row_slot[r];
  var v = 0.0;
  if (s != INVALID) {
    var w = 1.0;
    if (pr.flag == 1u) { w = g_rows[s]; }
    v = w * dy[(s / pr.k) * pr.d + c];
  }
  dyp[i] = v;
}

@compute @workgroup_size(WG)
fn combine_grad_gates(@builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
  let t = lin(wid, nwg, lid);
  if (t >= pg.n) { return; }
  let d = pg.d;
  var gcopy = 0.0;
  for (var k = 0u; k < pg.k; k++) {
    let s = t * pg.k + k;
    let r = slot_row_g[s];
    var acc = 0.0;
    if (r != INVALID) {
      for (var c = 0u; c < d; c++) { acc += dy_g[t * d + c] * yp_g[r * d + c]; }
    } else if (idx_g[s] >= pg.e) {
      for (var c = 0u; c < d; c++) { acc += dy_g[t * d + c] * x_g[t * d + c]; }
      gcopy += gates_g[s];
    }
    dgates[s] = acc;
  }
  for (var c = 0u; c < d; c++) { dx[t * d + c] = gcopy * dy_g[t * d + c]; }
}

@compute @workgroup_size(WG)
fn combine_forward4(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let i = lin(wid, nwg, lid);
  if (i >= pf.n * pf.d) { return; }
  let t = i / pf.d;
  let c = i % pf.d;
  var acc = vec4<f32>(0.0);
  for (var k = 0u; k < pf.k; k++) {
    let s = t * pf.k + k;
    let r = slot_row[s];
    if (r != INVALID) {
      acc += gates[s] * yp4[r * pf.d + c];
    } else if (idx[s] >= pf.e) {
      acc += gates[s] * x4[i];
    }
  }
  if (pf.flag == 1u) {
    let r = s_slot_row[t];
    if (r != INVALID) { acc += ys4[r * pf.d + c]; }
  }
  y4[i] = acc;
}

@compute @workgroup_size(WG)
fn combine_grad_rows4(@builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
  let i = lin(wid, nwg, lid);
  if (i >= pr.n * pr.d) { return; }
  let r = i / pr.d;
  let c = i % pr.d;
  let s = row_slot[r];
  var v = vec4<f32>(0.0);
  if (s != INVALID) {
    var w = 1.0;
    if (pr.flag == 1u) { w = g_rows[s]; }
    v = w * dy4[(s / pr.k) * pr.d + c];
  }
  dyp4[i] = v;
}
