/* Device listing and choice. */
#include "host/runtime/device.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "host/base/common.h"
#include "host/runtime/cl_check.h"

static void device_string(cl_device_id d, cl_device_info what, char *out, size_t cap) {
  out[0] = 0;
  if (clGetDeviceInfo(d, what, cap, out, NULL) != CL_SUCCESS) snprintf(out, cap, "?");
  out[cap - 1] = 0;
}

static void platform_string(cl_platform_id p, cl_platform_info what, char *out, size_t cap) {
  out[0] = 0;
  if (clGetPlatformInfo(p, what, cap, out, NULL) != CL_SUCCESS) snprintf(out, cap, "?");
  out[cap - 1] = 0;
}

static void fill_device_info(dmx_device_info *di, cl_platform_id p, cl_device_id d) {
  memset(di, 0, sizeof *di);
  di->platform = p;
  di->device = d;
  platform_string(p, CL_PLATFORM_NAME, di->platform_name, sizeof di->platform_name);
  platform_string(p, CL_PLATFORM_VERSION, di->platform_version, sizeof di->platform_version);
  platform_string(p, CL_PLATFORM_VENDOR, di->platform_vendor, sizeof di->platform_vendor);
  device_string(d, CL_DEVICE_NAME, di->name, sizeof di->name);
  device_string(d, CL_DEVICE_VENDOR, di->vendor, sizeof di->vendor);
  device_string(d, CL_DRIVER_VERSION, di->driver_version, sizeof di->driver_version);
  device_string(d, CL_DEVICE_VERSION, di->device_version, sizeof di->device_version);
  device_string(d, CL_DEVICE_OPENCL_C_VERSION, di->opencl_c_version, sizeof di->opencl_c_version);
  DMX_CL_CHECK(clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof di->type, &di->type, NULL));
  DMX_CL_CHECK(clGetDeviceInfo(d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof di->compute_units, &di->compute_units, NULL));
  DMX_CL_CHECK(clGetDeviceInfo(d, CL_DEVICE_MAX_CLOCK_FREQUENCY, sizeof di->clock_mhz, &di->clock_mhz, NULL));
  DMX_CL_CHECK(clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof di->global_mem, &di->global_mem, NULL));
  DMX_CL_CHECK(clGetDeviceInfo(d, CL_DEVICE_LOCAL_MEM_SIZE, sizeof di->local_mem, &di->local_mem, NULL));
  DMX_CL_CHECK(clGetDeviceInfo(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof di->max_alloc, &di->max_alloc, NULL));
  cl_device_exec_capabilities exec = 0;
  DMX_CL_CHECK(clGetDeviceInfo(d, CL_DEVICE_EXECUTION_CAPABILITIES, sizeof exec, &exec, NULL));
  di->native_kernels = (exec & CL_EXEC_NATIVE_KERNEL) != 0;
  DMX_CL_CHECK(clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof di->max_work_group, &di->max_work_group, NULL));
  cl_uint dims = 0;
  DMX_CL_CHECK(clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_ITEM_DIMENSIONS, sizeof dims, &dims, NULL));
  size_t items[8] = {0};
  DMX_CL_CHECK(clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_ITEM_SIZES, (dims < 8 ? dims : 8) * sizeof(size_t), items, NULL));
  for (int i = 0; i < 3; i++) di->max_item_size[i] = i < (int)dims ? items[i] : 1;
  DMX_CL_CHECK(clGetDeviceInfo(d, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof di->mem_base_addr_align_bits,
                               &di->mem_base_addr_align_bits, NULL));
  size_t ext_len = 0;
  DMX_CL_CHECK(clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, 0, NULL, &ext_len));
  char *ext = dmx_malloc(ext_len + 1);
  DMX_CL_CHECK(clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, ext_len, ext, NULL));
  ext[ext_len] = 0;
  di->fp16 = strstr(ext, "cl_khr_fp16") != NULL;
  di->fp64 = strstr(ext, "cl_khr_fp64") != NULL;
  free(ext);
}

static bool contains_ci(const char *hay, const char *needle) {
  size_t nl = strlen(needle);
  for (const char *h = hay; *h; h++) {
    size_t i = 0;
    while (i < nl && h[i] && tolower((unsigned char)h[i]) == tolower((unsigned char)needle[i])) i++;
    if (i == nl) return true;
  }
  return nl == 0;
}

