// Reductions to a scalar and scalar broadcasts: how per-token losses become
// the training loss (a weighted sum, the weights carrying 1/count and the
// mask) and how its gradient flows back (a broadcast multiply).

override WG: u32 = 256u;

struct Params { n: u32, _a: u32, _b: u32, _c: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;        // (n)
@group(0) @binding(1) var<storage, read> w: array<f32>;        // (n) weights, or (1) scalar for mul_scalar
@group(0) @binding(2) var<storage, read_write> y: array<f32>;  // (1) for weighted_sum, (n) for mul_scalar
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> part: array<f32, WG>;

// One workgroup: each invocation sums a strided slice in order, then a
// tree reduction. Deterministic.
@compute @workgroup_size(WG)
fn weighted_sum(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = lid; i < p.n; i += WG) { s += x[i] * w[i]; }
  part[lid] = s;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid < stride) { part[lid] += part[lid + stride]; }
    workgroupBarrier();
  }
  if (lid == 0u) { y[0] = part[0]; }
}

@compute @workgroup_size(WG)
fn mul_scalar(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i < p.n) { y[i] = x[i] * w[0]; }
}

// fill: y = 0 everywhere; the starting value of an accumulated gradient.
@compute @workgroup_size(WG)
fn zero_fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i < p.n) { y[i] = 0.0; }
}
