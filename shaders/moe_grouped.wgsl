// Grouped expert matmuls of a mixture-of-experts layer (moe.GroupedMatMul,
// moe.GroupedWeightGrad). Tokens have been permuted into expert-contiguous
// order: rows [seg[2e], seg[2e] + seg[2e+1]) of x belong to expert e. Every
// segment starts at a multiple of RowAlign (8), so a block of TM ≤ 8 rows
// starting at a multiple of TM lies inside one segment or in padding.
// Rows outside every segment (padding between segments, rows past the last
// one) are written as 0 by the forward and never read by the weight
// gradient, whatever x or dy hold there.
//
// The host never reads seg: grids are sized for all R rows and an
// invocation finds its expert by scanning seg; one whose rows lie outside
// every segment writes zeros and exits.
//
// A weight stack larger than one storage binding is split by the Go side
// into views of whole experts; each view is its own dispatch, which handles
// experts [e0, e1) and reads (or writes) expert e at (e − e0)·expert-size
// inside the view. Exactly one dispatch per output (zero_pad = 1) writes the
// padding rows of the forward.
//
// Forward layouts (row-major):
//   TransW  y = x·W_eᵀ   W (E, N, K): entries gmm_1 (w_n = K, w_k = 1), gmm_nt4, gmm_nt_ubo
//   !TransW y = x·W_e    W (E, K, N): entries gmm_1 (w_n = 1, w_k = N), gmm_nn4, gmm_nn_ubo
// Weight gradient: dW_e (P, Q) = Σ_{r in segment e} A[r, p]·B[r, q]
//   TransW:  A = dy (R, N), B = x (R, K), dW (E, N, K)
//   !TransW: A = x (R, K), B = dy (R, N), dW (E, K, N)
//   entries gwg_1 (any sizes) and gwg_tn4 (P % 4 = 0, Q % 4 = 0). A segment's
//   rows are taken pass_len at a time (one dispatch per pass, later passes
//   adding) so no invocation loops more than llvmpipe's loop budget.

override WGX: u32 = 8u;    // invocations along the output columns
override WGY: u32 = 8u;    // invocations along the output rows
override TM: u32 = 8u;     // rows per invocation: divides RowAlign (forward); multiple of 4 (gwg_tn4)
override TNV: u32 = 2u;    // vec4 output columns per invocation (gmm_nt4, gmm_nn4, gmm_nn_ubo, gwg_tn4)
override TMQ: u32 = 2u;    // TM / 4 (gwg_tn4)
override TN: u32 = 8u;     // output columns per invocation (gmm_nt_ubo)
override XV4: u32 = 16u;   // vec4s in one uniform window of x (rows of the window · K / 4)

const NONE: u32 = 0xffffffffu;

struct Params {
  rows: u32,      // R, rows of x and y
  n: u32,         // forward: N, columns of y; weight grad: Q, columns of each dW_e
  k: u32,         // forward: K, the reduction; weight grad: P, rows of each dW_e
  experts: u32,   // E, entries of seg / 2
  e0: u32,        // first expert whose weight this dispatch's view holds
  e1: u32,        // one past the last
  zero_pad: u32,  // forward: 1 if this dispatch writes the rows outside every segment
  row_lo: u32,    // forward (gmm_1, gmm_nt4, gmm_nn4): first row this dispatch covers (a multiple of 8)
  row_hi: u32,    // forward: end of the rows this dispatch covers
  pass_row: u32,  // weight grad: this pass sums rows [start + pass_row, start + pass_row + pass_len) of each segment
  pass_len: u32,  // weight grad: rows per pass
  w_n: u32,       // gmm_1: element stride of W_e along the output column n
  w_k: u32,       // gmm_1: element stride of W_e along the reduction k
  win_base: u32,  // ubo: row of x at the window's start
  win_from: u32,  // ubo: first row this window stores (earlier rows were stored by the previous window)
  win_to: u32,    // ubo: end of the rows this window stores
  stride: u32,    // v3 forward: workgroup rows visit row blocks in the order (wid.y · stride) mod nwg.y (> 1, coprime)
}

