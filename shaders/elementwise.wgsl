// Elementwise ops on flat f32 tensors of any shape: add, mul, scale,
// accumulate (y += a), ReLU² and SiLU with their backwards, SwiGLU and its
// backward. Every tensor is read as a flat row-major array of n elements;
// the shapes of all operands are identical (checked on the host).
//
// Two variants of every entry point:
//   NAME_s  — scalar: each invocation handles PER elements, strided by WG
//             inside its workgroup's block of WG·PER elements, so adjacent
//             invocations touch adjacent addresses. Covers [p.start, p.n).
//   NAME_v4 — vec4: the same layout over p.n vec4s (elements 0 … 4·p.n−1).
//             The host dispatches NAME_s afterwards for the n mod 4 tail.
// Grid: 1-D folded into (x, y) workgroups; the linear workgroup index is
// wid.x + wid.y * nwg.x and every index is bounds-checked.
//
// The two variants bind the same buffers with different element types
// (f32 or vec4<f32>), so each binding slot is declared once per element
// type and per binding layout; an entry point uses only its own set.

override WG: u32 = 256u;
override PER: u32 = 4u;   // elements (NAME_s) or vec4s (NAME_v4) per invocation

struct Params {
  n: u32,       // NAME_s: end of the element range; NAME_v4: number of vec4s
  start: u32,   // NAME_s: first element (the tail after the vec4 part); NAME_v4: 0
  factor: f32,  // scale only: the multiplier
  cols: u32,    // silu_and_mul*: I, the columns of y (elements, or vec4s for _v4)
}

// ---- Layout U (one input, one output): scale, relu2, silu, add_into, silu_and_mul ----
// add_into reads and writes y (y += x).
@group(0) @binding(0) var<storage, read> u_x: array<f32>;            // x (n) flat
@group(0) @binding(1) var<storage, read_write> u_y: array<f32>;      // y (n) flat
@group(0) @binding(0) var<storage, read> u_x4: array<vec4<f32>>;     // x (n/4) flat, vec4 view
@group(0) @binding(1) var<storage, read_write> u_y4: array<vec4<f32>>; // y (n/4) flat, vec4 view
@group(0) @binding(2) var<uniform> u_p: Params;

// ---- Layout B (two inputs, one output): add, mul, relu2_bwd, silu_bwd, swiglu, silu_and_mul_bwd ----
// add/mul: (a, b) → y; *_bwd: (x, dy) → dx; swiglu: (gate, up) → y.
@group(0) @binding(0) var<storage, read> b_a: array<f32>;            // a | x | gate (n) flat
@group(0) @binding(1) var<storage, read> b_b: array<f32>;            // b | dy | up (n) flat
@group(0) @binding(2) var<storage, read_write> b_y: array<f32>;      // y | dx (n) flat
@group(0) @binding(0) var<storage, read> b_a4: array<vec4<f32>>;     // vec4 views of the same
@group(0) @binding(1) var<storage, read> b_b4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> b_y4: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> b_p: Params;

// ---- Layout T (three inputs, two outputs): swiglu_bwd ----
@group(0) @binding(0) var<storage, read> t_g: array<f32>;            // gate (n) flat
@group(0) @binding(1) var<storage, read> t_u: array<f32>;            // up (n) flat
@group(0) @binding(2) var<storage, read> t_dy: array<f32>;           // dy (n) flat, grad of silu(gate)·up
@group(0) @binding(3) var<storage, read_write> t_dg: array<f32>;     // dgate (n) flat, written
@group(0) @binding(4) var<storage, read_write> t_du: array<f32>;     // dup (n) flat, written
@group(0) @binding(0) var<storage, read> t_g4: array<vec4<f32>>;     // vec4 views of the same
@group(0) @binding(1) var<storage, read> t_u4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> t_dy4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> t_dg4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> t_du4: array<vec4<f32>>;
@group(0) @binding(5) var<uniform> t_p: Params;

// ---- Math, once per element type ----

// Numerically safe logistic: exp is only taken of −|x| ∈ (−∞, 0], so it
// never overflows; σ(x) = 1/(1+e^{−x}) for x ≥ 0 and e^{x}/(1+e^{x}) below.
fn sigmoid(x: f32) -> f32 {
  let e = exp(-abs(x));
  let s = 1.0 / (1.0 + e);
  return select(e * s, s, x >= 0.0);
}
fn sigmoid4(x: vec4<f32>) -> vec4<f32> {
  let e = exp(-abs(x));
  let s = 1.0 / (1.0 + e);
  return select(e * s, s, x >= vec4<f32>(0.0));
}

// d silu(x)/dx = σ(x)·(1 + x·(1−σ(x))).
fn dsilu(x: f32) -> f32 {
  let s = sigmoid(x);
  return s * (1.0 + x * (1.0 - s));
}
fn dsilu4(x: vec4<f32>) -> vec4<f32> {
  let s = sigmoid4(x);
  return s * (1.0 + x * (1.0 - s));
}

// First element (or vec4) of this invocation; later ones are k·WG further.
fn first(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, start: u32) -> u32 {
  return start + (wid.x + wid.y * nwg.x) * WG * PER + lid;
}

