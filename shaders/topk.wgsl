// Top-k per row: the K largest values of each row of x, sorted descending,
// with their column indices. Ties go to the lower index. Values are ranked
// by an order-preserving u32 key: NaN ranks below every number (−inf
// included), −0 and +0 rank equal; the value written is the input value
// itself (a selected NaN stays NaN).
//
// Variants topk_insert and topk_select are one invocation per row (rows are
// short in MoE routing: 64 experts, K = 8); topk_select_wg (below) is one
// workgroup per row, for long rows:
//   topk_insert: one pass over the row keeping the best K so far in a
//     private array of KMAX ≥ K entries, by insertion. O(n·K) worst case,
//     O(n) typically.
//   topk_select: K passes over the row, pass k taking the best element
//     ranked after the one pass k−1 took. O(n·K), no private arrays, any K.
//   topk_select_vec4: the same with vec4 loads (n % 4 == 0).
//   topk_bubble: one pass, best K in register arrays of exactly K, updated
//     by a branch-free compare-and-swap chain. O(n·K).
// Grids are 1-D folded into (x, y) workgroups of WG; the linear index is
// wid.x + wid.y * nwg.x, bounds-checked. llvmpipe ends all loops of an
// invocation after 65535 iterations in total, so the Go side only runs a
// variant there when its worst-case trip count fits (graph.loopBudget).

override WG: u32 = 64u;
override KMAX: u32 = 8u;  // topk_insert: capacity ≥ K; topk_bubble: exactly K

