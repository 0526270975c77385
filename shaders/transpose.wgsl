// Batched 2-D transpose: y[b, c, r] = x[b, r, c].
// Grid: one invocation per output element, 1-D folded into (x, y)
// workgroups of WG; the linear index is wid.x + wid.y * nwg.x.

override WG: u32 = 256u;

struct Params {
  batch: u32,
  rows: u32,  // R of x
  cols: u32,  // C of x
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;        // (B, R, C) row-major
@group(0) @binding(1) var<storage, read_write> y: array<f32>;  // (B, C, R) row-major
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn transpose(@builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  let n = p.batch * p.rows * p.cols;
  if (i >= n) { return; }
  let per = p.rows * p.cols;
  let b = i / per;
  let rem = i % per;
  let c = rem / p.rows;   // output row
  let r = rem % p.rows;   // output column
  y[i] = x[b * per + r * p.cols + c];
}
