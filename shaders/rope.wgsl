// Rotary position embedding (RoPE) in the Hugging Face "rotate_half"
// convention, and its inverse (rotation by −θ, which is also its backward).
//
// Per token t at absolute position p_t, per head, on the first R = 2·half
// dims of the head, pairs (i, i + half) for i < half rotate by
// θ_i = p_t · inv_freq_i with inv_freq_i = base^(−2i/R):
//   y_i        = x_i · cos θ − x_{i+half} · sin θ
//   y_{i+half} = x_{i+half} · cos θ + x_i · sin θ
// (sin θ negated for the inverse). Dims R … head_dim−1 are copied.
//
// Angles. θ = p·inv_freq in f32 is off by ~p·inv_freq·2^−24 (0.006 rad at
// p = 1e5), and sin/cos of large arguments are unspecified in WGSL. So the
// angle is computed in turns, reduced mod 1 exactly: the host splits
// f_i = inv_freq_i / 2π (in float64) into f = a + b + c, where a and b carry
// 12 significant bits each and c is the f32-rounded rest; the position is
// split into p = ph + pl with ph = p & ~0xFFF and pl = p & 0xFFF (12
// significant bits each for p < 2^24). Then ph·a, pl·a, ph·b and pl·b are
// exact f32 products, their fractional parts are exact, and only p·c
// (≤ 0.32 in size) and three additions round. The turn count is off by
// ≤ ~3e-7 for every p < 2^24, so θ reduced to [−π, π] is off by ≤ ~2.3e-6
// rad independently of the position; sin/cos then work inside their
// accurate range.
//
// Two variants, chosen by graph.RoPE.Variant, each also in a form that
// rotates the queries and keys of one layer in one dispatch (rope_qk_*); both loop over the heads so
// that one invocation's sin/cos serve every head of its token:
//   rope_s:  one invocation per (token, lane); lanes 0 … half−1 rotate the
//            pair (lane, lane+half), lanes half … half+(head_dim−R)−1 copy
//            dim R + (lane − half).
//   rope_v4: the same over groups of 4 dims (vec4 loads), needing
//            half % 4 == 0 and head_dim % 4 == 0.
// Grid: ceil(tokens·lanes / WG) workgroups, folded 1-D; the linear index is
// (wid.x + wid.y·nwg.x)·WG + lid, and indices past the end are skipped.

override WG: u32 = 64u;

struct Params {
  tokens: u32,    // rows of x
  heads: u32,     // heads per row
  head_dim: u32,  // dims per head (in vec4s for rope_v4)
  half: u32,      // RotaryDim / 2 (in vec4s for rope_v4)
  lanes: u32,     // invocations per token: half + head_dim − 2·half (same units)
  sign: f32,      // +1 forward, −1 inverse
  kheads: u32,    // rope_qk_*, rope_qkv_*: key heads; 0 otherwise
  vheads: u32,    // rope_qkv_*: value heads; 0 otherwise
}

