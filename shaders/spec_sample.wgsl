// Speculative sampling verification with greedy drafts (Leviathan et al.
// 2023; TECHNIQUES.md §9): for each trial, walk the D drafts d_j against
// the target distributions p_j of rows j = 0 … D of logits:
//   accept d_j with probability p_j(d_j) (u = uniforms[2j] < p_j(d_j));
//   on the first rejection, sample from p_j with d_j removed,
//   renormalised (u' = uniforms[2j+1]), and stop;
//   when all D are accepted, sample the bonus token from p_D.
// p_j is softmax(logits_j / T) cut to its top-p nucleus (the smallest set
// of most likely tokens, ties to the lower id, whose mass reaches top_p)
// and renormalised, as generate.Pick samples. The committed tokens are then
// distributed exactly as the target model's samples.
// Output per trial: accepted count and the final (corrected or bonus) token.
// One invocation per trial; O(V²) work per row (the nucleus test), so the
// Go side bounds V by the loop budget. Grid folded 1-D.

override WG: u32 = 64u;

struct Params {
  trials: u32,
  d: u32,      // drafts
  v: u32,      // vocabulary
  _p0: u32,
  temp: f32,
  top_p: f32,
  _p1: u32,
  _p2: u32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;     // (d+1, v)
@group(0) @binding(1) var<storage, read> drafts: array<u32>;     // (d)
@group(0) @binding(2) var<storage, read> uniforms: array<f32>;   // (trials, 2(d+1)) in [0, 1)
@group(0) @binding(3) var<storage, read_write> result: array<u32>; // (trials, 2): accepted, token
@group(0) @binding(4) var<uniform> p: Params;

fn lin(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + lid;
}

fn weight(row: u32, i: u32, mx: f32) -> f32 {
  return exp((logits[row * p.v + i] - mx) / p.temp);
}

// kept reports whether token i is in row's nucleus: the mass ranked
// strictly before it (larger weight, or equal weight and lower id) is
// below top_p of the total.
fn kept(row: u32, i: u32, mx: f32, total: f32) -> bool {
  let wi = weight(row, i, mx);
  var before = 0.0;
  for (var j = 0u; j < p.v; j++) {
    let wj = weight(row, j, mx);
    if (wj > wi || (wj == wi && j < i)) { before += wj; }
  }
  return before / total < p.top_p;
}

@compute @workgroup_size(WG)
fn spec_sample(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let t = lin(wid, nwg, lid);
  if (t >= p.trials) { return; }
  let ub = t * 2u * (p.d + 1u);
  var accepted = 0u;
  var token = 0u;
  for (var row = 0u; row <= p.d; row++) {
    var mx = logits[row * p.v];
    for (var i = 1u; i < p.v; i++) { mx = max(mx, logits[row * p.v + i]); }
    var total = 0.0;
    for (var i = 0u; i < p.v; i++) { total += weight(row, i, mx); }
    var mass = 0.0;  // the nucleus's weight
    for (var i = 0u; i < p.v; i++) {
      if (kept(row, i, mx, total)) { mass += weight(row, i, mx); }
    }
    var skip = 0xffffffffu;
    var scale = 1.0;
    if (row < p.d) {
      let dr = drafts[row];
      var pd = 0.0;
      if (dr < p.v && kept(row, dr, mx, total)) { pd = weight(row, dr, mx) / mass; }
      if (uniforms[ub + 2u * row] < pd) {
        accepted++;
        continue;
      }
      skip = dr;
      scale = 1.0 - pd;
    }
    // Sample from the (residual) nucleus by inverse CDF in id order.
    var r = uniforms[ub + 2u * row + 1u] * scale * mass;
    token = 0xffffffffu;
    var last = 0u;
    for (var i = 0u; i < p.v; i++) {
      if (i == skip || !kept(row, i, mx, total)) { continue; }
      last = i;
      r -= weight(row, i, mx);
      if (r <= 0.0 && token == 0xffffffffu) { token = i; }
    }
    if (token == 0xffffffffu) { token = last; }
    break;
  }
  result[2u * t] = accepted;
  result[2u * t + 1u] = token;
}
