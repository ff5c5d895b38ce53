/* Small utility kernels shared by the runtime and tests. Every kernel takes tensors as
 * (pointer, element offset) pairs: the host addresses tensors inside arena buffers. */

__kernel void scale_add(__global float *y_, ulong y_off, __global const float *x_, ulong x_off, float alpha,
                        int n) {
  int i = get_global_id(0);
  if (i >= n) return;
  __global float *y = y_ + y_off;
  __global const float *x = x_ + x_off;
  y[i] += alpha * x[i];
}

/* p[off .. off+n) = v over an exact grid of n work-items (host/runtime/launch.c dmx_fill): on PoCL 2-3x
 * faster than clEnqueueFillBuffer (28 MB: 2.4 against 5.1 ms). */
__kernel void fill_value(__global float *p, ulong off, float v) { p[off + get_global_id(0)] = v; }
