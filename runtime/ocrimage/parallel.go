package ocrimage

import (
	"runtime"
	"sync"
)

// parallel calls f on consecutive ranges [lo, hi) covering [0, n), each at least minChunk
// long, on up to GOMAXPROCS goroutines, and returns when all are done. Each range writes only
// its own part of the output, so the result does not depend on how [0, n) was divided.
func parallel(n, minChunk int, f func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), n/max(minChunk, 1))
	if workers <= 1 {
		f(0, n)
		return
	}
	chunk := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < n; lo += chunk {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			f(lo, hi)
		}(lo, min(n, lo+chunk))
	}
	wg.Wait()
}

// rowChunk is the fewest rows of width w worth a goroutine: about 64 K pixels.
func rowChunk(w int) int { return max(1, (64<<10)/max(w, 1)) }