@group(0) @binding(0) var<storage, read> x: array<f32>;            // x (tokens, heads·head_dim) row-major, read
@group(0) @binding(1) var<storage, read> pos: array<u32>;          // positions (tokens), absolute, < 2^24
@group(0) @binding(2) var<storage, read> freq: array<f32>;         // (3, half): rows a, b, c of inv_freq/2π, host-written
@group(0) @binding(3) var<storage, read_write> y: array<f32>;      // y (tokens, heads·head_dim) row-major, written
@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;     // x as (tokens, heads·head_dim/4) vec4
@group(0) @binding(2) var<storage, read> freq4: array<vec4<f32>>;  // freq as (3, half/4) vec4
@group(0) @binding(3) var<storage, read_write> y4: array<vec4<f32>>; // y as (tokens, heads·head_dim/4) vec4
@group(0) @binding(4) var<uniform> p: Params;
// rope_qk_s / rope_qk_v4: queries and keys of one attention layer in one
// dispatch, x = q (binding 0), xk = k (binding 1), positions and the table
// one binding later, outputs yq, yk, then the parameters.
@group(0) @binding(1) var<storage, read> xk: array<f32>;            // k (tokens, kheads·head_dim), read
@group(0) @binding(2) var<storage, read> posk: array<u32>;          // positions (tokens)
@group(0) @binding(3) var<storage, read> freqk: array<f32>;         // (3, half), as freq
@group(0) @binding(4) var<storage, read_write> yq: array<f32>;      // rotated q, written
@group(0) @binding(5) var<storage, read_write> yk: array<f32>;      // rotated k, written
@group(0) @binding(1) var<storage, read> xk4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> freqk4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> yq4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> yk4: array<vec4<f32>>;
@group(0) @binding(6) var<uniform> pk: Params;
// rope_qkv_s / rope_qkv_v4: the output of a fused q/k/v projection, each
// row [q heads | k heads | v heads], split into contiguous q, k (rotated)
// and v (copied). rope_qkv_bwd_*: the reverse, rotating by −θ (pk.sign).
@group(0) @binding(0) var<storage, read> fq_in: array<f32>;          // qkv (tokens, (heads+kheads+vheads)·head_dim)
@group(0) @binding(0) var<storage, read> fq_in4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> fq_pos: array<u32>;         // positions (tokens)
@group(0) @binding(2) var<storage, read> fq_freq: array<f32>;        // (3, half)
@group(0) @binding(2) var<storage, read> fq_freq4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> fq_q: array<f32>;     // q (tokens, heads·head_dim), written
@group(0) @binding(3) var<storage, read_write> fq_q4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> fq_k: array<f32>;     // k (tokens, kheads·head_dim), written
@group(0) @binding(4) var<storage, read_write> fq_k4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> fq_v: array<f32>;     // v (tokens, vheads·head_dim), written
@group(0) @binding(5) var<storage, read_write> fq_v4: array<vec4<f32>>;
@group(0) @binding(0) var<storage, read> bq_dq: array<f32>;          // dq (tokens, heads·head_dim)
@group(0) @binding(0) var<storage, read> bq_dq4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> bq_dk: array<f32>;          // dk (tokens, kheads·head_dim)
@group(0) @binding(1) var<storage, read> bq_dk4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bq_dv: array<f32>;          // dv (tokens, vheads·head_dim)
@group(0) @binding(2) var<storage, read> bq_dv4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bq_pos: array<u32>;         // positions (tokens)
@group(0) @binding(4) var<storage, read> bq_freq: array<f32>;        // (3, half)
@group(0) @binding(4) var<storage, read> bq_freq4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> bq_out: array<f32>;   // dqkv (tokens, (heads+kheads+vheads)·head_dim), written
@group(0) @binding(5) var<storage, read_write> bq_out4: array<vec4<f32>>;

const TWO_PI: f32 = 6.2831853071795864;

// Position split: ph has the bits above 12, pl the low 12, pf the whole.
fn rope_split(q: u32) -> vec3<f32> {
  return vec3<f32>(f32(q & 0xFFFFF000u), f32(q & 0xFFFu), f32(q));
}

// Angle of frequency (a, b, c) at position split ps, in radians in [−π, π].
fn rope_angle(ps: vec3<f32>, a: f32, b: f32, c: f32) -> f32 {
  let s1 = fract(fract(ps.x * a) + fract(ps.y * a));
  let s2 = fract(fract(ps.x * b) + fract(ps.y * b));
  let s = s1 + s2 + ps.z * c;
  return TWO_PI * (s - round(s));
}

fn rope_angle4(ps: vec3<f32>, a: vec4<f32>, b: vec4<f32>, c: vec4<f32>) -> vec4<f32> {
  let s1 = fract(fract(ps.x * a) + fract(ps.y * a));
  let s2 = fract(fract(ps.x * b) + fract(ps.y * b));
  let s = s1 + s2 + ps.z * c;
  return TWO_PI * (s - round(s));
}