// spread maps a workgroup's row index to the row block it computes: a
// stride coprime with the grid walks every block once, so a driver that
// hands each thread a contiguous run of workgroups gets real rows and
// padding mixed (the rows past the last expert, where skipped and dropped
// tokens would be, sit at the end of the grid).
fn spread(w: u32, n: u32) -> u32 {
  if (p.stride <= 1u) { return w; }
  return (w * p.stride) % n;
}

// Forward, scalar (gmm_1) and vec4 (the rest) views of the same bindings.
@group(0) @binding(0) var<storage, read> x1: array<f32>;        // x (R, K) row-major, written by the dispatch / permutation before
@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;  // x (R, K) packed by 4 along K (K % 4 = 0)
@group(0) @binding(0) var<uniform> xw: array<vec4<f32>, XV4>;   // ubo: x rows [win_base, win_base + XV4·4/K), packed by 4 along K
@group(0) @binding(1) var<storage, read> w1: array<f32>;        // weight view: experts [e0, e1) of W, layout as above (a parameter)
@group(0) @binding(1) var<storage, read> w4: array<vec4<f32>>;  // the same packed by 4 along the last axis (K for TransW, N otherwise)
@group(0) @binding(2) var<storage, read> seg: array<u32>;       // seg (2·E) u32: (first row, row count) per expert, written by the router
@group(0) @binding(3) var<storage, read_write> y1: array<f32>;       // y (R, N) row-major, written here
@group(0) @binding(3) var<storage, read_write> y4: array<vec4<f32>>; // y (R, N) packed by 4 along N (N % 4 = 0)
@group(0) @binding(4) var<uniform> p: Params;

// Weight gradient views: A and B as in the header, dW the output view.
@group(0) @binding(0) var<storage, read> a1: array<f32>;        // A (R, P) row-major (dy or x)
@group(0) @binding(0) var<storage, read> a4: array<vec4<f32>>;  // A packed by 4 along P
@group(0) @binding(1) var<storage, read> b1: array<f32>;        // B (R, Q) row-major (x or dy)
@group(0) @binding(1) var<storage, read> b4: array<vec4<f32>>;  // B packed by 4 along Q
@group(0) @binding(3) var<storage, read_write> dw1: array<f32>;       // dW view: experts [e0, e1), each (P, Q) row-major, written here
@group(0) @binding(3) var<storage, read_write> dw4: array<vec4<f32>>; // the same packed by 4 along Q

// expert_of returns the expert whose segment holds row, or NONE.
fn expert_of(row: u32) -> u32 {
  for (var e = 0u; e < p.experts; e++) {
    let s = seg[2u * e];
    if (row >= s && row - s < seg[2u * e + 1u]) { return e; }
  }
  return NONE;
}

// block_end returns the end of expert e's rows inside the block starting at
// m0 (m0 itself when e is NONE: the whole block is padding).
fn block_end(e: u32, m0: u32) -> u32 {
  if (e == NONE) { return m0; }
  return min(seg[2u * e] + seg[2u * e + 1u], m0 + TM);
}

// v1: one output element per invocation; any sizes.
@compute @workgroup_size(WGX, WGY, 1)
fn gmm_1(@builtin(global_invocation_id) g: vec3<u32>) {
  let col = g.x; let row = p.row_lo + g.y;
  if (col >= p.n || row >= p.row_hi) { return; }
  let e = expert_of(row);
  if (e == NONE) {
    if (p.zero_pad != 0u) { y1[row * p.n + col] = 0.0; }
    return;
  }
  if (e < p.e0 || e >= p.e1) { return; }
  let wb = (e - p.e0) * p.n * p.k + col * p.w_n;
  let xb = row * p.k;
  var s = 0.0;
  for (var k = 0u; k < p.k; k++) { s += x1[xb + k] * w1[wb + k * p.w_k]; }
  y1[row * p.n + col] = s;
}

