/* Softmax cross-entropy (torch.nn.CrossEntropyLoss with ignore_index -100) and a device-side sum. */
#include "layers/loss.h"

/* Work-group size of the row reductions: a power of two (the tree halves it), at most 256 and at
 * most what the kernel allows. 256 lanes keep ~200 columns per lane at the 50265-class vocabulary. */
static size_t reduce_local(dmx_runtime *rt, dmx_kernel_id id) { return dmx_local_pow2(rt, id, 0, 256, 1); }

/* losses (R), predictions (R) int32, dlogits (R, C) written when dlogits.buf; logits (R, C); targets (R) int32 */
void dmx_softmax_xent_forward_backward(dmx_runtime *rt, dmx_tensor losses, dmx_tensor predictions, dmx_tensor dlogits,
                                       dmx_tensor logits, dmx_tensor targets, int R, int C, float scale) {
  if (R <= 0) return;
  size_t L = reduce_local(rt, DMX_K_SOFTMAX_XENT), glob = (size_t)R * L;
  int has_grad = dlogits.buf != NULL;
  dmx_tensor dl = has_grad ? dlogits : logits; /* any valid buffer; the kernel never writes it */
  if (rt->serial_reductions && C <= 256) {
    /* a 256-lane group per row costs more in barriers than a task head's few classes hold in work; the
     * vocabulary's rows keep the group, whose lanes read consecutive columns */
    size_t gr = (size_t)R, lr = 1;
    dmx_launch_exact(rt, DMX_K_SOFTMAX_XENT_ROWS, 1, &gr, &lr, KA_T(losses), KA_T(predictions), KA_T(dl), KA_T(logits),
                     KA_T(targets), KA_I(C), KA_F(scale), KA_I(has_grad));
    return;
  }
  dmx_launch(rt, DMX_K_SOFTMAX_XENT, 1, &glob, &L, KA_T(losses), KA_T(predictions), KA_T(dl), KA_T(logits),
             KA_T(targets), KA_I(R), KA_I(C), KA_F(scale), KA_I(has_grad), KA_LOCAL(L * sizeof(float)),
             KA_LOCAL(L * sizeof(float)), KA_LOCAL(L * sizeof(int)));
}

/* out (1) = sum of x (n) */
void dmx_reduce_sum(dmx_runtime *rt, dmx_tensor out, dmx_tensor x, int n) {
  size_t L = reduce_local(rt, DMX_K_REDUCE_SUM_1WG);
  dmx_launch(rt, DMX_K_REDUCE_SUM_1WG, 1, &L, &L, KA_T(out), KA_T(x), KA_I(n), KA_LOCAL(L * sizeof(float)));
}
