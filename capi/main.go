// Command capi is libzcfuse.so: the C ABI of include/zcfuse.h, built with
// go build -buildmode=c-shared (see the Makefile's lib target). Each
// export resolves its handle, calls gosrc/, and returns errnoOf(err);
// the public names and const-correct signatures are in shim.c.
package main

/*
#cgo CFLAGS: -I${SRCDIR}/../include -I${SRCDIR}
#include "capi.h"
#include <stdlib.h>
*/
import "C"

import (
	"errors"
	"syscall"
	"unsafe"
)

func main() {}

// errnoOf maps err to the -errno the C API returns and records its text
// as the calling thread's last error. Errors without an errno are -EIO.
func errnoOf(err error) C.int {
	if err == nil {
		return 0
	}
	msg := C.CString(err.Error())
	C.zcfusei_set_error(msg)
	C.free(unsafe.Pointer(msg))
	var e syscall.Errno
	if errors.As(err, &e) && e != 0 {
		return -C.int(e)
	}
	return -C.int(syscall.EIO)
}
