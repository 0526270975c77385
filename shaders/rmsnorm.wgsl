// RMSNorm over the last axis, and its backward.
//
//   forward:  rstd = 1 / sqrt(mean_j x_j² + eps);  y_j = x_j · rstd · g_j
//   backward: dx_j = rstd · g_j · dy_j − x_j · rstd³ / d · Σ_k g_k dy_k x_k
//             dg_j = Σ_rows dy_j · x_j · rstd
// rstd is an output of the forward, kept for the backward (as llm.c keeps
// layernorm's mean and rstd).
//
// dx is written (=), or added into (+=) when pb.acc = 1.
// dg is a plain write (=), not an accumulation: it is summed over rows per
// column in a fixed order (rmsnorm_dg_*, or the extra invocations of the
// *_dg entries), so the result is deterministic without atomics.
//
// Two variants, chosen by graph.RMSNorm.Variant:
//   1 (*_rows*, rmsnorm_dg_cols): one invocation per row (per column for
//     dg) with a serial loop; the *4 entries load vec4s and need
//     d % 4 == 0. Grid: ceil(rows / ROW_WG) workgroups (ceil(d / ROW_WG)
//     for dg), folded 1-D. Fastest on lavapipe.
//   2 (*_wg): one workgroup of RED_WG invocations per row, striding over the
//     row, combined by a shared-memory tree reduction; for dg one workgroup
//     per DG_COLS columns, its RED_WG / DG_COLS row lanes combined likewise.
//     Grid: rows (ceil(d / DG_COLS) for dg) workgroups, folded 1-D.
// The linear workgroup index is wid.x + wid.y * nwg.x; indices past the
// end are skipped.

override ROW_WG: u32 = 64u;   // variant 1: rows (or columns) per workgroup
override RED_WG: u32 = 256u;  // variant 2: invocations per workgroup, a power of two ≥ DG_COLS
const DG_COLS: u32 = 32u;     // variant 2, dg: columns per workgroup (coalesced loads)

struct Params {
  rows: u32,  // product of every axis of x but the last
  d: u32,     // length of the last axis
  eps: f32,   // added to mean(x²) (forward only)
  acc: u32,   // backward dx entries: 1 adds into dx (dx += …, graph.RMSNormBackward.Accumulate), 0 writes it
}

// Each entry point uses one of the binding sets below; sets share binding
// numbers, and the *4 entries use the vec4 views (d % 4 == 0).
// Both sets: x and g.
@group(0) @binding(0) var<storage, read> x: array<f32>;         // x (rows, d) row-major, read
@group(0) @binding(1) var<storage, read> g: array<f32>;         // gain g (d), read (unused by dg)
@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;  // x as (rows, d/4) vec4
@group(0) @binding(1) var<storage, read> g4: array<vec4<f32>>;  // g as (d/4) vec4
// Forward (rmsnorm_rows, rmsnorm_rows4, rmsnorm_wg):
@group(0) @binding(2) var<storage, read_write> y: array<f32>;         // y (rows, d) row-major, written
@group(0) @binding(3) var<storage, read_write> rstd: array<f32>;      // rstd (rows), written
@group(0) @binding(2) var<storage, read_write> y4: array<vec4<f32>>;  // y as (rows, d/4) vec4
@group(0) @binding(4) var<uniform> pf: Params;
// Backward, dx and dg in one dispatch (rmsnorm_bwd_rows[4]_dg,
// rmsnorm_bwd_wg_dg), or in two (the dx entries rmsnorm_bwd_rows[4],
// rmsnorm_bwd_wg, then the dg entries rmsnorm_dg_cols, rmsnorm_dg_wg), one
// layout for all:
@group(0) @binding(2) var<storage, read> rstd_in: array<f32>;          // rstd (rows) from the forward, read
@group(0) @binding(3) var<storage, read> dy: array<f32>;               // dy (rows, d) row-major, read
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;         // dx (rows, d) row-major, written (or added into)
@group(0) @binding(5) var<storage, read_write> dg: array<f32>;         // dg (d), written
@group(0) @binding(3) var<storage, read> dy4: array<vec4<f32>>;        // dy as (rows, d/4) vec4
@group(0) @binding(4) var<storage, read_write> dx4: array<vec4<f32>>;  // dx as (rows, d/4) vec4
@group(0) @binding(6) var<uniform> pb: Params;

var<workgroup> red: array<f32, RED_WG>;

fn index_of(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * ROW_WG + lid;
}

fn hsum(v: vec4<f32>) -> f32 { return (v.x + v.y) + (v.z + v.w); }

fn inv_rms(ss: f32, d: u32, eps: f32) -> f32 {
  return 1.0 / sqrt(ss / f32(d) + eps);  // not inverseSqrt: some drivers approximate it
}

// ---- variant 1: one invocation per row (per column for dg) ----

