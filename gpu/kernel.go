package gpu

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"runtime"
	"sort"
	"strings"

	"github.com/cogentcore/webgpu/wgpu"
)

// Access says how a kernel uses one storage binding.
type Access int

// Storage binding kinds.
const (
	Read      Access = iota // var<storage, read>
	ReadWrite               // var<storage, read_write>
	// Uniform binds a window of at most maxUniformBufferBindingSize bytes
	// as var<uniform>. CPU drivers load workgroup-uniform addresses from
	// uniform buffers once and broadcast them, where storage loads go lane
	// by lane; WebGPU forbids binding the same buffer as uniform and as
	// writable storage in one dispatch.
	Uniform
)

// KernelSpec describes one compute entry point. Storage bindings are
// @group(0) @binding(0…len(Bindings)-1) in order; when Params is true a
// uniform block follows at @binding(len(Bindings)).
//
// Constants replace the defaults of `override NAME: T = default;`
// declarations in the source. The binding cannot pass pipeline constants,
// and the GL backend does not take overrides, so the specialisation is done
// on the source text; each distinct set of constants is its own pipeline.
type KernelSpec struct {
	Name      string // for errors and profiles, e.g. "matmul_nn_v3"
	Source    string
	Entry     string
	Bindings  []Access
	Params    bool
	Constants map[string]string
	// NeedsF16 marks kernels that use native f16 arithmetic (shader-f16).
	// f16 *storage* needs no feature: kernels read packed halves as u32
	// through unpack2x16float, which every backend has.
	NeedsF16 bool
}

// Kernel is a compiled pipeline with its bind group layout. A kernel asked
// for inside Device.CompileInBackground may still be compiling: its layouts
// exist (dispatches can be recorded), and Wait blocks until the pipeline
// does.
type Kernel struct {
	Spec     KernelSpec
	pipeline *wgpu.ComputePipeline
	layout   *wgpu.BindGroupLayout
	playout  *wgpu.PipelineLayout
	module   *wgpu.ShaderModule
	// ready is closed once pipeline and module are set or err is; nil for a
	// kernel compiled in the foreground.
	ready chan struct{}
	err   error
}

// Wait blocks until the kernel's pipeline is compiled and returns the
// compile error, if any.
func (k *Kernel) Wait() error {
	if k.ready != nil {
		<-k.ready
	}
	return k.err
}

func (k *Kernel) release() {
	k.Wait()
	if k.pipeline != nil {
		k.pipeline.Release()
	}
	k.playout.Release()
	k.layout.Release()
	if k.module != nil {
		k.module.Release()
	}
}

var readOnlyStorage = regexp.MustCompile(`var<\s*storage\s*,\s*read\s*>`)

var overrideRe = regexp.MustCompile(`override\s+([A-Za-z_][A-Za-z0-9_]*)\s*(:\s*[A-Za-z0-9_]+)?\s*=\s*([^;]+);`)

// Specialise rewrites `override` declarations into constants with the
// given values (or their defaults), so one WGSL source serves many tile
// sizes on every backend.
func Specialise(src string, constants map[string]string) (string, error) {
	used := map[string]bool{}
	out := overrideRe.ReplaceAllStringFunc(src, func(m string) string {
		g := overrideRe.FindStringSubmatch(m)
		name, typ, val := g[1], g[2], g[3]
		if v, ok := constants[name]; ok {
			val = v
			used[name] = true
		}
		return "const " + name + typ + " = " + strings.TrimSpace(val) + ";"
	})
	for name := range constants {
		if !used[name] {
			return "", fmt.Errorf("constant %s is not an override in the shader", name)
		}
	}
	return out, nil
}

