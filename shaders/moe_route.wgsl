// Mixture-of-experts router: affinities, top-k on affinity + bias, gates;
// and the backward from gate (and score) gradients to router logits.
//
// Per token t, over Et = routed + copy experts:
//   scores s = sigmoid(logits) (each expert alone, DeepSeek-V3) or
//              softmax(logits) (over all Et, Qwen-MoE / LongCat)
//   idx      = the K experts with the largest s_i + b_i, descending; the bias
//              b only selects (DeepSeek-V3 aux-loss-free balancing), it never
//              weighs. Ranking as graph.TopK: NaN below every number, ties to
//              the lower index.
//   gates    g_k = scale · s[idx_k] / (norm ? Σ_j s[idx_j] : 1)
//
// Backward (route_backward): with G = Σ_k s[idx_k] and dg the gate
// gradients,
//   ∂L/∂s[idx_m] += scale · (dg_m / G − Σ_k dg_k s[idx_k] / G²)   (norm)
//   ∂L/∂s[idx_m] += scale · dg_m                                 (no norm)
// plus any direct score gradient ds (the balance loss); then through the
// scoring function: sigmoid ds·s(1−s), softmax s_i(ds_i − Σ_j s_j ds_j).
// Top-k indices are not differentiated.
//
// One invocation per token; grid ceil(n / WG) workgroups folded 1-D (linear
// index wid.x + wid.y · nwg.x); indices past n are skipped.

override WG: u32 = 64u;

struct Params {
  n: u32,        // tokens
  et: u32,       // experts scored: routed + copy
  k: u32,        // experts per token
  softmax: u32,  // 1: softmax scoring, 0: sigmoid
  norm: u32,     // 1: gates normalised over the selected experts
  scale: f32,    // routed_scaling_factor
  has_ds: u32,   // backward: 1 when ds_in holds a direct score gradient
  _p0: u32,
}

// route_forward
@group(0) @binding(0) var<storage, read> logits: array<f32>;        // (n, et) row-major, read
@group(0) @binding(1) var<storage, read> bias: array<f32>;          // (et), read: e_score_correction_bias
@group(0) @binding(2) var<storage, read_write> scores: array<f32>;  // (n, et) row-major, written
@group(0) @binding(3) var<storage, read_write> gates: array<f32>;   // (n, k) row-major, written
@group(0) @binding(4) var<storage, read_write> idx: array<u32>;     // (n, k) row-major, written: expert ids, best first
@group(0) @binding(5) var<uniform> pf: Params;
// route_backward
@group(0) @binding(0) var<storage, read> s_in: array<f32>;          // scores (n, et) from the forward, read
@group(0) @binding(1) var<storage, read> idx_in: array<u32>;        // (n, k) from the forward, read
@group(0) @binding(2) var<storage, read> dgates: array<f32>;        // (n, k), read
@group(0) @binding(3) var<storage, read> ds_in: array<f32>;         // (n, et), read when has_ds
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>; // (n, et) row-major, written
@group(0) @binding(5) var<uniform> pb: Params;

fn token_of(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

// rank_key maps f32 to u32 so that u32 order is the ranking order (NaN
// lowest, −0 as +0), as in topk.wgsl.
fn rank_key(v: f32) -> u32 {
  let b = bitcast<u32>(v);
  if ((b & 0x7fffffffu) > 0x7f800000u) { return 1u; }
  if (b == 0x80000000u) { return 0x80000000u; }
  if ((b & 0x80000000u) != 0u) { return ~b; }
  return b | 0x80000000u;
}

@compute @workgroup_size(WG)
fn route_forward(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let t = token_of(wid, nwg, lid);
  if (t >= pf.n) { return; }
  let et = pf.et;
  let base = t * et;
  if (pf.softmax == 1u) {
    var m = logits[base];
    for (var i = 1u; i < et; i++) { m = max(m, logits[base + i]); }
    var sum = 0.0;
    for (var i = 0u; i < et; i++) { sum += exp(logits[base + i] - m); }
    for (var i = 0u; i < et; i++) { scores[base + i] = exp(logits[base + i] - m) / sum; }
  } else {
    for (var i = 0u; i < et; i++) { scores[base + i] = 1.0 / (1.0 + exp(-logits[base + i])); }
  }
  // K selection passes: pass k takes the best (key, lowest index) ranked
  // strictly after the previous pick.
  var pk = 0xffffffffu;
  var pi = 0xffffffffu;
  var gsum = 0.0;
  let o = t * pf.k;
  for (var k = 0u; k < pf.k; k++) {
    var bk = 0u;
    var bi = 0xffffffffu;
    for (var i = 0u; i < et; i++) {
      let key = rank_key(scores[base + i] + bias[i]);
      let after = key < pk || (key == pk && (pi == 0xffffffffu || i > pi));
      if (after && (bi == 0xffffffffu || key > bk)) {
        bk = key;
        bi = i;
      }
    }
    pk = bk;
    pi = bi;
    idx[o + k] = bi;
    gsum += scores[base + bi];
  }
  var div = 1.0;
  if (pf.norm == 1u) { div = gsum; }
  for (var k = 0u; k < pf.k; k++) {
    gates[o + k] = pf.scale * scores[base + idx[o + k]] / div;
  }
}

@compute @workgroup_size(WG)
fn route_backward(@builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let t = token_of(wid, nwg, lid);
  if (t >= pb.n) { return; }
  let et = pb.et;
  let base = t * et;
  let o = t * pb.k;
  for (var i = 0u; i < et; i++) {
    var d = 0.0;
    if (pb.has_ds == 1u) { d = ds_in[base + i]; }
    dlogits[base + i] = d;
  }
  var g = 0.0;
  var a = 0.0;
  for (var k = 0u; k < pb.k; k++) {
    let s = s_in[base + idx_in[o + k]];
    g += s;
    a += dgates[o + k] * s;
  }
  for (var k = 0u; k < pb.k; k++) {
    let e = idx_in[o + k];
    var d = pb.scale * dgates[o + k];
    if (pb.norm == 1u) { d = pb.scale * (dgates[o + k] / g - a / (g * g)); }
    dlogits[base + e] += d;
  }
  if (pb.softmax == 1u) {
    var dot = 0.0;
    for (var i = 0u; i < et; i++) { dot += s_in[base + i] * dlogits[base + i]; }
    for (var i = 0u; i < et; i++) { dlogits[base + i] = s_in[base + i] * (dlogits[base + i] - dot); }
  } else {
    for (var i = 0u; i < et; i++) {
      let s = s_in[base + i];
      dlogits[base + i] = dlogits[base + i] * s * (1.0 - s);
    }
  }
}
