// Optimizer kernels: the AdamW step and the squared norm that gradient
// clipping needs.
//
// ---- AdamW (decoupled weight decay, Loshchilov & Hutter) ----
// Per element, with hyper = (lr, bc1 = 1−β1^t, bc2 = 1−β2^t, decay ∈ {0, 1})
// written by the host before every step (so one recorded dispatch serves
// every step) and gn2 the global Σ grad² over all parameters:
//   clip = max_norm > 0 ? min(1, max_norm / (sqrt(gn2) + 1e-6)) : 1
//   g = grad·clip
//   m = β1·m + (1−β1)·g
//   v = β2·v + (1−β2)·g²
//   p = p − lr·(decay·wd·p + (m/bc1) / (sqrt(v/bc2) + eps))
// param, m and v are updated in place. Two entry points, as in
// elementwise.wgsl: adamw_v4 over the first ⌊n/4⌋ vec4s, adamw_s over
// elements [start, n) (the tail, or everything). One element or vec4 per
// invocation; grid ceil(count / WG) workgroups folded 1-D, linear index
// (wid.x + wid.y·nwg.x)·WG + lid, bounds-checked.
//
// ---- Sum of squares ----
// y = Σ x² in two passes, both deterministic for a given n (the order of
// additions depends only on n):
//   sumsq_part_chunk (variant 1): `parts` invocations; invocation j sums
//     the contiguous vec4s [j·c, (j+1)·c), c = ceil(n4 / parts), into
//     partial[j]. Grid ceil(parts / WG). Each CPU thread streams its own
//     ranges: 4.3–8.5 GB/s on lavapipe at 2^22 elements, against 1.1–1.7
//     for the strided layout and 0.7–0.9 for one workgroup (same runs, a
//     shared 2-core machine; parts = 1024, 4096 or 16384 made no
//     measurable difference).
//   sumsq_part_strided (variant 2): the same, but invocation j sums x4[j],
//     x4[j + parts], …, so adjacent invocations read adjacent vec4s: the
//     coalesced layout discrete GPUs want.
//   sumsq_part_wg (variant 3): one workgroup of WG invocations strides over
//     x4 and tree-reduces in shared memory into partial[0].
//   sumsq_final: one workgroup of WG invocations sums the partials
//     (strided, then a tree) plus the n mod 4 tail x[4·n4 …] and writes y.

override WG: u32 = 256u;

struct AdamParams {
  n: u32,         // adamw_s: end of the element range; adamw_v4: number of vec4s
  start: u32,     // adamw_s: first element; adamw_v4: 0
  beta1: f32,
  beta2: f32,
  eps: f32,
  wd: f32,        // weight decay coefficient, applied when hyper[3] = 1
  max_norm: f32,  // clip threshold on the global gradient norm; 0: no clipping
  split: u32,     // adamw_split_v4: the first vec4 of the second part
}

@group(0) @binding(0) var<storage, read_write> a_p: array<f32>;        // param (n) flat, updated
@group(0) @binding(1) var<storage, read> a_g: array<f32>;              // grad (n) flat
@group(0) @binding(2) var<storage, read_write> a_m: array<f32>;        // first moment (n) flat, updated
@group(0) @binding(3) var<storage, read_write> a_v: array<f32>;        // second moment (n) flat, updated
@group(0) @binding(0) var<storage, read_write> a_p4: array<vec4<f32>>; // vec4 views of the same
@group(0) @binding(1) var<storage, read> a_g4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> a_m4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> a_v4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> a_hyper: array<f32>;          // (4): lr, 1−β1^t, 1−β2^t, decay flag; host-written
@group(0) @binding(5) var<storage, read> a_gn2: array<f32>;            // (1): global Σ grad²
@group(0) @binding(6) var<uniform> ap: AdamParams;

// adam_step4 updates vec4 i with parameters pp and hyper-parameters h
// (lr, 1−β1^t, 1−β2^t, decay flag).
fn adam_step4(i: u32, pp: AdamParams, h: vec4<f32>) {
  let lr = h[0];
  let g = a_g4[i] * clip_factor(pp);
  let m = pp.beta1 * a_m4[i] + (1.0 - pp.beta1) * g;
  let v = pp.beta2 * a_v4[i] + (1.0 - pp.beta2) * g * g;
  a_m4[i] = m;
  a_v4[i] = v;
  let p = a_p4[i];
  a_p4[i] = p - lr * (h[3] * pp.wd * p + (m / h[1]) / (sqrt(v / h[2]) + pp.eps));
}

// clip_factor scales gradients so their global norm is at most pp.max_norm.
fn clip_factor(pp: AdamParams) -> f32 {
  if (pp.max_norm > 0.0) {
    return min(1.0, pp.max_norm / (sqrt(a_gn2[0]) + 1e-6));
  }
  return 1.0;
}

fn adamw_clip() -> f32 { return clip_factor(ap); }

