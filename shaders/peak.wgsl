// Microkernels that measure an adapter's roofline: peak FMA throughput and
// copy bandwidth. The bench reports every other kernel as a share of these.

override WG: u32 = 256u;
override ITERS: u32 = 1024u;  // FMA loop trips per invocation

struct Params { n: u32, seed: f32, _a: u32, _b: u32 }

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;        // (n) copy source
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;  // (n) copy destination / FMA sink
@group(0) @binding(2) var<uniform> p: Params;

// 8 independent vec4 FMA chains: 32 FMAs (64 flops) per trip.
@compute @workgroup_size(WG)
fn fma_peak(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  let s = p.seed + f32(lid) * 1e-7;
  var a0 = vec4<f32>(s); var a1 = a0 + 0.1; var a2 = a0 + 0.2; var a3 = a0 + 0.3;
  var a4 = a0 + 0.4; var a5 = a0 + 0.5; var a6 = a0 + 0.6; var a7 = a0 + 0.7;
  let m = vec4<f32>(0.9999); let c = vec4<f32>(1e-4);
  for (var t = 0u; t < ITERS; t++) {
    a0 = fma(a0, m, c); a1 = fma(a1, m, c); a2 = fma(a2, m, c); a3 = fma(a3, m, c);
    a4 = fma(a4, m, c); a5 = fma(a5, m, c); a6 = fma(a6, m, c); a7 = fma(a7, m, c);
  }
  if (i < p.n) { dst[i] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7; }
}

@compute @workgroup_size(WG)
fn copy4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i < p.n) { dst[i] = src[i]; }
}