// v3, TransW: TM rows × TNV vec4 columns per invocation in registers; W_e
// rows are the vec4 columns' four output columns (as graph's mm_nt4).
@compute @workgroup_size(WGX, WGY, 1)
fn gmm_nt4(@builtin(global_invocation_id) g: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let N4 = p.n / 4u; let K4 = p.k / 4u;
  let gy = spread(wid.y, nwg.y) * WGY + lid.y;
  let v0 = g.x * TNV; let m0 = p.row_lo + gy * TM;
  if (m0 >= p.row_hi || v0 >= N4) { return; }
  let e = expert_of(m0);
  if (e == NONE && p.zero_pad == 0u) { return; }
  if (e != NONE && (e < p.e0 || e >= p.e1)) { return; }
  let end = block_end(e, m0);
  var acc: array<array<vec4<f32>, TNV>, TM>;
  if (end > m0) {
    var arow: array<u32, TM>;
    for (var i = 0u; i < TM; i++) { arow[i] = min(m0 + i, end - 1u) * K4; }
    let wb = (e - p.e0) * p.n * K4;
    var brow: array<u32, TNV>;  // first of the 4 W_e rows feeding vec4 column v
    for (var v = 0u; v < TNV; v++) { brow[v] = wb + min(v0 + v, N4 - 1u) * 4u * K4; }
    for (var k4 = 0u; k4 < K4; k4++) {
      var b0: array<vec4<f32>, TNV>; var b1: array<vec4<f32>, TNV>;
      var b2: array<vec4<f32>, TNV>; var b3: array<vec4<f32>, TNV>;
      for (var v = 0u; v < TNV; v++) {
        b0[v] = w4[brow[v] + k4];
        b1[v] = w4[brow[v] + K4 + k4];
        b2[v] = w4[brow[v] + 2u * K4 + k4];
        b3[v] = w4[brow[v] + 3u * K4 + k4];
      }
      for (var i = 0u; i < TM; i++) {
        let av = x4[arow[i] + k4];
        for (var v = 0u; v < TNV; v++) {
          acc[i][v] += vec4<f32>(dot(av, b0[v]), dot(av, b1[v]), dot(av, b2[v]), dot(av, b3[v]));
        }
      }
    }
  }
  for (var i = 0u; i < TM; i++) {
    let r = m0 + i;
    if (r >= p.row_hi) { break; }
    for (var v = 0u; v < TNV; v++) {
      if (v0 + v < N4) { y4[r * N4 + v0 + v] = select(vec4<f32>(0.0), acc[i][v], r < end); }
    }
  }
}

// v3, !TransW: as gmm_nt4 with W_e (K, N) read along N (as graph's mm_nn4).
@compute @workgroup_size(WGX, WGY, 1)
fn gmm_nn4(@builtin(global_invocation_id) g: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let N4 = p.n / 4u; let K4 = p.k / 4u;
  let gy = spread(wid.y, nwg.y) * WGY + lid.y;
  let v0 = g.x * TNV; let m0 = p.row_lo + gy * TM;
  if (m0 >= p.row_hi || v0 >= N4) { return; }
  let e = expert_of(m0);
  if (e == NONE && p.zero_pad == 0u) { return; }
  if (e != NONE && (e < p.e0 || e >= p.e1)) { return; }
  let end = block_end(e, m0);
  var acc: array<array<vec4<f32>, TNV>, TM>;
  if (end > m0) {
    var arow: array<u32, TM>;
    for (var i = 0u; i < TM; i++) { arow[i] = min(m0 + i, end - 1u) * K4; }
    let wb = (e - p.e0) * p.k * N4;
    var bcol: array<u32, TNV>;
    for (var v = 0u; v < TNV; v++) { bcol[v] = wb + min(v0 + v, N4 - 1u); }
    for (var k4 = 0u; k4 < K4; k4++) {
      let kb = k4 * 4u * N4;
      var b0: array<vec4<f32>, TNV>; var b1: array<vec4<f32>, TNV>;
      var b2: array<vec4<f32>, TNV>; var b3: array<vec4<f32>, TNV>;
      for (var v = 0u; v < TNV; v++) {
        b0[v] = w4[bcol[v] + kb];
        b1[v] = w4[bcol[v] + kb + N4];
        b2[v] = w4[bcol[v] + kb + 2u * N4];
        b3[v] = w4[bcol[v] + kb + 3u * N4];
      }
      for (var i = 0u; i < TM; i++) {
        let av = x4[arow[i] + k4];
        for (var v = 0u; v < TNV; v++) {
          acc[i][v] += av.x * b0[v] + av.y * b1[v] + av.z * b2[v] + av.w * b3[v];
        }
      }
    }
  }
  for (var i = 0u; i < TM; i++) {
    let r = m0 + i;
    if (r >= p.row_hi) { break; }
    for (var v = 0u; v < TNV; v++) {
      if (v0 + v < N4) { y4[r * N4 + v0 + v] = select(vec4<f32>(0.0), acc[i][v], r < end); }
    }
  }
}