@compute @workgroup_size(WG)
fn rope_s(@builtin(workgroup_id) wid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
  let gi = (wid.x + wid.y * nwg.x) * WG + lid;
  if (gi >= p.tokens * p.lanes) { return; }
  let t = gi / p.lanes;
  let l = gi % p.lanes;
  let row = t * p.heads * p.head_dim;
  if (l < p.half) {
    let th = rope_angle(rope_split(pos[t]), freq[l], freq[p.half + l], freq[2u * p.half + l]);
    let c = cos(th);
    let s = p.sign * sin(th);
    for (var h = 0u; h < p.heads; h++) {
      let i1 = row + h * p.head_dim + l;
      let i2 = i1 + p.half;
      let x1 = x[i1];
      let x2 = x[i2];
      y[i1] = x1 * c - x2 * s;
      y[i2] = x2 * c + x1 * s;
    }
  } else {
    let j = row + p.half + l;  // dim 2·half + (l − half)
    for (var h = 0u; h < p.heads; h++) {
      y[j + h * p.head_dim] = x[j + h * p.head_dim];
    }
  }
}

@compute @workgroup_size(WG)
fn rope_v4(@builtin(workgroup_id) wid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let gi = (wid.x + wid.y * nwg.x) * WG + lid;
  if (gi >= p.tokens * p.lanes) { return; }
  let t = gi / p.lanes;
  let l = gi % p.lanes;
  let row = t * p.heads * p.head_dim;
  if (l < p.half) {
    let th = rope_angle4(rope_split(pos[t]), freq4[l], freq4[p.half + l], freq4[2u * p.half + l]);
    let c = cos(th);
    let s = p.sign * sin(th);
    for (var h = 0u; h < p.heads; h++) {
      let i1 = row + h * p.head_dim + l;
      let i2 = i1 + p.half;
      let x1 = x4[i1];
      let x2 = x4[i2];
      y4[i1] = x1 * c - x2 * s;
      y4[i2] = x2 * c + x1 * s;
    }
  } else {
    let j = row + p.half + l;
    for (var h = 0u; h < p.heads; h++) {
      y4[j + h * p.head_dim] = x4[j + h * p.head_dim];
    }
  }
}

// rope_qk_s: rope_s over q (p.heads heads) and k (p.kheads heads) at once;
// one invocation's sin/cos serve the heads of both.
@compute @workgroup_size(WG)
fn rope_qk_s(@builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let gi = (wid.x + wid.y * nwg.x) * WG + lid;
  if (gi >= pk.tokens * pk.lanes) { return; }
  let t = gi / pk.lanes;
  let l = gi % pk.lanes;
  let rq = t * pk.heads * pk.head_dim;
  let rk = t * pk.kheads * pk.head_dim;
  if (l < pk.half) {
    let th = rope_angle(rope_split(posk[t]), freqk[l], freqk[pk.half + l], freqk[2u * pk.half + l]);
    let c = cos(th);
    let s = pk.sign * sin(th);
    for (var h = 0u; h < pk.heads; h++) {
      let i1 = rq + h * pk.head_dim + l;
      let i2 = i1 + pk.half;
      let x1 = x[i1];
      let x2 = x[i2];
      yq[i1] = x1 * c - x2 * s;
      yq[i2] = x2 * c + x1 * s;
    }
    for (var h = 0u; h < pk.kheads; h++) {
      let i1 = rk + h * pk.head_dim + l;
      let i2 = i1 + pk.half;
      let x1 = xk[i1];
      let x2 = xk[i2];
      yk[i1] = x1 * c - x2 * s;
      yk[i2] = x2 * c + x1 * s;
    }
  } else {
    let jq = rq + pk.half + l;
    for (var h = 0u; h < pk.heads; h++) {
      yq[jq + h * pk.head_dim] = x[jq + h * pk.head_dim];
    }
    let jk = rk + pk.half + l;
    for (var h = 0u; h < pk.kheads; h++) {
      yk[jk + h * pk.head_dim] = xk[jk + h * pk.head_dim];
    }
  }
}

