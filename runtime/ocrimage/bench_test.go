package ocrimage

import (
	"image"
	"image/color"
	"strings"
	"syscall"
	"testing"
)

// benchImages are the two shapes the package is sized for, as a decoder hands them over
// (RGBA): one 1000×60 line, and a 1200×800 screenshot paragraph of 26 lines.
func benchImages(b *testing.B) map[string]image.Image {
	line := textPage(b, []string{"Invoice 2024-117: 3 × widgets at $12.50, shipped via parcel post to the address on file."}, 36, 0, 10, 8, 1000, 60)
	var text []string
	for i := range 26 {
		text = append(text, strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit. "[i%7:], 2)[:90])
	}
	para := textPage(b, text, 20, 29, 30, 20, 1200, 800)
	out := map[string]image.Image{}
	for name, g := range map[string]*image.Gray{"line 1000×60": line.img, "paragraph 1200×800": para.img} {
		rgba := tinted(g, color.RGBA{250, 248, 240, 255}, color.RGBA{20, 20, 30, 255})
		out[name] = rgba
	}
	return out
}

// cpuTime is the CPU time (user + system, all threads) this process has used, in ns: on a
// shared machine it tells what a step costs apart from the time spent waiting for a core.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkPrepare times the whole chain (Gray, Normalize, SplitLines, LineStrips) at the
// model's default 32 × 256, and each step alone for the paragraph.
func BenchmarkPrepare(b *testing.B) {
	imgs := benchImages(b)
	for _, name := range []string{"line 1000×60", "paragraph 1200×800"} {
		img := imgs[name]
		b.Run(name, func(b *testing.B) {
			lines, err := Prepare(img, 0, 0)
			if err != nil || len(lines) == 0 {
				b.Fatalf("%d lines, %v", len(lines), err)
			}
			segs := 0
			for _, l := range lines {
				segs += len(l.Segments)
			}
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				if _, err := Prepare(img, 0, 0); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(len(lines)), "lines")
			b.ReportMetric(float64(segs), "segments")
		})
	}
	// A plain loop to scale the numbers above by: on an idle modern core it takes well under
	// a millisecond; on a shared, loaded one, several.
	b.Run("baseline: sum of 1 Mi float32", func(b *testing.B) {
		v := make([]float32, 1<<20)
		for i := range v {
			v[i] = float32(i % 7)
		}
		var s float32
		for b.Loop() {
			for _, x := range v {
				s += x
			}
		}
		if s < 0 {
			b.Fatal("negative sum")
		}
	})
	img := imgs["paragraph 1200×800"]
	g := Gray(img)
	k := Normalize(g)
	boxes := SplitLines(k)
	steps := []struct {
		name string
		f    func()
	}{
		{"step Gray", func() { Gray(img) }},
		{"step Normalize", func() { Normalize(g) }},
		{"step SplitLines", func() { SplitLines(k) }},
		{"step LineStrips", func() {
			for _, box := range boxes {
				LineStrips(k, box, 0, 0)
			}
		}},
	}
	for _, s := range steps {
		b.Run("paragraph 1200×800/"+s.name, func(b *testing.B) {
			cpu := cpuTime()
			for b.Loop() {
				s.f()
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}