struct Params {
  rows: u32,
  n: u32,  // row length
  k: u32,  // K ≤ n
  _pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;              // (rows, n) row-major
@group(0) @binding(1) var<storage, read_write> values: array<f32>;   // (rows, K) row-major, written, descending
@group(0) @binding(2) var<storage, read_write> indices: array<u32>;  // (rows, K) row-major, written, column of each value
@group(0) @binding(3) var<uniform> p: Params;

// topk_key maps f32 to u32 so that u32 order is the ranking order.
// Key 0 is never produced (it marks an empty slot in topk_bubble).
fn topk_key(v: f32) -> u32 {
  let b = bitcast<u32>(v);
  if ((b & 0x7fffffffu) > 0x7f800000u) { return 1u; }  // NaN: lowest
  if (b == 0x80000000u) { return 0x80000000u; }         // −0 ranks as +0
  if ((b & 0x80000000u) != 0u) { return ~b; }           // negative: reverse order
  return b | 0x80000000u;                               // positive: above negatives
}

@compute @workgroup_size(WG)
fn topk_insert(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let r = (wid.x + wid.y * nwg.x) * WG + lid;
  if (r >= p.rows) { return; }
  let base = r * p.n;
  let kk = p.k;
  var bk: array<u32, KMAX>;  // keys of the best so far, descending
  var bi: array<u32, KMAX>;  // their columns
  var cnt = 0u;
  for (var j = 0u; j < p.n; j++) {
    let key = topk_key(x[base + j]);
    if (cnt < kk || key > bk[kk - 1u]) {  // strict: an equal key came later, it loses
      var pos = min(cnt, kk - 1u);
      loop {
        if (pos == 0u) { break; }
        let q = bk[pos - 1u];
        if (q >= key) { break; }
        bk[pos] = q;
        bi[pos] = bi[pos - 1u];
        pos -= 1u;
      }
      bk[pos] = key;
      bi[pos] = j;
      cnt = min(cnt + 1u, kk);
    }
  }
  let o = r * kk;
  for (var k = 0u; k < kk; k++) {
    values[o + k] = x[base + bi[k]];
    indices[o + k] = bi[k];
  }
}

@compute @workgroup_size(WG)
fn topk_select(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let r = (wid.x + wid.y * nwg.x) * WG + lid;
  if (r >= p.rows) { return; }
  let base = r * p.n;
  let o = r * p.k;
  var pk = 0u;     // key taken by the previous pass
  var pi = 0u;     // its column
  var have = false;
  for (var k = 0u; k < p.k; k++) {
    var bk = 0u;
    var bi = p.n;  // none yet
    for (var j = 0u; j < p.n; j++) {
      let key = topk_key(x[base + j]);
      let after = !have || key < pk || (key == pk && j > pi);
      if (after && (bi == p.n || key > bk)) {
        bk = key;
        bi = j;
      }
    }
    values[o + k] = x[base + bi];
    indices[o + k] = bi;
    pk = bk;
    pi = bi;
    have = true;
  }
}

// topk_bubble: one pass over the row with the best K kept in arrays of
// exactly KMAX = K entries, sorted by (key desc, column asc); a candidate
// that beats the last entry is bubbled through all K slots with
// branch-free compare-and-swaps. The slot loop has a constant trip count,
// so compilers unroll it and keep the arrays in registers (no dynamic
// indexing, which is slow on CPU adapters). For small K (routing).
@compute @workgroup_size(WG)
fn topk_bubble(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let r = (wid.x + wid.y * nwg.x) * WG + lid;
  if (r >= p.rows) { return; }
  let base = r * p.n;
  var bk: array<u32, KMAX>;  // keys, descending; 0 = empty
  var bi: array<u32, KMAX>;  // columns
  for (var i = 0u; i < KMAX; i++) { bk[i] = 0u; bi[i] = 0xffffffffu; }
  for (var j = 0u; j < p.n; j++) {
    var ck = topk_key(x[base + j]);
    var cj = j;
    if (ck > bk[KMAX - 1u]) {  // later column: an equal key never enters
      for (var i = 0u; i < KMAX; i++) {
        let k0 = bk[i];
        let i0 = bi[i];
        let sw = ck > k0 || (ck == k0 && cj < i0);
        bk[i] = select(k0, ck, sw);
        bi[i] = select(i0, cj, sw);
        ck = select(ck, k0, sw);
        cj = select(cj, i0, sw);
      }
    }
  }
  let o = r * KMAX;
  for (var k = 0u; k < KMAX; k++) {
    values[o + k] = x[base + bi[k]];
    indices[o + k] = bi[k];
  }
}

// topk_select_vec4: topk_select reading the row as vec4 (needs n % 4 == 0):
// a quarter of the loop iterations, which dominate on CPU adapters.
@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;  // (rows, n/4) of vec4

// One step of a selection pass: best (key, column) so far, updated with
// element (key, j) if it ranks after the previous pass's pick (pk, pi) and
// before the best so far; best.y == n means none yet.
fn topk_step(best: vec2<u32>, key: u32, j: u32, pk: u32, pi: u32, have: bool) -> vec2<u32> {
  let after = !have || key < pk || (key == pk && j > pi);
  if (after && (best.y == p.n || key > best.x)) { return vec2<u32>(key, j); }
  return best;
}

@compute @workgroup_size(WG)
fn topk_select_vec4(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
  let r = (wid.x + wid.y * nwg.x) * WG + lid;
  if (r >= p.rows) { return; }
  let n4 = p.n / 4u;
  let base = r * n4;
  let o = r * p.k;
  var pk = 0u;
  var pi = 0u;
  var have = false;
  for (var k = 0u; k < p.k; k++) {
    var best = vec2<u32>(0u, p.n);
    for (var j4 = 0u; j4 < n4; j4++) {
      let v = x4[base + j4];
      let j = j4 * 4u;
      best = topk_step(best, topk_key(v.x), j, pk, pi, have);
      best = topk_step(best, topk_key(v.y), j + 1u, pk, pi, have);
      best = topk_step(best, topk_key(v.z), j + 2u, pk, pi, have);
      best = topk_step(best, topk_key(v.w), j + 3u, pk, pi, have);
    }
    values[o + k] = x4[base + best.y / 4u][best.y % 4u];
    indices[o + k] = best.y;
    pk = best.x;
    pi = best.y;
    have = true;
  }
}

// topk_select_wg: as topk_select, but one workgroup of TWG invocations per
// row: each pass, every invocation finds the best eligible element of its
// strided slice, and a shared-memory tree picks the workgroup's best. For
// long rows (vocabularies): per invocation O(K·(n/TWG + log TWG)).
override TWG: u32 = 64u;  // invocations per row, a power of two

var<workgroup> wkey: array<u32, TWG>;
var<workgroup> widx: array<u32, TWG>;

@compute @workgroup_size(TWG)
fn topk_select_wg(@builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let r = wid.x + wid.y * nwg.x;  // workgroup-uniform
  if (r >= p.rows) { return; }
  let base = r * p.n;
  let o = r * p.k;
  var pk = 0u;
  var pi = 0u;
  var have = false;
  for (var k = 0u; k < p.k; k++) {
    var bk = 0u;
    var bi = p.n;  // none
    for (var j = lid; j < p.n; j += TWG) {
      let key = topk_key(x[base + j]);
      let after = !have || key < pk || (key == pk && j > pi);
      if (after && (bi == p.n || key > bk)) {
        bk = key;
        bi = j;
      }
    }
    wkey[lid] = bk;
    widx[lid] = bi;
    workgroupBarrier();
    for (var h = TWG / 2u; h > 0u; h >>= 1u) {
      if (lid < h) {
        let ok = wkey[lid + h];
        let oi = widx[lid + h];
        let mk = wkey[lid];
        let mi = widx[lid];
        if (oi != p.n && (mi == p.n || ok > mk || (ok == mk && oi < mi))) {
          wkey[lid] = ok;
          widx[lid] = oi;
        }
      }
      workgroupBarrier();
    }
    pk = wkey[0];
    pi = widx[0];
    have = true;
    if (lid == 0u) {
      values[o + k] = x[base + pi];
      indices[o + k] = pi;
    }
    workgroupBarrier();  // everyone has read wkey[0] before the next pass
  }
}