// rope_qk_v4: rope_qk_s over groups of 4 dims (as rope_v4).
@compute @workgroup_size(WG)
fn rope_qk_v4(@builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let gi = (wid.x + wid.y * nwg.x) * WG + lid;
  if (gi >= pk.tokens * pk.lanes) { return; }
  let t = gi / pk.lanes;
  let l = gi % pk.lanes;
  let rq = t * pk.heads * pk.head_dim;
  let rk = t * pk.kheads * pk.head_dim;
  if (l < pk.half) {
    let th = rope_angle4(rope_split(posk[t]), freqk4[l], freqk4[pk.half + l], freqk4[2u * pk.half + l]);
    let c = cos(th);
    let s = pk.sign * sin(th);
    for (var h = 0u; h < pk.heads; h++) {
      let i1 = rq + h * pk.head_dim + l;
      let i2 = i1 + pk.half;
      let x1 = x4[i1];
      let x2 = x4[i2];
      yq4[i1] = x1 * c - x2 * s;
      yq4[i2] = x2 * c + x1 * s;
    }
    for (var h = 0u; h < pk.kheads; h++) {
      let i1 = rk + h * pk.head_dim + l;
      let i2 = i1 + pk.half;
      let x1 = xk4[i1];
      let x2 = xk4[i2];
      yk4[i1] = x1 * c - x2 * s;
      yk4[i2] = x2 * c + x1 * s;
    }
  } else {
    let jq = rq + pk.half + l;
    for (var h = 0u; h < pk.heads; h++) {
      yq4[jq + h * pk.head_dim] = x4[jq + h * pk.head_dim];
    }
    let jk = rk + pk.half + l;
    for (var h = 0u; h < pk.kheads; h++) {
      yk4[jk + h * pk.head_dim] = xk4[jk + h * pk.head_dim];
    }
  }
}

// rope_qkv_*: see the bindings above. One invocation per (token, lane) as
// rope_s / rope_v4; the same rotation arithmetic, so q and k equal what
// rope_s / rope_v4 give on separate tensors, bit for bit.

@compute @workgroup_size(WG)
fn rope_qkv_s(@builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32) {
  let gi = (wid.x + wid.y * nwg.x) * WG + lid;
  if (gi >= pk.tokens * pk.lanes) { return; }
  let t = gi / pk.lanes;
  let l = gi % pk.lanes;
  let sr = t * (pk.heads + pk.kheads + pk.vheads) * pk.head_dim;
  let rq = t * pk.heads * pk.head_dim;
  let rk = t * pk.kheads * pk.head_dim;
  let rv = t * pk.vheads * pk.head_dim;
  if (l < pk.half) {
    let th = rope_angle(rope_split(fq_pos[t]), fq_freq[l], fq_freq[pk.half + l], fq_freq[2u * pk.half + l]);
    let c = cos(th);
    let s = pk.sign * sin(th);
    for (var h = 0u; h < pk.heads; h++) {
      let x1 = fq_in[sr + (0u + h) * pk.head_dim + l];
      let x2 = fq_in[sr + (0u + h) * pk.head_dim + l + pk.half];
      fq_q[rq + h * pk.head_dim + l] = x1 * c - x2 * s;
      fq_q[rq + h * pk.head_dim + l + pk.half] = x2 * c + x1 * s;
    }
    for (var h = 0u; h < pk.kheads; h++) {
      let x1 = fq_in[sr + (pk.heads + h) * pk.head_dim + l];
      let x2 = fq_in[sr + (pk.heads + h) * pk.head_dim + l + pk.half];
      fq_k[rk + h * pk.head_dim + l] = x1 * c - x2 * s;
      fq_k[rk + h * pk.head_dim + l + pk.half] = x2 * c + x1 * s;
    }
    for (var h = 0u; h < pk.vheads; h++) {
      fq_v[rv + h * pk.head_dim + l] = fq_in[sr + ((pk.heads + pk.kheads) + h) * pk.head_dim + l];
      fq_v[rv + h * pk.head_dim + l + pk.half] = fq_in[sr + ((pk.heads + pk.kheads) + h) * pk.head_dim + l + pk.half];
    }
  } else {
    for (var h = 0u; h < pk.heads; h++) {
      fq_q[rq + h * pk.head_dim + pk.half + l] = fq_in[sr + (0u + h) * pk.head_dim + pk.half + l];
    }
    for (var h = 0u; h < pk.kheads; h++) {
      fq_k[rk + h * pk.head_dim + pk.half + l] = fq_in[sr + (pk.heads + h) * pk.head_dim + pk.half + l];
    }
    for (var h = 0u; h < pk.vheads; h++) {
      fq_v[rv + h * pk.head_dim + pk.half + l] = fq_in[sr + ((pk.heads + pk.kheads) + h) * pk.head_dim + pk.half + l];
    }
  }
}

