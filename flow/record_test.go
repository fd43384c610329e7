package flow

import (
	"net/netip"
	"reflect"
	"testing"
	"unsafe"
)

// TestRecordHasNoPointers guards the promise that batches are flat memory the
// garbage collector does not scan.
func TestRecordHasNoPointers(t *testing.T) {
	var check func(reflect.Type, string)
	check = func(ty reflect.Type, path string) {
		switch ty.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map, reflect.String, reflect.Interface, reflect.Chan, reflect.Func, reflect.UnsafePointer:
			t.Errorf("%s is a %s: flow.Record must hold no pointers", path, ty.Kind())
		case reflect.Struct:
			for i := range ty.NumField() {
				f := ty.Field(i)
				check(f.Type, path+"."+f.Name)
			}
		case reflect.Array:
			check(ty.Elem(), path+"[]")
		}
	}
	check(reflect.TypeFor[Record](), "Record")
	if got := unsafe.Sizeof(Record{}); got > 128 {
		t.Errorf("Record is %d bytes, want at most 128", got)
	}
}

func TestAddressRoundTrip(t *testing.T) {
	for _, s := range []string{"192.0.2.1", "2001:db8::1", "::ffff:10.0.0.1"} {
		a := netip.MustParseAddr(s)
		r := Record{Src: a.As16(), Dst: a.As16(), Flags: FlagHasIP}
		want := a.Unmap()
		if r.SrcAddr() != want || r.DstAddr() != want {
			t.Errorf("%s: got src %s dst %s, want %s", s, r.SrcAddr(), r.DstAddr(), want)
		}
	}
	var r Record
	if r.SrcAddr().IsValid() {
		t.Errorf("record without FlagHasIP returned a valid source %s", r.SrcAddr())
	}
}

func TestBatchAndPool(t *testing.T) {
	var p Pool
	b := p.Get()
	for i := range BatchSize {
		full := b.Add(&Record{Bytes: uint64(i)})
		if full != (i == BatchSize-1) {
			t.Fatalf("Add #%d reported full=%v", i, full)
		}
	}
	if b.Valid()[BatchSize-1].Bytes != BatchSize-1 {
		t.Fatalf("last record lost")
	}
	p.Put(b)
	if b2 := p.Get(); b2.N != 0 {
		t.Fatalf("pooled batch not reset: N=%d", b2.N)
	}
	if (Format(200)).String() != "unknown" || FormatIPFIX.String() != "ipfix" {
		t.Fatalf("format names wrong")
	}
	if SamplingOverride.String() != "override" || SamplingDefault.String() != "default" {
		t.Fatalf("sampling source names wrong")
	}
}

func TestParseFormat(t *testing.T) {
	for _, f := range Formats {
		if got, ok := ParseFormat(f.String()); !ok || got != f {
			t.Errorf("%s: got %s %v", f, got, ok)
		}
	}
	if got, ok := ParseFormat("sflow"); !ok || got != FormatSFlow5 {
		t.Error("sflow is sflow5")
	}
	if _, ok := ParseFormat("cflow"); ok {
		t.Error("cflow accepted")
	}
}
