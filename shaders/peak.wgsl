// Microkernels that measure an adapter's roofline: peak FMA throughput and
// copy bandwidth. The bench reports every other kernel as a share of these.

override WG: u32 = 256u;
override ITERS: u32 = 1024u;  // FMA loop trips per invocation

struct Params { n: u32, seed: f32, _a: u32, _b: u32 }

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;        // (n) copy source
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;  // (n) copy destination / FMA sink
@group(0) @binding(2) var<uniform> p: Params;

// CH independent vec4 FMA chains: 4·CH FMAs (8·CH flops) per trip. The
// bench tries several CH and keeps the fastest: too few chains expose FMA
// latency, too many spill registers (a CPU driver runs each invocation in a
// SIMD lane, so one vec4 is four host vector registers).
override CH: u32 = 4u;

@compute @workgroup_size(WG)
fn fma_peak(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  let s = p.seed + f32(lid) * 1e-7;
  var acc: array<vec4<f32>, CH>;
  for (var j = 0u; j < CH; j++) { acc[j] = vec4<f32>(s + 0.1 * f32(j)); }
  let m = vec4<f32>(0.9999); let c = vec4<f32>(1e-4);
  for (var t = 0u; t < ITERS; t++) {
    for (var j = 0u; j < CH; j++) { acc[j] = fma(acc[j], m, c); }
  }
  var sum = vec4<f32>(0.0);
  for (var j = 0u; j < CH; j++) { sum += acc[j]; }
  if (i < p.n) { dst[i] = sum; }
}

@compute @workgroup_size(WG)
fn copy4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i < p.n) { dst[i] = src[i]; }
}

// Per-lane load throughput: each invocation sums LOADS vec4 loads at
// addresses that differ between lanes, from a storage buffer or from a
// 64 KiB uniform buffer. On llvmpipe the two differ by ~2×: storage loads
// run lane by lane, uniform loads go through a gather. The bench reports
// scalars loaded per second.
override LOADS: u32 = 2000u;

@group(0) @binding(0) var<uniform> srcu: array<vec4<f32>, 4096>;  // (4096) vec4, 64 KiB

fn lane_base(lid: u32, t: u32) -> u32 { return (lid * 4u + t * 64u) % 4092u; }

@compute @workgroup_size(64)
fn load_storage(@builtin(global_invocation_id) g: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  var s = vec4<f32>(0.0);
  for (var t = 0u; t < LOADS / 4u; t++) {
    let i = lane_base(lid, t);
    s += src[i] + src[i + 1u] + src[i + 2u] + src[i + 3u];
  }
  dst[g.x] = s;
}

@compute @workgroup_size(64)
fn load_uniform(@builtin(global_invocation_id) g: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  var s = vec4<f32>(0.0);
  for (var t = 0u; t < LOADS / 4u; t++) {
    let i = lane_base(lid, t);
    s += srcu[i] + srcu[i + 1u] + srcu[i + 2u] + srcu[i + 3u];
  }
  dst[g.x] = s;
}