/* The short platform name `datamux devices` suggests for --device PLATFORM:INDEX. */
static const char *platform_short_name(const dmx_device_info *d) {
  static const char *known[] = {"pocl", "oclgrind", "nvidia", "amd", "intel", "rusticl", "clover"};
  for (size_t i = 0; i < sizeof known / sizeof *known; i++)
    if (contains_ci(d->platform_name, known[i]) || contains_ci(d->platform_vendor, known[i]) ||
        contains_ci(d->platform_version, known[i]))
      return known[i];
  return d->platform_name;
}

int dmx_list_devices(dmx_device_info **out) {
  *out = NULL;
  cl_uint np = 0;
  cl_int st = clGetPlatformIDs(0, NULL, &np);
  if (st == -1001 || np == 0) return 0; /* no ICD installed */
  DMX_CL_CHECK(st);
  cl_platform_id *plats = dmx_calloc(np, sizeof *plats);
  DMX_CL_CHECK(clGetPlatformIDs(np, plats, NULL));
  int n = 0, cap = 8;
  dmx_device_info *devs = dmx_calloc((size_t)cap, sizeof *devs);
  for (cl_uint p = 0; p < np; p++) {
    cl_uint nd = 0;
    st = clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd);
    if (st == CL_DEVICE_NOT_FOUND || nd == 0) continue;
    DMX_CL_CHECK(st);
    cl_device_id *ids = dmx_calloc(nd, sizeof *ids);
    DMX_CL_CHECK(clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, nd, ids, NULL));
    for (cl_uint d = 0; d < nd; d++) {
      if (n == cap) {
        cap *= 2;
        devs = dmx_realloc(devs, (size_t)cap * sizeof *devs);
      }
      fill_device_info(&devs[n], plats[p], ids[d]);
      devs[n].platform_index = (int)p;
      devs[n].index_in_platform = (int)d;
      n++;
    }
    free(ids);
  }
  free(plats);
  *out = devs;
  return n;
}

const char *dmx_device_type_name(cl_device_type t) {
  if (t & CL_DEVICE_TYPE_GPU) return "GPU";
  if (t & CL_DEVICE_TYPE_CPU) return "CPU";
  if (t & CL_DEVICE_TYPE_ACCELERATOR) return "accelerator";
  return "other";
}

void dmx_print_devices(FILE *f, const dmx_device_info *devs, int n) {
  for (int i = 0; i < n; i++) dmx_print_device(f, i, &devs[i]);
}

void dmx_print_device(FILE *f, int i, const dmx_device_info *d) {
  {
    fprintf(f, "[%d] %s (%s)\n", i, d->name, dmx_device_type_name(d->type));
    fprintf(f, "    platform:        %s (%s)\n", d->platform_name, d->platform_version);
    fprintf(f, "    select with:     --device %d, or --device %s:%d%s\n", i, platform_short_name(d),
            d->index_in_platform, dmx_device_is_simulator(d) ? " (a simulator: never chosen by default)" : "");
    fprintf(f, "    vendor:          %s\n", d->vendor);
    fprintf(f, "    driver:          %s\n", d->driver_version);
    fprintf(f, "    OpenCL C:        %s (%s)\n", d->opencl_c_version, d->device_version);
    fprintf(f, "    compute units:   %u at %u MHz\n", d->compute_units, d->clock_mhz);
    fprintf(f, "    global memory:   %.1f MiB\n", (double)d->global_mem / 1048576.0);
    fprintf(f, "    local memory:    %.1f KiB\n", (double)d->local_mem / 1024.0);
    fprintf(f, "    max allocation:  %.1f MiB\n", (double)d->max_alloc / 1048576.0);
    fprintf(f, "    max work group:  %zu (per dimension %zu x %zu x %zu)\n", d->max_work_group, d->max_item_size[0],
            d->max_item_size[1], d->max_item_size[2]);
    fprintf(f, "    fp16: %s, fp64: %s, native kernels: %s\n", d->fp16 ? "yes" : "no", d->fp64 ? "yes" : "no",
            d->native_kernels ? "yes" : "no");
  }
}

bool dmx_device_is_cpu(const dmx_device_info *d) {
  return (d->type & CL_DEVICE_TYPE_CPU) && !(d->type & CL_DEVICE_TYPE_GPU);
}

bool dmx_device_is_simulator(const dmx_device_info *d) {
  return contains_ci(d->platform_name, "oclgrind") || contains_ci(d->name, "oclgrind");
}

static bool platform_matches(const dmx_device_info *d, const char *p) {
  return contains_ci(d->platform_name, p) || contains_ci(d->platform_vendor, p) || contains_ci(d->platform_version, p);
}

