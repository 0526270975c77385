package gpu

/*
#include "wgpu.h"

// moe_surface_texture is wgpuSurfaceGetCurrentTexture with its status kept (the binding drops
// it and hands back a null texture when a surface is outdated).
static WGPUTexture moe_surface_texture(WGPUSurface s, int *status, int *suboptimal) {
	WGPUSurfaceTexture st;
	st.texture = NULL;
	st.suboptimal = 0;
	st.status = WGPUSurfaceGetCurrentTextureStatus_Lost;
	wgpuSurfaceGetCurrentTexture(s, &st);
	*status = (int)st.status;
	*suboptimal = (int)st.suboptimal;
	return st.texture;
}
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"image"
	"math"
	"strconv"
	"strings"
	"unsafe"

	"github.com/cogentcore/webgpu/wgpu"

	"github.com/moegpu/moegpu/shaders"
)

// SurfaceTarget names the native window a Surface presents into. Fill the fields of one
// windowing system: a GLFW window gives them with glfw.GetX11Display and GetX11Window (or
// GetWaylandDisplay and GetWaylandWindow). The package takes raw handles rather than a GLFW
// window so that nothing linking gpu has to link GLFW and X11.
type SurfaceTarget struct {
	XlibDisplay    unsafe.Pointer // X11: the Display*
	XlibWindow     uint32         // X11: the Window id
	WaylandDisplay unsafe.Pointer // Wayland: the wl_display*
	WaylandSurface unsafe.Pointer // Wayland: the wl_surface*
}

func (t SurfaceTarget) descriptor() (*wgpu.SurfaceDescriptor, error) {
	switch {
	case t.XlibDisplay != nil && t.XlibWindow != 0:
		return &wgpu.SurfaceDescriptor{XlibWindow: &wgpu.SurfaceDescriptorFromXlibWindow{Display: t.XlibDisplay, Window: t.XlibWindow}}, nil
	case t.WaylandDisplay != nil && t.WaylandSurface != nil:
		return &wgpu.SurfaceDescriptor{WaylandSurface: &wgpu.SurfaceDescriptorFromWaylandSurface{Display: t.WaylandDisplay, Surface: t.WaylandSurface}}, nil
	}
	return nil, fmt.Errorf("surface: no window given (need an X11 display and window, or a Wayland display and surface)")
}

// Surface is a window's swap chain on a Device, with what it takes to draw rectangles of
// textures onto it (the blit shader). Use it from one goroutine, the one that owns the window.
type Surface struct {
	dev    *Device
	surf   *wgpu.Surface
	cfg    wgpu.SurfaceConfiguration
	format wgpu.TextureFormat

	pipeline *wgpu.RenderPipeline
	layout   *wgpu.BindGroupLayout
	playout  *wgpu.PipelineLayout
	module   *wgpu.ShaderModule
	sampler  *wgpu.Sampler
	white    *Texture
	inst     *wgpu.Buffer
	instCap  int // quads the instance buffer holds
}

// OpenSurface creates a surface for a window and opens a device on the first adapter that can
// present to it, among those of opt.Backend (and, when opt.Adapter is set, of that index or
// name). Not every adapter can: here the GL adapter cannot present to an X11 window that was
// not made for EGL, so Auto picks Vulkan. width and height are the framebuffer's size in
// pixels.
func OpenSurface(target SurfaceTarget, opt Options, width, height int) (*Device, *Surface, error) {
	desc, err := target.descriptor()
	if err != nil {
		return nil, nil, err
	}
	if opt.Backend == "" {
		opt.Backend = Auto
	}
	all, err := enumerate(opt.Backend)
	if err != nil {
		return nil, nil, err
	}
	surf := inst.CreateSurface(desc)
	if surf == nil || (*surfaceHandle)(unsafe.Pointer(surf)).ref == nil {
		for _, a := range all {
			a.Release()
		}
		return nil, nil, fmt.Errorf("surface: wgpu could not create a surface for the window")
	}
	chosen := -1
	var tried []string
	which := strings.TrimSpace(opt.Adapter)
	for i, a := range all {
		d := describe(i, a)
		if which != "" {
			if n, err := strconv.Atoi(which); err == nil && n != i {
				continue
			} else if err != nil && !strings.Contains(strings.ToLower(d.Name), strings.ToLower(which)) {
				continue
			}
		}
		if len(surf.GetCapabilities(a).Formats) > 0 {
			chosen = i
			break
		}
		tried = append(tried, d.Label())
	}
	for i, a := range all {
		if i != chosen {
			a.Release()
		}
	}
	if chosen < 0 {
		surf.Release()
		if len(tried) == 0 {
			return nil, nil, fmt.Errorf("surface: %w for backend %s adapter %q", ErrNoAdapter, opt.Backend, opt.Adapter)
		}
		return nil, nil, fmt.Errorf("surface: no adapter can present to this window (tried %s)", strings.Join(tried, ", "))
	}
	a := all[chosen]
	caps := surf.GetCapabilities(a)
	dev, err := openAdapter(a, describe(chosen, a))
	if err != nil {
		surf.Release()
		return nil, nil, err
	}
	s := &Surface{dev: dev, surf: surf, format: pickFormat(caps.Formats)}
	s.cfg = wgpu.SurfaceConfiguration{
		Usage:       wgpu.TextureUsageRenderAttachment,
		Format:      s.format,
		PresentMode: wgpu.PresentModeFifo,
		AlphaMode:   caps.AlphaModes[0],
	}
	if err := s.build(); err != nil {
		s.Release()
		dev.Close()
		return nil, nil, err
	}
	if err := s.Resize(width, height); err != nil {
		s.Release()
		dev.Close()
		return nil, nil, err
	}
	return dev, s, nil
}

// surfaceHandle and textureHandle mirror the binding's handle structs (the device the object
// belongs to, then the C pointer), as requestDevice does for devices.
type surfaceHandle struct {
	dev C.WGPUDevice
	ref C.WGPUSurface
}

type textureHandle struct {
	dev C.WGPUDevice
	ref C.WGPUTexture
}

// pickFormat prefers a plain 8-bit format, so the colours the app computes (text antialiasing
// included) reach the screen unchanged rather than through an sRGB encode.
func pickFormat(fs []wgpu.TextureFormat) wgpu.TextureFormat {
	for _, f := range fs {
		if f == wgpu.TextureFormatBGRA8Unorm || f == wgpu.TextureFormatRGBA8Unorm {
			return f
		}
	}
	return fs[0]
}

// build creates the blit pipeline, its sampler and the white texture solid quads sample.
func (s *Surface) build() error {
	d := s.dev.dev
	var err error
	s.module, err = d.CreateShaderModule(&wgpu.ShaderModuleDescriptor{
		Label:          "blit",
		WGSLDescriptor: &wgpu.ShaderModuleWGSLDescriptor{Code: shaders.MustSource("blit")},
	})
	if err != nil {
		return fmt.Errorf("surface: blit shader: %w", err)
	}
	s.layout, err = d.CreateBindGroupLayout(&wgpu.BindGroupLayoutDescriptor{Label: "blit", Entries: []wgpu.BindGroupLayoutEntry{
		{Binding: 0, Visibility: wgpu.ShaderStageFragment, Texture: wgpu.TextureBindingLayout{SampleType: wgpu.TextureSampleTypeFloat, ViewDimension: wgpu.TextureViewDimension2D}},
		{Binding: 1, Visibility: wgpu.ShaderStageFragment, Sampler: wgpu.SamplerBindingLayout{Type: wgpu.SamplerBindingTypeFiltering}},
	}})
	if err != nil {
		return fmt.Errorf("surface: blit layout: %w", err)
	}
	s.playout, err = d.CreatePipelineLayout(&wgpu.PipelineLayoutDescriptor{Label: "blit", BindGroupLayouts: []*wgpu.BindGroupLayout{s.layout}})
	if err != nil {
		return fmt.Errorf("surface: blit pipeline layout: %w", err)
	}
	attr := func(loc uint32) wgpu.VertexAttribute {
		return wgpu.VertexAttribute{Format: wgpu.VertexFormatFloat32x4, Offset: uint64(16 * loc), ShaderLocation: loc}
	}
	blend := wgpu.BlendState{
		Color: wgpu.BlendComponent{Operation: wgpu.BlendOperationAdd, SrcFactor: wgpu.BlendFactorOne, DstFactor: wgpu.BlendFactorOneMinusSrcAlpha},
		Alpha: wgpu.BlendComponent{Operation: wgpu.BlendOperationAdd, SrcFactor: wgpu.BlendFactorOne, DstFactor: wgpu.BlendFactorOneMinusSrcAlpha},
	}
	s.pipeline, err = d.CreateRenderPipeline(&wgpu.RenderPipelineDescriptor{
		Label:  "blit",
		Layout: s.playout,
		Vertex: wgpu.VertexState{Module: s.module, EntryPoint: "vs_main", Buffers: []wgpu.VertexBufferLayout{{
			ArrayStride: quadBytes,
			StepMode:    wgpu.VertexStepModeInstance,
			Attributes:  []wgpu.VertexAttribute{attr(0), attr(1), attr(2)},
		}}},
		Primitive:   wgpu.PrimitiveState{Topology: wgpu.PrimitiveTopologyTriangleList, FrontFace: wgpu.FrontFaceCCW, CullMode: wgpu.CullModeNone},
		Multisample: wgpu.MultisampleState{Count: 1, Mask: 0xFFFFFFFF},
		Fragment: &wgpu.FragmentState{Module: s.module, EntryPoint: "fs_main", Targets: []wgpu.ColorTargetState{{
			Format: s.format, Blend: &blend, WriteMask: wgpu.ColorWriteMaskAll,
		}}},
	})
	if err != nil {
		return fmt.Errorf("surface: blit pipeline: %w", err)
	}
	s.sampler, err = d.CreateSampler(&wgpu.SamplerDescriptor{
		Label:        "blit",
		AddressModeU: wgpu.AddressModeClampToEdge, AddressModeV: wgpu.AddressModeClampToEdge, AddressModeW: wgpu.AddressModeClampToEdge,
		MagFilter: wgpu.FilterModeLinear, MinFilter: wgpu.FilterModeLinear, MipmapFilter: wgpu.MipmapFilterModeNearest,
		LodMaxClamp: 32, MaxAnisotropy: 1,
	})
	if err != nil {
		return fmt.Errorf("surface: sampler: %w", err)
	}
	white := image.NewRGBA(image.Rect(0, 0, 1, 1))
	copy(white.Pix, []byte{255, 255, 255, 255})
	s.white, err = s.NewTexture("white", white)
	return err
}

// Device is the device the surface draws with.
func (s *Surface) Device() *Device { return s.dev }

// Format names the surface's pixel format (e.g. "bgra8unorm").
func (s *Surface) Format() string { return s.format.String() }

// Size is the surface's size in pixels.
func (s *Surface) Size() (int, int) { return int(s.cfg.Width), int(s.cfg.Height) }

// Resize reconfigures the swap chain for a framebuffer of width × height pixels (call it when
// the window's framebuffer size changes). A zero size (a minimised window) is kept for later.
func (s *Surface) Resize(width, height int) error {
	if width <= 0 || height <= 0 {
		return nil
	}
	lim := int(s.dev.adapter.GetLimits().Limits.MaxTextureDimension2D)
	if lim > 0 && (width > lim || height > lim) {
		return fmt.Errorf("surface: %d×%d pixels is beyond the adapter's %d-pixel texture limit", width, height, lim)
	}
	s.cfg.Width, s.cfg.Height = uint32(width), uint32(height)
	s.surf.Configure(s.dev.adapter, s.dev.dev, &s.cfg)
	return s.dev.err()
}

// Release frees the surface and its drawing state (not the device).
func (s *Surface) Release() {
	if s == nil {
		return
	}
	if s.white != nil {
		s.white.Release()
	}
	if s.inst != nil {
		s.inst.Release()
	}
	if s.sampler != nil {
		s.sampler.Release()
	}
	if s.pipeline != nil {
		s.pipeline.Release()
	}
	if s.playout != nil {
		s.playout.Release()
	}
	if s.layout != nil {
		s.layout.Release()
	}
	if s.module != nil {
		s.module.Release()
	}
	if s.surf != nil {
		s.surf.Release()
	}
	*s = Surface{}
}

// Texture is an RGBA image on the GPU that a Surface can draw: 8 bits a channel, alpha
// premultiplied, as Go's image.RGBA holds it.
type Texture struct {
	W, H int

	tex  *wgpu.Texture
	view *wgpu.TextureView
	bind *wgpu.BindGroup
	q    *wgpu.Queue
}

// NewTexture uploads img as a texture the surface can draw.
func (s *Surface) NewTexture(label string, img *image.RGBA) (*Texture, error) {
	b := img.Bounds()
	if b.Empty() {
		return nil, fmt.Errorf("texture %s: empty image", label)
	}
	lim := int(s.dev.adapter.GetLimits().Limits.MaxTextureDimension2D)
	if lim > 0 && (b.Dx() > lim || b.Dy() > lim) {
		return nil, fmt.Errorf("texture %s: %d×%d pixels is beyond the adapter's %d-pixel limit: %w", label, b.Dx(), b.Dy(), lim, ErrUnsupported)
	}
	d := s.dev.dev
	tex, err := d.CreateTexture(&wgpu.TextureDescriptor{
		Label:         label,
		Usage:         wgpu.TextureUsageTextureBinding | wgpu.TextureUsageCopyDst,
		Dimension:     wgpu.TextureDimension2D,
		Size:          wgpu.Extent3D{Width: uint32(b.Dx()), Height: uint32(b.Dy()), DepthOrArrayLayers: 1},
		Format:        wgpu.TextureFormatRGBA8Unorm,
		MipLevelCount: 1,
		SampleCount:   1,
	})
	if err != nil {
		return nil, fmt.Errorf("texture %s: %w", label, err)
	}
	t := &Texture{W: b.Dx(), H: b.Dy(), tex: tex, q: s.dev.queue}
	if t.view, err = tex.CreateView(nil); err != nil {
		t.Release()
		return nil, fmt.Errorf("texture %s: view: %w", label, err)
	}
	t.bind, err = d.CreateBindGroup(&wgpu.BindGroupDescriptor{Label: label, Layout: s.layout, Entries: []wgpu.BindGroupEntry{
		{Binding: 0, TextureView: t.view},
		{Binding: 1, Sampler: s.sampler},
	}})
	if err != nil {
		t.Release()
		return nil, fmt.Errorf("texture %s: bind group: %w", label, err)
	}
	if err := t.Write(img); err != nil {
		t.Release()
		return nil, fmt.Errorf("texture %s: %w", label, err)
	}
	return t, nil
}

// Write replaces the texture's pixels with img, which must have the texture's size.
func (t *Texture) Write(img *image.RGBA) error {
	b := img.Bounds()
	if b.Dx() != t.W || b.Dy() != t.H {
		return fmt.Errorf("write texture: image is %d×%d, texture %d×%d", b.Dx(), b.Dy(), t.W, t.H)
	}
	pix := img.Pix[img.PixOffset(b.Min.X, b.Min.Y):]
	need := (t.H-1)*img.Stride + 4*t.W
	return t.q.WriteTexture(t.tex.AsImageCopy(), pix[:need],
		&wgpu.TextureDataLayout{BytesPerRow: uint32(img.Stride), RowsPerImage: uint32(t.H)},
		&wgpu.Extent3D{Width: uint32(t.W), Height: uint32(t.H), DepthOrArrayLayers: 1})
}

// Release frees the texture.
func (t *Texture) Release() {
	if t == nil {
		return
	}
	if t.bind != nil {
		t.bind.Release()
	}
	if t.view != nil {
		t.view.Release()
	}
	if t.tex != nil {
		t.tex.Release()
	}
	*t = Texture{}
}

// Quad is one rectangle of a frame: a texture (or, with Tex nil, a solid colour) drawn into a
// pixel rectangle of the surface, alpha-blended over what is drawn before it.
type Quad struct {
	Tex *Texture // nil: the solid Color
	// Dst is where it goes, in surface pixels (x0, y0, x1, y1; y down).
	Dst [4]float32
	// Src is the part of the texture shown, in its pixels (x0, y0, x1, y1); all zero: the
	// whole texture.
	Src [4]float32
	// Color multiplies each texel: straight-alpha RGBA in [0, 1]. For a texture drawn as it is,
	// use White.
	Color [4]float32
	// Clip limits the quad to a pixel rectangle of the surface; empty: no limit.
	Clip image.Rectangle
}

// White is the Color that draws a texture unchanged.
var White = [4]float32{1, 1, 1, 1}

// quadBytes is one quad's instance data: dst, uv and color, four f32 each.
const quadBytes = 48

// Draw renders one frame: it clears the surface to clear (RGBA in [0, 1]), draws the quads in
// order and presents. A surface that went out of date (a resize the window system did) is
// reconfigured and the frame is skipped; the caller draws again.
func (s *Surface) Draw(clear [4]float32, quads []Quad) error {
	if s.cfg.Width == 0 {
		return nil
	}
	var status, subopt C.int
	sref := (*surfaceHandle)(unsafe.Pointer(s.surf)).ref
	tref := C.moe_surface_texture(sref, &status, &subopt)
	switch status {
	case C.WGPUSurfaceGetCurrentTextureStatus_Success:
	case C.WGPUSurfaceGetCurrentTextureStatus_Timeout, C.WGPUSurfaceGetCurrentTextureStatus_Outdated, C.WGPUSurfaceGetCurrentTextureStatus_Lost:
		if tref != nil {
			C.wgpuTextureRelease(tref)
		}
		s.surf.Configure(s.dev.adapter, s.dev.dev, &s.cfg)
		return nil
	default:
		if tref != nil {
			C.wgpuTextureRelease(tref)
		}
		return fmt.Errorf("surface: next frame: status %d (out of memory or device lost)", int(status))
	}
	if tref == nil {
		return fmt.Errorf("surface: next frame: no texture")
	}
	th := &textureHandle{dev: (*surfaceHandle)(unsafe.Pointer(s.surf)).dev, ref: tref}
	frame := (*wgpu.Texture)(unsafe.Pointer(th))
	// The frame belongs to the surface: this wgpu-native takes no reference for the caller, and
	// releasing it corrupts the heap (seen: malloc_consolidate aborts, a crash in the next
	// WriteBuffer). Only the view is released.
	view, err := frame.CreateView(nil)
	if err != nil {
		return fmt.Errorf("surface: frame view: %w", err)
	}
	defer view.Release()

	if err := s.writeQuads(quads); err != nil {
		return err
	}
	enc, err := s.dev.dev.CreateCommandEncoder(&wgpu.CommandEncoderDescriptor{Label: "frame"})
	if err != nil {
		return fmt.Errorf("surface: encoder: %w", err)
	}
	defer enc.Release()
	rp := enc.BeginRenderPass(&wgpu.RenderPassDescriptor{ColorAttachments: []wgpu.RenderPassColorAttachment{{
		View: view, LoadOp: wgpu.LoadOpClear, StoreOp: wgpu.StoreOpStore,
		ClearValue: wgpu.Color{R: float64(clear[0]), G: float64(clear[1]), B: float64(clear[2]), A: float64(clear[3])},
	}}})
	if len(quads) > 0 {
		rp.SetPipeline(s.pipeline)
		rp.SetVertexBuffer(0, s.inst, 0, uint64(len(quads)*quadBytes))
		full := image.Rect(0, 0, int(s.cfg.Width), int(s.cfg.Height))
		for i := 0; i < len(quads); {
			j := i + 1
			for j < len(quads) && quads[j].Tex == quads[i].Tex && quads[j].Clip == quads[i].Clip {
				j++
			}
			clip := full
			if !quads[i].Clip.Empty() {
				clip = quads[i].Clip.Intersect(full)
			}
			if !clip.Empty() {
				t := quads[i].Tex
				if t == nil {
					t = s.white
				}
				rp.SetBindGroup(0, t.bind, nil)
				rp.SetScissorRect(uint32(clip.Min.X), uint32(clip.Min.Y), uint32(clip.Dx()), uint32(clip.Dy()))
				rp.Draw(6, uint32(j-i), 0, uint32(i))
			}
			i = j
		}
	}
	if err := rp.End(); err != nil {
		rp.Release()
		return fmt.Errorf("surface: render pass: %w", err)
	}
	rp.Release()
	cb, err := enc.Finish(nil)
	if err != nil {
		return fmt.Errorf("surface: finish: %w", err)
	}
	defer cb.Release()
	s.dev.queue.Submit(cb)
	s.surf.Present()
	return s.dev.err()
}

// writeQuads converts the quads to instance data (normalised device coordinates and texture
// coordinates) and uploads it, growing the instance buffer when needed.
func (s *Surface) writeQuads(quads []Quad) error {
	if len(quads) == 0 {
		return nil
	}
	if len(quads) > s.instCap {
		if s.inst != nil {
			s.inst.Release()
			s.inst = nil
		}
		n := max(256, 2*len(quads))
		buf, err := s.dev.dev.CreateBuffer(&wgpu.BufferDescriptor{Label: "quads", Usage: wgpu.BufferUsageVertex | wgpu.BufferUsageCopyDst, Size: uint64(n * quadBytes)})
		if err != nil {
			s.instCap = 0
			return fmt.Errorf("surface: quad buffer: %w", err)
		}
		s.inst, s.instCap = buf, n
	}
	w, h := float32(s.cfg.Width), float32(s.cfg.Height)
	data := make([]byte, len(quads)*quadBytes)
	for i, q := range quads {
		src := q.Src
		tw, th := float32(1), float32(1)
		if q.Tex != nil {
			tw, th = float32(q.Tex.W), float32(q.Tex.H)
		}
		if src == [4]float32{} {
			src = [4]float32{0, 0, tw, th}
		}
		v := [12]float32{
			2*q.Dst[0]/w - 1, 1 - 2*q.Dst[1]/h, 2*q.Dst[2]/w - 1, 1 - 2*q.Dst[3]/h,
			src[0] / tw, src[1] / th, src[2] / tw, src[3] / th,
			q.Color[0], q.Color[1], q.Color[2], q.Color[3],
		}
		if q.Tex == nil { // the white texel's centre
			v[4], v[5], v[6], v[7] = 0.5, 0.5, 0.5, 0.5
		}
		for k, f := range v {
			binary.LittleEndian.PutUint32(data[i*quadBytes+4*k:], math.Float32bits(f))
		}
	}
	return s.dev.queue.WriteBuffer(s.inst, 0, data)
}