@compute @workgroup_size(WG)
fn rope_qkv_v4(@builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32) {
  let gi = (wid.x + wid.y * nwg.x) * WG + lid;
  if (gi >= pk.tokens * pk.lanes) { return; }
  let t = gi / pk.lanes;
  let l = gi % pk.lanes;
  let sr = t * (pk.heads + pk.kheads + pk.vheads) * pk.head_dim;
  let rq = t * pk.heads * pk.head_dim;
  let rk = t * pk.kheads * pk.head_dim;
  let rv = t * pk.vheads * pk.head_dim;
  if (l < pk.half) {
    let th = rope_angle4(rope_split(fq_pos[t]), fq_freq4[l], fq_freq4[pk.half + l], fq_freq4[2u * pk.half + l]);
    let c = cos(th);
    let s = pk.sign * sin(th);
    for (var h = 0u; h < pk.heads; h++) {
      let x1 = fq_in4[sr + (0u + h) * pk.head_dim + l];
      let x2 = fq_in4[sr + (0u + h) * pk.head_dim + l + pk.half];
      fq_q4[rq + h * pk.head_dim + l] = x1 * c - x2 * s;
      fq_q4[rq + h * pk.head_dim + l + pk.half] = x2 * c + x1 * s;
    }
    for (var h = 0u; h < pk.kheads; h++) {
      let x1 = fq_in4[sr + (pk.heads + h) * pk.head_dim + l];
      let x2 = fq_in4[sr + (pk.heads + h) * pk.head_dim + l + pk.half];
      fq_k4[rk + h * pk.head_dim + l] = x1 * c - x2 * s;
      fq_k4[rk + h * pk.head_dim + l + pk.half] = x2 * c + x1 * s;
    }
    for (var h = 0u; h < pk.vheads; h++) {
      fq_v4[rv + h * pk.head_dim + l] = fq_in4[sr + ((pk.heads + pk.kheads) + h) * pk.head_dim + l];
      fq_v4[rv + h * pk.head_dim + l + pk.half] = fq_in4[sr + ((pk.heads + pk.kheads) + h) * pk.head_dim + l + pk.half];
    }
  } else {
    for (var h = 0u; h < pk.heads; h++) {
      fq_q4[rq + h * pk.head_dim + pk.half + l] = fq_in4[sr + (0u + h) * pk.head_dim + pk.half + l];
    }
    for (var h = 0u; h < pk.kheads; h++) {
      fq_k4[rk + h * pk.head_dim + pk.half + l] = fq_in4[sr + (pk.heads + h) * pk.head_dim + pk.half + l];
    }
    for (var h = 0u; h < pk.vheads; h++) {
      fq_v4[rv + h * pk.head_dim + pk.half + l] = fq_in4[sr + ((pk.heads + pk.kheads) + h) * pk.head_dim + pk.half + l];
    }
  }
}

@compute @workgroup_size(WG)
fn rope_qkv_bwd_s(@builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32) {
  let gi = (wid.x + wid.y * nwg.x) * WG + lid;
  if (gi >= pk.tokens * pk.lanes) { return; }
  let t = gi / pk.lanes;
  let l = gi % pk.lanes;
  let sr = t * (pk.heads + pk.kheads + pk.vheads) * pk.head_dim;
  let rq = t * pk.heads * pk.head_dim;
  let rk = t * pk.kheads * pk.head_dim;
  let rv = t * pk.vheads * pk.head_dim;
  if (l < pk.half) {
    let th = rope_angle(rope_split(bq_pos[t]), bq_freq[l], bq_freq[pk.half + l], bq_freq[2u * pk.half + l]);
    let c = cos(th);
    let s = pk.sign * sin(th);
    for (var h = 0u; h < pk.heads; h++) {
      let x1 = bq_dq[rq + h * pk.head_dim + l];
      let x2 = bq_dq[rq + h * pk.head_dim + l + pk.half];
      bq_out[sr + (0u + h) * pk.head_dim + l] = x1 * c - x2 * s;
      bq_out[sr + (0u + h) * pk.head_dim + l + pk.half] = x2 * c + x1 * s;
    }
    for (var h = 0u; h < pk.kheads; h++) {
      let x1 = bq_dk[rk + h * pk.head_dim + l];
      let x2 = bq_dk[rk + h * pk.head_dim + l + pk.half];
      bq_out[sr + (pk.heads + h) * pk.head_dim + l] = x1 * c - x2 * s;
      bq_out[sr + (pk.heads + h) * pk.head_dim + l + pk.half] = x2 * c + x1 * s;
    }
    for (var h = 0u; h < pk.vheads; h++) {
      bq_out[sr + ((pk.heads + pk.kheads) + h) * pk.head_dim + l] = bq_dv[rv + h * pk.head_dim + l];
      bq_out[sr + ((pk.heads + pk.kheads) + h) * pk.head_dim + l + pk.half] = bq_dv[rv + h * pk.head_dim + l + pk.half];
    }
  } else {
    for (var h = 0u; h < pk.heads; h++) {
      bq_out[sr + (0u + h) * pk.head_dim + pk.half + l] = bq_dq[rq + h * pk.head_dim + pk.half + l];
    }
    for (var h = 0u; h < pk.kheads; h++) {
      bq_out[sr + (pk.heads + h) * pk.head_dim + pk.half + l] = bq_dk[rk + h * pk.head_dim + pk.half + l];
    }
    for (var h = 0u; h < pk.vheads; h++) {
      bq_out[sr + ((pk.heads + pk.kheads) + h) * pk.head_dim + pk.half + l] = bq_dv[rv + h * pk.head_dim + pk.half + l];
    }
  }
}