// v7, TransW: x read through a 64 KiB uniform window. A workgroup owns one
// block of TM rows of the window (so x's address is the same in every lane
// and its expert is workgroup-uniform); each invocation owns TN output
// columns, i.e. TN rows of W_e, the only operand loaded per lane. CPU
// drivers load uniform data at a uniform address once for all lanes, where
// storage loads go lane by lane (see README, "Notes on adapters").
@compute @workgroup_size(WGX, 1, 1)
fn gmm_nt_ubo(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let K4 = p.k / 4u;
  let lr = wid.y * TM;           // the block's first row inside the window
  let m0 = p.win_base + lr;      // and in x
  if (m0 < p.win_from || m0 >= p.win_to) { return; }
  let e = expert_of(m0);
  if (e == NONE && p.zero_pad == 0u) { return; }
  if (e != NONE && (e < p.e0 || e >= p.e1)) { return; }
  let n0 = (wid.x * WGX + lid.x) * TN;
  if (n0 >= p.n) { return; }
  let end = block_end(e, m0);
  var acc: array<array<vec4<f32>, TN>, TM>;
  if (end > m0) {
    let wb = (e - p.e0) * p.n * K4;
    var wrow: array<u32, TN>;
    for (var j = 0u; j < TN; j++) { wrow[j] = wb + min(n0 + j, p.n - 1u) * K4; }
    for (var k4 = 0u; k4 < K4; k4++) {
      var wv: array<vec4<f32>, TN>;
      for (var j = 0u; j < TN; j++) { wv[j] = w4[wrow[j] + k4]; }
      for (var i = 0u; i < TM; i++) {
        let xv = xw[(lr + i) * K4 + k4];  // uniform across the workgroup
        for (var j = 0u; j < TN; j++) { acc[i][j] += xv * wv[j]; }
      }
    }
  }
  for (var i = 0u; i < TM; i++) {
    let r = m0 + i;
    let live = r < end;
    for (var j = 0u; j < TN; j++) {
      let s = acc[i][j];
      if (n0 + j < p.n) { y1[r * p.n + n0 + j] = select(0.0, (s.x + s.y) + (s.z + s.w), live); }
    }
  }
}

// v7, !TransW: as gmm_nt_ubo with W_e (K, N): each invocation owns TNV vec4
// columns of y and loads W_e along N.
@compute @workgroup_size(WGX, 1, 1)
fn gmm_nn_ubo(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let N4 = p.n / 4u; let K4 = p.k / 4u;
  let lr = wid.y * TM;
  let m0 = p.win_base + lr;
  if (m0 < p.win_from || m0 >= p.win_to) { return; }
  let e = expert_of(m0);
  if (e == NONE && p.zero_pad == 0u) { return; }
  if (e != NONE && (e < p.e0 || e >= p.e1)) { return; }
  let v0 = (wid.x * WGX + lid.x) * TNV;
  if (v0 >= N4) { return; }
  let end = block_end(e, m0);
  var acc: array<array<vec4<f32>, TNV>, TM>;
  if (end > m0) {
    let wb = (e - p.e0) * p.k * N4;
    var bcol: array<u32, TNV>;
    for (var v = 0u; v < TNV; v++) { bcol[v] = wb + min(v0 + v, N4 - 1u); }
    for (var k4 = 0u; k4 < K4; k4++) {
      let kb = k4 * 4u * N4;
      var b0: array<vec4<f32>, TNV>; var b1: array<vec4<f32>, TNV>;
      var b2: array<vec4<f32>, TNV>; var b3: array<vec4<f32>, TNV>;
      for (var v = 0u; v < TNV; v++) {
        b0[v] = w4[bcol[v] + kb];
        b1[v] = w4[bcol[v] + kb + N4];
        b2[v] = w4[bcol[v] + kb + 2u * N4];
        b3[v] = w4[bcol[v] + kb + 3u * N4];
      }
      for (var i = 0u; i < TM; i++) {
        let av = xw[(lr + i) * K4 + k4];  // uniform across the workgroup
        for (var v = 0u; v < TNV; v++) {
          acc[i][v] += av.x * b0[v] + av.y * b1[v] + av.z * b2[v] + av.w * b3[v];
        }
      }
    }
  }
  for (var i = 0u; i < TM; i++) {
    let r = m0 + i;
    for (var v = 0u; v < TNV; v++) {
      if (v0 + v < N4) { y4[r * N4 + v0 + v] = select(vec4<f32>(0.0), acc[i][v], r < end); }
    }
  }
}