func (s KernelSpec) key() string {
	h := sha256.New()
	h.Write([]byte(s.Source))
	names := make([]string, 0, len(s.Constants))
	for n := range s.Constants {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(s.Name + "|" + s.Entry + "|" + hex.EncodeToString(h.Sum(nil))[:16])
	for _, n := range names {
		b.WriteString("|" + n + "=" + s.Constants[n])
	}
	fmt.Fprintf(&b, "|%v|%v", s.Bindings, s.Params)
	return b.String()
}

// Kernel returns the compiled pipeline for spec, compiling it on first use.
// Compile errors name the kernel and carry the driver's message. Inside
// CompileInBackground a new kernel is returned while its pipeline compiles
// on another thread, and its compile error comes later (Kernel.Wait,
// Recorder.Ready, Recorder.Submit).
func (d *Device) Kernel(spec KernelSpec) (*Kernel, error) {
	key := spec.key()
	d.mu.Lock()
	k, ok := d.pipelines[key]
	d.mu.Unlock()
	if ok {
		if d.background.Load() > 0 {
			return k, nil
		}
		return k, k.Wait() // it may be compiling in the background
	}
	if spec.NeedsF16 && !d.f16 {
		return nil, fmt.Errorf("kernel %s needs shader-f16, which %s lacks: %w", spec.Name, d.Info.Label(), ErrUnsupported)
	}
	nStorage := 0
	for _, a := range spec.Bindings {
		if a != Uniform {
			nStorage++
		}
	}
	if n := uint32(nStorage); n > d.Limits.MaxStorageBuffersPerShaderStage {
		return nil, fmt.Errorf("kernel %s uses %d storage buffers; %s allows %d per stage: %w",
			spec.Name, n, d.Info.Label(), d.Limits.MaxStorageBuffersPerShaderStage, ErrUnsupported)
	}
	src, err := prepareSource(spec.Source, spec.Constants)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", spec.Name, err)
	}
	if d.background.Load() > 0 {
		return d.compileInBackground(key, spec, src)
	}
	k, err = d.compile(spec, src)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	if old, ok := d.pipelines[key]; ok { // compiled meanwhile by another goroutine
		d.mu.Unlock()
		k.release()
		return old, old.Wait()
	}
	d.pipelines[key] = k
	d.mu.Unlock()
	return k, nil
}

// CompileInBackground runs record (which records dispatches) with the
// kernels it asks for compiled on other threads, at most GOMAXPROCS at a
// time, while it goes on: a new kernel's layouts are made at once, so its
// dispatches can be recorded, and its shader module and pipeline, most of
// a kernel's cost, are made in the background. On lavapipe on a 2-core
// host the 25 kernels of an OCR decoder took about 0.2 s to compile one
// after another. A submission waits for the kernels it dispatches
// (Kernel.Wait); Recorder.Ready waits for a recording's and returns the
// first compile error. Other goroutines asking for kernels meanwhile get
// them compiled in the background too. It returns record's error.
func (d *Device) CompileInBackground(record func() error) error {
	d.background.Add(1)
	defer d.background.Add(-1)
	return record()
}

// compileInBackground makes spec's layouts, caches the kernel under key and
// compiles its pipeline on another goroutine. A kernel that fails to
// compile leaves the cache, so asking for it again reports the error.
func (d *Device) compileInBackground(key string, spec KernelSpec, src string) (*Kernel, error) {
	bgl, pl, err := d.layouts(spec)
	if err != nil {
		return nil, err
	}
	k := &Kernel{Spec: spec, layout: bgl, playout: pl, ready: make(chan struct{})}
	d.mu.Lock()
	if old, ok := d.pipelines[key]; ok {
		d.mu.Unlock()
		pl.Release()
		bgl.Release()
		return old, nil
	}
	d.pipelines[key] = k
	d.mu.Unlock()
	d.compiling.Add(1)
	go func() {
		defer d.compiling.Done()
		compileSlots <- struct{}{}
		k.module, k.pipeline, k.err = d.pipeline(spec, src, pl)
		<-compileSlots
		if k.err != nil {
			d.mu.Lock()
			delete(d.pipelines, key)
			d.failed = append(d.failed, k) // its layouts go with the device
			d.mu.Unlock()
		}
		close(k.ready)
	}()
	return k, nil
}

// compileSlots bounds the pipelines compiled at once in the background.
var compileSlots = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))

func (d *Device) compile(spec KernelSpec, src string) (*Kernel, error) {
	bgl, pl, err := d.layouts(spec)
	if err != nil {
		return nil, err
	}
	mod, p, err := d.pipeline(spec, src, pl)
	if err != nil {
		pl.Release()
		bgl.Release()
		return nil, err
	}
	return &Kernel{Spec: spec, pipeline: p, layout: bgl, playout: pl, module: mod}, nil
}

