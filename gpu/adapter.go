package gpu

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/cogentcore/webgpu/wgpu"
)

// Backend names a native graphics API that WebGPU runs on.
type Backend string

// The backends a user can ask for; Auto takes whatever is found first,
// preferring Vulkan, Metal and DX12 over OpenGL.
const (
	Auto   Backend = "auto"
	Vulkan Backend = "vulkan"
	Metal  Backend = "metal"
	DX12   Backend = "dx12"
	GL     Backend = "gl"
)

// ParseBackend accepts the names used on the command line.
func ParseBackend(s string) (Backend, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return Auto, nil
	case "vulkan", "vk":
		return Vulkan, nil
	case "metal", "mtl":
		return Metal, nil
	case "dx12", "d3d12":
		return DX12, nil
	case "gl", "gles", "opengl", "open-gl":
		return GL, nil
	}
	return "", fmt.Errorf("unknown backend %q (want vulkan, metal, dx12, gl or auto)", s)
}

func (b Backend) flags() wgpu.InstanceBackend {
	switch b {
	case Vulkan:
		return wgpu.InstanceBackendVulkan
	case Metal:
		return wgpu.InstanceBackendMetal
	case DX12:
		return wgpu.InstanceBackendDX12
	case GL:
		return wgpu.InstanceBackendGL
	}
	return wgpu.InstanceBackendPrimary | wgpu.InstanceBackendGL
}

func backendOf(t wgpu.BackendType) Backend {
	switch t {
	case wgpu.BackendTypeVulkan:
		return Vulkan
	case wgpu.BackendTypeMetal:
		return Metal
	case wgpu.BackendTypeD3D12:
		return DX12
	case wgpu.BackendTypeOpenGL, wgpu.BackendTypeOpenGLES:
		return GL
	}
	return Backend(strings.ToLower(t.String()))
}

// Limits are the adapter limits this runtime plans around.
type Limits struct {
	MaxStorageBufferBindingSize       uint64 `json:"max_storage_buffer_binding_size"`
	MaxBufferSize                     uint64 `json:"max_buffer_size"`
	MaxStorageBuffersPerShaderStage   uint32 `json:"max_storage_buffers_per_shader_stage"`
	MaxUniformBufferBindingSize       uint64 `json:"max_uniform_buffer_binding_size"`
	MaxComputeWorkgroupsPerDimension  uint32 `json:"max_compute_workgroups_per_dimension"`
	MaxComputeInvocationsPerWorkgroup uint32 `json:"max_compute_invocations_per_workgroup"`
	MaxComputeWorkgroupSizeX          uint32 `json:"max_compute_workgroup_size_x"`
	MaxComputeWorkgroupSizeY          uint32 `json:"max_compute_workgroup_size_y"`
	MaxComputeWorkgroupStorageSize    uint32 `json:"max_compute_workgroup_storage_size"`
	MinStorageBufferOffsetAlignment   uint32 `json:"min_storage_buffer_offset_alignment"`
	MinUniformBufferOffsetAlignment   uint32 `json:"min_uniform_buffer_offset_alignment"`
}

func limitsOf(l wgpu.Limits) Limits {
	return Limits{
		MaxStorageBufferBindingSize:       l.MaxStorageBufferBindingSize,
		MaxBufferSize:                     l.MaxBufferSize,
		MaxStorageBuffersPerShaderStage:   l.MaxStorageBuffersPerShaderStage,
		MaxUniformBufferBindingSize:       l.MaxUniformBufferBindingSize,
		MaxComputeWorkgroupsPerDimension:  l.MaxComputeWorkgroupsPerDimension,
		MaxComputeInvocationsPerWorkgroup: l.MaxComputeInvocationsPerWorkgroup,
		MaxComputeWorkgroupSizeX:          l.MaxComputeWorkgroupSizeX,
		MaxComputeWorkgroupSizeY:          l.MaxComputeWorkgroupSizeY,
		MaxComputeWorkgroupStorageSize:    l.MaxComputeWorkgroupStorageSize,
		MinStorageBufferOffsetAlignment:   l.MinStorageBufferOffsetAlignment,
		MinUniformBufferOffsetAlignment:   l.MinUniformBufferOffsetAlignment,
	}
}

// AdapterInfo describes one adapter as `moegpu info` reports it.
type AdapterInfo struct {
	Index      int      `json:"index"`
	Name       string   `json:"name"`
	Backend    Backend  `json:"backend"`
	DeviceType string   `json:"device_type"`
	Driver     string   `json:"driver"`
	Vendor     string   `json:"vendor"`
	Features   []string `json:"features"`
	Limits     Limits   `json:"limits"`
}

// HasFeature reports whether the adapter lists a feature by its WebGPU name
// (e.g. "shader-f16", "timestamp-query").
func (a AdapterInfo) HasFeature(name string) bool {
	for _, f := range a.Features {
		if f == name {
			return true
		}
	}
	return false
}

