// f16-storage matmul for inference: C = A·B with A (M, K) f32 activations
// and B (K, N) f16 weights, accumulating in f32. Halves weight traffic and
// memory. Same register blocking as mm_nn4 (matmul_vec4.wgsl); needs
// K%4 = 0 and N%4 = 0. The halves are read as packed u32 pairs and widened
// with unpack2x16float, so the kernel runs on every backend (GLES too) and
// needs no shader-f16 feature.

override WGX: u32 = 8u;
override WGY: u32 = 8u;
override TM: u32 = 4u;
override TNV: u32 = 1u;

struct Params {
  M: u32, N: u32, K: u32, batch: u32,
  a_batch: u32, b_batch: u32, c_batch: u32, accumulate: u32,  // batch strides in vec4 units
}

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;       // A (batch|1, M, K) f32, packed by 4 along K
@group(0) @binding(1) var<storage, read> b: array<vec2<u32>>;       // B (batch|1, K, N) f16, 4 halves per vec2<u32> along N
@group(0) @binding(2) var<storage, read_write> c: array<vec4<f32>>; // C (batch, M, N) f32, packed by 4 along N
@group(0) @binding(3) var<uniform> p: Params;

fn half4(i: u32) -> vec4<f32> {
  let h = b[i];
  return vec4<f32>(unpack2x16float(h.x), unpack2x16float(h.y));
}

@compute @workgroup_size(WGX, WGY, 1)
fn mm_nn4_f16(@builtin(global_invocation_id) g: vec3<u32>) {
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
      b0[v] = half4(bcol[v] + kb);
      b1[v] = half4(bcol[v] + kb + N4);
      b2[v] = half4(bcol[v] + kb + 2u * N4);
      b3[v] = half4(bcol[v] + kb + 3u * N4);
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
      if (v0 + v < N4) {
        if (p.accumulate != 0u) { c[row + v0 + v] = c[row + v0 + v] + acc[i][v]; } else { c[row + v0 + v] = acc[i][v]; }
      }
    }
  }
}

// mm_nt4_f16: C = A·Bᵀ with B (N, K) f16 weights in the Hugging Face
// (out, in) layout, 4 halves per vec2<u32> along K: the inference form of
// a linear layer, x·Wᵀ. Needs K%4 = 0 and N%4 = 0. Reading halves also
// halves the per-lane loads, which bound this kernel on CPU drivers.
@group(0) @binding(0) var<storage, read> ant: array<vec4<f32>>;       // A (batch|1, M, K) f32, packed by 4 along K
@group(0) @binding(1) var<storage, read> bnt: array<vec2<u32>>;       // B (N, K) f16, 4 halves per vec2<u32> along K
@group(0) @binding(2) var<storage, read_write> cnt: array<vec4<f32>>; // C (batch, M, N) f32, packed by 4 along N
@group(0) @binding(3) var<uniform> pnt: Params;

fn halfrow(i: u32) -> vec4<f32> {
  let h = bnt[i];
  return vec4<f32>(unpack2x16float(h.x), unpack2x16float(h.y));
}

@compute @workgroup_size(WGX, WGY, 1)
fn mm_nt4_f16(@builtin(global_invocation_id) g: vec3<u32>) {
  let N4 = pnt.N / 4u; let K4 = pnt.K / 4u;
  let v0 = g.x * TNV; let m0 = g.y * TM; let bt = g.z;
  if (m0 >= pnt.M || v0 >= N4) { return; }
  let ab = bt * pnt.a_batch;
  var acc: array<array<vec4<f32>, TNV>, TM>;
  var arow: array<u32, TM>;
  for (var i = 0u; i < TM; i++) { arow[i] = ab + min(m0 + i, pnt.M - 1u) * K4; }
  var brow: array<u32, TNV>;  // first of the 4 B rows feeding vec4 column v
  for (var v = 0u; v < TNV; v++) { brow[v] = min(v0 + v, N4 - 1u) * 4u * K4; }
  for (var k4 = 0u; k4 < K4; k4++) {
    var b0: array<vec4<f32>, TNV>; var b1: array<vec4<f32>, TNV>;
    var b2: array<vec4<f32>, TNV>; var b3: array<vec4<f32>, TNV>;
    for (var v = 0u; v < TNV; v++) {
      b0[v] = halfrow(brow[v] + k4);
      b1[v] = halfrow(brow[v] + K4 + k4);
      b2[v] = halfrow(brow[v] + 2u * K4 + k4);
      b3[v] = halfrow(brow[v] + 3u * K4 + k4);
    }
    for (var i = 0u; i < TM; i++) {
      let av = ant[arow[i] + k4];
      for (var v = 0u; v < TNV; v++) {
        acc[i][v] += vec4<f32>(dot(av, b0[v]), dot(av, b1[v]), dot(av, b2[v]), dot(av, b3[v]));
      }
    }
  }
  for (var i = 0u; i < TM; i++) {
    if (m0 + i >= pnt.M) { break; }
    let row = bt * pnt.c_batch + (m0 + i) * N4;
    for (var v = 0u; v < TNV; v++) {
      if (v0 + v < N4) {
        if (pnt.accumulate != 0u) { cnt[row + v0 + v] = cnt[row + v0 + v] + acc[i][v]; } else { cnt[row + v0 + v] = acc[i][v]; }
      }
    }
  }
}
