package graph

import (
	"os"
	"strconv"
)

func init() {
	if v, err := strconv.Atoi(os.Getenv("ATTN_QB")); err == nil {
		attnQB = v
	}
	if v, err := strconv.Atoi(os.Getenv("ATTN_KB")); err == nil {
		attnKB = v
	}
}

func init() {
	if v, err := strconv.Atoi(os.Getenv("ATTN_BQ")); err == nil {
		attnBQ = v
	}
}

func init() {
	if v, err := strconv.Atoi(os.Getenv("ATTN_SKIP")); err == nil {
		attnSkip = v
	}
}

func init() {
	if v, err := strconv.Atoi(os.Getenv("ATTN_WG")); err == nil {
		attnWG = v
	}
}