// Label is a short human name: "llvmpipe (LLVM 15.0.6, 256 bits) [vulkan]".
func (a AdapterInfo) Label() string { return fmt.Sprintf("%s [%s]", a.Name, a.Backend) }

func describe(i int, a *wgpu.Adapter) AdapterInfo {
	info := a.GetInfo()
	name := info.Name
	// Some drivers report only numeric ids as the name; the driver string
	// (e.g. "llvmpipe (LLVM 15.0.6, 256 bits)") is then the useful one.
	if name == "" || strings.HasPrefix(name, "0x") {
		name = info.DriverDescription
	}
	var feats []string
	for _, f := range a.EnumerateFeatures() {
		feats = append(feats, f.String())
	}
	sort.Strings(feats)
	return AdapterInfo{
		Index:      i,
		Name:       name,
		Backend:    backendOf(info.BackendType),
		DeviceType: info.AdapterType.String(),
		Driver:     info.DriverDescription,
		Vendor:     info.VendorName,
		Features:   feats,
		Limits:     limitsOf(a.GetLimits().Limits),
	}
}

// instance is process-wide: wgpu instances are heavy and adapters from
// different instances must not mix.
var (
	instOnce sync.Once
	inst     *wgpu.Instance
)

func enumerate(b Backend) ([]*wgpu.Adapter, error) {
	quietDriverLogs()
	instOnce.Do(func() {
		// The binding hands wgpu uninitialised memory when given a
		// descriptor, so the instance is always created with nil and
		// adapters are filtered at enumeration.
		inst = wgpu.CreateInstance(nil)
	})
	if inst == nil {
		return nil, fmt.Errorf("could not create a WebGPU instance")
	}
	all := inst.EnumerateAdapters(&wgpu.InstanceEnumerateAdapterOptons{Backends: b.flags()})
	// Keep a stable order: non-GL backends first, then GL.
	sort.SliceStable(all, func(i, j int) bool {
		return rank(all[i]) < rank(all[j])
	})
	return all, nil
}

func rank(a *wgpu.Adapter) int {
	if backendOf(a.GetInfo().BackendType) == GL {
		return 1
	}
	return 0
}

// Adapters lists every adapter the system offers on the given backend.
func Adapters(b Backend) ([]AdapterInfo, error) {
	all, err := enumerate(b)
	if err != nil {
		return nil, err
	}
	out := make([]AdapterInfo, len(all))
	for i, a := range all {
		out[i] = describe(i, a)
		a.Release()
	}
	return out, nil
}

// ErrNoAdapter is returned when no adapter matches the request.
var ErrNoAdapter = fmt.Errorf("no WebGPU adapter found")

// NoAdapterHint says what to do when backend b has no adapter: the platform a native backend
// exists on, or the Mesa packages that give a machine without a GPU a Vulkan or GL adapter.
func NoAdapterHint(b Backend) string {
	switch b {
	case Metal:
		return "Metal exists on macOS and iOS only; --backend auto picks what this machine has"
	case DX12:
		return "DX12 exists on Windows only; --backend auto picks what this machine has"
	case GL:
		return "on a machine without a GPU, install Mesa's llvmpipe: apt-get install libegl1 libegl-mesa0 libgles2 libgl1-mesa-dri"
	default:
		return "on a machine without a GPU, install Mesa's lavapipe: apt-get install mesa-vulkan-drivers libvulkan1"
	}
}

// pick chooses an adapter by backend and by "N" (index) or name substring.
func pick(b Backend, which string) (*wgpu.Adapter, AdapterInfo, error) {
	all, err := enumerate(b)
	if err != nil {
		return nil, AdapterInfo{}, err
	}
	if len(all) == 0 {
		return nil, AdapterInfo{}, fmt.Errorf("%w for backend %s (%s)", ErrNoAdapter, b, NoAdapterHint(b))
	}
	which = strings.TrimSpace(which)
	// keep releases every adapter but the chosen one.
	keep := func(n int) (*wgpu.Adapter, AdapterInfo, error) {
		for i, a := range all {
			if i != n {
				a.Release()
			}
		}
		return all[n], describe(n, all[n]), nil
	}
	if which == "" {
		return keep(0)
	}
	if n, err := strconv.Atoi(which); err == nil {
		if n < 0 || n >= len(all) {
			for _, a := range all {
				a.Release()
			}
			return nil, AdapterInfo{}, fmt.Errorf("adapter %d out of range: %d adapter(s) on backend %s", n, len(all), b)
		}
		return keep(n)
	}
	var names []string
	for i, a := range all {
		d := describe(i, a)
		if strings.Contains(strings.ToLower(d.Name), strings.ToLower(which)) {
			return keep(i)
		}
		names = append(names, d.Label())
	}
	for _, a := range all {
		a.Release()
	}
	return nil, AdapterInfo{}, fmt.Errorf("no adapter named %q; have: %s", which, strings.Join(names, ", "))
}
