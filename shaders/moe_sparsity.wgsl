// Activation sparsity of expert rows (moe.ActivationSparsity): per row
// that holds a token, the exact zeros, the non-zeros below 1 % of the row's
// largest magnitude, and the row length; then one sum over rows:
//   out[0] = zeros / activations,  out[1] = small non-zeros / non-zeros

override WG: u32 = 64u;

struct Params {
  rows: u32,     // R
  inner: u32,    // I
  _p0: u32,
  experts: u32,  // E
}

@group(0) @binding(0) var<storage, read> h: array<f32>;            // (R, I), read
@group(0) @binding(1) var<storage, read> seg: array<u32>;          // (2E), read
@group(0) @binding(2) var<storage, read_write> acc: array<f32>;    // (R, 3) scratch: zeros, small, counted
@group(0) @binding(3) var<storage, read_write> out: array<f32>;    // (2), written
@group(0) @binding(4) var<uniform> p: Params;

fn lin(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

fn in_segment(r: u32) -> bool {
  for (var e = 0u; e < p.experts; e++) {
    let s = seg[2u * e];
    if (r >= s && r < s + seg[2u * e + 1u]) { return true; }
  }
  return false;
}

@compute @workgroup_size(WG)
fn sparsity_rows(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let r = lin(wid, nwg, lid);
  if (r >= p.rows) { return; }
  var z = 0.0;
  var s = 0.0;
  var n = 0.0;
  if (in_segment(r)) {
    let base = r * p.inner;
    var mx = 0.0;
    for (var i = 0u; i < p.inner; i++) { mx = max(mx, abs(h[base + i])); }
    for (var i = 0u; i < p.inner; i++) {
      let v = abs(h[base + i]);
      if (v == 0.0) { z += 1.0; } else if (v < 0.01 * mx) { s += 1.0; }
    }
    n = f32(p.inner);
  }
  acc[3u * r] = z;
  acc[3u * r + 1u] = s;
  acc[3u * r + 2u] = n;
}

@compute @workgroup_size(1)
fn sparsity_reduce() {
  var z = 0.0;
  var s = 0.0;
  var n = 0.0;
  for (var r = 0u; r < p.rows; r++) {
    z += acc[3u * r];
    s += acc[3u * r + 1u];
    n += acc[3u * r + 2u];
  }
  var zero = 0.0;
  var small = 0.0;
  if (n > 0.0) { zero = z / n; }
  if (n - z > 0.0) { small = s / (n - z); }
  out[0] = zero;
  out[1] = small;
}