@compute @workgroup_size(ROW_WG)
fn rmsnorm_rows(@builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let r = index_of(wid, nwg, lid);
  let n = pf.d;
  if (r >= pf.rows) { return; }
  let base = r * n;
  var ss = 0.0;
  for (var j = 0u; j < n; j++) { let v = x[base + j]; ss += v * v; }
  let rs = inv_rms(ss, n, pf.eps);
  rstd[r] = rs;
  for (var j = 0u; j < n; j++) { y[base + j] = x[base + j] * rs * g[j]; }
}

@compute @workgroup_size(ROW_WG)
fn rmsnorm_rows4(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let r = index_of(wid, nwg, lid);
  let n = pf.d / 4u;
  if (r >= pf.rows) { return; }
  let base = r * n;
  var ss4 = vec4<f32>(0.0);
  for (var j = 0u; j < n; j++) { let v = x4[base + j]; ss4 += v * v; }
  let rs = inv_rms(hsum(ss4), pf.d, pf.eps);
  rstd[r] = rs;
  for (var j = 0u; j < n; j++) { y4[base + j] = x4[base + j] * rs * g4[j]; }
}

fn bwd_row(r: u32) {
  let n = pb.d;
  let base = r * n;
  let rs = rstd_in[r];
  var dot = 0.0;
  for (var j = 0u; j < n; j++) { dot += g[j] * dy[base + j] * x[base + j]; }
  let c = rs * rs * rs * dot / f32(n);
  for (var j = 0u; j < n; j++) {
    let v = rs * g[j] * dy[base + j] - c * x[base + j];
    if (pb.acc != 0u) { dx[base + j] += v; } else { dx[base + j] = v; }
  }
}

@compute @workgroup_size(ROW_WG)
fn rmsnorm_bwd_rows(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let r = index_of(wid, nwg, lid);
  if (r < pb.rows) { bwd_row(r); }
}

fn bwd_row4(r: u32) {
  let n = pb.d / 4u;
  let base = r * n;
  let rs = rstd_in[r];
  var dot4 = vec4<f32>(0.0);
  for (var j = 0u; j < n; j++) { dot4 += g4[j] * dy4[base + j] * x4[base + j]; }
  let c = rs * rs * rs * hsum(dot4) / f32(pb.d);
  for (var j = 0u; j < n; j++) {
    let v = rs * g4[j] * dy4[base + j] - c * x4[base + j];
    if (pb.acc != 0u) { dx4[base + j] += v; } else { dx4[base + j] = v; }
  }
}

@compute @workgroup_size(ROW_WG)
fn rmsnorm_bwd_rows4(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
  let r = index_of(wid, nwg, lid);
  if (r < pb.rows) { bwd_row4(r); }
}

// One invocation per column. Rows go round-robin into four partial sums
// (independent add chains: on lavapipe this is 3-4x faster than one chain,
// and than a vec4-per-invocation version), added in a fixed order.
fn dg_col(c: u32) {
  let n = pb.d;
  var a0 = 0.0;
  var a1 = 0.0;
  var a2 = 0.0;
  var a3 = 0.0;
  var r = 0u;
  for (; r + 4u <= pb.rows; r += 4u) {
    let i = r * n + c;
    a0 += dy[i] * x[i] * rstd_in[r];
    a1 += dy[i + n] * x[i + n] * rstd_in[r + 1u];
    a2 += dy[i + 2u * n] * x[i + 2u * n] * rstd_in[r + 2u];
    a3 += dy[i + 3u * n] * x[i + 3u * n] * rstd_in[r + 3u];
  }
  for (; r < pb.rows; r++) { a0 += dy[r * n + c] * x[r * n + c] * rstd_in[r]; }
  dg[c] = (a0 + a1) + (a2 + a3);
}

// dg_col through the vec4 views (an entry that uses x4 and dy4 may not read
// x and dy at the same bindings): the same products and the same order.
fn ld4(a: u32) -> vec2<u32> { return vec2<u32>(a >> 2u, a & 3u); }
fn dg_col4(c: u32) {
  let n = pb.d;
  var a0 = 0.0;
  var a1 = 0.0;
  var a2 = 0.0;
  var a3 = 0.0;
  var r = 0u;
  for (; r + 4u <= pb.rows; r += 4u) {
    let i = r * n + c;
    let i0 = ld4(i);
    let i1 = ld4(i + n);
    let i2 = ld4(i + 2u * n);
    let i3 = ld4(i + 3u * n);
    a0 += dy4[i0.x][i0.y] * x4[i0.x][i0.y] * rstd_in[r];
    a1 += dy4[i1.x][i1.y] * x4[i1.x][i1.y] * rstd_in[r + 1u];
    a2 += dy4[i2.x][i2.y] * x4[i2.x][i2.y] * rstd_in[r + 2u];
    a3 += dy4[i3.x][i3.y] * x4[i3.x][i3.y] * rstd_in[r + 3u];
  }
  for (; r < pb.rows; r++) {
    let k = ld4(r * n + c);
    a0 += dy4[k.x][k.y] * x4[k.x][k.y] * rstd_in[r];
  }
  dg[c] = (a0 + a1) + (a2 + a3);
}

