/*
 * A stand-in libnvidia-ml.so.1 for machines without an NVIDIA driver.
 *
 * It answers the few NVML calls pytest-mlperf's GPU inventory makes, so that the real nvidia-ml-py
 * binding can be exercised end to end. The machine it describes comes from the FAKE_NVML_SPEC
 * environment variable, e.g.
 *   count=8;name=NVIDIA A100-SXM4-80GB;memory_mib=81920;pci=0x20B210DE;power_w=400;
 *   driver=510.47.03;cuda=11060;vbios=92.00.45.00.03;mig=0
 * and, for telemetry, ecc=1;persist=1;temp_c=60;throttle=0x40;sm_mhz=1410;mem_mhz=1593;ecc_errors=0;
 *   retired=0. Power draw and utilization move with each read (a slow wave), like a loaded GPU's. Each GPU
 *   answers a little differently, so a check can tell which were read: GPU i has serial 1650121000iii (its
 *   index, zero-padded) as it has its own UUID, reads temp_c - i degrees (GPU 0, the hottest, reads temp_c) and
 *   has ecc_errors << i corrected ECC errors (with ecc_errors=1, their sum over the GPUs read is a bitmask of them).
 * Built against nvml.h from the nvidia-nvml-dev wheel, so the struct layouts are NVIDIA's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nvml.h"

static struct {
    unsigned int count;
    char name[96];
    unsigned long long memory_mib;
    unsigned int pci;
    unsigned int power_w, max_power_w, sm;
    char driver[80];
    int cuda;
    char vbios[32];
    unsigned int mig;
    unsigned int ecc, persist, temp_c, sm_mhz, mem_mhz, retired;
    unsigned long long throttle, ecc_errors;
    int loaded;
} spec;
static unsigned long long reads;

static void load_spec(void) {
    if (spec.loaded) return;
    spec.loaded = 1;
    spec.count = 1;
    strcpy(spec.name, "NVIDIA A100-SXM4-80GB");
    spec.memory_mib = 81920;
    spec.pci = 0x20B210DE;
    spec.power_w = 400;
    spec.max_power_w = 0; /* 0: the same as power_w */
    spec.sm = 80;
    strcpy(spec.driver, "510.47.03");
    spec.cuda = 11060;
    strcpy(spec.vbios, "92.00.45.00.03");
    spec.mig = 0;
    spec.ecc = 1;
    spec.persist = 1;
    spec.temp_c = 60;
    spec.sm_mhz = 1410;
    spec.mem_mhz = 1593;
    const char *env = getenv("FAKE_NVML_SPEC");
    if (!env) return;
    char *copy = strdup(env);
    for (char *item = strtok(copy, ";"); item; item = strtok(NULL, ";")) {
        char *eq = strchr(item, '=');
        if (!eq) continue;
        *eq = '\0';
        const char *key = item, *value = eq + 1;
        if (!strcmp(key, "count")) spec.count = (unsigned int)strtoul(value, NULL, 0);
        else if (!strcmp(key, "name")) snprintf(spec.name, sizeof spec.name, "%s", value);
        else if (!strcmp(key, "memory_mib")) spec.memory_mib = strtoull(value, NULL, 0);
        else if (!strcmp(key, "pci")) spec.pci = (unsigned int)strtoul(value, NULL, 0);
        else if (!strcmp(key, "power_w")) spec.power_w = (unsigned int)strtoul(value, NULL, 0);
        else if (!strcmp(key, "max_power_w")) spec.max_power_w = (unsigned int)strtoul(value, NULL, 0);
        else if (!strcmp(key, "sm")) spec.sm = (unsigned int)strtoul(value, NULL, 0);
        else if (!strcmp(key, "driver")) snprintf(spec.driver, sizeof spec.driver, "%s", value);
        else if (!strcmp(key, "cuda")) spec.cuda = atoi(value);
        else if (!strcmp(key, "vbios")) snprintf(spec.vbios, sizeof spec.vbios, "%s", value);
        else if (!strcmp(key, "mig")) spec.mig = (unsigned int)strtoul(value, NULL, 0);
        else if (!strcmp(key, "ecc")) spec.ecc = (unsigned int)strtoul(value, NULL, 0);
        else if (!strcmp(key, "persist")) spec.persist = (unsigned int)strtoul(value, NULL, 0);
        else if (!strcmp(key, "temp_c")) spec.temp_c = (unsigned int)strtoul(value, NULL, 0);
        else if (!strcmp(key, "sm_mhz")) spec.sm_mhz = (unsigned int)strtoul(value, NULL, 0);
        else if (!strcmp(key, "mem_mhz")) spec.mem_mhz = (unsigned int)strtoul(value, NULL, 0);
        else if (!strcmp(key, "throttle")) spec.throttle = strtoull(value, NULL, 0);
        else if (!strcmp(key, "ecc_errors")) spec.ecc_errors = strtoull(value, NULL, 0);
        else if (!strcmp(key, "retired")) spec.retired = (unsigned int)strtoul(value, NULL, 0);
    }
    free(copy);
}

