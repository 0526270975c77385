// v3 matmul: register-blocked, vec4 loads, no shared memory. Each
// invocation computes TM rows × TNV vec4-columns of C and keeps them in
// registers for the whole reduction. On a CPU Vulkan driver (lavapipe) this
// beats shared-memory tiling: barriers are expensive there and the vec4
// loads map onto the host's SIMD.
//
// Layouts (row-major storage):
//   mm_nn4: C = A·B    A (M, K), B (K, N)   needs K%4 = 0, N%4 = 0
//   mm_tn4: C = Aᵀ·B   A (K, M), B (K, N)   needs M%4 = 0, N%4 = 0
//   mm_nt4: C = A·Bᵀ   A (M, K), B (N, K)   needs K%4 = 0, N%4 = 0
// Any M (resp. K for tn4); edges are clamped on load and skipped on store.

override WGX: u32 = 8u;   // invocations along N
override WGY: u32 = 8u;   // invocations along M
override TM: u32 = 4u;    // rows of C per invocation (multiple of 4 for tn4)
override TNV: u32 = 1u;   // vec4 columns of C per invocation

struct Params {
  M: u32, N: u32, K: u32, batch: u32,
  a_batch: u32, b_batch: u32, c_batch: u32, accumulate: u32,  // batch strides in vec4 units
}

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;       // A as above, packed by 4 along its last axis
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;       // B as above, packed by 4 along its last axis
@group(0) @binding(2) var<storage, read_write> c: array<vec4<f32>>; // C (batch, M, N), packed by 4 along N
@group(0) @binding(3) var<storage, read> r: array<vec4<f32>>;       // R, laid out as C, read when accumulate = 2 (any other buffer otherwise)
@group(0) @binding(4) var<uniform> p: Params;

// accumulate: 0 writes C = A·B, 1 adds into C (C += A·B), 2 adds a
// residual R (C = R + A·B, one rounding of the f32 product's sum, as an add
// kernel after the product would give).
fn put(idx: u32, v: vec4<f32>) {
  if (p.accumulate == 1u) {
    c[idx] = c[idx] + v;
  } else if (p.accumulate == 2u) {
    c[idx] = r[idx] + v;
  } else {
    c[idx] = v;
  }
}

@compute @workgroup_size(WGX, WGY, 1)
fn mm_nn4(@builtin(global_invocation_id) g: vec3<u32>) {
  let N4 = p.N / 4u; let K4 = p.K / 4u;
  let v0 = g.x * TNV; let m0 = g.y * TM; let bt = g.z;
  if (m0 >= p.M || v0 >= N4) { return; }
  let ab = bt * p.a_batch; let bb = bt * p.b_batch;
  var acc: array<array<vec4<f32>, TNV>, TM>;
  var arow: array<u32, TM>;
  for (var i = 0u; i < TM; i++) { arow[i] = ab + min(m0 + i, p.M - 1u) * K4; }
  var bcol: array<u32, TNV>;
  for (var v = 0u; v < TNV; v++) { bcol[v] = bb + min(v0 + v, N4 - 1u); }
  for (var k4 = 0u; k4 < K4; k4++) {
    let kb = k4 * 4u * N4;
    var b0: array<vec4<f32>, TNV>; var b1: array<vec4<f32>, TNV>;
    var b2: array<vec4<f32>, TNV>; var b3: array<vec4<f32>, TNV>;
    for (var v = 0u; v < TNV; v++) {
      b0[v] = b[bcol[v] + kb];
      b1[v] = b[bcol[v] + kb + N4];
      b2[v] = b[bcol[v] + kb + 2u * N4];
      b3[v] = b[bcol[v] + kb + 3u * N4];
    }
    for (var i = 0u; i < TM; i++) {
      let av = a[arow[i] + k4];
      for (var v = 0u; v < TNV; v++) {
        acc[i][v] += av.x * b0[v] + av.y * b1[v] + av.z * b2[v] + av.w * b3[v];
      }
    }
  }
  for (var i = 0u; i < TM; i++) {
    if (m0 + i >= p.M) { break; }
    let row = bt * p.c_batch + (m0 + i) * N4;
    for (var v = 0u; v < TNV; v++) {
      if (v0 + v < N4) { put(row + v0 + v, acc[i][v]); }
    }
  }
}

@compute @workgroup_size(WGX, WGY, 1)
fn mm_tn4(@builtin(global_invocation_id) g: vec3<u32>) {
  let N4 = p.N / 4u; let M4 = p.M / 4u;
  let v0 = g.x * TNV; let m0 = g.y * TM; let bt = g.z;
  if (m0 >= p.M || v0 >= N4) { return; }
  let ab = bt * p.a_batch; let bb = bt * p.b_batch;
  var acc: array<array<vec4<f32>, TNV>, TM>;
  var bcol: array<u32, TNV>;
  for (var v = 0u; v < TNV; v++) { bcol[v] = bb + min(v0 + v, N4 - 1u); }
  for (var k = 0u; k < p.K; k++) {
    var bv: array<vec4<f32>, TNV>;
    for (var v = 0u; v < TNV; v++) { bv[v] = b[bcol[v] + k * N4]; }
    for (var q = 0u; q < TM / 4u; q++) {
      let av = a[ab + min(m0 / 4u + q, M4 - 1u) + k * M4];
      for (var v = 0u; v < TNV; v++) {
        acc[4u * q][v] += av.x * bv[v];
        acc[4u * q + 1u][v] += av.y * bv[v];
        acc[4u * q + 2u][v] += av.z * bv[v];
        acc[4u * q + 3u][v] += av.w * bv[v];
      }
    }
  }
  for (var i = 0u; i < TM; i++) {
    if (m0 + i >= p.M) { break; }
    let row = bt * p.c_batch + (m0 + i) * N4;
    for (var v = 0u; v < TNV; v++) {
      if (v0 + v < N4) { put(row + v0 + v, acc[i][v]); }
    }
  }
}