// Weight gradient, v1: one element of dW_e per invocation (grid z = expert
// inside the view); any sizes.
@compute @workgroup_size(WGX, WGY, 1)
fn gwg_1(@builtin(global_invocation_id) g: vec3<u32>) {
  let q = g.x; let pp = g.y; let e = p.e0 + g.z;
  if (q >= p.n || pp >= p.k || e >= p.e1) { return; }
  let s = seg[2u * e]; let c = seg[2u * e + 1u];
  let r0 = s + min(p.pass_row, c);
  let r1 = s + min(p.pass_row + p.pass_len, c);
  if (p.pass_row != 0u && r0 >= r1) { return; }  // nothing to add in this pass
  var acc = 0.0;
  for (var r = r0; r < r1; r++) { acc += a1[r * p.k + pp] * b1[r * p.n + q]; }
  let idx = (g.z * p.k + pp) * p.n + q;
  if (p.pass_row == 0u) { dw1[idx] = acc; } else { dw1[idx] = dw1[idx] + acc; }
}

// Weight gradient, v3: TM rows (p) × TNV vec4 columns (q) of dW_e per
// invocation, one row of A and B per step (as graph's mm_tn4).
@compute @workgroup_size(WGX, WGY, 1)
fn gwg_tn4(@builtin(global_invocation_id) g: vec3<u32>) {
  let Q4 = p.n / 4u; let P4 = p.k / 4u;
  let v0 = g.x * TNV; let m0 = g.y * TM; let e = p.e0 + g.z;
  if (m0 >= p.k || v0 >= Q4 || e >= p.e1) { return; }
  let s = seg[2u * e]; let c = seg[2u * e + 1u];
  let r0 = s + min(p.pass_row, c);
  let r1 = s + min(p.pass_row + p.pass_len, c);
  if (p.pass_row != 0u && r0 >= r1) { return; }
  var acc: array<array<vec4<f32>, TNV>, TM>;
  var bcol: array<u32, TNV>;
  for (var v = 0u; v < TNV; v++) { bcol[v] = min(v0 + v, Q4 - 1u); }
  var acol: array<u32, TMQ>;
  for (var q = 0u; q < TMQ; q++) { acol[q] = min(m0 / 4u + q, P4 - 1u); }
  for (var r = r0; r < r1; r++) {
    var bv: array<vec4<f32>, TNV>;
    for (var v = 0u; v < TNV; v++) { bv[v] = b4[r * Q4 + bcol[v]]; }
    for (var q = 0u; q < TMQ; q++) {
      let av = a4[r * P4 + acol[q]];
      for (var v = 0u; v < TNV; v++) {
        acc[4u * q][v] += av.x * bv[v];
        acc[4u * q + 1u][v] += av.y * bv[v];
        acc[4u * q + 2u][v] += av.z * bv[v];
        acc[4u * q + 3u][v] += av.w * bv[v];
      }
    }
  }
  for (var i = 0u; i < TM; i++) {
    if (m0 + i >= p.k) { break; }
    let row = (g.z * p.k + m0 + i) * Q4;
    for (var v = 0u; v < TNV; v++) {
      if (v0 + v < Q4) {
        if (p.pass_row == 0u) { dw4[row + v0 + v] = acc[i][v]; } else { dw4[row + v0 + v] = dw4[row + v0 + v] + acc[i][v]; }
      }
    }
  }
}