// layouts makes spec's bind group layout and pipeline layout.
func (d *Device) layouts(spec KernelSpec) (*wgpu.BindGroupLayout, *wgpu.PipelineLayout, error) {
	var entries []wgpu.BindGroupLayoutEntry
	// Every storage binding is declared read-write in the layout, even where
	// the shader only reads it: WebGPU tracks usage per buffer, not per
	// range, and forbids one dispatch from reading a buffer through a
	// read-only binding while writing it through another. Activations live
	// in one arena buffer, so a kernel reading one tensor and writing
	// another would otherwise be rejected. Writable-storage usage may repeat
	// within a dispatch; the Access list still drives our own overlap check.
	for i, a := range spec.Bindings {
		t := wgpu.BufferBindingTypeStorage
		if a == Uniform {
			t = wgpu.BufferBindingTypeUniform
		}
		entries = append(entries, wgpu.BindGroupLayoutEntry{
			Binding:    uint32(i),
			Visibility: wgpu.ShaderStageCompute,
			Buffer:     wgpu.BufferBindingLayout{Type: t},
		})
	}
	if spec.Params {
		entries = append(entries, wgpu.BindGroupLayoutEntry{
			Binding:    uint32(len(spec.Bindings)),
			Visibility: wgpu.ShaderStageCompute,
			Buffer:     wgpu.BufferBindingLayout{Type: wgpu.BufferBindingTypeUniform},
		})
	}
	bgl, err := d.dev.CreateBindGroupLayout(&wgpu.BindGroupLayoutDescriptor{Label: spec.Name, Entries: entries})
	if err != nil {
		return nil, nil, fmt.Errorf("kernel %s: bind group layout: %w", spec.Name, err)
	}
	pl, err := d.dev.CreatePipelineLayout(&wgpu.PipelineLayoutDescriptor{Label: spec.Name, BindGroupLayouts: []*wgpu.BindGroupLayout{bgl}})
	if err != nil {
		bgl.Release()
		return nil, nil, fmt.Errorf("kernel %s: pipeline layout: %w", spec.Name, err)
	}
	return bgl, pl, nil
}

// pipeline compiles src (spec's source, prepared) into a shader module and
// a compute pipeline with layout pl.
func (d *Device) pipeline(spec KernelSpec, src string, pl *wgpu.PipelineLayout) (*wgpu.ShaderModule, *wgpu.ComputePipeline, error) {
	mod, err := d.dev.CreateShaderModule(&wgpu.ShaderModuleDescriptor{
		Label:          spec.Name,
		WGSLDescriptor: &wgpu.ShaderModuleWGSLDescriptor{Code: src},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("kernel %s: compile: %w", spec.Name, err)
	}
	p, err := d.dev.CreateComputePipeline(&wgpu.ComputePipelineDescriptor{
		Label:   spec.Name,
		Layout:  pl,
		Compute: wgpu.ProgrammableStageDescriptor{Module: mod, EntryPoint: spec.Entry},
	})
	if err != nil {
		mod.Release()
		return nil, nil, fmt.Errorf("kernel %s: pipeline: %w", spec.Name, err)
	}
	return mod, p, nil
}

// CachedKernels is the number of compiled pipelines held by the device.
func (d *Device) CachedKernels() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.pipelines)
}

// CheckShader compiles a WGSL source (after specialising its overrides to
// their defaults) without building a pipeline: a syntax or type error in
// any entry point is reported, naming the source.
func (d *Device) CheckShader(name, source string) error {
	src, err := prepareSource(source, nil)
	if err != nil {
		return fmt.Errorf("shader %s: %w", name, err)
	}
	mod, err := d.dev.CreateShaderModule(&wgpu.ShaderModuleDescriptor{
		Label:          name,
		WGSLDescriptor: &wgpu.ShaderModuleWGSLDescriptor{Code: src},
	})
	if err != nil {
		return fmt.Errorf("shader %s: %w", name, err)
	}
	mod.Release()
	return nil
}

// prepareSource is the text the driver compiles: overrides specialised,
// and read-only storage declared read-write, because layouts declare every
// storage binding read-write (see compile) and wgpu wants the shader's
// access mode to match the layout exactly.
func prepareSource(source string, constants map[string]string) (string, error) {
	src, err := Specialise(source, constants)
	if err != nil {
		return "", err
	}
	return readOnlyStorage.ReplaceAllString(src, "var<storage, read_write>"), nil
}