@compute @workgroup_size(WG)
fn rope_qkv_bwd_v4(@builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32) {
  let gi = (wid.x + wid.y * nwg.x) * WG + lid;
  if (gi >= pk.tokens * pk.lanes) { return; }
  let t = gi / pk.lanes;
  let l = gi % pk.lanes;
  let sr = t * (pk.heads + pk.kheads + pk.vheads) * pk.head_dim;
  let rq = t * pk.heads * pk.head_dim;
  let rk = t * pk.kheads * pk.head_dim;
  let rv = t * pk.vheads * pk.head_dim;
  if (l < pk.half) {
    let th = rope_angle4(rope_split(bq_pos[t]), bq_freq4[l], bq_freq4[pk.half + l], bq_freq4[2u * pk.half + l]);
    let c = cos(th);
    let s = pk.sign * sin(th);
    for (var h = 0u; h < pk.heads; h++) {
      let x1 = bq_dq4[rq + h * pk.head_dim + l];
      let x2 = bq_dq4[rq + h * pk.head_dim + l + pk.half];
      bq_out4[sr + (0u + h) * pk.head_dim + l] = x1 * c - x2 * s;
      bq_out4[sr + (0u + h) * pk.head_dim + l + pk.half] = x2 * c + x1 * s;
    }
    for (var h = 0u; h < pk.kheads; h++) {
      let x1 = bq_dk4[rk + h * pk.head_dim + l];
      let x2 = bq_dk4[rk + h * pk.head_dim + l + pk.half];
      bq_out4[sr + (pk.heads + h) * pk.head_dim + l] = x1 * c - x2 * s;
      bq_out4[sr + (pk.heads + h) * pk.head_dim + l + pk.half] = x2 * c + x1 * s;
    }
    for (var h = 0u; h < pk.vheads; h++) {
      bq_out4[sr + ((pk.heads + pk.kheads) + h) * pk.head_dim + l] = bq_dv4[rv + h * pk.head_dim + l];
      bq_out4[sr + ((pk.heads + pk.kheads) + h) * pk.head_dim + l + pk.half] = bq_dv4[rv + h * pk.head_dim + l + pk.half];
    }
  } else {
    for (var h = 0u; h < pk.heads; h++) {
      bq_out4[sr + (0u + h) * pk.head_dim + pk.half + l] = bq_dq4[rq + h * pk.head_dim + pk.half + l];
    }
    for (var h = 0u; h < pk.kheads; h++) {
      bq_out4[sr + (pk.heads + h) * pk.head_dim + pk.half + l] = bq_dk4[rk + h * pk.head_dim + pk.half + l];
    }
    for (var h = 0u; h < pk.vheads; h++) {
      bq_out4[sr + ((pk.heads + pk.kheads) + h) * pk.head_dim + pk.half + l] = bq_dv4[rv + h * pk.head_dim + pk.half + l];
    }
  }
}
