package wasmtest

import (
	"encoding/binary"
	"maps"
	"slices"
)

// A second guest language: WebAssembly itself. Raw modules are written as
// instructions and encoded here (a tiny assembler for the binary format,
// enough for ABI guests), so tests need no WAT toolchain and can make
// modules no compiler would: a bare `unreachable` trap, a loop without a
// runtime around it, a forbidden import, a result outside the memory.

// Value types.
const (
	I32 byte = 0x7f
	I64 byte = 0x7e
)

// Instructions used by the tests' raw modules.
const (
	OpUnreachable byte = 0x00
	OpLoop        byte = 0x03
	OpBr          byte = 0x0c
	OpEnd         byte = 0x0b
	OpLocalGet    byte = 0x20
	OpI32Const    byte = 0x41
	OpI64Const    byte = 0x42
	BlockEmpty    byte = 0x40
)

// Func is a function a raw module defines and exports under Name.
type Func struct {
	Name            string
	Params, Results []byte
	// Body is the instructions, without the final end.
	Body []byte
}

// Import is a function a raw module imports.
type Import struct {
	Module, Name    string
	Params, Results []byte
}

// Raw is a module to encode: imports, exported functions, one memory of
// MemoryPages pages (exported as "memory" unless NoMemoryExport) and data
// at fixed addresses.
type Raw struct {
	Imports        []Import
	Funcs          []Func
	MemoryPages    uint32
	NoMemoryExport bool
	Data           map[uint32][]byte
}

// I32Const and I64Const encode a constant instruction.
func I32Const(v int32) []byte { return sleb([]byte{OpI32Const}, int64(v)) }

// I64Const encodes i64.const v.
func I64Const(v int64) []byte { return sleb([]byte{OpI64Const}, v) }

// sleb appends v in signed LEB128.
func sleb(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// Result is the i64 a classify or decide export returns for a result of
// n bytes at ptr.
func Result(ptr, n uint32) int64 { return int64(uint64(ptr)<<32 | uint64(n)) }

func uleb(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func name(b []byte, s string) []byte { return append(uleb(b, uint64(len(s))), s...) }

func vec(b []byte, items ...[]byte) []byte {
	b = uleb(b, uint64(len(items)))
	for _, it := range items {
		b = append(b, it...)
	}
	return b
}

func section(b []byte, id byte, content []byte) []byte {
	return append(uleb(append(b, id), uint64(len(content))), content...)
}

func funcType(params, results []byte) []byte {
	t := append([]byte{0x60}, uleb(nil, uint64(len(params)))...)
	t = append(t, params...)
	t = uleb(t, uint64(len(results)))
	return append(t, results...)
}

// Encode returns the module's binary.
func (m Raw) Encode() []byte {
	out := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	var types, imports, funcs, exports, codes, data [][]byte
	for i, im := range m.Imports {
		types = append(types, funcType(im.Params, im.Results))
		e := name(name(nil, im.Module), im.Name)
		imports = append(imports, uleb(append(e, 0x00), uint64(i)))
	}
	for i, f := range m.Funcs {
		ti := len(types)
		types = append(types, funcType(f.Params, f.Results))
		funcs = append(funcs, uleb(nil, uint64(ti)))
		exports = append(exports, uleb(append(name(nil, f.Name), 0x00), uint64(len(m.Imports)+i)))
		body := append(append([]byte{0}, f.Body...), OpEnd) // no locals
		codes = append(codes, append(uleb(nil, uint64(len(body))), body...))
	}
	if !m.NoMemoryExport {
		exports = append(exports, append(name(nil, "memory"), 0x02, 0x00))
	}
	for _, addr := range slices.Sorted(maps.Keys(m.Data)) {
		d := m.Data[addr]
		seg := append([]byte{0x00}, I32Const(int32(addr))...)
		seg = append(seg, OpEnd)
		data = append(data, append(uleb(seg, uint64(len(d))), d...))
	}
	out = section(out, 1, vec(nil, types...))
	if len(imports) > 0 {
		out = section(out, 2, vec(nil, imports...))
	}
	out = section(out, 3, vec(nil, funcs...))
	out = section(out, 5, vec(nil, uleb([]byte{0x00}, uint64(max(m.MemoryPages, 1)))))
	out = section(out, 7, vec(nil, exports...))
	out = section(out, 10, vec(nil, codes...))
	if len(data) > 0 {
		out = section(out, 11, vec(nil, data...))
	}
	return out
}

// RawClassifier is a complete ABI v1 classifier written in WebAssembly:
//
//	(module
//	  (memory (export "memory") 1)
//	  (data (i32.const 2048) "{\"match\":true,\"labels\":[\"raw-wasm\"],\"vector\":{\"protocol\":\"udp\"}}")
//	  (func (export "kapkan_abi_version") (result i32) i32.const 1)
//	  (func (export "kapkan_features") (result i64) i64.const 1)      ;; classify
//	  (func (export "kapkan_alloc") (param i32) (result i32) i32.const 4096)
//	  (func (export "kapkan_free") (param i32 i32))
//	  (func (export "kapkan_classify") (param i32 i32) (result i64)
//	    i64.const 0x0000080000000040))                              ;; 2048 << 32 | len
//
// classify is the body of kapkan_classify (nil: return the verdict above).
// The payload lands at 4096 and is ignored; one page of memory holds up to
// 60 KiB of it.
func RawClassifier(classify []byte, extra ...Func) Raw {
	verdict := []byte(`{"match":true,"labels":["raw-wasm"],"vector":{"protocol":"udp"}}`)
	if classify == nil {
		classify = I64Const(Result(2048, uint32(len(verdict))))
	}
	funcs := []Func{
		{Name: "kapkan_abi_version", Results: []byte{I32}, Body: I32Const(1)},
		{Name: "kapkan_features", Results: []byte{I64}, Body: I64Const(1)},
		{Name: "kapkan_alloc", Params: []byte{I32}, Results: []byte{I32}, Body: I32Const(4096)},
		{Name: "kapkan_free", Params: []byte{I32, I32}},
		{Name: "kapkan_classify", Params: []byte{I32, I32}, Results: []byte{I64}, Body: classify},
	}
	return Raw{Funcs: append(funcs, extra...), MemoryPages: 1, Data: map[uint32][]byte{2048: verdict}}
}
