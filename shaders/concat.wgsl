// Concatenation of two row-major matrices along their columns, and its
// inverse (the backward):
//   concat_cols: y[r, 0:a] = x1[r, :], y[r, a:a+b] = x2[r, :]     y (rows, a+b)
//   split_cols:  y1[r, :] = x[r, 0:a], y2[r, :] = x[r, a:a+b]
// One invocation per element of the wide matrix; grid folded 1-D (linear
// index wid.x + wid.y · nwg.x).

override WG: u32 = 64u;

struct Params {
  rows: u32,
  a: u32,     // columns of the first part
  b: u32,     // columns of the second part
  _p0: u32,
}

@group(0) @binding(0) var<storage, read_write> part1: array<f32>;  // (rows, a): read by concat, written by split
@group(0) @binding(1) var<storage, read_write> part2: array<f32>;  // (rows, b): read by concat, written by split
@group(0) @binding(2) var<storage, read_write> wide: array<f32>;   // (rows, a+b): written by concat, read by split
@group(0) @binding(3) var<uniform> p: Params;

fn lin(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn concat_cols(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let i = lin(wid, nwg, lid);
  let w = p.a + p.b;
  if (i >= p.rows * w) { return; }
  let r = i / w;
  let c = i % w;
  if (c < p.a) { wide[i] = part1[r * p.a + c]; } else { wide[i] = part2[r * p.b + c - p.a]; }
}

@compute @workgroup_size(WG)
fn split_cols(@builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let i = lin(wid, nwg, lid);
  let w = p.a + p.b;
  if (i >= p.rows * w) { return; }
  let r = i / w;
  let c = i % w;
  if (c < p.a) { part1[r * p.a + c] = wide[i]; } else { part2[r * p.b + c - p.a] = wide[i]; }
}