@compute @workgroup_size(ROW_WG)
fn rmsnorm_dg_cols(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
  let c = index_of(wid, nwg, lid);
  if (c < pb.d) { dg_col(c); }
}

// dx and dg in one dispatch: invocation i takes row i (i < rows) and then
// column i of dg (i < d); dg reads x, dy and rstd, never dx. Giving the
// columns to invocations past the rows instead made lavapipe (Mesa 22.3)
// keep ~0.2 MB per dispatch that it never freed.
@compute @workgroup_size(ROW_WG)
fn rmsnorm_bwd_rows_dg(@builtin(workgroup_id) wid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
  let i = index_of(wid, nwg, lid);
  if (i < pb.rows) { bwd_row(i); }
  if (i < pb.d) { dg_col(i); }
}

@compute @workgroup_size(ROW_WG)
fn rmsnorm_bwd_rows4_dg(@builtin(workgroup_id) wid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
  let i = index_of(wid, nwg, lid);
  if (i < pb.rows) { bwd_row4(i); }
  if (i < pb.d) { dg_col4(i); }
}

// ---- variant 2: one workgroup per row (per DG_COLS columns for dg) ----

// Tree sum over red[0..RED_WG); every invocation of the workgroup must call
// it (it contains barriers) and all get the result.
fn wg_sum(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var k = RED_WG / 2u; k > 0u; k >>= 1u) {
    if (lid < k) { red[lid] += red[lid + k]; }
    workgroupBarrier();
  }
  let t = red[0];
  workgroupBarrier();  // red may be reused
  return t;
}

@compute @workgroup_size(RED_WG)
fn rmsnorm_wg(@builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let r = wid.x + wid.y * nwg.x;  // workgroup-uniform
  let n = pf.d;
  if (r >= pf.rows) { return; }
  let base = r * n;
  var ss = 0.0;
  for (var j = lid; j < n; j += RED_WG) { let v = x[base + j]; ss += v * v; }
  let rs = inv_rms(wg_sum(lid, ss), n, pf.eps);
  if (lid == 0u) { rstd[r] = rs; }
  for (var j = lid; j < n; j += RED_WG) { y[base + j] = x[base + j] * rs * g[j]; }
}

// Row r of dx by workgroup; r is workgroup-uniform (wg_sum has barriers).
fn bwd_wg_row(r: u32, lid: u32) {
  let n = pb.d;
  let base = r * n;
  let rs = rstd_in[r];
  var dot = 0.0;
  for (var j = lid; j < n; j += RED_WG) { dot += g[j] * dy[base + j] * x[base + j]; }
  let c = rs * rs * rs * wg_sum(lid, dot) / f32(n);
  for (var j = lid; j < n; j += RED_WG) {
    let v = rs * g[j] * dy[base + j] - c * x[base + j];
    if (pb.acc != 0u) { dx[base + j] += v; } else { dx[base + j] = v; }
  }
}

@compute @workgroup_size(RED_WG)
fn rmsnorm_bwd_wg(@builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let r = wid.x + wid.y * nwg.x;  // workgroup-uniform
  if (r < pb.rows) { bwd_wg_row(r, lid); }
}

// Invocation lid handles column DG_COLS·block + lid % DG_COLS and rows
// ≡ lid / DG_COLS (mod RED_WG / DG_COLS); the row lanes are then summed
// by a tree in shared memory, so the order is fixed.
// dg columns DG_COLS·block … by workgroup; block is workgroup-uniform.
fn dg_wg_block(block: u32, lid: u32) {
  let n = pb.d;
  let lanes = RED_WG / DG_COLS;
  let col = block * DG_COLS + lid % DG_COLS;
  var acc = 0.0;
  if (col < n) {
    for (var r = lid / DG_COLS; r < pb.rows; r += lanes) { acc += dy[r * n + col] * x[r * n + col] * rstd_in[r]; }
  }
  red[lid] = acc;
  workgroupBarrier();
  for (var k = RED_WG / 2u; k >= DG_COLS; k >>= 1u) {
    if (lid < k) { red[lid] += red[lid + k]; }
    workgroupBarrier();
  }
  if (lid < DG_COLS && col < n) { dg[col] = red[lid]; }
}

@compute @workgroup_size(RED_WG)
fn rmsnorm_dg_wg(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let block = wid.x + wid.y * nwg.x;  // workgroup-uniform
  if (block * DG_COLS < pb.d) { dg_wg_block(block, lid); }
}

// dx and dg in one dispatch: workgroups 0 … rows−1 take a row each, the
// next ⌈d / DG_COLS⌉ a block of dg columns each.
@compute @workgroup_size(RED_WG)
fn rmsnorm_bwd_wg_dg(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
  let w = wid.x + wid.y * nwg.x;  // workgroup-uniform
  if (w < pb.rows) {
    bwd_wg_row(w, lid);
  } else if ((w - pb.rows) * DG_COLS < pb.d) {
    dg_wg_block(w - pb.rows, lid);
  }
}
