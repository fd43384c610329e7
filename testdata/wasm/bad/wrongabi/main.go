//go:build wasip1

// Command wrongabi says it implements ABI version 2 (and is otherwise a
// complete v1 classifier, without the SDK): the host must refuse it at load.
package main

//go:wasmexport kapkan_abi_version
func abiVersion() int32 { return 2 }

//go:wasmexport kapkan_features
func features() uint64 { return 1 }

//go:wasmexport kapkan_alloc
func alloc(size uint32) uint32 { return 0 }

//go:wasmexport kapkan_free
func free(ptr, size uint32) {}

//go:wasmexport kapkan_classify
func classify(ptr, size uint32) uint64 { return 0 }

func main() {}
