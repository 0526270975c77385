// Embedding lookup (gather) and its backward (deterministic scatter-add).
//
// Forward: y[n, :] = table[ids[n], :], or zeros where ids[n] ≥ V (an
// out-of-range id never reads outside the table).
//
// Backward, deterministic (variant 1), two dispatches:
//   embedding_links: for every position n, links[n] = the next position
//     j > n with ids[j] == ids[n] (N if none) and links[N + n] = 1 when n is
//     the first position holding its id (0 otherwise). O(N) per position,
//     O(N²) id reads in all (u32 only, no table traffic).
//   embedding_scatter: one invocation per (n, d); only first positions
//     work: they walk their id's chain in increasing n, summing dy in f32,
//     and add the sum to dtable[id, d]. One writer per table element, a
//     fixed summation order: bit-for-bit reproducible. O(N·D). Both loop
//     up to N times per invocation: on llvmpipe, which ends an
//     invocation's loops after 65535 iterations, N must stay below that.
// Backward, atomic (variant 2): embedding_scatter_atomic, one invocation per
// (n, d) adding dy[n, d] into dtable through atomic exchanges on the f32
// bits (WGSL has no f32 atomics; naga's GLSL backend cannot emit
// atomicCompareExchangeWeak, so an exchange loop replaces the usual CAS
// loop); the order of additions, and so the rounding, varies between runs.
//
// Grids are 1-D folded into (x, y) workgroups of WG; the linear workgroup
// index is wid.x + wid.y * nwg.x and every entry bounds-checks.

override WG: u32 = 256u;

struct Params {
  n: u32,     // N, number of positions
  d: u32,     // D, embedding width
  v: u32,     // V, table rows
  _pad: u32,
}

// ---- forward: embedding_forward, embedding_forward_vec4, embedding_forward_rows
@group(0) @binding(0) var<storage, read> table: array<f32>;          // (V, D) row-major
@group(0) @binding(1) var<storage, read> ids: array<u32>;            // (N)
@group(0) @binding(2) var<storage, read_write> y: array<f32>;        // (N, D) row-major, written
@group(0) @binding(3) var<uniform> p: Params;

// One invocation per output element.
@compute @workgroup_size(WG)
fn embedding_forward(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= p.n * p.d) { return; }
  let row = i / p.d;
  let col = i % p.d;
  let id = ids[row];
  var v = 0.0;
  if (id < p.v) { v = table[id * p.d + col]; }
  y[i] = v;
}

// Same with one vec4 per invocation; needs D % 4 == 0 (p.d is D/4 here).
@group(0) @binding(0) var<storage, read> table4: array<vec4<f32>>;   // (V, D/4) of vec4
@group(0) @binding(2) var<storage, read_write> y4: array<vec4<f32>>; // (N, D/4) of vec4, written

@compute @workgroup_size(WG)
fn embedding_forward_vec4(@builtin(workgroup_id) wid: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= p.n * p.d) { return; }
  let row = i / p.d;
  let col = i % p.d;
  let id = ids[row];
  var v = vec4<f32>(0.0);
  if (id < p.v) { v = table4[id * p.d + col]; }
  y4[i] = v;
}

// ---- backward, deterministic: embedding_links then embedding_scatter
@group(0) @binding(0) var<storage, read> link_ids: array<u32>;           // (N) ids
@group(0) @binding(1) var<storage, read_write> links_out: array<u32>;    // (2, N): next position, is-first flag; written
@group(0) @binding(2) var<uniform> pl: Params;

@compute @workgroup_size(WG)
fn embedding_links(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
  let n = (wid.x + wid.y * nwg.x) * WG + lid;
  if (n >= pl.n) { return; }
  let v = link_ids[n];
  var first = 1u;
  for (var j = 0u; j < n; j++) {
    if (link_ids[j] == v) { first = 0u; break; }
  }
  var next = pl.n;
  for (var j = n + 1u; j < pl.n; j++) {
    if (link_ids[j] == v) { next = j; break; }
  }
  links_out[n] = next;
  links_out[pl.n + n] = first;
}

@group(0) @binding(0) var<storage, read> dy: array<f32>;                 // (N, D) row-major
@group(0) @binding(1) var<storage, read> scatter_ids: array<u32>;        // (N)
@group(0) @binding(2) var<storage, read> links: array<u32>;              // (2, N) from embedding_links
@group(0) @binding(3) var<storage, read_write> dtable: array<f32>;       // (V, D) row-major, accumulated (+=)
@group(0) @binding(4) var<uniform> ps: Params;

@compute @workgroup_size(WG)
fn embedding_scatter(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= ps.n * ps.d) { return; }
  let n = i / ps.d;
  let col = i % ps.d;
  let id = scatter_ids[n];
  if (links[ps.n + n] == 0u || id >= ps.v) { return; }
  var s = 0.0;
  var j = n;
  loop {
    s += dy[j * ps.d + col];
    j = links[j];
    if (j >= ps.n) { break; }
  }
  let o = id * ps.d + col;
  dtable[o] = dtable[o] + s;
}

// Same with one vec4 of columns per invocation; needs D % 4 == 0 (ps.d is
// D/4 here).
@group(0) @binding(0) var<storage, read> dy4: array<vec4<f32>>;              // (N, D/4) of vec4
@group(0) @binding(3) var<storage, read_write> dtable4: array<vec4<f32>>;    // (V, D/4) of vec4, accumulated (+=)

@compute @workgroup_size(WG)
fn embedding_scatter_vec4(@builtin(workgroup_id) wid: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= ps.n * ps.d) { return; }
  let n = i / ps.d;
  let col = i % ps.d;
  let id = scatter_ids[n];
  if (links[ps.n + n] == 0u || id >= ps.v) { return; }
  var s = vec4<f32>(0.0);
  var j = n;
  loop {
    s += dy4[j * ps.d + col];
    j = links[j];
    if (j >= ps.n) { break; }
  }
  let o = id * ps.d + col;
  dtable4[o] = dtable4[o] + s;
}

// ---- backward, atomic: embedding_scatter_atomic
@group(0) @binding(0) var<storage, read> dy_a: array<f32>;                   // (N, D) row-major
@group(0) @binding(1) var<storage, read> ids_a: array<u32>;                  // (N)
@group(0) @binding(2) var<storage, read_write> dtable_a: array<atomic<u32>>; // (V, D) f32 bits, accumulated (+=)

@compute @workgroup_size(WG)
fn embedding_scatter_atomic(@builtin(workgroup_id) wid: vec3<u32>,
                            @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= p.n * p.d) { return; }
  let n = i / p.d;
  let col = i % p.d;
  let id = ids_a[n];
  if (id >= p.v) { return; }
  let g = dy_a[i];
  let o = id * p.d + col;
  // Take the current value out (leaving 0), put back value + g; if the
  // slot was no longer 0 someone deposited meanwhile: carry that on.
  var add = g;
  loop {
    let cur = bitcast<f32>(atomicExchange(&dtable_a[o], 0u));
    let back = atomicExchange(&dtable_a[o], bitcast<u32>(cur + add));
    if (back == 0u) { break; }
    add = bitcast<f32>(back);
  }
}
