//go:build ignore

// Command ocrsamples renders the sample images that ship in assets/samples (each with its text
// in NAME.gt.txt): a screenshot paragraph, a noisy scanned line and a receipt line, all in font
// families held out of the OCR model's training. Run from the repository root:
//
//	go run scripts/ocrsamples.go
package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"log"
	"math/rand/v2"
	"os"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"

	"github.com/moegpu/moegpu/runtime/ocrdata"
)

func face(faces []*ocrdata.Face, family, style string) *ocrdata.Face {
	for _, f := range faces {
		if f.Family == family && f.Style == style {
			return f
		}
	}
	log.Fatalf("no face %s %s among the validation fonts", family, style)
	return nil
}

func save(name string, img image.Image, text string) {
	f, err := os.Create("assets/samples/" + name + ".png")
	if err != nil {
		log.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		log.Fatal(err)
	}
	f.Close()
	if err := os.WriteFile("assets/samples/"+name+".gt.txt", []byte(text), 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s.png %v: %q\n", name, img.Bounds().Size(), text)
}

func main() {
	faces, err := ocrdata.Load(ocrdata.Validation)
	if err != nil {
		log.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 11))

	// A screenshot of a paragraph in a UI font (GNOME's Cantarell at 15 px, hinted, on a light
	// grey window background).
	para := []string{
		"The build finished with 2 warnings.",
		"Open the log at /var/log/build.txt",
		"or run make check again to see them.",
	}
	ui := face(faces, "Cantarell", "Regular")
	data, err := os.ReadFile(ui.Path)
	if err != nil {
		log.Fatal(err)
	}
	otf, err := opentype.Parse(data)
	if err != nil {
		log.Fatal(err)
	}
	fc, err := opentype.NewFace(otf, &opentype.FaceOptions{Size: 15, DPI: 72, Hinting: font.HintingFull})
	if err != nil {
		log.Fatal(err)
	}
	canvas := image.NewGray(image.Rect(0, 0, 300, 24*len(para)+16))
	draw.Draw(canvas, canvas.Bounds(), image.NewUniform(color.Gray{Y: 250}), image.Point{}, draw.Src)
	d := &font.Drawer{Dst: canvas, Src: image.NewUniform(color.Gray{Y: 34}), Face: fc}
	for i, l := range para {
		d.Dot = fixed.P(10, 24+24*i)
		d.DrawString(l)
	}
	save("paragraph", canvas, strings.Join(para, "\n"))

	scan, err := ocrdata.Render(rng, "Received on 12 March 1987, filed", face(faces, "Charis SIL", "Regular"), 14, ocrdata.Noise)
	if err != nil {
		log.Fatal(err)
	}
	save("scan-noisy", scan.Image, scan.Text)

	receipt, err := ocrdata.Render(rng, "TOTAL DUE $23.45", face(faces, "Courier Prime", "Bold"), 13, ocrdata.LowContrast)
	if err != nil {
		log.Fatal(err)
	}
	save("receipt", receipt.Image, receipt.Text)
}
