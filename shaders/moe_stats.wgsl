// Mixture-of-experts router statistics and bias controllers; see
// moe_balance.wgsl for the formulas and the stats layout.

override WG: u32 = 64u;

struct Params {
  n: u32,      // tokens
  et: u32,     // scored experts (routed + copy)
  k: u32,      // choices per token
  e: u32,      // routed experts
  _p0: u32,
  _p1: u32,
  _p2: u32,
  _p3: u32,
}

struct CtrlParams {
  et: u32,
  e: u32,
  mode: u32,       // routed bias: 0 none, 1 sign, 2 PID
  skip_mode: u32,  // copy bias: 0 none, 1 sign, 2 PID
  gamma: f32,      // sign step
  kp: f32,
  ki: f32,
  kd: f32,
  skip_target: f32, // skip-rate target
  imax: f32,       // integrator clamp
  sgamma: f32,     // copy bias: sign step
  skp: f32,        // copy bias: PID gains
  ski: f32,
  skd: f32,
  _p0: u32,
  _p1: u32,
}

// stats_token, stats_reduce
@group(0) @binding(0) var<storage, read> scores: array<f32>;       // (n, et), read
@group(0) @binding(1) var<storage, read> idx: array<u32>;          // (n, k), read
@group(0) @binding(2) var<storage, read> raw: array<u32>;          // (e) slots per routed expert before capacity, read
@group(0) @binding(3) var<storage, read> seg: array<u32>;          // (e, 2) segments after capacity, read
@group(0) @binding(4) var<storage, read_write> tok: array<f32>;    // (n, 3) scratch: skipped, entropy, non-finite
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;  // (5 + e), written
@group(0) @binding(6) var<uniform> p: Params;
// bias_update
@group(0) @binding(0) var<storage, read_write> bias: array<f32>;   // (et) e_score_correction_bias, updated
@group(0) @binding(1) var<storage, read_write> ctrl: array<f32>;   // (2·et) integrators, previous errors, updated
@group(0) @binding(2) var<storage, read> st: array<f32>;           // (5 + e) this step's stats, read
@group(0) @binding(3) var<uniform> pc: CtrlParams;

fn lin(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

fn finite(v: f32) -> bool {
  return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

@compute @workgroup_size(WG)
fn stats_token(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let t = lin(wid, nwg, lid);
  if (t >= p.n) { return; }
  var skip = 0.0;
  for (var j = 0u; j < p.k; j++) {
    if (idx[t * p.k + j] >= p.e) { skip = 1.0; }
  }
  let base = t * p.et;
  var sum = 0.0;
  var bad = 0.0;
  for (var i = 0u; i < p.et; i++) {
    let s = scores[base + i];
    if (finite(s)) { sum += s; } else { bad += 1.0; }
  }
  var h = 0.0;
  if (bad == 0.0 && sum > 0.0) {
    for (var i = 0u; i < p.et; i++) {
      let q = scores[base + i] / sum;
      if (q > 0.0) { h -= q * log(q); }
    }
  }
  tok[t * 3u] = skip;
  tok[t * 3u + 1u] = h;
  tok[t * 3u + 2u] = bad;
}

@compute @workgroup_size(1)
fn stats_reduce() {
  var skip = 0.0;
  var h = 0.0;
  var bad = 0.0;
  for (var t = 0u; t < p.n; t++) {
    skip += tok[t * 3u];
    h += tok[t * 3u + 1u];
    bad += tok[t * 3u + 2u];
  }
  var total = 0.0;
  var mx = 0.0;
  var dropped = 0.0;
  for (var i = 0u; i < p.e; i++) {
    let c = f32(raw[i]);
    total += c;
    mx = max(mx, c);
    dropped += f32(raw[i] - seg[2u * i + 1u]);
  }
  let mean = total / f32(p.e);
  var vio = 0.0;
  if (mean > 0.0) { vio = (mx - mean) / mean; }
  stats[0] = vio;
  stats[1] = skip / f32(p.n);
  stats[2] = h / f32(p.n);
  stats[3] = dropped;
  stats[4] = bad;
  for (var i = 0u; i < p.e; i++) {
    var share = 0.0;
    if (total > 0.0) { share = f32(raw[i]) / total; }
    stats[5u + i] = share;
  }
}

fn sgn(v: f32) -> f32 {
  if (v > 0.0) { return 1.0; }
  if (v < 0.0) { return -1.0; }
  return 0.0;
}

@compute @workgroup_size(1)
fn bias_update() {
  if (st[4] > 0.0) { return; }  // non-finite affinities: leave the controller alone
  let et = pc.et;
  let e = pc.e;
  if (pc.mode != 0u) {
    // Loads from the shares (stats[5+i]) scaled to a mean of 1.
    let mean = 1.0 / f32(e);
    var bsum = 0.0;
    for (var i = 0u; i < e; i++) {
      let err = (mean - st[5u + i]) / mean;
      if (pc.mode == 1u) {
        bias[i] += pc.gamma * sgn(err);
      } else {
        let integ = clamp(ctrl[i] + err, -pc.imax, pc.imax);
        bias[i] = pc.kp * err + pc.ki * integ + pc.kd * (err - ctrl[et + i]);
        ctrl[i] = integ;
        ctrl[et + i] = err;
      }
      bsum += bias[i];
    }
    let bmean = bsum / f32(e);
    for (var i = 0u; i < e; i++) { bias[i] -= bmean; }
  }
  if (pc.skip_mode != 0u && et > e) {
    let err = pc.skip_target - st[1];
    var b = bias[e];
    if (pc.skip_mode == 1u) {
      b += pc.sgamma * sgn(err);
    } else {
      let integ = clamp(ctrl[e] + err, -pc.imax, pc.imax);
      b = pc.skp * err + pc.ski * integ + pc.skd * (err - ctrl[et + e]);
      ctrl[e] = integ;
      ctrl[et + e] = err;
    }
    for (var i = e; i < et; i++) { bias[i] = b; }
  }
}
