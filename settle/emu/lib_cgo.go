//go:build cgo && (linux || darwin)

package emu

/*
#cgo linux LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

// The libemulator functions the chain uses (tongo's lib/emulator-extern.h), resolved by emu_open.
static struct {
	void *(*transaction_emulator_create)(const char *config, int verbosity);
	bool (*transaction_emulator_set_unixtime)(void *e, uint32_t unixtime);
	bool (*transaction_emulator_set_lt)(void *e, uint64_t lt);
	const char *(*transaction_emulator_emulate_transaction)(void *e, const char *account, const char *message);
	void (*transaction_emulator_destroy)(void *e);
	bool (*emulator_set_verbosity_level)(int level);
	void *(*tvm_emulator_create)(const char *code, const char *data, int verbosity);
	bool (*tvm_emulator_set_c7)(void *e, const char *address, uint32_t unixtime, uint64_t balance, const char *seed, const char *config);
	const char *(*tvm_emulator_run_get_method)(void *e, int method_id, const char *stack);
	void (*tvm_emulator_destroy)(void *e);
} emu;

// emu_open loads the library at path and resolves every function; it returns NULL, or why not.
static const char *emu_open(const char *path) {
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) return dlerror();
#define EMU_SYM(name) \
	if ((*(void **)&emu.name = dlsym(h, #name)) == NULL) { dlclose(h); return "no symbol " #name; }
	EMU_SYM(transaction_emulator_create)
	EMU_SYM(transaction_emulator_set_unixtime)
	EMU_SYM(transaction_emulator_set_lt)
	EMU_SYM(transaction_emulator_emulate_transaction)
	EMU_SYM(transaction_emulator_destroy)
	EMU_SYM(emulator_set_verbosity_level)
	EMU_SYM(tvm_emulator_create)
	EMU_SYM(tvm_emulator_set_c7)
	EMU_SYM(tvm_emulator_run_get_method)
	EMU_SYM(tvm_emulator_destroy)
#undef EMU_SYM
	emu.emulator_set_verbosity_level(0);
	return NULL;
}

static void *tx_create(const char *config) { return emu.transaction_emulator_create(config, 0); }
static bool tx_set_unixtime(void *e, uint32_t t) { return emu.transaction_emulator_set_unixtime(e, t); }
static bool tx_set_lt(void *e, uint64_t lt) { return emu.transaction_emulator_set_lt(e, lt); }
static const char *tx_emulate(void *e, const char *a, const char *m) { return emu.transaction_emulator_emulate_transaction(e, a, m); }
static void tx_destroy(void *e) { emu.transaction_emulator_destroy(e); }
static void *tvm_create(const char *code, const char *data) { return emu.tvm_emulator_create(code, data, 0); }
static bool tvm_set_c7(void *e, const char *addr, uint32_t t, uint64_t balance, const char *seed) {
	return emu.tvm_emulator_set_c7(e, addr, t, balance, seed, NULL);
}
static const char *tvm_run_get(void *e, int id, const char *stack) { return emu.tvm_emulator_run_get_method(e, id, stack); }
static void tvm_destroy(void *e) { emu.tvm_emulator_destroy(e); }
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"
)

func openLibrary(path string) error {
	p := C.CString(path)
	defer C.free(unsafe.Pointer(p))
	if msg := C.emu_open(p); msg != nil {
		return fmt.Errorf("load the TVM emulator library: %s", C.GoString(msg))
	}
	return nil
}

// txEmulator is one libemulator transaction emulator.
type txEmulator struct{ p unsafe.Pointer }

func newTxEmulator(configBase64 string) (*txEmulator, error) {
	if err := load(); err != nil {
		return nil, err
	}
	c := C.CString(configBase64)
	defer C.free(unsafe.Pointer(c))
	p := C.tx_create(c)
	if p == nil {
		return nil, errors.New("create emulator: the library refused the config")
	}
	e := &txEmulator{p: p}
	runtime.AddCleanup(e, func(p unsafe.Pointer) { C.tx_destroy(p) }, p)
	return e, nil
}

func (e *txEmulator) setClock(lt uint64, unixtime uint32) error {
	defer runtime.KeepAlive(e)
	if !C.tx_set_lt(e.p, C.uint64_t(lt)) {
		return errors.New("emulate: set logical time")
	}
	if !C.tx_set_unixtime(e.p, C.uint32_t(unixtime)) {
		return errors.New("emulate: set unix time")
	}
	return nil
}

// emulate runs a message (base64 BOC) on an account (base64 BOC) and returns the library's JSON.
func (e *txEmulator) emulate(account, message string) string {
	defer runtime.KeepAlive(e)
	a, m := C.CString(account), C.CString(message)
	defer C.free(unsafe.Pointer(a))
	defer C.free(unsafe.Pointer(m))
	return takeString(C.tx_emulate(e.p, a, m))
}

// runGetMethod runs get-method id of a contract (code and data as base64 BOCs) with the stack (a
// base64 BOC) and returns the library's JSON.
func runGetMethod(code, data, address string, unixtime uint32, balance uint64, seedHex string, id int, stack string) (string, error) {
	if err := load(); err != nil {
		return "", err
	}
	cs := []*C.char{C.CString(code), C.CString(data), C.CString(address), C.CString(seedHex), C.CString(stack)}
	defer func() {
		for _, s := range cs {
			C.free(unsafe.Pointer(s))
		}
	}()
	e := C.tvm_create(cs[0], cs[1])
	if e == nil {
		return "", errors.New("create TVM: the library refused the code or data")
	}
	defer C.tvm_destroy(e)
	if !C.tvm_set_c7(e, cs[2], C.uint32_t(unixtime), C.uint64_t(balance), cs[3]) {
		return "", errors.New("set TVM context")
	}
	return takeString(C.tvm_run_get(e, C.int(id), cs[4])), nil
}

// takeString copies a string the library allocated and frees it.
func takeString(s *C.char) string {
	if s == nil {
		return ""
	}
	defer C.free(unsafe.Pointer(s))
	return C.GoString(s)
}
