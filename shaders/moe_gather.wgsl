// Mixture-of-experts row gather (tokens → expert-contiguous rows) and its
// backward (rows → tokens), both deterministic.
//
//   gather_rows:     xp[r, c] = x[row_slot[r] / ks, c], or 0 where row_slot
//                    is INVALID (padding, unused rows)
//   gather_backward: dx[t, c] = Σ_j dxp[slot_row[t·ks + j], c] over the
//                    token's routed slots (each slot has at most one row)
// One invocation per output element; grid folded 1-D.

override WG: u32 = 64u;
const INVALID: u32 = 0xffffffffu;

struct Params {
  rows: u32,  // gather: rows of xp; backward: tokens
  d: u32,     // row length
  ks: u32,    // slots per token
  _p0: u32,
}

// gather_rows
@group(0) @binding(0) var<storage, read> x: array<f32>;             // (n, d), read
@group(0) @binding(1) var<storage, read> row_slot: array<u32>;      // (rows), read
@group(0) @binding(2) var<storage, read_write> xp: array<f32>;      // (rows, d), written
// gather_backward
@group(0) @binding(0) var<storage, read> dxp: array<f32>;           // (rows, d), read
@group(0) @binding(1) var<storage, read> slot_row: array<u32>;      // (n·ks), read
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;      // (n, d), written
@group(0) @binding(3) var<uniform> p: Params;
// The *4 entries: the same with rows read and written as vec4 (d % 4 = 0;
// p.d is then d / 4).
@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> xp4: array<vec4<f32>>;
@group(0) @binding(0) var<storage, read> dxp4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dx4: array<vec4<f32>>;

fn lin(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn gather_rows(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let i = lin(wid, nwg, lid);
  if (i >= p.rows * p.d) { return; }
  let r = i / p.d;
  let c = i % p.d;
  let s = row_slot[r];
  var v = 0.0;
  if (s != INVALID) { v = x[(s / p.ks) * p.d + c]; }
  xp[i] = v;
}

@compute @workgroup_size(WG)
fn gather_backward(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
  let i = lin(wid, nwg, lid);
  if (i >= p.rows * p.d) { return; }
  let t = i / p.d;
  let c = i % p.d;
  var acc = 0.0;
  for (var j = 0u; j < p.ks; j++) {
    let r = slot_row[t * p.ks + j];
    if (r != INVALID) { acc += dxp[r * p.d + c]; }
  }
  dx[i] = acc;
}

// copy_values: y[i] = x[i] for i < rows·d (moe.Reshape: a tensor seen with
// another shape, e.g. a shared expert's (out, in) weight as a stack of one).
@compute @workgroup_size(WG)
fn copy_values(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let i = lin(wid, nwg, lid);
  if (i >= p.rows * p.d) { return; }
  xp[i] = x[i];
}

@compute @workgroup_size(WG)
fn gather_rows4(@builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let i = lin(wid, nwg, lid);
  if (i >= p.rows * p.d) { return; }
  let r = i / p.d;
  let c = i % p.d;
  let s = row_slot[r];
  var v = vec4<f32>(0.0);
  if (s != INVALID) { v = x4[(s / p.ks) * p.d + c]; }
  xp4[i] = v;
}

@compute @workgroup_size(WG)
fn gather_backward4(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let i = lin(wid, nwg, lid);
  if (i >= p.rows * p.d) { return; }
  let t = i / p.d;
  let c = i % p.d;
  var acc = vec4<f32>(0.0);
  for (var j = 0u; j < p.ks; j++) {
    let r = slot_row[t * p.ks + j];
    if (r != INVALID) { acc += dxp4[r * p.d + c]; }
  }
  dx4[i] = acc;
}