// ---- Layout U entry points ----

// y = factor · x
@compute @workgroup_size(WG)
fn scale_s(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let i0 = first(wid, nwg, lid, u_p.start);
  for (var k = 0u; k < PER; k++) {
    let i = i0 + k * WG;
    if (i < u_p.n) { u_y[i] = u_p.factor * u_x[i]; }
  }
}
@compute @workgroup_size(WG)
fn scale_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let i0 = first(wid, nwg, lid, 0u);
  for (var k = 0u; k < PER; k++) {
    let i = i0 + k * WG;
    if (i < u_p.n) { u_y4[i] = u_p.factor * u_x4[i]; }
  }
}

// y += x (gradient accumulation; y holds the previous value)
@compute @workgroup_size(WG)
fn add_into_s(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let i0 = first(wid, nwg, lid, u_p.start);
  for (var k = 0u; k < PER; k++) {
    let i = i0 + k * WG;
    if (i < u_p.n) { u_y[i] = u_y[i] + u_x[i]; }
  }
}
@compute @workgroup_size(WG)
fn add_into_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let i0 = first(wid, nwg, lid, 0u);
  for (var k = 0u; k < PER; k++) {
    let i = i0 + k * WG;
    if (i < u_p.n) { u_y4[i] = u_y4[i] + u_x4[i]; }
  }
}

// y = relu(x)²
@compute @workgroup_size(WG)
fn relu2_s(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let i0 = first(wid, nwg, lid, u_p.start);
  for (var k = 0u; k < PER; k++) {
    let i = i0 + k * WG;
    if (i < u_p.n) { let r = max(u_x[i], 0.0); u_y[i] = r * r; }
  }
}
@compute @workgroup_size(WG)
fn relu2_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let i0 = first(wid, nwg, lid, 0u);
  for (var k = 0u; k < PER; k++) {
    let i = i0 + k * WG;
    if (i < u_p.n) { let r = max(u_x4[i], vec4<f32>(0.0)); u_y4[i] = r * r; }
  }
}

// y = x · σ(x)
@compute @workgroup_size(WG)
fn silu_s(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
  let i0 = first(wid, nwg, lid, u_p.start);
  for (var k = 0u; k < PER; k++) {
    let i = i0 + k * WG;
    if (i < u_p.n) { let x = u_x[i]; u_y[i] = x * sigmoid(x); }
  }
}
@compute @workgroup_size(WG)
fn silu_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let i0 = first(wid, nwg, lid, 0u);
  for (var k = 0u; k < PER; k++) {
    let i = i0 + k * WG;
    if (i < u_p.n) { let x = u_x4[i]; u_y4[i] = x * sigmoid4(x); }
  }
}

// ---- Layout B entry points ----

// y = a + b
@compute @workgroup_size(WG)
fn add_s(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
  let i0 = first(wid, nwg, lid, b_p.start);
  for (var k = 0u; k < PER; k++) {
    let i = i0 + k * WG;
    if (i < b_p.n) { b_y[i] = b_a[i] + b_b[i]; }
  }
}
@compute @workgroup_size(WG)
fn add_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
  let i0 = first(wid, nwg, lid, 0u);
  for (var k = 0u; k < PER; k++) {
    let i = i0 + k * WG;
    if (i < b_p.n) { b_y4[i] = b_a4[i] + b_b4[i]; }
  }
}

// y = a · b
@compute @workgroup_size(WG)
fn mul_s(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
  let i0 = first(wid, nwg, lid, b_p.start);
  for (var k = 0u; k < PER; k++) {
    let i = i0 + k * WG;
    if (i < b_p.n) { b_y[i] = b_a[i] * b_b[i]; }
  }
}
@compute @workgroup_size(WG)
fn mul_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
  let i0 = first(wid, nwg, lid, 0u);
  for (var k = 0u; k < PER; k++) {
    let i = i0 + k * WG;
    if (i < b_p.n) { b_y4[i] = b_a4[i] * b_b4[i]; }
  }
}

// dx = 2 · relu(x) · dy   (a = x, b = dy)
@compute @workgroup_size(WG)
fn relu2_bwd_s(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let i0 = first(wid, nwg, lid, b_p.start);
  for (var k = 0u; k < PER; k++) {
    let i = i0 + k * WG;
    if (i < b_p.n) { b_y[i] = 2.0 * max(b_a[i], 0.0) * b_b[i]; }
  }
}
@compute @workgroup_size(WG)
fn relu2_bwd_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let i0 = first(wid, nwg, lid, 0u);
  for (var k = 0u; k < PER; k++) {
    let i = i0 + k * WG;
    if (i < b_p.n) { b_y4[i] = 2.0 * max(b_a4[i], vec4<f32>(0.0)) * b_b4[i]; }
  }
}