int dmx_choose_device(const dmx_device_info *devs, int n, const char *sel, char *why, size_t cap) {
  if (sel && *sel) {
    char *end;
    long idx = strtol(sel, &end, 10);
    if (*end == 0) {
      snprintf(why, cap, "by index %ld", idx);
      return idx >= 0 && idx < n ? (int)idx : -1;
    }
    const char *colon = strrchr(sel, ':');
    if (colon && colon > sel && colon[1]) {
      long k = strtol(colon + 1, &end, 10);
      if (*end == 0) {
        char plat[256];
        snprintf(plat, sizeof plat, "%.*s", (int)(colon - sel), sel);
        /* the first platform that matches, then its k-th device */
        for (int i = 0; i < n; i++) {
          if (!platform_matches(&devs[i], plat)) continue;
          for (int j = i; j < n && devs[j].platform_index == devs[i].platform_index; j++)
            if (devs[j].index_in_platform == k) {
              snprintf(why, cap, "device %ld of platform '%s'", k, devs[i].platform_name);
              return j;
            }
          return -1;
        }
        return -1;
      }
    }
    int first = -1, matches = 0;
    for (int i = 0; i < n; i++)
      if (contains_ci(devs[i].name, sel) || platform_matches(&devs[i], sel)) {
        if (first < 0) first = i;
        matches++;
      }
    if (matches > 1)
      snprintf(why, cap, "by name, the first of %d matches; PLATFORM:INDEX picks another", matches);
    else
      snprintf(why, cap, "by name");
    return first;
  }
  for (int i = 0; i < n; i++)
    if ((devs[i].type & CL_DEVICE_TYPE_GPU) && !dmx_device_is_simulator(&devs[i])) {
      snprintf(why, cap, "first GPU");
      return i;
    }
  for (int i = 0; i < n; i++)
    if (!dmx_device_is_simulator(&devs[i])) {
      snprintf(why, cap, "no GPU found: the first device that is not a simulator");
      return i;
    }
  snprintf(why, cap, "first device (only simulators found)");
  return n > 0 ? 0 : -1;
}

int dmx_choose_device_for_rank(const dmx_device_info *devs, int n, const char *sel, int local_rank, int local_size,
                               char *why, size_t cap) {
  if (local_size <= 1) return dmx_choose_device(devs, n, sel, why, cap);
  if (sel && strchr(sel, ',')) {
    int count = 1;
    for (const char *c = sel; *c; c++) count += *c == ',';
    int k = local_rank % count;
    const char *start = sel;
    for (int i = 0; i < k; i++) start = strchr(start, ',') + 1;
    const char *end = strchr(start, ',');
    char one[256];
    snprintf(one, sizeof one, "%.*s", (int)(end ? (size_t)(end - start) : strlen(start)), start);
    char inner[200] = "";
    int idx = one[0] ? dmx_choose_device(devs, n, one, inner, sizeof inner) : -1;
    snprintf(why, cap, "entry %d ('%s') of the device list for local rank %d: %s", k, one, local_rank, inner);
    return idx;
  }
  if (sel && *sel) return dmx_choose_device(devs, n, sel, why, cap);
  int gpus = 0;
  for (int i = 0; i < n; i++) gpus += (devs[i].type & CL_DEVICE_TYPE_GPU) && !dmx_device_is_simulator(&devs[i]);
  if (gpus == 0) {
    char inner[200] = "";
    int idx = dmx_choose_device(devs, n, NULL, inner, sizeof inner);
    snprintf(why, cap, "%s; shared by the %d ranks on this host", inner, local_size);
    return idx;
  }
  int want = local_rank % gpus;
  for (int i = 0, g = 0; i < n; i++)
    if ((devs[i].type & CL_DEVICE_TYPE_GPU) && !dmx_device_is_simulator(&devs[i]) && g++ == want) {
      snprintf(why, cap, "GPU %d of %d on this host for local rank %d%s", want, gpus, local_rank,
               local_size > gpus ? " (more ranks than GPUs: some share one)" : "");
      return i;
    }
  return -1;
}

void dmx_device_folder_name(const char *in, char *out, size_t cap) {
  size_t n = 0;
  for (; *in && n + 1 < cap; in++)
    out[n++] =
        (char)((*in >= 'a' && *in <= 'z') || (*in >= 'A' && *in <= 'Z') || (*in >= '0' && *in <= '9') ? *in : '_');
  out[n] = 0;
}
