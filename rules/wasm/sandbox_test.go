package wasm

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/kapkan-io/kapkan/rules/wasm/wasmtest"
)

// TestSandboxDenies: a module loaded by the host cannot read or create a
// file (one the test made, holding a secret, and the directories / and
// .), cannot reach a TCP or UDP listener the test runs on loopback (Go's
// guest has an in-process fake network, so the listeners' counts are the
// proof), and sees no environment variable (not even one the test
// set). The same guest run by a runtime that grants a directory and the
// environment does reach them: the probes are known to work, so the
// denial is the host's doing.
func TestSandboxDenies(t *testing.T) {
	bin := wasmtest.One(t, "conformance")
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "token")
	if err := os.WriteFile(secretFile, []byte("s3cret-on-disk\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const envName = "KAPKAN_SANDBOX_TEST_SECRET"
	t.Setenv(envName, "s3cret-in-env")

	var tcpConns, udpBytes atomic.Int32
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			tcpConns.Add(1)
			c.Close()
		}
	}()
	ul, err := net.ListenPacket("udp", tl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	go func() {
		buf := make([]byte, 64)
		for {
			n, _, err := ul.ReadFrom(buf)
			if err != nil {
				return
			}
			udpBytes.Add(int32(n))
		}
	}()
	cfg, _ := json.Marshal(map[string]string{"mode": "sandbox", "file": secretFile, "dial": tl.Addr().String(), "env": envName})

	h, logs := newTestHost(t)
	m := load(t, h, bin, Options{Name: "sandbox", Role: RoleClassify, Config: cfg})
	res, err := m.Classify(payload(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(res.Labels, ","); got != "conformance,no-fs,no-net,no-env" {
		t.Errorf("the guest reached outside its sandbox: %s", got)
	}
	if _, err := os.Stat(secretFile + ".escaped"); err == nil {
		t.Error("the guest created a file")
	}
	time.Sleep(50 * time.Millisecond) // let a connection that did happen be counted (none is expected)
	if n, b := tcpConns.Load(), udpBytes.Load(); n != 0 || b != 0 {
		t.Errorf("the loopback listeners were reached: %d TCP connections, %d UDP bytes", n, b)
	}
	if strings.Contains(logs.String(), "s3cret") {
		t.Errorf("a secret reached the log:\n%s", logs.String())
	}

	// Control: the same guest with a directory and the environment granted.
	labels := runGranted(t, bin, dir, envName, cfg)
	if labels != "conformance,escaped-fs,no-net,escaped-env" {
		t.Errorf("granted the directory and the environment, the guest says %s: its probes do not work, so the denial above proves nothing", labels)
	}
}

// runGranted runs the guest's classify in a runtime of its own that mounts
// dir at its own path and passes the environment variable env, which the
// host never does, and returns the labels. WASI preview 1 has no way to
// open a socket, so the network cannot be granted.
func runGranted(t *testing.T, bin []byte, dir, env string, cfg json.RawMessage) string {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	if _, err := rt.NewHostModuleBuilder(HostModuleName).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {}),
			[]api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, nil).
		Export("log").Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	mod, err := rt.InstantiateWithConfig(ctx, bin, wazero.NewModuleConfig().WithStartFunctions("_initialize").
		WithFSConfig(wazero.NewFSConfig().WithDirMount(dir, dir)).WithEnv(env, os.Getenv(env)))
	if err != nil {
		t.Fatal(err)
	}
	in := payload(1).encode(nil, FeatureClassify|FeatureDecide|FeatureSample, "granted", cfg)
	r, err := mod.ExportedFunction("kapkan_alloc").Call(ctx, uint64(len(in)))
	if err != nil || !mod.Memory().Write(uint32(r[0]), in) {
		t.Fatalf("alloc: %v", err)
	}
	r, err = mod.ExportedFunction("kapkan_classify").Call(ctx, r[0], uint64(len(in)))
	if err != nil {
		t.Fatal(err)
	}
	out, ok := mod.Memory().Read(uint32(r[0]>>32), uint32(r[0]))
	if !ok {
		t.Fatal("result outside the memory")
	}
	var res ClassifyResult
	if err := json.Unmarshal(bytes.Clone(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return strings.Join(res.Labels, ",")
}
