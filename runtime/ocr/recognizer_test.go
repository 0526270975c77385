package ocr

import (
	"image"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDropSliversKeepsLinesAndDropsCutOffNeighbours(t *testing.T) {
	bounds := image.Rect(0, 0, 300, 100)
	top := image.Rect(5, 0, 200, 6)       // descenders of the line above, cut by the top edge
	main := image.Rect(5, 20, 280, 60)    // the line
	small := image.Rect(5, 70, 80, 80)    // a short line inside the image: kept
	bottom := image.Rect(9, 94, 150, 100) // ascenders of the line below, cut by the bottom edge
	got := dropSlivers([]image.Rectangle{top, main, small, bottom}, bounds)
	require.Equal(t, []image.Rectangle{main, small}, got)
	// A tall line touching an edge (a tight crop) is kept.
	tight := image.Rect(0, 0, 300, 100)
	require.Equal(t, []image.Rectangle{tight}, dropSlivers([]image.Rectangle{tight}, bounds))
}
