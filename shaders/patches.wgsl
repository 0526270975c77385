// Column patches (image strips as tokens) and their backward.
//
// An image batch (B, H, W) f32 is cut into vertical strips P pixels wide;
// a row r of the output (N, H·P) holds the strip cols[r] of its sequence's
// image, b = r / S (S = N / B rows per sequence), flattened row-major over
// (h, j): y[r, h·P + j] = image[b, h, cols[r]·P + j]. A strip index at or
// past ceil(W / P) (the host writes 0xFFFFFFFF for text positions) gives a
// zero row, and pixels past W in the last strip read as 0.
//
// Backward (the image's gradient, written): dimage[b, h, x] = Σ over the
// rows r of sequence b with cols[r] = x / P of dy[r, h·P + x % P], summed in
// increasing r: one invocation per pixel, a loop of S rows.
//
// Grids are 1-D folded into (x, y) workgroups of WG; the linear workgroup
// index is wid.x + wid.y * nwg.x and every entry bounds-checks.

override WG: u32 = 256u;

struct Params {
  n: u32,      // N, output rows (B·S)
  s: u32,      // S, rows per sequence
  h: u32,      // H, image height
  w: u32,      // W, image width
  p: u32,      // P, strip width
  strips: u32, // ceil(W / P)
  b: u32,      // B, images
  _pad: u32,
}

// ---- forward: column_patches
@group(0) @binding(0) var<storage, read> image: array<f32>;       // (B, H, W) row-major
@group(0) @binding(1) var<storage, read> cols: array<u32>;        // (N) strip index per row
@group(0) @binding(2) var<storage, read_write> y: array<f32>;     // (N, H·P) row-major, written
@group(0) @binding(3) var<uniform> pf: Params;

@compute @workgroup_size(WG)
fn column_patches(@builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  let f = pf.h * pf.p;
  if (i >= pf.n * f) { return; }
  let r = i / f;
  let k = i % f;
  let row = k / pf.p;
  let j = k % pf.p;
  let c = cols[r];
  var v = 0.0;
  if (c < pf.strips) {
    let x = c * pf.p + j;
    if (x < pf.w) {
      v = image[((r / pf.s) * pf.h + row) * pf.w + x];
    }
  }
  y[i] = v;
}

// ---- backward: column_patches_backward
@group(0) @binding(0) var<storage, read> dy: array<f32>;           // (N, H·P) row-major
@group(0) @binding(1) var<storage, read> bcols: array<u32>;        // (N)
@group(0) @binding(2) var<storage, read_write> dimage: array<f32>; // (B, H, W) row-major, written
@group(0) @binding(3) var<uniform> pb: Params;

@compute @workgroup_size(WG)
fn column_patches_backward(@builtin(workgroup_id) wid: vec3<u32>,
                           @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= pb.b * pb.h * pb.w) { return; }
  let x = i % pb.w;
  let row = (i / pb.w) % pb.h;
  let b = i / (pb.w * pb.h);
  let c = x / pb.p;
  let k = row * pb.p + x % pb.p;
  let f = pb.h * pb.p;
  var s = 0.0;
  for (var r = b * pb.s; r < (b + 1u) * pb.s; r++) {
    if (bcols[r] == c) { s += dy[r * f + k]; }
  }
  dimage[i] = s;
}
