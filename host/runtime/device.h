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
  char name[256], vendor[256], driver_version[128], platform_name[256], platform_version[256], platform_vendor[256];
  int platform_index, index_in_platform; /* the platform's place in clGetPlatformIDs, the device's in it */
  char device_version[128], opencl_c_version[128];
  cl_uint compute_units, clock_mhz;
  cl_ulong global_mem, local_mem, max_alloc;
  size_t max_work_group;  /* CL_DEVICE_MAX_WORK_GROUP_SIZE; a kernel's own limit can be lower */
  size_t max_item_size[3]; /* CL_DEVICE_MAX_WORK_ITEM_SIZES: the limit of each local dimension */
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
/* A CPU device: CL_DEVICE_TYPE_CPU without the GPU bit. Oclgrind reports every type bit at once and
 * is treated as the GPU it stands in for (GPU layouts, CLBlast, no host loops). */
bool dmx_device_is_cpu(const dmx_device_info *d);
/* Oclgrind: a simulator that checks kernels work-item by work-item, thousands of times slower than a
 * device; never chosen unless named. */
bool dmx_device_is_simulator(const dmx_device_info *d);
/* The device `sel` names, -1 when nothing matches; `why` gets how it was chosen:
 *   INDEX            the device's place in `datamux devices` (platform order is the ICD loader's, so
 *                    it can change when a driver is added; PLATFORM:INDEX does not)
 *   PLATFORM:INDEX   the INDEX-th device of the first platform whose name, vendor or version contains
 *                    PLATFORM, case-insensitively: pocl:0, oclgrind:0, nvidia:1
 *   NAME             the first device whose device name or platform name/vendor contains NAME
 * With no selector: the first GPU that is not a simulator, else the first other device that is not
 * one, else the first device. */
int dmx_choose_device(const dmx_device_info *devs, int n, const char *sel, char *why, size_t why_cap);
/* The device of one rank among local_size ranks on this host (data-parallel training, host/dist):
 *   SEL1,SEL2,...    a list: entry local_rank modulo its length, each as dmx_choose_device takes it
 *   one selector     the same device for every rank
 *   none             GPU local_rank modulo the host's GPUs (simulators left out); on a host
 *                    without one, every rank shares the default device (the CPU)
 * local_size 1 is dmx_choose_device itself. -1 when nothing matches. */
int dmx_choose_device_for_rank(const dmx_device_info *devs, int n, const char *sel, int local_rank, int local_size,
                               char *why, size_t why_cap);
/* A device name as a folder name (tuning files, peaks): every character that is not an ASCII
 * letter or digit becomes '_'. */
void dmx_device_folder_name(const char *name, char *out, size_t cap);

#endif
