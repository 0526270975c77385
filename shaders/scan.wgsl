// Exclusive prefix sum of u32: y[i] = x[0] + … + x[i−1] (mod 2³²), any n.
// The kernels of one level: a "sums" kernel reduces each block of x to one
// u32, the block sums are scanned by the same scheme one level up (Go
// recursion, each level in its own dispatches), and an "apply" kernel
// scans each block of x starting from its scanned block sum.
//
// Variants:
//   serial (scan_chunk_sums, scan_chunk_apply): a block is CHUNK
//     consecutive elements walked by one invocation; no shared memory, no
//     barriers (best where invocations are CPU SIMD lanes).
//   block (scan_block_sums, scan_block_apply): a block is BWG·PER elements
//     handled by one workgroup: coalesced loads into shared memory, PER
//     consecutive elements scanned by each invocation, the BWG partial
//     sums scanned in shared memory (Hillis–Steele), coalesced stores.
// 1-D grids are folded into (x, y); linear index = wid.x + wid.y * nwg.x,
// bounds-checked.

override WG: u32 = 64u;     // serial: invocations per workgroup
override CHUNK: u32 = 64u;  // serial: elements per invocation
override BWG: u32 = 256u;   // block: invocations per workgroup, a power of two
override PER: u32 = 4u;     // block: elements per invocation

struct Params {
  n: u32,        // elements of x (and y)
  has_off: u32,  // 1: add off[block] to every element of the block; 0: off is unused
  _pad0: u32,
  _pad1: u32,
}

// ---- sums kernels: scan_chunk_sums, scan_block_sums
@group(0) @binding(0) var<storage, read> x: array<u32>;             // (n)
@group(0) @binding(1) var<storage, read_write> sums: array<u32>;    // (⌈n / block⌉), written
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn scan_chunk_sums(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
  let c = (wid.x + wid.y * nwg.x) * WG + lid;
  let start = c * CHUNK;
  if (start >= p.n) { return; }
  let end = min(start + CHUNK, p.n);
  var s = 0u;
  for (var j = start; j < end; j++) { s += x[j]; }
  sums[c] = s;
}

const TILE: u32 = BWG * PER;  // elements per block
var<workgroup> tile: array<u32, TILE>;
var<workgroup> part: array<u32, BWG>;

@compute @workgroup_size(BWG)
fn scan_block_sums(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
  let b = wid.x + wid.y * nwg.x;  // workgroup-uniform
  let base = b * BWG * PER;
  if (base >= p.n) { return; }
  var s = 0u;
  for (var k = 0u; k < PER; k++) {
    let i = base + k * BWG + lid;
    if (i < p.n) { s += x[i]; }
  }
  part[lid] = s;
  workgroupBarrier();
  for (var h = BWG / 2u; h > 0u; h >>= 1u) {
    if (lid < h) { part[lid] = part[lid] + part[lid + h]; }
    workgroupBarrier();
  }
  if (lid == 0u) { sums[b] = part[0]; }
}

// ---- apply kernels: scan_chunk_apply, scan_block_apply
@group(0) @binding(0) var<storage, read> ax: array<u32>;             // (n)
@group(0) @binding(1) var<storage, read> off: array<u32>;            // (⌈n / block⌉) exclusive scan of the block sums; unused if has_off == 0
@group(0) @binding(2) var<storage, read_write> y: array<u32>;        // (n), written
@group(0) @binding(3) var<uniform> pa: Params;

@compute @workgroup_size(WG)
fn scan_chunk_apply(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let c = (wid.x + wid.y * nwg.x) * WG + lid;
  let start = c * CHUNK;
  if (start >= pa.n) { return; }
  let end = min(start + CHUNK, pa.n);
  var run = 0u;
  if (pa.has_off != 0u) { run = off[c]; }
  for (var j = start; j < end; j++) {
    let v = ax[j];
    y[j] = run;
    run += v;
  }
}

@compute @workgroup_size(BWG)
fn scan_block_apply(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let b = wid.x + wid.y * nwg.x;  // workgroup-uniform
  let base = b * BWG * PER;
  if (base >= pa.n) { return; }
  for (var k = 0u; k < PER; k++) {
    let i = base + k * BWG + lid;
    var v = 0u;
    if (i < pa.n) { v = ax[i]; }
    tile[k * BWG + lid] = v;
  }
  workgroupBarrier();
  // Exclusive scan of this invocation's PER consecutive elements.
  var t = 0u;
  for (var k = 0u; k < PER; k++) {
    let v = tile[lid * PER + k];
    tile[lid * PER + k] = t;
    t += v;
  }
  part[lid] = t;
  workgroupBarrier();
  // Inclusive Hillis–Steele scan of the BWG partial sums.
  for (var d = 1u; d < BWG; d <<= 1u) {
    var add = 0u;
    if (lid >= d) { add = part[lid - d]; }
    workgroupBarrier();
    part[lid] = part[lid] + add;
    workgroupBarrier();
  }
  var o = part[lid] - t;
  if (pa.has_off != 0u) { o += off[b]; }
  for (var k = 0u; k < PER; k++) { tile[lid * PER + k] = tile[lid * PER + k] + o; }
  workgroupBarrier();
  for (var k = 0u; k < PER; k++) {
    let i = base + k * BWG + lid;
    if (i < pa.n) { y[i] = tile[k * BWG + lid]; }
  }
}

// ---- serial kernels with vec4 loads and stores (n % 4 == 0):
// scan_chunk_sums4, scan_chunk_apply4; CHUNK is a multiple of 4.
@group(0) @binding(0) var<storage, read> x4: array<vec4<u32>>;           // (n/4) of vec4

@compute @workgroup_size(WG)
fn scan_chunk_sums4(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let c = (wid.x + wid.y * nwg.x) * WG + lid;
  let start = c * (CHUNK / 4u);
  let n4 = p.n / 4u;
  if (start >= n4) { return; }
  let end = min(start + CHUNK / 4u, n4);
  var s = vec4<u32>(0u);
  for (var j = start; j < end; j++) { s += x4[j]; }
  sums[c] = (s.x + s.y) + (s.z + s.w);
}

@group(0) @binding(0) var<storage, read> ax4: array<vec4<u32>>;          // (n/4) of vec4
@group(0) @binding(2) var<storage, read_write> y4: array<vec4<u32>>;     // (n/4) of vec4, written

@compute @workgroup_size(WG)
fn scan_chunk_apply4(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
  let c = (wid.x + wid.y * nwg.x) * WG + lid;
  let start = c * (CHUNK / 4u);
  let n4 = pa.n / 4u;
  if (start >= n4) { return; }
  let end = min(start + CHUNK / 4u, n4);
  var run = 0u;
  if (pa.has_off != 0u) { run = off[c]; }
  for (var j = start; j < end; j++) {
    let v = ax4[j];
    let a = run + v.x;
    let b = a + v.y;
    let d = b + v.z;
    y4[j] = vec4<u32>(run, a, b, d);
    run = d + v.w;
  }
}