// dx = dy · σ(x) · (1 + x·(1−σ(x)))   (a = x, b = dy)
@compute @workgroup_size(WG)
fn silu_bwd_s(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let i0 = first(wid, nwg, lid, b_p.start);
  for (var k = 0u; k < PER; k++) {
    let i = i0 + k * WG;
    if (i < b_p.n) { b_y[i] = b_b[i] * dsilu(b_a[i]); }
  }
}
@compute @workgroup_size(WG)
fn silu_bwd_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let i0 = first(wid, nwg, lid, 0u);
  for (var k = 0u; k < PER; k++) {
    let i = i0 + k * WG;
    if (i < b_p.n) { b_y4[i] = b_b4[i] * dsilu4(b_a4[i]); }
  }
}

// y = silu(gate) · up   (a = gate, b = up)
@compute @workgroup_size(WG)
fn swiglu_s(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let i0 = first(wid, nwg, lid, b_p.start);
  for (var k = 0u; k < PER; k++) {
    let i = i0 + k * WG;
    if (i < b_p.n) { let g = b_a[i]; b_y[i] = g * sigmoid(g) * b_b[i]; }
  }
}
@compute @workgroup_size(WG)
fn swiglu_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let i0 = first(wid, nwg, lid, 0u);
  for (var k = 0u; k < PER; k++) {
    let i = i0 + k * WG;
    if (i < b_p.n) { let g = b_a4[i]; b_y4[i] = g * sigmoid4(g) * b_b4[i]; }
  }
}

// ---- Layout T entry points ----

// dgate = dy · up · silu'(gate),  dup = dy · silu(gate)
@compute @workgroup_size(WG)
fn swiglu_bwd_s(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let i0 = first(wid, nwg, lid, t_p.start);
  for (var k = 0u; k < PER; k++) {
    let i = i0 + k * WG;
    if (i < t_p.n) {
      let g = t_g[i];
      let dy = t_dy[i];
      let s = sigmoid(g);
      t_dg[i] = dy * t_u[i] * s * (1.0 + g * (1.0 - s));
      t_du[i] = dy * g * s;
    }
  }
}
@compute @workgroup_size(WG)
fn swiglu_bwd_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
  let i0 = first(wid, nwg, lid, 0u);
  for (var k = 0u; k < PER; k++) {
    let i = i0 + k * WG;
    if (i < t_p.n) {
      let g = t_g4[i];
      let dy = t_dy4[i];
      let s = sigmoid4(g);
      t_dg4[i] = dy * t_u4[i] * s * (1.0 + g * (1.0 - s));
      t_du4[i] = dy * g * s;
    }
  }
}

// ---- silu_and_mul: SwiGLU on a fused gate/up projection ----
// x (rows, 2I), each row [gate | up]; y (rows, I) = silu(gate) · up, the
// same expression as swiglu. p.n counts y's elements (vec4s for _v4), and
// p.cols is I in the same unit. Layout U: u_x = x, u_y = y.
@compute @workgroup_size(WG)
fn silu_and_mul_s(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let i0 = first(wid, nwg, lid, u_p.start);
  for (var k = 0u; k < PER; k++) {
    let i = i0 + k * WG;
    if (i < u_p.n) {
      let j = (i / u_p.cols) * 2u * u_p.cols + i % u_p.cols;
      let g = u_x[j];
      u_y[i] = g * sigmoid(g) * u_x[j + u_p.cols];
    }
  }
}
@compute @workgroup_size(WG)
fn silu_and_mul_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
  let i0 = first(wid, nwg, lid, 0u);
  for (var k = 0u; k < PER; k++) {
    let i = i0 + k * WG;
    if (i < u_p.n) {
      let j = (i / u_p.cols) * 2u * u_p.cols + i % u_p.cols;
      let g = u_x4[j];
      u_y4[i] = g * sigmoid4(g) * u_x4[j + u_p.cols];
    }
  }
}

// silu_and_mul_bwd: (x (rows, 2I), dy (rows, I)) → dx (rows, 2I) = [dgate |
// dup], the same expressions as swiglu_bwd. Layout B: b_a = x, b_b = dy,
// b_y = dx.
@compute @workgroup_size(WG)
fn silu_and_mul_bwd_s(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
  let i0 = first(wid, nwg, lid, b_p.start);
  for (var k = 0u; k < PER; k++) {
    let i = i0 + k * WG;
    if (i < b_p.n) {
      let j = (i / b_p.cols) * 2u * b_p.cols + i % b_p.cols;
      let g = b_a[j];
      let u = b_a[j + b_p.cols];
      let dy = b_b[i];
      let s = sigmoid(g);
      b_y[j] = dy * u * s * (1.0 + g * (1.0 - s));
      b_y[j + b_p.cols] = dy * g * s;
    }
  }
}
@compute @workgroup_size(WG)
fn silu_and_mul_bwd_v4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
  let i0 = first(wid, nwg, lid, 0u);
  for (var k = 0u; k < PER; k++) {
    let i = i0 + k * WG;
    if (i < b_p.n) {
      let j = (i / b_p.cols) * 2u * b_p.cols + i % b_p.cols;
      let g = b_a4[j];
      let u = b_a4[j + b_p.cols];
      let dy = b_b4[i];
      let s = sigmoid4(g);
      b_y4[j] = dy * u * s * (1.0 + g * (1.0 - s));
      b_y4[j + b_p.cols] = dy * g * s;
    }
  }
}