@compute @workgroup_size(WG)
fn adamw_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= ap.n) { return; }
  adam_step4(i, ap, vec4<f32>(a_hyper[0], a_hyper[1], a_hyper[2], a_hyper[3]));
}

// adamw_split_v4: adamw_v4 over two parts of one packed span with their
// own hyper-parameters (weight-decayed parameters, then the others): vec4s
// before ap2.split read a_hyper, the rest a_hyper_b. One dispatch for the
// whole optimizer step where adamw_v4 would take one per part.
@group(0) @binding(6) var<storage, read> a_hyper_b: array<f32>;        // (4): the second part's hyper-parameters
@group(0) @binding(7) var<uniform> ap2: AdamParams;
@compute @workgroup_size(WG)
fn adamw_split_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= ap2.n) { return; }
  if (i < ap2.split) {
    adam_step4(i, ap2, vec4<f32>(a_hyper[0], a_hyper[1], a_hyper[2], a_hyper[3]));
  } else {
    adam_step4(i, ap2, vec4<f32>(a_hyper_b[0], a_hyper_b[1], a_hyper_b[2], a_hyper_b[3]));
  }
}

@compute @workgroup_size(WG)
fn adamw_s(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let i = ap.start + (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= ap.n) { return; }
  let lr = a_hyper[0];
  let g = a_g[i] * adamw_clip();
  let m = ap.beta1 * a_m[i] + (1.0 - ap.beta1) * g;
  let v = ap.beta2 * a_v[i] + (1.0 - ap.beta2) * g * g;
  a_m[i] = m;
  a_v[i] = v;
  let p = a_p[i];
  a_p[i] = p - lr * (a_hyper[3] * ap.wd * p + (m / a_hyper[1]) / (sqrt(v / a_hyper[2]) + ap.eps));
}

struct SumParams {
  n4: u32,     // number of whole vec4s in x
  n: u32,      // number of elements in x
  parts: u32,  // number of partial sums
  _p: u32,
}

@group(0) @binding(0) var<storage, read> s_x4: array<vec4<f32>>;      // x (n4 whole vec4s) vec4 view (part passes)
@group(0) @binding(1) var<storage, read_write> s_part: array<f32>;    // partial sums (parts), written
@group(0) @binding(0) var<storage, read> s_parts: array<f32>;         // partial sums (parts) (final pass)
@group(0) @binding(1) var<storage, read> s_x: array<f32>;             // x (n) flat (final pass: the tail)
@group(0) @binding(2) var<storage, read_write> s_y: array<f32>;       // y (1), written (final pass)
@group(0) @binding(2) var<uniform> sp_part: SumParams;                // part passes
@group(0) @binding(3) var<uniform> sp: SumParams;                     // final pass

var<workgroup> s_red: array<f32, WG>;

fn sumsq_hsum(v: vec4<f32>) -> f32 { return (v.x + v.y) + (v.z + v.w); }

@compute @workgroup_size(WG)
fn sumsq_part_chunk(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let j = (wid.x + wid.y * nwg.x) * WG + lid;
  if (j >= sp_part.parts) { return; }
  let c = (sp_part.n4 + sp_part.parts - 1u) / sp_part.parts;
  let end = min(sp_part.n4, (j + 1u) * c);
  var acc = vec4<f32>(0.0);
  for (var i = j * c; i < end; i++) {
    let v = s_x4[i];
    acc += v * v;
  }
  s_part[j] = sumsq_hsum(acc);
}

@compute @workgroup_size(WG)
fn sumsq_part_strided(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let j = (wid.x + wid.y * nwg.x) * WG + lid;
  if (j >= sp_part.parts) { return; }
  var acc = vec4<f32>(0.0);
  for (var i = j; i < sp_part.n4; i += sp_part.parts) {
    let v = s_x4[i];
    acc += v * v;
  }
  s_part[j] = sumsq_hsum(acc);
}

@compute @workgroup_size(WG)
fn sumsq_part_wg(@builtin(local_invocation_index) lid: u32) {
  var acc = vec4<f32>(0.0);
  for (var i = lid; i < sp_part.n4; i += WG) {
    let v = s_x4[i];
    acc += v * v;
  }
  s_red[lid] = sumsq_hsum(acc);
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (lid < k) { s_red[lid] += s_red[lid + k]; }
    workgroupBarrier();
  }
  if (lid == 0u) { s_part[0] = s_red[0]; }
}

@compute @workgroup_size(WG)
fn sumsq_final(@builtin(local_invocation_index) lid: u32) {
  var acc = 0.0;
  for (var j = lid; j < sp.parts; j += WG) { acc += s_parts[j]; }
  let t = 4u * sp.n4 + lid;
  if (t < sp.n) { acc += s_x[t] * s_x[t]; }  // the n mod 4 tail (< 4 ≤ WG elements)
  s_red[lid] = acc;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (lid < k) { s_red[lid] += s_red[lid + k]; }
    workgroupBarrier();
  }
  if (lid == 0u) { s_y[0] = s_red[0]; }
}
