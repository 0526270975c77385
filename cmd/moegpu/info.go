package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/moegpu/moegpu/gpu"
)

func runInfo(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("info", "info [--json] [--backend B]", stderr)
	asJSON := fs.Bool("json", false, "print JSON: {\"adapters\": [{name, backend, device_type, driver, features, limits}, …]}")
	backend := fs.String("backend", "auto", "only adapters of this backend: vulkan, metal, dx12, gl or auto (all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := gpu.ParseBackend(*backend)
	if err != nil {
		return err
	}
	ads, err := gpu.Adapters(b)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if ads == nil {
			ads = []gpu.AdapterInfo{}
		}
		return enc.Encode(struct {
			Adapters []gpu.AdapterInfo `json:"adapters"`
		}{ads})
	}
	if len(ads) == 0 {
		return fmt.Errorf("%w for backend %s (%s)", gpu.ErrNoAdapter, b, gpu.NoAdapterHint(b))
	}
	for _, a := range ads {
		l := a.Limits
		fmt.Fprintf(stdout, "adapter %d: %s\n", a.Index, a.Name)
		fmt.Fprintf(stdout, "  backend      %s\n", a.Backend)
		fmt.Fprintf(stdout, "  device type  %s\n", a.DeviceType)
		fmt.Fprintf(stdout, "  driver       %s\n", a.Driver)
		fmt.Fprintf(stdout, "  limits       storage binding %s, buffer %s, %d storage buffers/stage,\n",
			mib(l.MaxStorageBufferBindingSize), mib(l.MaxBufferSize), l.MaxStorageBuffersPerShaderStage)
		fmt.Fprintf(stdout, "               %d workgroups/dim, %d invocations/workgroup, %d KiB workgroup memory\n",
			l.MaxComputeWorkgroupsPerDimension, l.MaxComputeInvocationsPerWorkgroup, l.MaxComputeWorkgroupStorageSize/1024)
		fmt.Fprintf(stdout, "  features     %s\n\n", wrap(a.Features, 15, 100))
	}
	return nil
}

func mib(b uint64) string {
	if b >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	}
	return fmt.Sprintf("%d MiB", b>>20)
}

func wrap(words []string, indent, width int) string {
	var b strings.Builder
	col := indent
	for i, w := range words {
		if i > 0 {
			if col+len(w)+2 > width {
				b.WriteString(",\n" + strings.Repeat(" ", indent))
				col = indent
			} else {
				b.WriteString(", ")
				col += 2
			}
		}
		b.WriteString(w)
		col += len(w)
	}
	return b.String()
}
