package safetensors

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// build assembles a file from a literal header and data, without any checks, so tests can
// write exactly the corruption they mean.
func build(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func mustF32(t *testing.T, name string, shape []int, v []float32) Tensor {
	t.Helper()
	tt, err := FromFloat32(name, shape, v)
	require.NoError(t, err)
	return tt
}

var negZero = float32(math.Copysign(0, -1))

func sampleTensors(t *testing.T) []Tensor {
	t.Helper()
	f := mustF32(t, "model.layers.0.w", []int{2, 3}, []float32{1, -2, 3.5, float32(math.Inf(1)), negZero, 1e-40})
	nan := mustF32(t, "nan", []int{2}, []float32{float32(math.NaN()), math.Float32frombits(0x7fc00001)})
	u, err := FromUint32("tokens", []int{4}, []uint32{0, 1, math.MaxUint32, 7})
	require.NoError(t, err)
	i32, err := FromInt32("i32", []int{1, 2}, []int32{-1, math.MinInt32})
	require.NoError(t, err)
	i64, err := FromInt64("step", []int{}, []int64{math.MinInt64 + 3})
	require.NoError(t, err)
	empty := mustF32(t, "empty", []int{0, 5}, nil)
	half := Tensor{Name: "half", DType: F16, Shape: []int{3}, Data: []byte{0x00, 0x3c, 0x00, 0xc0, 0x00, 0x7c}}
	bf := Tensor{Name: "bf", DType: BF16, Shape: []int{2}, Data: []byte{0x80, 0x3f, 0x49, 0x40}}
	u8 := Tensor{Name: "bytes", DType: U8, Shape: []int{3}, Data: []byte{1, 2, 3}}
	return []Tensor{f, nan, u, i32, i64, empty, half, bf, u8}
}

func TestWriteThenReadRoundTripsBitForBit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	in := sampleTensors(t)
	md := map[string]string{"format": "pt", "step": "12", "note": "ünïcode \"quoted\""}
	require.NoError(t, Write(path, in, md))

	f, err := Read(path)
	require.NoError(t, err)
	assert.Equal(t, md, f.Metadata)
	require.Len(t, f.Tensors, len(in))
	for _, want := range in {
		got, ok := f.Get(want.Name)
		require.True(t, ok, want.Name)
		assert.Equal(t, want.DType, got.DType, want.Name)
		assert.Equal(t, want.Shape, got.Shape, want.Name)
		assert.True(t, bytes.Equal(want.Data, got.Data), "%s: data differs", want.Name)
	}
	_, ok := f.Get("missing")
	assert.False(t, ok)

	// Writing what was read gives the same bytes again.
	first, err := os.ReadFile(path)
	require.NoError(t, err)
	again, err := Marshal(f.Tensors, f.Metadata)
	require.NoError(t, err)
	assert.Equal(t, first, again)

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "temp file left behind")
}

