module github.com/moegpu/moegpu

go 1.26

require (
	github.com/cogentcore/webgpu v0.23.0
	github.com/x448/float16 v0.8.4
)
