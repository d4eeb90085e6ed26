/* Uses the installed headers and library: a 1x1x1 GEMM on the CPU reference. */
#include <stdio.h>

#include <nncl.h>

int main(void)
{
    nncl_context_options opt = nncl_context_options_default();
    opt.backend = NNCL_BACKEND_CPU;
    nncl_context *ctx;
    if (nncl_context_create(&opt, &ctx) != NNCL_OK) return 1;
    const int64_t one = 1;
    nncl_tensor a, c;
    const float two = 2.0f;
    float out = 0.0f;
    int ok = nncl_tensor_create(ctx, 1, &one, &a) == NNCL_OK && nncl_tensor_create(ctx, 1, &one, &c) == NNCL_OK &&
             nncl_tensor_write(ctx, &a, &two, 1) == NNCL_OK &&
             nncl_gemm(ctx, NNCL_NO_TRANS, NNCL_NO_TRANS, 1, 1, 1, 1.0f, &a, 1, &a, 1, 0.0f, &c, 1) == NNCL_OK &&
             nncl_tensor_read(ctx, &c, &out, 1) == NNCL_OK && out == 4.0f;
    nncl_tensor_destroy(ctx, &a);
    nncl_tensor_destroy(ctx, &c);
    nncl_context_destroy(ctx);
    printf("consumer: 2 * 2 = %g (%s)\n", (double)out, ok ? "ok" : "wrong");
    return ok ? 0 : 1;
}
