//go:build wasip1

package kapkan

import "unsafe"

// pinned keeps the buffers the host was given alive until a call takes them
// or kapkan_free releases them (Go's collector does not see the host).
var pinned = map[uint32][]byte{}

// result is the last result document, kept until the next call.
var result []byte

//go:wasmexport kapkan_abi_version
func abiVersion() int32 { return ABIVersion }

//go:wasmexport kapkan_features
func features() uint64 { return Features() }

//go:wasmexport kapkan_alloc
func alloc(size uint32) uint32 {
	b := make([]byte, max(size, 1))
	p := uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
	pinned[p] = b
	return p
}

//go:wasmexport kapkan_free
func free(ptr, _ uint32) { delete(pinned, ptr) }

//go:wasmexport kapkan_classify
func classify(ptr, size uint32) uint64 { return call(roleClassify, ptr, size) }

//go:wasmexport kapkan_decide
func decide(ptr, size uint32) uint64 { return call(roleDecide, ptr, size) }

func call(role int, ptr, size uint32) uint64 {
	buf, ok := pinned[ptr]
	if !ok || uint32(len(buf)) < size {
		return 0
	}
	delete(pinned, ptr)
	result = dispatch(role, buf[:size])
	if len(result) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(result))))<<32 | uint64(len(result))
}

//go:wasmimport kapkan_v1 log
func logImport(level int32, ptr unsafe.Pointer, size uint32)

func hostLog(level int32, msg string) {
	if msg == "" {
		return
	}
	logImport(level, unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)))
}