/* A handle is the device index plus one, so that NULL never names a device. */
static int index_of(nvmlDevice_t device) {
    long index = (long)(size_t)device - 1;
    return (index >= 0 && index < (long)spec.count) ? (int)index : -1;
}

static nvmlReturn_t copy_str(char *out, unsigned int length, const char *value) {
    if (!out) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(value) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(out, value);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlInitWithFlags(unsigned int flags) { (void)flags; load_spec(); return NVML_SUCCESS; }
nvmlReturn_t nvmlInit_v2(void) { load_spec(); return NVML_SUCCESS; }
nvmlReturn_t nvmlShutdown(void) { return NVML_SUCCESS; }

const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    return copy_str(version, length, spec.driver);
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *version) {
    if (!version) return NVML_ERROR_INVALID_ARGUMENT;
    *version = spec.cuda;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    *count = spec.count;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    if (!device || index >= spec.count) return NVML_ERROR_INVALID_ARGUMENT;
    *device = (nvmlDevice_t)(size_t)(index + 1);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    if (index_of(device) < 0) return NVML_ERROR_INVALID_ARGUMENT;
    return copy_str(name, length, spec.name);
}

/* A text of the GPU's own (its UUID, its board serial): the index printed into a pattern. */
static nvmlReturn_t indexed_text(nvmlDevice_t device, char *out, unsigned int length, const char *pattern) {
    int index = index_of(device);
    if (index < 0) return NVML_ERROR_INVALID_ARGUMENT;
    char value[96];
    snprintf(value, sizeof value, pattern, index);
    return copy_str(out, length, value);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    return indexed_text(device, uuid, length, "GPU-fa4e0000-0000-0000-0000-%012d");
}

nvmlReturn_t nvmlDeviceGetSerial(nvmlDevice_t device, char *serial, unsigned int length) {
    return indexed_text(device, serial, length, "1650121000%03d");
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
    if (index_of(device) < 0 || !memory) return NVML_ERROR_INVALID_ARGUMENT;
    memory->total = spec.memory_mib * 1024ULL * 1024ULL;
    memory->used = 0;
    memory->free = memory->total;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci) {
    int index = index_of(device);
    if (index < 0 || !pci) return NVML_ERROR_INVALID_ARGUMENT;
    memset(pci, 0, sizeof *pci);
    pci->domain = 0;
    pci->bus = (unsigned int)(0x07 + index);
    pci->device = 0;
    pci->pciDeviceId = spec.pci;
    pci->pciSubSystemId = 0x145F10DE;
    snprintf(pci->busId, sizeof pci->busId, "00000000:%02X:00.0", pci->bus);
    snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "0000:%02X:00.0", pci->bus);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetVbiosVersion(nvmlDevice_t device, char *version, unsigned int length) {
    if (index_of(device) < 0) return NVML_ERROR_INVALID_ARGUMENT;
    return copy_str(version, length, spec.vbios);
}

