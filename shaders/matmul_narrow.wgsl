// v12 matmul: C = A·Bᵀ for a narrow C, such as a router's logits (N = experts, 9 for
// ocr-small), where N is not a multiple of 4 and the register-blocked kernels fall back to
// scalar loads. Each invocation computes one whole row of C: it reads its row of A once, in
// vec4s along K, against all NN rows of B (a few KiB, which stay in cache).
//
// Layouts (row-major storage): A (M, K), B (N, K), C (M, N); needs K % 4 = 0 and N = NN ≤ 16.

override WG: u32 = 64u;  // invocations per workgroup, one row of C each
override NN: u32 = 16u;  // N, the columns of C

struct Params {
  M: u32, N: u32, K: u32, accumulate: u32,
}

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;   // A (M, K), packed by 4 along K
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;   // B (N, K), packed by 4 along K
@group(0) @binding(2) var<storage, read_write> c: array<f32>;   // C (M, N)
@group(0) @binding(3) var<storage, read> r: array<f32>;         // R, laid out as C, read when accumulate = 2 (any other buffer otherwise)
@group(0) @binding(4) var<uniform> p: Params;

// accumulate: 0 writes C = A·Bᵀ, 1 adds into C, 2 adds a residual R (C = R + A·Bᵀ).
@compute @workgroup_size(WG, 1, 1)
fn mm_nt_narrow(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
  let m = (wid.y * nwg.x + wid.x) * WG + lid.x;
  if (m >= p.M) { return; }
  let K4 = p.K / 4u;
  let arow = m * K4;
  var acc: array<f32, NN>;
  for (var k4 = 0u; k4 < K4; k4++) {
    let av = a[arow + k4];
    for (var n = 0u; n < NN; n++) {
      acc[n] += dot(av, b[n * K4 + k4]);
    }
  }
  let row = m * NN;
  for (var n = 0u; n < NN; n++) {
    if (p.accumulate == 1u) {
      c[row + n] = c[row + n] + acc[n];
    } else if (p.accumulate == 2u) {
      c[row + n] = r[row + n] + acc[n];
    } else {
      c[row + n] = acc[n];
    }
  }
}
