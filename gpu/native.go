package gpu

/*
#cgo CFLAGS: -I${SRCDIR}/cheaders
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include "wgpu.h"

// moe_state receives the device-request result and, for the device's
// lifetime, its uncaptured errors and loss. It lives in C memory because
// wgpu keeps the pointer.
typedef struct {
	WGPUDevice device;
	int status;
	char message[1024];
	int error_type;
	char error[2048];
	int lost;
	char lost_message[512];
} moe_state;

static void moe_on_device(WGPURequestDeviceStatus s, WGPUDevice d, char const *m, void *u) {
	moe_state *st = u;
	st->status = (int)s;
	st->device = d;
	if (m) snprintf(st->message, sizeof st->message, "%s", m);
}

static void moe_on_error(WGPUErrorType t, char const *m, void *u) {
	moe_state *st = u;
	if (st->error_type == 0) {
		st->error_type = (int)t;
		snprintf(st->error, sizeof st->error, "%s", m ? m : "");
	}
}

static void moe_on_lost(WGPUDeviceLostReason r, char const *m, void *u) {
	moe_state *st = u;
	st->lost = (int)r;
	snprintf(st->lost_message, sizeof st->lost_message, "%s", m ? m : "");
}

// moe_request_device asks for the adapter's own limits with every field,
// native extras included, initialised: the binding's RequestDevice leaves
// maxNonSamplerBindings uninitialised, which makes requests fail at random.
static WGPUDevice moe_request_device(WGPUAdapter a, const uint32_t *feats, size_t nf, moe_state *st) {
	WGPUSupportedLimitsExtras sx;
	memset(&sx, 0, sizeof sx);
	sx.chain.sType = (WGPUSType)WGPUSType_SupportedLimitsExtras;
	WGPUSupportedLimits sup;
	memset(&sup, 0, sizeof sup);
	sup.nextInChain = (WGPUChainedStructOut *)&sx;
	wgpuAdapterGetLimits(a, &sup);

	WGPURequiredLimitsExtras rx;
	memset(&rx, 0, sizeof rx);
	rx.chain.sType = (WGPUSType)WGPUSType_RequiredLimitsExtras;
	rx.limits = sx.limits;
	WGPURequiredLimits req;
	memset(&req, 0, sizeof req);
	req.nextInChain = &rx.chain;
	req.limits = sup.limits;

	WGPUDeviceDescriptor d;
	memset(&d, 0, sizeof d);
	d.label = "moegpu";
	d.requiredFeatureCount = nf;
	d.requiredFeatures = (const WGPUFeatureName *)feats;
	d.requiredLimits = &req;
	d.deviceLostCallback = moe_on_lost;
	d.deviceLostUserdata = st;
	d.uncapturedErrorCallbackInfo.callback = moe_on_error;
	d.uncapturedErrorCallbackInfo.userdata = st;
	wgpuAdapterRequestDevice(a, &d, moe_on_device, st);
	return st->device;
}

static moe_state *moe_new_state(void) { return calloc(1, sizeof(moe_state)); }
*/
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/cogentcore/webgpu/wgpu"
)

// nativeState holds a device's C-side callback state.
type nativeState struct{ st *C.moe_state }

// requestDevice opens a device with the adapter's full limits and the given
// features, installing error and device-lost callbacks.
func requestDevice(a *wgpu.Adapter, features []wgpu.FeatureName) (*wgpu.Device, *nativeState, error) {
	st := C.moe_new_state()
	feats := make([]uint32, len(features)+1)
	for i, f := range features {
		feats[i] = uint32(f)
	}
	// The binding's handle types are structs holding just the C pointer.
	aref := *(*C.WGPUAdapter)(unsafe.Pointer(a))
	dref := C.moe_request_device(aref, (*C.uint32_t)(unsafe.Pointer(&feats[0])), C.size_t(len(features)), st)
	if dref == nil || st.status != C.WGPURequestDeviceStatus_Success {
		msg := C.GoString(&st.message[0])
		C.free(unsafe.Pointer(st))
		return nil, nil, fmt.Errorf("request device: %s", msg)
	}
	holder := new(struct{ ref C.WGPUDevice })
	holder.ref = dref
	return (*wgpu.Device)(unsafe.Pointer(holder)), &nativeState{st: st}, nil
}

// takeError returns and clears the first uncaptured GPU error, or the
// device-lost reason.
func (n *nativeState) takeError() error {
	if n == nil || n.st == nil {
		return nil
	}
	if n.st.lost != 0 && n.st.lost != C.WGPUDeviceLostReason_Destroyed {
		return fmt.Errorf("device lost: %s", C.GoString(&n.st.lost_message[0]))
	}
	if n.st.error_type == 0 {
		return nil
	}
	kind := "error"
	switch n.st.error_type {
	case C.WGPUErrorType_Validation:
		kind = "validation error"
	case C.WGPUErrorType_OutOfMemory:
		kind = "out of GPU memory"
	case C.WGPUErrorType_Internal:
		kind = "internal error"
	}
	err := fmt.Errorf("%s: %s", kind, C.GoString(&n.st.error[0]))
	n.st.error_type = 0
	return err
}