nvmlReturn_t nvmlDeviceGetPowerManagementLimit(nvmlDevice_t device, unsigned int *limit) {
    if (index_of(device) < 0 || !limit) return NVML_ERROR_INVALID_ARGUMENT;
    *limit = spec.power_w * 1000U;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerManagementDefaultLimit(nvmlDevice_t device, unsigned int *limit) {
    return nvmlDeviceGetPowerManagementLimit(device, limit);
}

nvmlReturn_t nvmlDeviceGetPowerManagementLimitConstraints(nvmlDevice_t device, unsigned int *min, unsigned int *max) {
    if (index_of(device) < 0 || !min || !max) return NVML_ERROR_INVALID_ARGUMENT;
    *max = (spec.max_power_w ? spec.max_power_w : spec.power_w) * 1000U;
    *min = 100U * 1000U;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t device, int *major, int *minor) {
    if (index_of(device) < 0 || !major || !minor) return NVML_ERROR_INVALID_ARGUMENT;
    *major = (int)(spec.sm / 10);
    *minor = (int)(spec.sm % 10);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *current, unsigned int *pending) {
    if (index_of(device) < 0 || !current || !pending) return NVML_ERROR_INVALID_ARGUMENT;
    *current = spec.mig;
    *pending = spec.mig;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetEccMode(nvmlDevice_t device, nvmlEnableState_t *current, nvmlEnableState_t *pending) {
    if (index_of(device) < 0 || !current || !pending) return NVML_ERROR_INVALID_ARGUMENT;
    *current = *pending = spec.ecc ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPersistenceMode(nvmlDevice_t device, nvmlEnableState_t *mode) {
    if (index_of(device) < 0 || !mode) return NVML_ERROR_INVALID_ARGUMENT;
    *mode = spec.persist ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED;
    return NVML_SUCCESS;
}

static nvmlReturn_t clock_of(nvmlDevice_t device, nvmlClockType_t type, unsigned int *mhz) {
    if (index_of(device) < 0 || !mhz) return NVML_ERROR_INVALID_ARGUMENT;
    *mhz = type == NVML_CLOCK_MEM ? spec.mem_mhz : spec.sm_mhz;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetApplicationsClock(nvmlDevice_t device, nvmlClockType_t type, unsigned int *mhz) {
    return clock_of(device, type, mhz);
}

nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, nvmlClockType_t type, unsigned int *mhz) {
    return clock_of(device, type, mhz);
}

/* A slow wave between 60 % and 100 % of the power limit, one step per read. */
static unsigned int wave(unsigned int top) {
    unsigned long long step = reads++ % 20;
    unsigned long long phase = step < 10 ? step : 20 - step;
    return (unsigned int)(top * (60 + 4 * phase) / 100);
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power) {
    if (index_of(device) < 0 || !power) return NVML_ERROR_INVALID_ARGUMENT;
    *power = wave(spec.power_w * 1000U);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, nvmlTemperatureSensors_t sensor, unsigned int *temp) {
    int index = index_of(device);
    if (index < 0 || !temp || sensor != NVML_TEMPERATURE_GPU) return NVML_ERROR_INVALID_ARGUMENT;
    /* GPU 0 is at temp_c and each next one a degree cooler. */
    *temp = spec.temp_c > (unsigned int)index ? spec.temp_c - (unsigned int)index : 0;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization) {
    if (index_of(device) < 0 || !utilization) return NVML_ERROR_INVALID_ARGUMENT;
    utilization->gpu = wave(100);
    utilization->memory = wave(80);
    return NVML_SUCCESS;
}

static nvmlReturn_t reasons_of(nvmlDevice_t device, unsigned long long *reasons) {
    if (index_of(device) < 0 || !reasons) return NVML_ERROR_INVALID_ARGUMENT;
    *reasons = spec.throttle;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t device, unsigned long long *reasons) {
    return reasons_of(device, reasons);
}

nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t device, unsigned long long *reasons) {
    return reasons_of(device, reasons);
}

nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, nvmlMemoryErrorType_t type, nvmlEccCounterType_t counter,
                                         unsigned long long *count) {
    (void)counter;
    int index = index_of(device);
    if (index < 0 || !count) return NVML_ERROR_INVALID_ARGUMENT;
    /* GPU i has ecc_errors << i corrected errors: summed over the GPUs read, the count is a mask of which. */
    *count = type == NVML_MEMORY_ERROR_TYPE_CORRECTED && index < 64 ? spec.ecc_errors << index : 0;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetRetiredPages(nvmlDevice_t device, nvmlPageRetirementCause_t cause, unsigned int *count,
                                       unsigned long long *addresses) {
    (void)cause;
    if (index_of(device) < 0 || !count) return NVML_ERROR_INVALID_ARGUMENT;
    if (*count < spec.retired) { *count = spec.retired; return NVML_ERROR_INSUFFICIENT_SIZE; }
    for (unsigned int i = 0; i < spec.retired && addresses; i++) addresses[i] = 0x1000ULL * (i + 1);
    *count = spec.retired;
    return NVML_SUCCESS;
}
