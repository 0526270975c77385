// Mixture-of-experts balancing: the classic load-balancing loss and its
// backward, the per-step router statistics, and the bias controllers.
//
// Load-balancing loss over the whole batch (DeepSeek-V3 Eq. 17–20, batch
// wise; Switch §2.2), over the E routed experts of Et scored ones:
//   f_i = E / (K·n) · #{(t,k): idx[t,k] = i}      (the selection, constant)
//   P_i = (1/n) Σ_t s[t,i] / S_t,   S_t = Σ_{j<E} s[t,j]
//   L   = α Σ_i f_i P_i
//   ∂L/∂s[t,m] = α/n · (f_m / S_t − Σ_i f_i s[t,i] / S_t²)   (m < E; 0 for copy experts)
//
// Statistics (stats_token per token, stats_reduce once), layout of stats:
//   [0] MaxVio = (max_i load_i − mean load) / mean load over routed experts
//   [1] skip rate: share of tokens that picked a copy expert
//   [2] router entropy: mean over tokens of −Σ p ln p, p = s / Σ s (nats)
//   [3] dropped slots (over capacity), a count
//   [4] non-finite affinities, a count (non-zero is an error)
//   [5 …] load share of each routed expert, Σ = 1
// load_i is the raw slot count of routed expert i (before capacity).
//
// Bias controllers (bias_update, one invocation; mode 1 sign, 2 PID):
//   routed experts, relative error e_i = (mean − load_i) / max(mean, 1)
//     sign: b_i += γ · sign(e_i)
//     PID:  I_i = clamp(I_i + e_i, ±imax); b_i = kp·e_i + ki·I_i + kd·(e_i − prev_i)
//     then re-centred: b_i −= mean_j b_j (routed experts only)
//   copy experts (skip mode 1 sign, 2 PID), error e = target − skip rate,
//     the same rules with their own step and gains and one integrator,
//     applied to every copy bias (not re-centred).
// ctrl holds the integrators and previous errors: [0, et) I, [et, 2et) prev.

override WG: u32 = 64u;

struct Params {
  n: u32,      // tokens
  et: u32,     // scored experts (routed + copy)
  k: u32,      // choices per token
  e: u32,      // routed experts
  alpha: f32,  // balance loss coefficient
  _p0: u32,
  _p1: u32,
  _p2: u32,
}

// balance_rowsum, balance_expert, balance_loss
@group(0) @binding(0) var<storage, read> scores: array<f32>;       // (n, et), read
@group(0) @binding(1) var<storage, read> idx: array<u32>;          // (n, k), read
@group(0) @binding(2) var<storage, read_write> rs: array<f32>;     // (n) scratch: S_t
@group(0) @binding(3) var<storage, read_write> pp: array<f32>;     // (e) scratch: P_i
@group(0) @binding(4) var<storage, read_write> f: array<f32>;      // (e) written: f_i
@group(0) @binding(5) var<storage, read_write> loss: array<f32>;   // (1) written
@group(0) @binding(6) var<uniform> p: Params;
// balance_backward
@group(0) @binding(0) var<storage, read> s_b: array<f32>;          // (n, et), read
@group(0) @binding(1) var<storage, read> f_b: array<f32>;          // (e), read
@group(0) @binding(2) var<storage, read> dl: array<f32>;           // (1) loss gradient, read
@group(0) @binding(3) var<storage, read_write> ds: array<f32>;     // (n, et), written
@group(0) @binding(4) var<uniform> pb: Params;

fn lin(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

@compute @workgroup_size(WG)
fn balance_rowsum(@builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let t = lin(wid, nwg, lid);
  if (t >= p.n) { return; }
  var s = 0.0;
  for (var j = 0u; j < p.e; j++) { s += scores[t * p.et + j]; }
  rs[t] = s;
}

@compute @workgroup_size(WG)
fn balance_expert(@builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let i = lin(wid, nwg, lid);
  if (i >= p.e) { return; }
  var c = 0u;
  for (var s = 0u; s < p.n * p.k; s++) {
    if (idx[s] == i) { c++; }
  }
  var pi = 0.0;
  for (var t = 0u; t < p.n; t++) { pi += scores[t * p.et + i] / rs[t]; }
  f[i] = f32(p.e) * f32(c) / (f32(p.k) * f32(p.n));
  pp[i] = pi / f32(p.n);
}

@compute @workgroup_size(1)
fn balance_loss() {
  var l = 0.0;
  for (var i = 0u; i < p.e; i++) { l += f[i] * pp[i]; }
  loss[0] = p.alpha * l;
}

@compute @workgroup_size(WG)
fn balance_backward(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let t = lin(wid, nwg, lid);
  if (t >= pb.n) { return; }
  let base = t * pb.et;
  var st = 0.0;
  var a = 0.0;
  for (var j = 0u; j < pb.e; j++) {
    st += s_b[base + j];
    a += f_b[j] * s_b[base + j];
  }
  let c = dl[0] * pb.alpha / f32(pb.n);
  for (var j = 0u; j < pb.et; j++) {
    var v = 0.0;
    if (j < pb.e) { v = c * (f_b[j] / st - a / (st * st)); }
    ds[base + j] = v;
  }
}
