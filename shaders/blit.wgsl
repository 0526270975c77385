// Blit: draws textured, tinted rectangles onto a render target (a window's surface). The one
// render shader in the package: gpu.Surface draws every quad of a frame with it, one instance
// per quad, in the order given, alpha-blended over what is already there.
//
// Per-instance vertex attributes (gpu.Surface writes them, 48 bytes per quad):
//   @location(0) dst:   vec4<f32>  x0, y0, x1, y1 in normalised device coordinates
//   @location(1) uv:    vec4<f32>  u0, v0, u1, v1 texture coordinates of the same corners
//   @location(2) color: vec4<f32>  straight-alpha RGBA that multiplies the texel
// Bindings (one bind group per texture):
//   @binding(0) tex: texture_2d<f32>  RGBA8, premultiplied alpha (as Go's image.RGBA holds it)
//   @binding(1) smp: sampler           linear, clamp to edge

struct VertexOut {
    @builtin(position) pos: vec4<f32>,
    @location(0) uv: vec2<f32>,
    @location(1) color: vec4<f32>,
}

@group(0) @binding(0) var tex: texture_2d<f32>;
@group(0) @binding(1) var smp: sampler;

@vertex
fn vs_main(@builtin(vertex_index) vi: u32,
           @location(0) dst: vec4<f32>,
           @location(1) uv: vec4<f32>,
           @location(2) color: vec4<f32>) -> VertexOut {
    // Two triangles: corners (0,0) (1,0) (0,1) and (0,1) (1,0) (1,1).
    var cx = array<f32, 6>(0.0, 1.0, 0.0, 0.0, 1.0, 1.0);
    var cy = array<f32, 6>(0.0, 0.0, 1.0, 1.0, 0.0, 1.0);
    let c = vec2<f32>(cx[vi], cy[vi]);
    var out: VertexOut;
    out.pos = vec4<f32>(mix(dst.xy, dst.zw, c), 0.0, 1.0);
    out.uv = mix(uv.xy, uv.zw, c);
    out.color = color;
    return out;
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    // Premultiplied out (the pipeline blends with One, OneMinusSrcAlpha).
    let t = textureSample(tex, smp, in.uv);
    return vec4<f32>(t.rgb * in.color.rgb * in.color.a, t.a * in.color.a);
}
