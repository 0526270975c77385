// Matrix multiplication in the layouts a backward pass needs, batched, with
// optional accumulation into the output:
//
//   C[b] (+)= op(A[b]) · op(B[b])     op(X) = X or Xᵀ
//
// Storage is row-major. Logical sizes: C is (M, N), the reduction length is
// K. Batch strides of 0 broadcast an operand (a weight shared by all
// batches). Variants, numbered as the bench reports them:
//
//   v1 mm_naive  one invocation per output, scalar loads, any layout and size.
//   v2 mm_rb     TM×4 outputs per invocation, scalar loads with bounds checks,
//                any layout and size (the fallback for awkward shapes).
//   v3 mm_nn4 / mm_tn4 / mm_nt4 (in matmul_vec4.wgsl)
//                TM×(4·TNV) outputs per invocation, vec4 loads, no shared
//                memory: the register-blocked kernels that are fastest on a
//                CPU Vulkan driver. Require the dimensions that are loaded as
//                vec4 to be multiples of 4 (checked on the Go side).
//   v4 mm_tiled  shared-memory 2-level tiling, the classic discrete-GPU
//                kernel (any layout, any size).

override WGX: u32 = 8u;   // workgroup size along N
override WGY: u32 = 8u;   // workgroup size along M
override TM: u32 = 4u;    // rows of C per invocation (v2)
override TS: u32 = 16u;   // tile edge for v4 (workgroup is TS×TS... see mm_tiled)

struct Params {
  M: u32, N: u32, K: u32, batch: u32,
  // element strides of A: row (m) and column (k) of op(A); likewise B for
  // (k, n). Transposition is expressed by swapping strides.
  a_sm: u32, a_sk: u32, b_sk: u32, b_sn: u32,
  a_batch: u32, b_batch: u32, c_batch: u32, accumulate: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;        // op(A): (batch|1, M, K) via strides
@group(0) @binding(1) var<storage, read> b: array<f32>;        // op(B): (batch|1, K, N) via strides
@group(0) @binding(2) var<storage, read_write> c: array<f32>;  // C: (batch, M, N) row-major
@group(0) @binding(3) var<uniform> p: Params;

fn store(idx: u32, v: f32) {
  if (p.accumulate != 0u) { c[idx] = c[idx] + v; } else { c[idx] = v; }
}

@compute @workgroup_size(WGX, WGY, 1)
fn mm_naive(@builtin(global_invocation_id) g: vec3<u32>) {
  let n = g.x; let m = g.y; let bt = g.z;
  if (m >= p.M || n >= p.N) { return; }
  let ab = bt * p.a_batch; let bb = bt * p.b_batch;
  var s = 0.0;
  for (var k = 0u; k < p.K; k++) {
    s += a[ab + m * p.a_sm + k * p.a_sk] * b[bb + k * p.b_sk + n * p.b_sn];
  }
  store(bt * p.c_batch + m * p.N + n, s);
}

@compute @workgroup_size(WGX, WGY, 1)
fn mm_rb(@builtin(global_invocation_id) g: vec3<u32>) {
  let n0 = g.x * 4u; let m0 = g.y * TM; let bt = g.z;
  if (m0 >= p.M || n0 >= p.N) { return; }
  let ab = bt * p.a_batch; let bb = bt * p.b_batch;
  var acc: array<vec4<f32>, TM>;
  // Clamp indices instead of branching; out-of-range lanes are not stored.
  let nmax = p.N - 1u; let mmax = p.M - 1u;
  let n1 = min(n0 + 1u, nmax); let n2 = min(n0 + 2u, nmax); let n3 = min(n0 + 3u, nmax);
  for (var k = 0u; k < p.K; k++) {
    let brow = bb + k * p.b_sk;
    let bv = vec4<f32>(b[brow + n0 * p.b_sn], b[brow + n1 * p.b_sn], b[brow + n2 * p.b_sn], b[brow + n3 * p.b_sn]);
    for (var i = 0u; i < TM; i++) {
      let m = min(m0 + i, mmax);
      acc[i] += a[ab + m * p.a_sm + k * p.a_sk] * bv;
    }
  }
  for (var i = 0u; i < TM; i++) {
    let m = m0 + i;
    if (m >= p.M) { break; }
    let row = bt * p.c_batch + m * p.N;
    for (var j = 0u; j < 4u; j++) {
      if (n0 + j < p.N) { store(row + n0 + j, acc[i][j]); }
    }
  }
}


var<workgroup> tA: array<f32, 256>;  // TS×TS tile of op(A) (TS ≤ 16)
var<workgroup> tB: array<f32, 256>;  // TS×TS tile of op(B)

// v4: classic shared-memory tiling, one output per invocation, workgroup
// TS×TS. Run with WGX = WGY = TS.
@compute @workgroup_size(WGX, WGY, 1)
fn mm_tiled(@builtin(global_invocation_id) g: vec3<u32>,
            @builtin(local_invocation_id) l: vec3<u32>) {
  let n = g.x; let m = g.y; let bt = g.z;
  let ab = bt * p.a_batch; let bb = bt * p.b_batch;
  var s = 0.0;
  let tiles = (p.K + TS - 1u) / TS;
  for (var t = 0u; t < tiles; t++) {
    let ka = t * TS + l.x;
    let kb = t * TS + l.y;
    var av = 0.0; var bv = 0.0;
    if (m < p.M && ka < p.K) { av = a[ab + m * p.a_sm + ka * p.a_sk]; }
    if (n < p.N && kb < p.K) { bv = b[bb + kb * p.b_sk + n * p.b_sn]; }
    tA[l.y * TS + l.x] = av;
    tB[l.y * TS + l.x] = bv;
    workgroupBarrier();
    for (var k = 0u; k < TS; k++) {
      s += tA[l.y * TS + k] * tB[k * TS + l.x];
    }
    workgroupBarrier();
  }
  if (m < p.M && n < p.N) { store(bt * p.c_batch + m * p.N + n, s); }
}
