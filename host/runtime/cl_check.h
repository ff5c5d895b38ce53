/* OpenCL status codes as names, and the check every OpenCL call goes through. */
#ifndef DMX_RUNTIME_CL_CHECK_H
#define DMX_RUNTIME_CL_CHECK_H

#include <CL/cl.h>

const char *dmx_cl_status_name(cl_int status);

/* Checks an OpenCL status; on failure ends the process naming the call, the site and the status. */
void dmx_cl_check_at(cl_int status, const char *what, const char *file, int line);
#define DMX_CL_CHECK(call) dmx_cl_check_at((call), #call, __FILE__, __LINE__)

#endif