@compute @workgroup_size(WGX, WGY, 1)
fn mm_nt4(@builtin(global_invocation_id) g: vec3<u32>) {
  let N4 = p.N / 4u; let K4 = p.K / 4u;
  let v0 = g.x * TNV; let m0 = g.y * TM; let bt = g.z;
  if (m0 >= p.M || v0 >= N4) { return; }
  let ab = bt * p.a_batch; let bb = bt * p.b_batch;
  var acc: array<array<vec4<f32>, TNV>, TM>;
  var arow: array<u32, TM>;
  for (var i = 0u; i < TM; i++) { arow[i] = ab + min(m0 + i, p.M - 1u) * K4; }
  var brow: array<u32, TNV>;  // first of the 4 B rows feeding vec4 column v
  for (var v = 0u; v < TNV; v++) { brow[v] = bb + min(v0 + v, N4 - 1u) * 4u * K4; }
  for (var k4 = 0u; k4 < K4; k4++) {
    var b0: array<vec4<f32>, TNV>; var b1: array<vec4<f32>, TNV>;
    var b2: array<vec4<f32>, TNV>; var b3: array<vec4<f32>, TNV>;
    for (var v = 0u; v < TNV; v++) {
      b0[v] = b[brow[v] + k4];
      b1[v] = b[brow[v] + K4 + k4];
      b2[v] = b[brow[v] + 2u * K4 + k4];
      b3[v] = b[brow[v] + 3u * K4 + k4];
    }
    for (var i = 0u; i < TM; i++) {
      let av = a[arow[i] + k4];
      for (var v = 0u; v < TNV; v++) {
        acc[i][v] += vec4<f32>(dot(av, b0[v]), dot(av, b1[v]), dot(av, b2[v]), dot(av, b3[v]));
      }
    }
  }
  for (var i = 0u; i < TM; i++) {
    if (m0 + i >= p.M) { break; }
    let row = bt * p.c_batch + (m0 + i) * N4;
    for (var v = 0u; v < TNV; v++) {
      if (v0 + v < N4) { put(row + v0 + v, acc[i][v]); }
    }
  }
}

// v5 mm_nn4u: C = A·B like mm_nn4, but the rows of a workgroup come from
// workgroup_id only, so every A load has a workgroup-uniform address: a CPU
// driver can load it once and broadcast it to all SIMD lanes instead of
// gathering per lane. Each invocation computes TM rows × 4·TNV columns;
// the workgroup is WGX invocations along N (WGY must be 1).
@compute @workgroup_size(WGX, 1, 1)
fn mm_nn4u(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let N4 = p.N / 4u; let K4 = p.K / 4u;
  let v0 = (wid.x * WGX + lid.x) * TNV; let m0 = wid.y * TM; let bt = wid.z;
  let ab = bt * p.a_batch; let bb = bt * p.b_batch;
  var acc: array<array<vec4<f32>, TNV>, TM>;
  var bcol: array<u32, TNV>;
  for (var v = 0u; v < TNV; v++) { bcol[v] = bb + min(v0 + v, N4 - 1u); }
  for (var k4 = 0u; k4 < K4; k4++) {
    let kb = k4 * 4u * N4;
    var b0: array<vec4<f32>, TNV>; var b1: array<vec4<f32>, TNV>;
    var b2: array<vec4<f32>, TNV>; var b3: array<vec4<f32>, TNV>;
    for (var v = 0u; v < TNV; v++) {
      b0[v] = b[bcol[v] + kb];
      b1[v] = b[bcol[v] + kb + N4];
      b2[v] = b[bcol[v] + kb + 2u * N4];
      b3[v] = b[bcol[v] + kb + 3u * N4];
    }
    for (var i = 0u; i < TM; i++) {
      let av = a[ab + min(m0 + i, p.M - 1u) * K4 + k4];  // uniform across the workgroup
      for (var v = 0u; v < TNV; v++) {
        acc[i][v] += av.x * b0[v] + av.y * b1[v] + av.z * b2[v] + av.w * b3[v];
      }
    }
  }
  if (v0 >= N4) { return; }
  for (var i = 0u; i < TM; i++) {
    if (m0 + i >= p.M) { break; }
    let row = bt * p.c_batch + (m0 + i) * N4;
    for (var v = 0u; v < TNV; v++) {
      if (v0 + v < N4) { put(row + v0 + v, acc[i][v]); }
    }
  }
}
