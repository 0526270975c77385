"""Tests of moegpu_torch against moegpu; python/torch_test.go runs them from `go test`."""
