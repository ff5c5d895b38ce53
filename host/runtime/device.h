/* OpenCL devices: what each one is, listing them, and choosing one. */
#ifndef DMX_RUNTIME_DEVICE_H
#define DMX_RUNTIME_DEVICE_H

#include <CL/cl.h>
#include <stdbool.h>
#include <stdio.h>

typedef struct {
  cl_platform_id platform;
  cl_device_id device;
  cl_device_type type;
  char name[256], vendor[256], driver_version[128], platform_name[256], platform_version[256];
  char device_version[128], opencl_c_version[128];
  cl_uint compute_units, clock_mhz;
  cl_ulong global_mem, local_mem, max_alloc;
  size_t max_work_group;
  cl_uint mem_base_addr_align_bits;
  bool fp16, fp64;
  bool native_kernels; /* CL_EXEC_NATIVE_KERNEL: clEnqueueNativeKernel runs host functions in the queue */
} dmx_device_info;

/* Every device of every platform, in platform order. Returns the count; *out is malloc'd. */
int dmx_list_devices(dmx_device_info **out);
void dmx_print_devices(FILE *f, const dmx_device_info *devs, int n);
/* One device's block, under index i. */
void dmx_print_device(FILE *f, int i, const dmx_device_info *d);
/* "GPU", "CPU", "accelerator" or "other". */
const char *dmx_device_type_name(cl_device_type t);
/* The device `sel` names (an index, or a case-insensitive substring of the device or platform
 * name), else the first GPU, else the first device; -1 when nothing matches. *why says how. */
int dmx_choose_device(const dmx_device_info *devs, int n, const char *sel, const char **why);
/* A device name as a folder name (tuning files, peaks): every character that is not an ASCII
 * letter or digit becomes '_'. */
void dmx_device_folder_name(const char *name, char *out, size_t cap);

#endif