func TestMarshalLaysOutTheFileAsTheReferenceDoes(t *testing.T) {
	a := mustF32(t, "b", []int{1}, []float32{2})
	b := mustF32(t, "a", []int{2}, []float32{1, 1})
	out, err := Marshal([]Tensor{a, b}, map[string]string{"k": "v"})
	require.NoError(t, err)

	n := binary.LittleEndian.Uint64(out[:8])
	assert.Zero(t, n%8, "header length is a multiple of 8")
	header := string(out[8 : 8+n])
	assert.Equal(t, `{"__metadata__":{"k":"v"},`+
		`"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},`+
		`"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, string(bytes.TrimRight([]byte(header), " ")))
	assert.Len(t, out, 8+int(n)+12)
	// Data in name order: a's two 1.0s, then b's 2.0.
	assert.Equal(t, []byte{0, 0, 0x80, 0x3f, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40}, out[8+n:])

	// Without metadata there is no __metadata__ key, and a scalar has shape [].
	s, err := FromInt64("s", nil, []int64{1})
	require.NoError(t, err)
	out, err = Marshal([]Tensor{s}, nil)
	require.NoError(t, err)
	n = binary.LittleEndian.Uint64(out[:8])
	assert.Equal(t, `{"s":{"dtype":"I64","shape":[],"data_offsets":[0,8]}}`, string(bytes.TrimRight(out[8:8+n], " ")))
}

func TestReadAcceptsAFileFromTheReferenceDocs(t *testing.T) {
	// The example in the reference implementation's docs: 60-byte header, I32 [2,2] of zeros.
	b := build(`{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}`, make([]byte, 16))
	f, err := ReadBytes(b)
	require.NoError(t, err)
	require.Len(t, f.Tensors, 1)
	v, err := f.Tensors[0].Int32()
	require.NoError(t, err)
	assert.Equal(t, []int32{0, 0, 0, 0}, v)
	assert.Nil(t, f.Metadata)
}

func TestReadAcceptsTensorsInAnyHeaderOrderAndZeroSizedTensors(t *testing.T) {
	b := build(`{"z":{"dtype":"U8","shape":[2],"data_offsets":[1,3]},`+
		`"e":{"dtype":"F32","shape":[0],"data_offsets":[1,1]},`+
		`"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}    `, []byte{9, 8, 7})
	f, err := ReadBytes(b)
	require.NoError(t, err)
	require.Len(t, f.Tensors, 3)
	assert.Equal(t, "a", f.Tensors[0].Name)
	assert.Equal(t, []byte{9}, f.Tensors[0].Data)
	assert.Equal(t, []byte{8, 7}, f.Tensors[2].Data)
	assert.Empty(t, f.Tensors[1].Data)
}

func TestReadRejectsCorruptFilesNamingTheProblem(t *testing.T) {
	ok := `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`
	data8 := make([]byte, 8)
	huge := binary.LittleEndian.AppendUint64(nil, 1<<40)
	for _, tc := range []struct {
		name string
		file []byte
		want string
	}{
		{"empty file", nil, "too short for the 8-byte header length"},
		{"seven bytes", []byte{1, 2, 3, 4, 5, 6, 7}, "too short"},
		{"header length beyond file", append(binary.LittleEndian.AppendUint64(nil, 100), '{', '}'), "header length 100 runs past the end"},
		{"header length absurd", append(huge, '{'), "over the 100000000-byte limit"},
		{"zero header", binary.LittleEndian.AppendUint64(nil, 0), "does not start with '{'"},
		{"header not an object", build(`[1,2]`, nil), "does not start with '{'"},
		{"bad json", build(`{"a":{"dtype":"F32",}}`, nil), "not valid JSON"},
		{"truncated json", build(`{"a":{"dtype":"F32"`, nil), "not valid JSON"},
		{"invalid utf8", build("{\"\xff\":1}", nil), "not valid UTF-8"},
		{"garbage after object", build(ok+`x`, data8), "data after the JSON object"},
		{"second object", build(ok+`{}`, data8), "data after the JSON object"},
		{"unknown dtype", build(`{"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}`, data8), `tensor "a": unknown dtype "F33"`},
		{"lowercase dtype", build(`{"a":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}}`, data8), `unknown dtype "f32"`},
		{"missing dtype", build(`{"a":{"shape":[2],"data_offsets":[0,8]}}`, data8), "has no dtype"},
		{"missing shape", build(`{"a":{"dtype":"F32","data_offsets":[0,8]}}`, data8), "has no shape"},
		{"missing offsets", build(`{"a":{"dtype":"F32","shape":[2]}}`, data8), "has no data_offsets"},
		{"null shape", build(`{"a":{"dtype":"F32","shape":null,"data_offsets":[0,8]}}`, data8), "shape is null"},
		{"null entry", build(`{"a":null}`, nil), `tensor "a" header entry is not a JSON object`},
		{"unknown entry key", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}}`, data8), `unknown key "x"`},
		{"duplicate entry key", build(`{"a":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}}`, data8), `duplicate key "dtype"`},
		{"negative dim", build(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, data8), "negative dimension -2"},
		{"fractional dim", build(`{"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}`, data8), "bad shape"},
		{"shape overflow", build(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, data8), "too many"},
		{"byte count overflow", build(`{"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,8]}}`, data8), "too many bytes"},
		{"shape and bytes disagree", build(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, data8), "F32 [3] needs 12 bytes but data_offsets [0, 8] hold 8"},
		{"three offsets", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}}`, data8), "data_offsets has 3 values"},
		{"negative offset", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}`, data8), "bad data_offsets"},
		{"reversed offsets", build(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}`, data8), "end before they begin"},
		{"offsets beyond data", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`, data8), "run past the end of the 8-byte data section"},
		{"truncated data", build(ok, data8[:5]), "run past the end of the 5-byte data section (truncated file?)"},
		{"overlap", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, data8), `tensors "a" and "b" overlap`},
		{"hole", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, data8), "data bytes [0, 4) belong to no tensor"},
		{"trailing data", build(ok, make([]byte, 12)), "data section is 12 bytes but the tensors cover only 8"},
		{"empty name", build(`{"":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, []byte{1}), "tensor has an empty name"},
		{"duplicate name", build(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, []byte{1, 2}), `duplicate name "a"`},
		{"metadata not an object", build(`{"__metadata__":"x"}`, nil), `"__metadata__" must be an object of string values`},
		{"metadata null", build(`{"__metadata__":null}`, nil), `"__metadata__" must be an object`},
		{"metadata value not a string", build(`{"__metadata__":{"k":1}}`, nil), `value of "k" is not a string`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ReadBytes(tc.file)
			require.Error(t, err)
			assert.Nil(t, f)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestReadNamesTheFileInErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.safetensors")
	require.NoError(t, os.WriteFile(path, []byte{1, 2, 3}, 0o644))
	_, err := Read(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), path)

	_, err = Read(filepath.Join(dir, "missing.safetensors"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestWriteRejectsBadTensorsAndKeepsTheOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	good := mustF32(t, "w", []int{1}, []float32{1})
	require.NoError(t, Write(path, []Tensor{good}, nil))
	before, err := os.ReadFile(path)
	require.NoError(t, err)

	for _, tc := range []struct {
		name    string
		tensors []Tensor
		md      map[string]string
		want    string
	}{
		{"duplicate names", []Tensor{good, good}, nil, `duplicate tensor name "w"`},
		{"empty name", []Tensor{{DType: F32, Shape: []int{0}}}, nil, "empty name"},
		{"reserved name", []Tensor{{Name: "__metadata__", DType: U8, Shape: []int{0}}}, nil, "reserved"},
		{"unknown dtype", []Tensor{{Name: "x", DType: "F12", Shape: []int{1}, Data: []byte{0}}}, nil, `unknown dtype "F12"`},
		{"too few bytes", []Tensor{{Name: "x", DType: F32, Shape: []int{2}, Data: make([]byte, 4)}}, nil, "F32 [2] needs 8 bytes, has 4"},
		{"negative dim", []Tensor{{Name: "x", DType: F32, Shape: []int{-1}}}, nil, "negative dimension"},
		{"bad utf8 name", []Tensor{{Name: "\xff", DType: U8, Shape: []int{0}}}, nil, "not valid UTF-8"},
		{"bad utf8 metadata", []Tensor{good}, map[string]string{"k": "\xff"}, "not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Write(path, tc.tensors, tc.md)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			after, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, before, after)
		})
	}

	err = Write(filepath.Join(dir, "no-such-dir", "m.safetensors"), []Tensor{good}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no-such-dir")
}

func TestTypedViewsDecodeEachDType(t *testing.T) {
	f, err := ReadBytes(mustMarshal(t, sampleTensors(t)))
	require.NoError(t, err)
	get := func(name string) *Tensor {
		tt, ok := f.Get(name)
		require.True(t, ok, name)
		return tt
	}

	half, err := get("half").Float32()
	require.NoError(t, err)
	assert.Equal(t, []float32{1, -2, float32(math.Inf(1))}, half)

	bf, err := get("bf").Float32()
	require.NoError(t, err)
	assert.Equal(t, []float32{1, math.Float32frombits(0x40490000)}, bf)

	w, err := get("model.layers.0.w").Float32()
	require.NoError(t, err)
	assert.Equal(t, []float32{1, -2, 3.5, float32(math.Inf(1)), 0, 1e-40}, w)
	assert.Equal(t, uint32(0x80000000), math.Float32bits(w[4]), "negative zero keeps its sign")

	u, err := get("tokens").Uint32()
	require.NoError(t, err)
	assert.Equal(t, []uint32{0, 1, math.MaxUint32, 7}, u)

	i, err := get("i32").Int32()
	require.NoError(t, err)
	assert.Equal(t, []int32{-1, math.MinInt32}, i)

	s, err := get("step").Int64()
	require.NoError(t, err)
	assert.Equal(t, []int64{math.MinInt64 + 3}, s)

	f64 := Tensor{Name: "d", DType: F64, Shape: []int{1}, Data: binary.LittleEndian.AppendUint64(nil, math.Float64bits(0.1))}
	d, err := f64.Float32()
	require.NoError(t, err)
	assert.Equal(t, []float32{0.1}, d)
}

func TestTypedViewsRejectTheWrongDType(t *testing.T) {
	u8 := Tensor{Name: "b", DType: U8, Shape: []int{4}, Data: []byte{1, 2, 3, 4}}
	f32 := Tensor{Name: "f", DType: F32, Shape: []int{1}, Data: []byte{1, 2, 3, 4}}
	odd := Tensor{Name: "o", DType: F32, Shape: []int{1}, Data: []byte{1, 2, 3}}
	for _, tc := range []struct {
		name string
		call func() error
		want string
	}{
		{"float32 of u8", func() error { _, err := u8.Float32(); return err }, `tensor "b" is U8, not a floating-point type`},
		{"uint32 of f32", func() error { _, err := f32.Uint32(); return err }, `tensor "f" is F32, not U32`},
		{"int32 of f32", func() error { _, err := f32.Int32(); return err }, "not I32"},
		{"int64 of f32", func() error { _, err := f32.Int64(); return err }, "not I64"},
		{"float32 of ragged bytes", func() error { _, err := odd.Float32(); return err }, "not a whole number of F32 elements"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestFromHelpersRejectShapeMismatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"float32", func() error { _, err := FromFloat32("x", []int{2, 2}, make([]float32, 3)); return err }},
		{"uint32", func() error { _, err := FromUint32("x", []int{5}, make([]uint32, 4)); return err }},
		{"int32", func() error { _, err := FromInt32("x", []int{}, make([]int32, 2)); return err }},
		{"int64", func() error { _, err := FromInt64("x", []int{-1}, nil); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			require.Error(t, err)
			assert.Contains(t, err.Error(), `tensor "x"`)
		})
	}
}

func mustMarshal(t *testing.T, tensors []Tensor) []byte {
	t.Helper()
	b, err := Marshal(tensors, nil)
	require.NoError(t, err)
	return b
}

// FuzzRead checks that no input makes the reader panic or read out of range, and that whatever
// it accepts survives a write/read round trip unchanged.
func FuzzRead(f *testing.F) {
	a, _ := FromFloat32("a", []int{2, 2}, []float32{1, 2, 3, 4})
	b, _ := FromUint32("b", []int{3}, []uint32{1, 2, 3})
	c := Tensor{Name: "c", DType: BF16, Shape: []int{1}, Data: []byte{0x80, 0x3f}}
	valid, _ := Marshal([]Tensor{a, b, c}, map[string]string{"format": "pt"})
	f.Add(valid)
	f.Add(build(`{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}`, make([]byte, 16)))
	f.Add(build(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, []byte{1, 2}))
	f.Add(build(`{}`, nil))
	f.Add(valid[:len(valid)-3])
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ReadBytes(data)
		if err != nil {
			return
		}
		out, err := Marshal(file.Tensors, file.Metadata)
		if err != nil {
			t.Fatalf("accepted file does not re-encode: %v", err)
		}
		again, err := ReadBytes(out)
		if err != nil {
			t.Fatalf("re-encoded file does not read: %v", err)
		}
		if len(again.Tensors) != len(file.Tensors) {
			t.Fatalf("tensor count %d != %d", len(again.Tensors), len(file.Tensors))
		}
		for i := range file.Tensors {
			x, y := file.Tensors[i], again.Tensors[i]
			if x.Name != y.Name || x.DType != y.DType || !equalInts(x.Shape, y.Shape) || !bytes.Equal(x.Data, y.Data) {
				t.Fatalf("tensor %q changed in the round trip", x.Name)
			}
		}
		if len(again.Metadata) != len(file.Metadata) {
			t.Fatalf("metadata changed in the round trip")
		}
		for k, v := range file.Metadata {
			if again.Metadata[k] != v {
				t.Fatalf("metadata %q changed in the round trip", k)
			}
		}
	})
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
