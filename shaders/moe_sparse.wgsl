// Sparse down projection for ReLU² experts at inference: most of a ReLU²
// activation row is exactly zero, so each row's non-zero entries are first
// compacted into a list, and the down projection then loops over that list
// only (work ∝ non-zeros instead of the expert size).
//
//   sparse_compact: one invocation per row r: nz_idx[r·I + j], nz_val[r·I + j]
//                   for the row's j-th non-zero activation, nz_cnt[r] = count
//                   (rows outside every segment get count 0)
//   sparse_down:    one invocation per (row r, output column c):
//                   y[r, c] = Σ_j nz_val[r,j] · W_e[c, nz_idx[r,j]]
//                   with W (E, N, I) in the (out, in) layout; 0 outside segments
// Lanes of a workgroup share a row and take consecutive columns, so the
// loop over the non-zeros is uniform across them. Grids folded 1-D.

override WG: u32 = 64u;

struct Params {
  rows: u32,     // R
  inner: u32,    // I, the expert size
  n: u32,        // N, output columns
  experts: u32,  // E
}

@group(0) @binding(0) var<storage, read> h: array<f32>;              // (R, I) activations, read
@group(0) @binding(1) var<storage, read> w: array<f32>;              // (E, N, I) down weights, read
@group(0) @binding(2) var<storage, read> seg: array<u32>;            // (2E) segments, read
@group(0) @binding(3) var<storage, read_write> nz_idx: array<u32>;   // (R, I) scratch
@group(0) @binding(4) var<storage, read_write> nz_val: array<f32>;   // (R, I) scratch
@group(0) @binding(5) var<storage, read_write> nz_cnt: array<u32>;   // (R) scratch
@group(0) @binding(6) var<storage, read_write> y: array<f32>;        // (R, N), written
@group(0) @binding(7) var<uniform> p: Params;

fn lin(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

// expert_of returns the expert whose segment holds row r, or experts.
fn expert_of(r: u32) -> u32 {
  var lo = 0u;
  var hi = p.experts;
  // Segments ascend: find the last expert starting at or before r.
  loop {
    if (hi - lo <= 1u) { break; }
    let mid = (lo + hi) / 2u;
    if (seg[2u * mid] <= r) { lo = mid; } else { hi = mid; }
  }
  // Empty segments may share a start with the next: take the one holding r.
  var e = lo;
  loop {
    if (e >= p.experts) { break; }
    if (seg[2u * e] > r) { return p.experts; }
    if (r < seg[2u * e] + seg[2u * e + 1u]) { return e; }
    e++;
  }
  return p.experts;
}

@compute @workgroup_size(WG)
fn sparse_compact(@builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let r = lin(wid, nwg, lid);
  if (r >= p.rows) { return; }
  var cnt = 0u;
  if (expert_of(r) < p.experts) {
    let base = r * p.inner;
    for (var i = 0u; i < p.inner; i++) {
      let v = h[base + i];
      if (v != 0.0) {
        nz_idx[base + cnt] = i;
        nz_val[base + cnt] = v;
        cnt++;
      }
    }
  }
  nz_cnt[r] = cnt;
}

@compute @workgroup_size(WG)
fn sparse_down(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let i = lin(wid, nwg, lid);
  let cols = ((p.n + WG - 1u) / WG) * WG;  // each row padded to whole workgroups
  let r = i / cols;
  let c = i % cols;
  if (r >= p.rows || c >= p.n) { return; }
  let e = expert_of(r);
  var acc = 0.0;
  if (e < p.experts) {
    let base = r * p.inner;
    let wrow = (e * p.n + c) * p.inner;
    let cnt = nz_cnt[r];
    for (var j = 0u; j < cnt; j++) {
      acc += nz_val[base + j] * w[wrow + nz_idx[base + j]];
    }
  }
  y[r * p.n + c] = acc;
}
